// A uWS request's headers as a record (lower-case names). A repeated field is joined with ", "
// (RFC 9110 section 5.3) rather than letting the last one win, so the gates can see that a
// credential header came twice.
import type { HttpRequest } from 'uWebSockets.js';
import type { RequestHeaders } from './request-context.ts';

export function requestHeaders(req: HttpRequest): RequestHeaders {
  const out: Record<string, string> = {};
  req.forEach((k, v) => {
    const prev = out[k];
    out[k] = prev === undefined ? v : `${prev}, ${v}`;
  });
  return out;
}
