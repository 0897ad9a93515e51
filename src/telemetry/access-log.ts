// The access log: one JSON line per finished request, at info, when `telemetry.accessLog` is on.
// The record shape is fixed and documented (docs/operations.md, "Access log") so any producer of
// requests feeds the same sink: the TypeScript ingress and egress today, and the native engine,
// which hands its batched records to write() unchanged.
import type { Logger } from './logger.ts';

/** Where a request entered this process: a client protocol, or the segment (an egress call). */
export type AccessProtocol = 'http' | 'grpc' | 'websocket' | 'segment';

/** One finished request. Field names are the JSON keys; durations in milliseconds. */
export interface AccessRecord {
  request_id: string;
  /** Tenant id bound to the request (0 = system / no authentication). */
  tenant: number;
  model: string;
  protocol: AccessProtocol;
  /** The KServe method (ModelInfer, ModelReady, ModelMetadata, ...). */
  method: string;
  /** HTTP status for http and websocket; the gRPC status code for grpc and segment. */
  status: number;
  /** gRPC status name (OK, UNAVAILABLE, ...) for grpc and segment; the SLUICE_ERR_* code of a failure otherwise ('' when OK). */
  code: string;
  /** Request body bytes as received (serialized request, before any decoding). */
  bytes_in: number;
  /** Response body bytes sent. */
  bytes_out: number;
  /** Arrival to the last byte of the answer. */
  total_ms: number;
  /** Arrival until the request was handed on (to the segment at the ingress, to the model server at the egress). */
  queue_ms: number;
  /** Handed on until the answer came back: the segment round trip at the ingress, the model server's time at the egress. */
  upstream_ms: number;
  /** The egress peer (ingress) that answered, when one did; at the egress (segment): the address of the ingress the CALL came from. */
  peer?: string;
  /** segment: the model server the egress called ("host:port"); absent when the model had no route. */
  upstream?: string;
  /** Attempts on the segment (more than 1 when retried on another peer). */
  attempts?: number;
  /** W3C trace id of the request's trace, when tracing is on. */
  trace_id?: string;
}

export const ACCESS_LOG_MSG = 'access';

/** Milliseconds rounded to microseconds (enough for a log, shorter lines). */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Writes access records through a logger (the node's `access` component) at info. */
export class AccessLog {
  constructor(private readonly logger: Logger) {}

  write(record: AccessRecord): void {
    this.logger.info(record, ACCESS_LOG_MSG);
  }

  /** A batch from a producer that buffers (the native engine): one line per record, same shape. */
  writeBatch(records: Iterable<AccessRecord>): void {
    for (const r of records) this.logger.info(r, ACCESS_LOG_MSG);
  }
}
