// Shared pieces of the engine tests: an engine with an echo for messages it hands to JS, link
// options from the TS link tuning, waits with deadlines.
import { once } from 'node:events';
import type { EngineLinkOptions } from '../../src/engine/engine-addon.ts';
import { engineLinkOptions } from '../../src/engine/engine-link-options.ts';
import { NativeEngine, type EngineInbound, type EngineLinkClose, type EngineLinkInfo } from '../../src/engine/native-engine.ts';
import { resolveLinkTuning } from '../../src/transport/link-tuning.ts';
import type { LinkTuning } from '../../src/transport/types.ts';
import type { SluiceError } from '../../src/errors.ts';

export function linkOptions(key: Uint8Array, tuning?: LinkTuning, extra: Partial<EngineLinkOptions> = {}): EngineLinkOptions {
  return { ...engineLinkOptions(key, resolveLinkTuning(tuning, undefined), { handshakeTimeoutMs: 10_000 }), ...extra };
}

/** Resolves with the first event `name` whose arguments pass `match`, or rejects after `ms`. */
export function waitFor<T extends unknown[]>(emitter: NativeEngine, name: string, match: (...args: T) => boolean = () => true, ms = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, on);
      reject(new Error(`no '${name}' event within ${ms} ms`));
    }, ms);
    const on = (...args: unknown[]): void => {
      if (!match(...(args as T))) return;
      clearTimeout(timer);
      emitter.off(name, on);
      resolve(args as T);
    };
    emitter.on(name, on);
  });
}

export type LinkEvent = [EngineLinkInfo];
export type CloseEvent = [number, EngineLinkClose];
export type MessageEvent = [number, EngineInbound];
export type RejectedEvent = [SluiceError, string];

/** Echoes every message the engine hands to JS back on the same link, stream and kind. */
export function echo(engine: NativeEngine): void {
  engine.on('message', (link: number, m: EngineInbound) => engine.send(link, { cls: m.cls, kind: m.kind, streamId: m.streamId, tenant: m.tenant, body: m.body }));
}

export { once };
