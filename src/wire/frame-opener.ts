// Authenticates and decrypts received frames. Owns the receiving direction's sequence and
// keys: a frame must carry the current key id, the next sequence number and the next nonce,
// or it is rejected before any decryption (replays and removed frames included).
import { TAG_BYTES } from '../crypto/aead.ts';
import { DEFAULT_KEY_LIMITS } from '../crypto/key-limits.ts';
import type { TrafficKeys } from '../crypto/traffic-keys.ts';
import { WireError, WireErrorCode } from './errors.ts';
import { MAX_FRAME_PAYLOAD, frameBytes, type FrameHeader } from './frame-header.ts';

// Whatever limits the peer chose, it must rekey before these (a fresh key always takes one frame).
const RECEIVE_MAX_FRAMES = DEFAULT_KEY_LIMITS.maxFramesPerKey;
const RECEIVE_MAX_BYTES = DEFAULT_KEY_LIMITS.maxBytesPerKey + frameBytes(MAX_FRAME_PAYLOAD);

export class FrameOpener {
  readonly keys: TrafficKeys;
  #sequence = 0;

  constructor(keys: TrafficKeys) {
    this.keys = keys;
  }

  /** Sequence number of the last frame accepted (0 before the first). */
  get sequence(): number {
    return this.#sequence;
  }

  /** The checks open() starts with, for callers that want them before anything else. Throws WireError. */
  check(h: FrameHeader): void {
    if (h.keyId !== this.keys.epoch) {
      throw new WireError(WireErrorCode.KEY, `frame under key ${h.keyId}, receiver is at key ${this.keys.epoch}`);
    }
    if (h.sequence <= this.#sequence) {
      throw new WireError(WireErrorCode.REPLAY, `frame sequence ${h.sequence} already seen (last accepted ${this.#sequence})`);
    }
    if (h.sequence !== this.#sequence + 1) {
      throw new WireError(WireErrorCode.SEQUENCE_GAP, `frame sequence ${h.sequence} after ${this.#sequence}: frames are missing`);
    }
    if (this.keys.framesUnderKey >= RECEIVE_MAX_FRAMES || this.keys.bytesUnderKey + frameBytes(h.payloadLength) > RECEIVE_MAX_BYTES) {
      throw new WireError(WireErrorCode.KEY, `peer exceeded the data limit of key ${h.keyId} without rekeying`);
    }
    if (!this.keys.nonces.matches(h.nonce)) {
      throw new WireError(WireErrorCode.NONCE, `frame ${h.sequence} does not carry the nonce the key schedule expects`);
    }
  }

  /**
   * Checks `h` against the receive state, then opens `sealed` (ciphertext + tag) into `out`
   * (exactly h.payloadLength bytes). Throws WireError; on success the frame is consumed.
   */
  open(h: FrameHeader, headerBytes: Uint8Array, sealed: Uint8Array, out: Uint8Array): void {
    if (sealed.byteLength !== h.payloadLength + TAG_BYTES || out.byteLength !== h.payloadLength) {
      throw new RangeError(`sealed/out sizes do not match the header's payload length ${h.payloadLength}`);
    }
    this.check(h);
    if (!this.keys.aeadFor(h.tenant).open(h.nonce, headerBytes, sealed, out)) {
      throw new WireError(WireErrorCode.AUTH, `frame ${h.sequence} failed authentication (tampered, or sealed under another key or tenant)`);
    }
    this.keys.nonces.consume();
    this.keys.account(frameBytes(h.payloadLength));
    this.#sequence = h.sequence;
  }

  /** Applies an opened REKEY frame's payload: the announced key id must be the next one. */
  applyRekey(payload: Uint8Array): void {
    if (payload.byteLength !== 4) throw new WireError(WireErrorCode.MALFORMED, `rekey payload must be 4 bytes, got ${payload.byteLength}`);
    const next = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
    if (next !== this.keys.epoch + 1) throw new WireError(WireErrorCode.KEY, `rekey to key ${next}, expected ${this.keys.epoch + 1}`);
    this.keys.advance();
  }

  destroy(): void {
    this.keys.destroy();
  }
}
