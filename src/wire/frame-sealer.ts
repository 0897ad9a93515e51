// Builds sealed frames: writes the header, then encrypts the payload (a gather list of the
// caller's buffers) straight into the frame buffer behind it, so the caller's bytes are
// copied exactly once, by the cipher. Owns the sending direction's sequence and keys.
import { TAG_BYTES } from '../crypto/aead.ts';
import type { TrafficKeys } from '../crypto/traffic-keys.ts';
import type { SegmentName, TrafficClass } from '../transport/types.ts';
import { FrameFlags, FrameType, HEADER_BYTES, NONCE_OFFSET, encodeFrameHeader, frameBytes, type FrameHeader } from './frame-header.ts';

export interface FrameSpec {
  type: FrameType;
  cls: TrafficClass;
  flags: number;
  streamId: number;
  kind: number;
  tenant: number;
  messageLength: number;
  /** The payload as a gather list; its total length is the frame's payload length. */
  parts: readonly Uint8Array[];
  payloadLength: number;
}

const REKEY_PAYLOAD_BYTES = 4;
export const REKEY_FRAME_BYTES = frameBytes(REKEY_PAYLOAD_BYTES);
const NO_NONCE = new Uint8Array(12);

export class FrameSealer {
  readonly segment: SegmentName;
  readonly keys: TrafficKeys;
  #sequence = 0;
  #rekeys = 0;

  constructor(keys: TrafficKeys, segment: SegmentName) {
    this.keys = keys;
    this.segment = segment;
  }

  /** Sequence number of the last frame sealed (0 before the first). */
  get sequence(): number {
    return this.#sequence;
  }

  get rekeys(): number {
    return this.#rekeys;
  }

  /** True when the next frame with `payloadLength` bytes needs a rekey first. */
  rekeyDue(payloadLength: number): boolean {
    return this.keys.rekeyDue(frameBytes(payloadLength), REKEY_FRAME_BYTES);
  }

  /** Seals one frame into a new buffer of exactly its wire size. */
  seal(spec: FrameSpec): Buffer {
    const out = Buffer.allocUnsafe(frameBytes(spec.payloadLength));
    this.sealInto(spec, out, 0);
    return out;
  }

  /** Seals one frame into out at offset; returns the bytes written. */
  sealInto(spec: FrameSpec, out: Buffer, offset: number): number {
    const size = frameBytes(spec.payloadLength);
    if (out.byteLength - offset < size) throw new RangeError(`frame needs ${size} bytes at offset ${offset}, buffer has ${out.byteLength - offset}`);
    this.#sequence += 1;
    const header: FrameHeader = {
      type: spec.type,
      cls: spec.cls,
      segment: this.segment,
      flags: spec.flags,
      streamId: spec.streamId,
      kind: spec.kind,
      tenant: spec.tenant,
      payloadLength: spec.payloadLength,
      messageLength: spec.messageLength,
      keyId: this.keys.epoch,
      sequence: this.#sequence,
      nonce: NO_NONCE,
    };
    encodeFrameHeader(out, offset, header);
    const nonce = out.subarray(offset + NONCE_OFFSET, offset + HEADER_BYTES);
    this.keys.nonces.next(nonce);
    const aad = out.subarray(offset, offset + HEADER_BYTES);
    const sealed = out.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + spec.payloadLength + TAG_BYTES);
    const aead = this.keys.aeadFor(spec.tenant);
    if (spec.parts.length === 1) aead.seal(nonce, aad, spec.parts[0] as Uint8Array, sealed);
    else aead.sealv(nonce, aad, spec.parts, sealed);
    this.keys.account(size);
    return size;
  }

  /** Seals a REKEY frame under the current key, then moves this direction to the next key. */
  sealRekey(): Buffer {
    const payload = Buffer.allocUnsafe(REKEY_PAYLOAD_BYTES);
    payload.writeUInt32BE(this.keys.epoch + 1, 0);
    const frame = this.seal({
      type: FrameType.REKEY,
      cls: 'control',
      flags: FrameFlags.FIRST | FrameFlags.LAST,
      streamId: 0,
      kind: 0,
      tenant: 0,
      messageLength: REKEY_PAYLOAD_BYTES,
      parts: [payload],
      payloadLength: REKEY_PAYLOAD_BYTES,
    });
    this.keys.advance();
    this.#rekeys += 1;
    return frame;
  }

  destroy(): void {
    this.keys.destroy();
  }
}
