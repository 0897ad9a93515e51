// One id per request (design: "Errors and ids"): a valid incoming x-request-id, else the trace
// id of a valid W3C traceparent, else a fresh UUID. The id travels in frames, to the model
// server (x-request-id metadata), back in responses, and in every log line about the request.
import { randomUUID } from 'node:crypto';

/** Printable, log- and header-safe, at most 128 characters. */
const REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:~+=/@-]{0,127}$/;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/;

export function isValidRequestId(id: string): boolean {
  return REQUEST_ID.test(id);
}

/** The trace id of a valid traceparent header, or undefined. */
export function traceIdFromTraceparent(header: string): string | undefined {
  const m = TRACEPARENT.exec(header.trim());
  if (m === null) return undefined;
  const [, version, traceId, parentId] = m;
  if (version === 'ff' || (version === '00' && m[0].length !== 55)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(parentId!)) return undefined;
  return traceId;
}

/** Picks the request id from the incoming headers (either may be undefined or empty). */
export function resolveRequestId(xRequestId: string | undefined, traceparent: string | undefined): string {
  if (xRequestId !== undefined && xRequestId !== '' && REQUEST_ID.test(xRequestId)) return xRequestId;
  if (traceparent !== undefined && traceparent !== '') {
    const t = traceIdFromTraceparent(traceparent);
    if (t !== undefined) return t;
  }
  return randomUUID();
}
