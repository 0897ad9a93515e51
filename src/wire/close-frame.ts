// Payload of a CLOSE frame: why the sender is closing the link (a code and a short text),
// so the peer's 'close' event can say it.
import { WireError, WireErrorCode } from './errors.ts';
import { FrameFlags, FrameType } from './frame-header.ts';
import type { FrameSpec } from './frame-sealer.ts';

export const CloseCode = {
  /** The application closed the link. */
  NORMAL: 0,
  /** The node is shutting down. */
  GOING_AWAY: 1,
  /** The peer sent bytes that are not valid frames. */
  PROTOCOL_ERROR: 2,
  /** A frame failed authentication, was replayed, or carried an unexpected key or nonce. */
  SECURITY_VIOLATION: 3,
  /** A message or frame over the limits. */
  TOO_BIG: 4,
  /** This end failed internally. */
  INTERNAL_ERROR: 5,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

const NAMES: Record<number, string> = {
  0: 'normal',
  1: 'going away',
  2: 'protocol error',
  3: 'security violation',
  4: 'too big',
  5: 'internal error',
};

export function closeCodeName(code: number): string {
  return NAMES[code] ?? `code ${code}`;
}

export const MAX_CLOSE_REASON_BYTES = 240;

export function encodeClosePayload(code: number, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.byteLength > MAX_CLOSE_REASON_BYTES) {
    // Cut on a character boundary: drop trailing continuation bytes of a split character.
    let end = MAX_CLOSE_REASON_BYTES;
    while (end > 0 && ((text[end] ?? 0) & 0xc0) === 0x80) end -= 1;
    text = text.subarray(0, end);
  }
  const out = Buffer.allocUnsafe(2 + text.byteLength);
  out.writeUInt16BE(code, 0);
  text.copy(out, 2);
  return out;
}

export function decodeClosePayload(payload: Uint8Array): { code: number; reason: string } {
  if (payload.byteLength < 2 || payload.byteLength > 2 + MAX_CLOSE_REASON_BYTES) {
    throw new WireError(WireErrorCode.MALFORMED, `close payload of ${payload.byteLength} bytes (expected 2..${2 + MAX_CLOSE_REASON_BYTES})`);
  }
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return { code: buf.readUInt16BE(0), reason: buf.toString('utf8', 2) };
}

/** The close code that tells the peer why a receive error ended the link. */
export function closeCodeFor(err: unknown): CloseCode {
  const code = (err as { code?: unknown } | undefined)?.code;
  switch (code) {
    case WireErrorCode.AUTH:
    case WireErrorCode.REPLAY:
    case WireErrorCode.SEQUENCE_GAP:
    case WireErrorCode.NONCE:
    case WireErrorCode.KEY:
    case WireErrorCode.SEGMENT:
    case WireErrorCode.CLASS:
      return CloseCode.SECURITY_VIOLATION;
    case WireErrorCode.OVERSIZE:
      return CloseCode.TOO_BIG;
    case WireErrorCode.TRUNCATED:
    case WireErrorCode.BAD_MAGIC:
    case WireErrorCode.VERSION:
    case WireErrorCode.MALFORMED:
    case WireErrorCode.FRAGMENT:
      return CloseCode.PROTOCOL_ERROR;
    default:
      return CloseCode.INTERNAL_ERROR;
  }
}

/** The CLOSE frame that tells the peer the link is closing, and why. */
export function closeFrameSpec(code: number, reason: string): FrameSpec {
  const payload = encodeClosePayload(code, reason);
  return {
    type: FrameType.CLOSE,
    cls: 'control',
    flags: FrameFlags.FIRST | FrameFlags.LAST,
    streamId: 0,
    kind: 0,
    tenant: 0,
    messageLength: payload.byteLength,
    parts: [payload],
    payloadLength: payload.byteLength,
  };
}
