// gRPC metadata on node:http2 headers: the request's metadata as a plain record for hooks and
// request ids, and grpc-message's percent-encoding for statuses sent back.
import type { IncomingHttpHeaders } from 'node:http2';

/** Headers that are HTTP/2 or gRPC transport fields, not call metadata. */
const TRANSPORT_HEADERS = new Set(['content-type', 'te', 'grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'content-length']);

/** The call's metadata (lower-case names, text values; binary -bin values stay base64). */
export function metadataOf(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ':' */ || TRANSPORT_HEADERS.has(k)) continue;
    const v = headers[k];
    if (typeof v === 'string') out[k] = v;
    else if (Array.isArray(v)) out[k] = v.join(',');
  }
  return out;
}

/** One text value of a header (the first when repeated). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? v[0] : undefined;
}

/**
 * grpc-message is percent-encoded UTF-8: bytes outside printable ASCII (0x20-0x7E) and '%'
 * itself become %XX (gRPC over HTTP/2 spec, "Responses").
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}
