// Records of the link handshake, sent in the clear before any frame (docs/wire.md):
//   magic "SLHS" | format u8 | type u8 | body length u16 | body
// Bodies are small and bounded; every parse failure is a WireError.
import { WireError, WireErrorCode } from './errors.ts';

export const HANDSHAKE_MAGIC = 0x534c4853; // "SLHS"
export const HANDSHAKE_FORMAT = 1;
export const RECORD_HEADER_BYTES = 8;
export const MAX_RECORD_BODY = 512;
export const HELLO_NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
const MAX_SEGMENT_NAME = 32;
const MAX_REJECT_REASON = 200;

export const RecordType = { HELLO: 1, PROOF: 2, REJECT: 3 } as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const HelloRole = { INITIATOR: 1, ACCEPTOR: 2 } as const;

export const RejectCode = { AUTH: 1, SEGMENT: 2, VERSION: 3, PROTOCOL: 4, BUSY: 5 } as const;
export type RejectCode = (typeof RejectCode)[keyof typeof RejectCode];

export interface HandshakeRecord {
  type: RecordType;
  body: Buffer;
  /** The whole record as sent (header + body): the transcript hashes these bytes. */
  raw: Buffer;
}

export interface Hello {
  role: number;
  minVersion: number;
  maxVersion: number;
  /** The acceptor's choice; 0 in the initiator's hello. */
  selectedVersion: number;
  nonce: Buffer;
  segment: string;
}

export interface Reject {
  code: number;
  reason: string;
}

function malformed(message: string): never {
  throw new WireError(WireErrorCode.MALFORMED, `handshake: ${message}`);
}

export function encodeRecord(type: RecordType, body: Uint8Array): Buffer {
  if (body.byteLength > MAX_RECORD_BODY) throw new RangeError(`handshake record body of ${body.byteLength} bytes exceeds ${MAX_RECORD_BODY}`);
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + body.byteLength);
  out.writeUInt32BE(HANDSHAKE_MAGIC, 0);
  out[4] = HANDSHAKE_FORMAT;
  out[5] = type;
  out.writeUInt16BE(body.byteLength, 6);
  out.set(body, RECORD_HEADER_BYTES);
  return out;
}

/**
 * Reads one record from the start of `buf`. Returns undefined when more bytes are needed;
 * throws WireError as soon as the bytes present cannot begin a valid record.
 */
export function readRecord(buf: Buffer): HandshakeRecord | undefined {
  const magicBytes = Math.min(4, buf.byteLength);
  for (let i = 0; i < magicBytes; i++) {
    if (buf[i] !== ((HANDSHAKE_MAGIC >>> (24 - 8 * i)) & 0xff)) {
      throw new WireError(WireErrorCode.BAD_MAGIC, 'not a sluice handshake (wrong protocol or port?)');
    }
  }
  if (buf.byteLength < RECORD_HEADER_BYTES) return undefined;
  if (buf[4] !== HANDSHAKE_FORMAT) throw new WireError(WireErrorCode.VERSION, `handshake format ${buf[4]} not supported (this node speaks ${HANDSHAKE_FORMAT})`);
  const type = buf[5] as number;
  if (type !== RecordType.HELLO && type !== RecordType.PROOF && type !== RecordType.REJECT) malformed(`unknown record type ${type}`);
  const len = buf.readUInt16BE(6);
  if (len > MAX_RECORD_BODY) throw new WireError(WireErrorCode.OVERSIZE, `handshake record body of ${len} bytes exceeds ${MAX_RECORD_BODY}`);
  if (buf.byteLength < RECORD_HEADER_BYTES + len) return undefined;
  const raw = buf.subarray(0, RECORD_HEADER_BYTES + len);
  return { type: type as RecordType, body: raw.subarray(RECORD_HEADER_BYTES), raw };
}

export function encodeHello(h: Hello): Buffer {
  const seg = Buffer.from(h.segment, 'ascii');
  if (h.nonce.byteLength !== HELLO_NONCE_BYTES) throw new RangeError(`hello nonce must be ${HELLO_NONCE_BYTES} bytes`);
  if (seg.byteLength < 1 || seg.byteLength > MAX_SEGMENT_NAME) throw new RangeError(`segment name must be 1..${MAX_SEGMENT_NAME} bytes`);
  const body = Buffer.allocUnsafe(4 + HELLO_NONCE_BYTES + 1 + seg.byteLength);
  body[0] = h.role;
  body[1] = h.minVersion;
  body[2] = h.maxVersion;
  body[3] = h.selectedVersion;
  h.nonce.copy(body, 4);
  body[4 + HELLO_NONCE_BYTES] = seg.byteLength;
  seg.copy(body, 5 + HELLO_NONCE_BYTES);
  return encodeRecord(RecordType.HELLO, body);
}

export function decodeHello(body: Buffer): Hello {
  const fixed = 5 + HELLO_NONCE_BYTES;
  if (body.byteLength < fixed + 1) malformed(`hello of ${body.byteLength} bytes is too short`);
  const role = body[0] as number;
  if (role !== HelloRole.INITIATOR && role !== HelloRole.ACCEPTOR) malformed(`unknown role ${role}`);
  const minVersion = body[1] as number;
  const maxVersion = body[2] as number;
  if (minVersion === 0 || minVersion > maxVersion) malformed(`version range ${minVersion}..${maxVersion} is empty`);
  const segLen = body[4 + HELLO_NONCE_BYTES] as number;
  if (segLen < 1 || segLen > MAX_SEGMENT_NAME || body.byteLength !== fixed + segLen) malformed('segment name length does not match the record');
  const segBytes = body.subarray(fixed, fixed + segLen);
  for (const c of segBytes) if (c < 0x21 || c > 0x7e) malformed('segment name is not printable ASCII');
  return {
    role,
    minVersion,
    maxVersion,
    selectedVersion: body[3] as number,
    nonce: Buffer.from(body.subarray(4, 4 + HELLO_NONCE_BYTES)),
    segment: segBytes.toString('ascii'),
  };
}

export function encodeProof(mac: Uint8Array): Buffer {
  if (mac.byteLength !== PROOF_BYTES) throw new RangeError(`proof must be ${PROOF_BYTES} bytes`);
  return encodeRecord(RecordType.PROOF, mac);
}

export function decodeProof(body: Buffer): Buffer {
  if (body.byteLength !== PROOF_BYTES) malformed(`proof of ${body.byteLength} bytes (expected ${PROOF_BYTES})`);
  return body;
}

export function encodeReject(code: RejectCode, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.byteLength > MAX_REJECT_REASON) {
    let end = MAX_REJECT_REASON;
    while (end > 0 && ((text[end] ?? 0) & 0xc0) === 0x80) end -= 1;
    text = text.subarray(0, end);
  }
  const body = Buffer.allocUnsafe(1 + text.byteLength);
  body[0] = code;
  text.copy(body, 1);
  return encodeRecord(RecordType.REJECT, body);
}

export function decodeReject(body: Buffer): Reject {
  if (body.byteLength < 1 || body.byteLength > 1 + MAX_REJECT_REASON) malformed(`reject of ${body.byteLength} bytes`);
  return { code: body[0] as number, reason: body.toString('utf8', 1) };
}
