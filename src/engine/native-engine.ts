// The TypeScript face of the native engine (native/engine/engine.h): starts its I/O thread,
// hands it listeners, peers and the egress's upstreams, and turns its batched events into
// EventEmitter events. Nothing here runs per inference call: calls arriving on engine links
// are served inside the engine; only link lifecycle, refusals, logs and messages the engine
// does not consume itself (the slow path) come up as events.
import { EventEmitter } from 'node:events';
import { SluiceError } from '../errors.ts';
import { CloseCode } from '../wire/close-frame.ts';
import { loadEngineAddon, type EngineEgressConfig, type EngineEventRecord, type EngineLinkOptions, type NativeEngineHandle } from './engine-addon.ts';
import { EngineCounters } from './engine-counters.ts';
import { CLOSED_BY, EngineEventType } from './engine-events.ts';

export interface EngineLinkInfo {
  /** The engine's number for the link (send(), closeLink(), events). */
  id: number;
  /** Hex prefix of the handshake transcript: the same on both ends (the TS link's `id`). */
  linkId: string;
  remoteAddress: string;
  role: 'initiator' | 'acceptor';
  /** The dialer that made it (0 for accepted links). */
  dialer: number;
}

export interface EngineLinkClose {
  by: (typeof CLOSED_BY)[number];
  code: number;
  reason: string;
  /** Set when by === 'error': the stable code (SLUICE_ERR_WIRE_*, SLUICE_ERR_TRANSPORT_*). */
  error?: SluiceError;
}

export interface EngineInbound {
  cls: number;
  kind: number;
  streamId: number;
  tenant: number;
  body: Buffer;
}

export interface EnginePolicyDenial {
  tenantId: number;
  tenantName: string | null;
  requestId: string;
  model: string;
  reason: string;
}

export interface EngineLogRecord {
  level: number;
  msg: string;
  code?: string;
  request_id?: string;
  model?: string;
  err?: string;
}

/**
 * Events: 'link' (EngineLinkInfo), 'close' (id, EngineLinkClose), 'message' (id, EngineInbound),
 * 'drain' (id), 'rejected' (SluiceError, remote) for a refused handshake at a listener,
 * 'dial-failed' (dialer, SluiceError), 'policy-denied' (EnginePolicyDenial), 'log' (EngineLogRecord).
 */
export class NativeEngine extends EventEmitter {
  readonly counters: EngineCounters;
  readonly #handle: NativeEngineHandle;
  readonly #links = new Map<number, EngineLinkInfo>();
  #listens: { resolve: (a: { host: string; port: number }) => void; reject: (e: Error) => void }[] = [];
  #stopped = false;

  constructor(threadName = 'sluice-infer') {
    super();
    const addon = loadEngineAddon();
    this.#handle = new addon.Engine((batch) => this.#onBatch(batch));
    this.#handle.start(threadName);
    this.counters = new EngineCounters(this.#handle.counters());
  }

  /** Links open now. */
  get links(): ReadonlyMap<number, EngineLinkInfo> {
    return this.#links;
  }

  /** Upstream calls in flight at the engine's egress (an atomic read of the counters block). */
  get egressInflight(): number {
    return this.counters.get('egressCallsInflight');
  }

  /** Listens for inference-segment links; resolves with the bound address. */
  listen(host: string, port: number, opts: EngineLinkOptions): Promise<{ host: string; port: number }> {
    this.#check();
    return new Promise((resolve, reject) => {
      this.#listens.push({ resolve, reject });
      this.#handle.listen(host, port, opts);
    });
  }

  /** Keeps a link to host:port up (reconnecting with backoff); returns the dialer id. */
  dial(host: string, port: number, opts: EngineLinkOptions): number {
    this.#check();
    return this.#handle.dial(host, port, opts);
  }

  configureEgress(config: EngineEgressConfig): void {
    this.#check();
    this.#handle.configureEgress(config);
  }

  /** Drain: the egress answers new calls UNAVAILABLE; calls in flight finish. */
  beginShutdown(): void {
    if (!this.#stopped) this.#handle.beginShutdown();
  }

  /** Sends a message on an engine link (the slow path: the bytes are copied now). */
  send(link: number, msg: { cls: number; kind: number; streamId: number; tenant?: number; body: Uint8Array }): void {
    this.#check();
    this.#handle.send(link, msg.cls, msg.kind, msg.streamId, msg.tenant ?? 0, msg.body);
  }

  closeLink(link: number, reason = 'closed by the application', code: number = CloseCode.NORMAL): void {
    if (!this.#stopped) this.#handle.closeLink(link, code, reason);
  }

  /** Stops the engine thread (links get GOING_AWAY); pending events are delivered first. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#handle.stop();
    const rest = this.#handle.drain();
    if (rest.length > 0) this.#onBatch(rest);
    for (const l of this.#listens) l.reject(new SluiceError('SLUICE_ERR_ENGINE_STOPPED', 'engine stopped'));
    this.#listens = [];
  }

  #check(): void {
    if (this.#stopped) throw new SluiceError('SLUICE_ERR_ENGINE_STOPPED', 'engine stopped');
  }

  #onBatch(batch: EngineEventRecord[]): void {
    for (const e of batch) this.#onEvent(e);
  }

  #onEvent(e: EngineEventRecord): void {
    switch (e.type) {
      case EngineEventType.LINK_OPENED: {
        const text = e.text ?? '';
        const cut = text.lastIndexOf(' ');
        const info: EngineLinkInfo = {
          id: e.link,
          remoteAddress: text.slice(0, cut),
          linkId: text.slice(cut + 1),
          role: e.b === 1 ? 'initiator' : 'acceptor',
          dialer: e.a,
        };
        this.#links.set(e.link, info);
        this.emit('link', info);
        return;
      }
      case EngineEventType.LINK_CLOSED: {
        this.#links.delete(e.link);
        const by = CLOSED_BY[e.b] ?? 'error';
        const info: EngineLinkClose = { by, code: e.a, reason: e.text ?? '' };
        if (by === 'error') info.error = new SluiceError(e.code ?? 'SLUICE_ERR_TRANSPORT_PEER_GONE', e.text ?? 'link failed');
        this.emit('close', e.link, info);
        return;
      }
      case EngineEventType.MESSAGE:
        this.emit('message', e.link, { cls: Math.floor(e.a / 65536), kind: e.a % 65536, streamId: e.b, tenant: e.c, body: e.body ?? Buffer.alloc(0) });
        return;
      case EngineEventType.DRAIN:
        this.emit('drain', e.link);
        return;
      case EngineEventType.HANDSHAKE_FAILED: {
        const text = e.text ?? '';
        this.emit('rejected', new SluiceError(e.code ?? 'SLUICE_ERR_HANDSHAKE_PROTOCOL', text), remoteOf(text));
        return;
      }
      case EngineEventType.DIAL_FAILED:
        this.emit('dial-failed', e.link, new SluiceError(e.code ?? 'SLUICE_ERR_TRANSPORT_CONNECT', e.text ?? 'dial failed'));
        return;
      case EngineEventType.LISTENING:
        this.#listens.shift()?.resolve({ host: e.text ?? '', port: e.a });
        return;
      case EngineEventType.LISTEN_FAILED:
        this.#listens.shift()?.reject(new SluiceError(e.code ?? 'SLUICE_ERR_ENGINE_SYSTEM', e.text ?? 'listen failed'));
        return;
      case EngineEventType.POLICY_DENIED:
        this.emit('policy-denied', {
          tenantId: e.c,
          tenantName: e.b === 1 ? (e.extra ?? '') : null,
          requestId: e.code ?? '',
          model: e.body?.toString('utf8') ?? '',
          reason: e.text ?? '',
        } satisfies EnginePolicyDenial);
        return;
      case EngineEventType.LOG:
      default:
        this.emit('log', {
          level: e.a,
          msg: e.text ?? '',
          ...(e.code !== undefined ? { code: e.code } : {}),
          ...(e.requestId !== undefined ? { request_id: e.requestId } : {}),
          ...(e.model !== undefined ? { model: e.model } : {}),
          ...(e.err !== undefined ? { err: e.err } : {}),
        } satisfies EngineLogRecord);
    }
  }
}

/** "127.0.0.1:5000: reason" -> "127.0.0.1:5000" (IPv6 "::1:5000: reason" too). */
function remoteOf(text: string): string {
  const i = text.indexOf(': ');
  return i < 0 ? text : text.slice(0, i);
}
