// The engine's log records (batched events) into the node's logger, at their own levels.
import type { Logger } from '../telemetry/logger.ts';
import { EngineLogLevel } from './engine-events.ts';
import type { EngineLogRecord, NativeEngine } from './native-engine.ts';

export function forwardEngineLogs(engine: NativeEngine, log: Logger): void {
  engine.on('log', (r: EngineLogRecord) => {
    const { level: _level, msg: _msg, ...fields } = r;
    if (r.level >= EngineLogLevel.ERROR) log.error(fields, r.msg);
    else if (r.level >= EngineLogLevel.WARN) log.warn(fields, r.msg);
    else if (r.level >= EngineLogLevel.INFO) log.info(fields, r.msg);
    else log.debug(fields, r.msg);
  });
}
