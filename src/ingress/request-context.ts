// Everything the ingress knows about one request while it is in flight. Created by the
// protocol server (gRPC, HTTP, WebSocket), passed through the hooks, the router and the
// segment forwarder, and reported to the response hooks at the end.
import type { InferenceError } from '../kserve/inference-error.ts';
import type { GrpcStatusCode } from '../kserve/status.ts';

export type IngressProtocol = 'grpc' | 'http' | 'ws';
export type IngressMethod = 'ModelInfer' | 'ModelReady' | 'ModelMetadata';

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
  /** performance.now() when the request arrived. */
  readonly startedAt: number;
  readonly headers: RequestHeaders;
  readonly requestBytes: number;
  /** Set by the forwarder while the call is on the segment: stops it (caller went away). */
  cancel: (() => void) | undefined;
  /**
   * Set by a hook when the answer must wait for something, e.g. the request's audit entry
   * being durable; a rejection fails the request with that error instead of answering.
   */
  commit: Promise<unknown> | undefined;
  /** Extra headers for the answer (HTTP headers, gRPC trailers), set by a stage, e.g. `pii-flags`. */
  responseHeaders: Record<string, string> | undefined;
}

export interface RequestOutcome {
  status: GrpcStatusCode;
  error: InferenceError | undefined;
  responseBytes: number;
  /** Milliseconds from arrival to the answer. */
  durationMs: number;
}

export function newRequestContext(fields: Omit<RequestContext, 'tenant' | 'cancel' | 'commit' | 'startedAt' | 'responseHeaders'> & { startedAt?: number }): RequestContext {
  return { tenant: 0, cancel: undefined, commit: undefined, responseHeaders: undefined, startedAt: fields.startedAt ?? performance.now(), ...fields };
}
