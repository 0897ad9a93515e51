// A minimal protobuf reader for untrusted bytes: varints, tags, length-delimited spans and
// skipping, with every bound checked. It never copies payload bytes and never allocates per
// field, so the ingress can read routing fields of a large ModelInferRequest cheaply.
import { InferenceError, InferenceErrorCode } from './inference-error.ts';

export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;

/** Returned by readVarint for values above Number.MAX_SAFE_INTEGER (or negative int64). */
export const VARINT_TOO_BIG = -1;

export function malformed(what: string): InferenceError {
  return new InferenceError(InferenceErrorCode.MALFORMED_PROTOBUF, `malformed protobuf: ${what}`);
}

export class ProtoReader {
  pos: number;
  readonly end: number;
  readonly buf: Uint8Array;

  constructor(buf: Uint8Array, start = 0, end = buf.byteLength) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** An unsigned varint; VARINT_TOO_BIG when it does not fit a safe integer. */
  readVarint(): number {
    const { buf, end } = this;
    let pos = this.pos;
    if (pos >= end) throw malformed('truncated varint');
    let b = buf[pos++]!;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let value = b & 0x7f;
    let scale = 128;
    for (let i = 1; i < 10; i++) {
      if (pos >= end) throw malformed('truncated varint');
      b = buf[pos++]!;
      if (i === 9 && b > 1) throw malformed('varint longer than 64 bits');
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        this.pos = pos;
        return value > Number.MAX_SAFE_INTEGER ? VARINT_TOO_BIG : value;
      }
      scale *= 128;
    }
    throw malformed('varint longer than 10 bytes');
  }

  /** Reads a tag; returns field number * 8 + wire type as the caller may split it. */
  readTag(): number {
    const tag = this.readVarint();
    if (tag === VARINT_TOO_BIG || tag > 0xffffffff) throw malformed('tag out of range');
    if (tag >>> 3 === 0) throw malformed('field number 0');
    return tag;
  }

  /** Reads the length of a LEN field and returns its end offset (the reader stays at its start). */
  readLengthEnd(): number {
    const len = this.readVarint();
    if (len === VARINT_TOO_BIG || len > this.end - this.pos) throw malformed('length past the end of the message');
    return this.pos + len;
  }

  readString(): string {
    const end = this.readLengthEnd();
    const s = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, end - this.pos).toString('utf8');
    this.pos = end;
    return s;
  }

  /** Skips the value of a field of the given wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.readVarint();
        return;
      case WireType.I64:
        if (this.end - this.pos < 8) throw malformed('truncated fixed64');
        this.pos += 8;
        return;
      case WireType.LEN:
        this.pos = this.readLengthEnd();
        return;
      case WireType.I32:
        if (this.end - this.pos < 4) throw malformed('truncated fixed32');
        this.pos += 4;
        return;
      default:
        // Groups are proto2-only and absent from the inference protocol.
        throw malformed(`unsupported wire type ${wireType}`);
    }
  }
}
