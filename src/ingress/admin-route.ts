// An administrative endpoint on the HTTP listener (not the metrics port), e.g.
// POST /v2/sluice/evidence. The handler does its own gating (the admin capability through the
// security gates) and answers with bytes or throws an InferenceError (an RFC 7807 problem).
import type { RequestHeaders } from './request-context.ts';

export interface AdminRequest {
  requestId: string;
  headers: RequestHeaders;
  body: Buffer;
}

export interface AdminResponse {
  contentType: string;
  body: Buffer | string;
  headers?: Readonly<Record<string, string>>;
}

export interface AdminRoute {
  readonly method: 'post';
  /** Exact path, e.g. /v2/sluice/evidence. */
  readonly path: string;
  handle(req: AdminRequest): Promise<AdminResponse>;
}
