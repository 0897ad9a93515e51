// Everything the ingress knows about one request while it is in flight. Created by the
// protocol server (gRPC, HTTP, WebSocket), passed through the hooks, the router and the
// segment forwarder, and reported to the response hooks at the end.
import type { InferenceError } from '../kserve/inference-error.ts';
import { grpcStatusName, type GrpcStatusCode } from '../kserve/status.ts';

export type IngressProtocol = 'grpc' | 'http' | 'ws';
export type IngressMethod = 'ModelInfer' | 'ModelReady' | 'ModelMetadata' | 'ModelConfig' | 'ModelStatistics' | 'RepositoryIndex';

/** Request headers (HTTP) or metadata (gRPC) with lower-case names, for hooks. */
export type RequestHeaders = Readonly<Record<string, string>>;

export interface RequestContext {
  readonly requestId: string;
  readonly protocol: IngressProtocol;
  readonly method: IngressMethod;
  readonly model: string;
  readonly version: string;
  /** Tenant id bound into the frames (0 = system); an auth hook sets it. */
  tenant: number;
  /** Absolute deadline, Date.now() milliseconds. */
  readonly deadline: number;
  /** The budget the client gave (ms), for messages: "deadline of 5 ms" (undefined: the default). */
  readonly timeoutMs?: number | undefined;
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  readonly headers: RequestHeaders;
  readonly requestBytes: number;
  /**
   * W3C traceparent to carry across the segment (CALL envelope v2) and on to the model server;
   * the tracing layer sets it to its ingress span. Undefined: none travels.
   */
  traceparent?: string | undefined;
  /** Set by the forwarder while the call is on the segment: stops it (caller went away). */
  cancel: (() => void) | undefined;
  /**
   * Set by a hook when the answer must wait for something, e.g. the request's audit entry
   * being durable; a rejection fails the request with that error instead of answering.
   */
  commit: Promise<unknown> | undefined;
  /** The segment forwarder's record of the call's trip (for the access log and traces). */
  segment: SegmentTrip | undefined;
  /** Extra headers for the answer (HTTP headers, gRPC trailers), set by a stage, e.g. `pii-flags`. */
  responseHeaders: Record<string, string> | undefined;
}

/** When the (last) attempt went onto the segment and came back, performance.now() ms. */
export interface SegmentTrip {
  peer: string;
  attempts: number;
  /** First time the call was handed to a link. */
  firstSentAt: number;
  sentAt: number;
  /** 0 until the reply (or the failure) of the last attempt. */
  repliedAt: number;
}

export interface RequestOutcome {
  status: GrpcStatusCode;
  error: InferenceError | undefined;
  responseBytes: number;
  /** Milliseconds from arrival to the answer. */
  durationMs: number;
}

export function newRequestContext(fields: Omit<RequestContext, 'tenant' | 'cancel' | 'commit' | 'startedAt' | 'segment' | 'responseHeaders'> & { startedAt?: number }): RequestContext {
  return { tenant: 0, cancel: undefined, commit: undefined, segment: undefined, responseHeaders: undefined, startedAt: fields.startedAt ?? performance.now(), ...fields };
}

/**
 * The status a client saw, as logs report it: the HTTP status on http and websocket (with the
 * SLUICE_ERR_* code of a failure), the gRPC status and its name on grpc.
 */
export function answeredStatus(protocol: IngressProtocol, error: InferenceError | undefined): { status: number; code: string } {
  if (protocol === 'grpc') {
    const status = error === undefined ? 0 : error.grpcStatus;
    return { status, code: grpcStatusName(status) };
  }
  return error === undefined ? { status: 200, code: '' } : { status: error.httpStatus, code: error.code };
}
