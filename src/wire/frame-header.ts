// The fixed 52-byte frame header (docs/wire.md has the byte diagram). The header is the
// AES-GCM additional data of its frame, so every field is authenticated; the decoder still
// checks each one before any decryption so garbage is rejected early and cheaply.
import type { SegmentName, TrafficClass } from '../transport/types.ts';
import { WireError, WireErrorCode } from './errors.ts';
import { CLASS_BY_CODE, CLASS_CODES, SEGMENT_BY_CODE, SEGMENT_CODES, classAllowedOnSegment } from './traffic-codes.ts';

export const FRAME_MAGIC = 0x534c; // "SL"
export const WIRE_VERSION = 1;
export const HEADER_BYTES = 52;
export const NONCE_OFFSET = 40;
export const FRAME_NONCE_BYTES = 12;
export const FRAME_TAG_BYTES = 16;
/** Hard ceiling of one frame's payload; a decoder never buffers more than this (+ header, tag). */
export const MAX_FRAME_PAYLOAD = 1024 * 1024;
/** A message length is a u32 on the wire. */
export const MAX_MESSAGE_LENGTH = 0xffff_ffff;

export const FrameType = { DATA: 1, CLOSE: 2, REKEY: 3 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const FrameFlags = { FIRST: 0x01, LAST: 0x02 } as const;
const KNOWN_FLAGS = FrameFlags.FIRST | FrameFlags.LAST;
const MAX_SAFE_SEQUENCE_HI = 0x1f_ffff; // sequence numbers stay below 2^53

export interface FrameHeader {
  type: FrameType;
  cls: TrafficClass;
  segment: SegmentName;
  flags: number;
  streamId: number;
  kind: number;
  tenant: number;
  payloadLength: number;
  messageLength: number;
  keyId: number;
  sequence: number;
  /** A view into the header bytes: valid only while those bytes are. */
  nonce: Uint8Array;
}

export interface HeaderLimits {
  segment: SegmentName;
  maxFramePayload: number;
  maxMessageBytes: number;
}

/** Writes `h` (nonce included) into out[offset, offset + HEADER_BYTES). */
export function encodeFrameHeader(out: Buffer, offset: number, h: FrameHeader): void {
  out.writeUInt16BE(FRAME_MAGIC, offset);
  out[offset + 2] = WIRE_VERSION;
  out[offset + 3] = h.type;
  out[offset + 4] = CLASS_CODES[h.cls];
  out[offset + 5] = SEGMENT_CODES[h.segment];
  out[offset + 6] = h.flags;
  out[offset + 7] = 0;
  out.writeUInt32BE(h.streamId, offset + 8);
  out.writeUInt16BE(h.kind, offset + 12);
  out.writeUInt16BE(0, offset + 14);
  out.writeUInt32BE(h.tenant, offset + 16);
  out.writeUInt32BE(h.payloadLength, offset + 20);
  out.writeUInt32BE(h.messageLength, offset + 24);
  out.writeUInt32BE(h.keyId, offset + 28);
  out.writeUInt32BE(Math.floor(h.sequence / 0x1_0000_0000), offset + 32);
  out.writeUInt32BE(h.sequence >>> 0, offset + 36);
  out.set(h.nonce, offset + NONCE_OFFSET);
}

function reject(code: WireErrorCode, message: string): never {
  throw new WireError(code, message);
}

/** Parses and checks a header; `bytes` holds at least HEADER_BYTES. Throws WireError. */
export function decodeFrameHeader(bytes: Uint8Array, limits: HeaderLimits): FrameHeader {
  if (bytes.byteLength < HEADER_BYTES) reject(WireErrorCode.TRUNCATED, `frame header needs ${HEADER_BYTES} bytes, got ${bytes.byteLength}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const magic = view.getUint16(0);
  if (magic !== FRAME_MAGIC) reject(WireErrorCode.BAD_MAGIC, `not a sluice frame (magic 0x${magic.toString(16).padStart(4, '0')})`);
  const version = view.getUint8(2);
  if (version !== WIRE_VERSION) reject(WireErrorCode.VERSION, `wire version ${version} not supported (this node speaks ${WIRE_VERSION})`);
  const type = view.getUint8(3);
  if (type !== FrameType.DATA && type !== FrameType.CLOSE && type !== FrameType.REKEY) reject(WireErrorCode.MALFORMED, `unknown frame type ${type}`);
  const clsCode = view.getUint8(4);
  const cls = CLASS_BY_CODE[clsCode];
  if (cls === undefined) reject(WireErrorCode.MALFORMED, `unknown traffic class ${clsCode}`);
  const segCode = view.getUint8(5);
  const segment = SEGMENT_BY_CODE[segCode];
  if (segment === undefined) reject(WireErrorCode.MALFORMED, `unknown segment ${segCode}`);
  if (segment !== limits.segment) reject(WireErrorCode.SEGMENT, `frame for segment "${segment}" on a "${limits.segment}" link`);
  if (!classAllowedOnSegment(cls, segment)) reject(WireErrorCode.CLASS, `${cls} traffic may not travel on the ${segment} segment`);
  const flags = view.getUint8(6);
  if ((flags & ~KNOWN_FLAGS) !== 0) reject(WireErrorCode.MALFORMED, `unknown flags 0x${flags.toString(16)}`);
  if (view.getUint8(7) !== 0 || view.getUint16(14) !== 0) reject(WireErrorCode.MALFORMED, 'reserved header bytes are not zero');
  const streamId = view.getUint32(8);
  const kind = view.getUint16(12);
  const tenant = view.getUint32(16);
  const payloadLength = view.getUint32(20);
  const messageLength = view.getUint32(24);
  const keyId = view.getUint32(28);
  const seqHi = view.getUint32(32);
  if (seqHi > MAX_SAFE_SEQUENCE_HI) reject(WireErrorCode.MALFORMED, 'sequence number beyond 2^53');
  const sequence = seqHi * 0x1_0000_0000 + view.getUint32(36);
  if (payloadLength > limits.maxFramePayload) {
    reject(WireErrorCode.OVERSIZE, `frame payload of ${payloadLength} bytes exceeds the ${limits.maxFramePayload}-byte limit`);
  }
  if (messageLength > limits.maxMessageBytes) {
    reject(WireErrorCode.OVERSIZE, `message of ${messageLength} bytes exceeds the ${limits.maxMessageBytes}-byte limit`);
  }
  if (payloadLength > messageLength) reject(WireErrorCode.MALFORMED, `frame payload ${payloadLength} longer than its message ${messageLength}`);
  const whole = FrameFlags.FIRST | FrameFlags.LAST;
  if ((flags & whole) === whole && payloadLength !== messageLength) {
    reject(WireErrorCode.MALFORMED, `single-frame message declares ${messageLength} bytes but carries ${payloadLength}`);
  }
  if (type !== FrameType.DATA && (cls !== 'control' || flags !== whole || streamId !== 0 || kind !== 0)) {
    reject(WireErrorCode.MALFORMED, 'close and rekey frames are single control frames on stream 0');
  }
  if (type === FrameType.DATA && payloadLength === 0 && (flags & FrameFlags.LAST) === 0) {
    reject(WireErrorCode.MALFORMED, 'an empty fragment must be the last of its message');
  }
  return {
    type: type as FrameType,
    cls,
    segment,
    flags,
    streamId,
    kind,
    tenant,
    payloadLength,
    messageLength,
    keyId,
    sequence,
    nonce: bytes.subarray(NONCE_OFFSET, NONCE_OFFSET + FRAME_NONCE_BYTES),
  };
}

/** Bytes a frame of `payloadLength` occupies on the wire. */
export function frameBytes(payloadLength: number): number {
  return HEADER_BYTES + payloadLength + FRAME_TAG_BYTES;
}
