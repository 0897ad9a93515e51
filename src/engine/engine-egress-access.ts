// The egress's access log on the native engine (telemetry.accessLog): the engine queues one
// EGRESS_CALL_DONE record per model-server call (native/engine/egress_access.h), JS takes them
// in batches (at most 10 ms late, one wake-up per batch) and writes the line the TypeScript
// egress's observer writes (src/telemetry/egress-access-record.ts), so the log does not depend
// on the path. Records the ring had to drop under overload are counted (eventsDropped).
import type { AccessLog } from '../telemetry/access-log.ts';
import { egressAccessRecord } from '../telemetry/egress-access-record.ts';
import { CALL_METHOD_NAMES, type CallMethod } from '../wire/inference-envelope.ts';
import type { EngineEgressCallDone, NativeEngine } from './native-engine.ts';

/**
 * Writes an access line per EGRESS_CALL_DONE record of `engine`; `peerOf` names the remote
 * address of the link a CALL came in on. The caller asks the engine for the records
 * (configureEgress accessRecords).
 */
export function writeEngineEgressAccess(engine: NativeEngine, log: AccessLog, peerOf: (link: number) => string | undefined): void {
  engine.on('egress-call-done', (r: EngineEgressCallDone) => {
    const peer = peerOf(r.link);
    log.write(
      egressAccessRecord({
        requestId: r.requestId,
        tenant: r.tenant,
        model: r.model,
        method: CALL_METHOD_NAMES[r.method as CallMethod] ?? String(r.method),
        status: r.status,
        bytesIn: r.bytesIn,
        bytesOut: r.bytesOut,
        totalMs: r.durationSeconds * 1000,
        queueMs: r.queueSeconds * 1000,
        upstreamMs: r.upstreamSeconds * 1000,
        ...(peer !== undefined ? { peer } : {}),
        ...(r.upstream !== '' ? { upstream: r.upstream } : {}),
        ...(r.traceId !== undefined ? { traceId: r.traceId } : {}),
      }),
    );
  });
}
