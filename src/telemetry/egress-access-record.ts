// The egress's access line (protocol "segment"), built from one call's numbers by both egress
// paths: the TypeScript egress's observer (src/node/node-telemetry.ts egressObserver) and the
// native engine's batched records (src/engine/engine-egress-access.ts), so the log format does
// not depend on which one served the call.
import { grpcStatusName } from '../kserve/status.ts';
import { type AccessRecord, roundMs } from './access-log.ts';

export interface EgressAccessFields {
  requestId: string;
  tenant: number;
  model: string;
  /** The KServe method of the CALL (ModelInfer, ModelReady, ...). */
  method: string;
  /** gRPC status the model server, the deadline or a cancel ended the call with. */
  status: number;
  bytesIn: number;
  bytesOut: number;
  /** CALL arrival to the answer. */
  totalMs: number;
  /** CALL arrival until the model server was called. */
  queueMs: number;
  /** The model server's time. */
  upstreamMs: number;
  /** The address of the ingress the CALL came from. */
  peer?: string;
  /** The model server called; absent when the model had no route. */
  upstream?: string;
  /** The trace id of the context sent to the model server. */
  traceId?: string;
}

export function egressAccessRecord(f: EgressAccessFields): AccessRecord {
  return {
    request_id: f.requestId,
    tenant: f.tenant,
    model: f.model,
    protocol: 'segment',
    method: f.method,
    status: f.status,
    code: grpcStatusName(f.status),
    bytes_in: f.bytesIn,
    bytes_out: f.bytesOut,
    total_ms: roundMs(f.totalMs),
    queue_ms: roundMs(f.queueMs),
    upstream_ms: roundMs(f.upstreamMs),
    ...(f.peer !== undefined ? { peer: f.peer } : {}),
    ...(f.upstream !== undefined ? { upstream: f.upstream } : {}),
    ...(f.traceId !== undefined ? { trace_id: f.traceId } : {}),
  };
}
