// The engine's log records (batched events) into the node's logger, at their own levels. A
// record whose code is "dialer:N" is about an egress peer (a retry, an ejection): the peer's
// name replaces it, as the TypeScript forwarder's lines carry `peer`.
import type { Logger } from '../telemetry/logger.ts';
import { EngineLogLevel } from './engine-events.ts';
import type { EngineLogRecord, NativeEngine } from './native-engine.ts';

const DIALER = /^dialer:(\d+)$/;

export function forwardEngineLogs(engine: NativeEngine, log: Logger, peerName?: (dialer: number) => string | undefined): void {
  engine.on('log', (r: EngineLogRecord) => {
    const { level: _level, msg: _msg, ...rest } = r;
    let fields: Record<string, unknown> = rest;
    const m = r.code !== undefined ? DIALER.exec(r.code) : null;
    if (m !== null) {
      const { code: _code, ...others } = rest;
      const dialer = Number(m[1]);
      fields = { ...others, peer: peerName?.(dialer) ?? `dialer ${dialer}` };
    }
    if (r.level >= EngineLogLevel.ERROR) log.error(fields, r.msg);
    else if (r.level >= EngineLogLevel.WARN) log.warn(fields, r.msg);
    else if (r.level >= EngineLogLevel.INFO) log.info(fields, r.msg);
    else log.debug(fields, r.msg);
  });
}
