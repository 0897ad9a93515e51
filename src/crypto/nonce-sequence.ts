// 96-bit GCM nonces: a 32-bit direction id followed by a 64-bit counter of the frames sealed
// under the current key. The counter only goes up and restarts at 0 only with a new key, so
// a (key, nonce) pair is never used twice.
import { NONCE_BYTES } from './aead.ts';

export class NonceSequence {
  readonly prefix: number;
  #counter = 0;

  constructor(prefix: number) {
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 0xffff_ffff) throw new RangeError(`nonce prefix must be a u32, got ${prefix}`);
    this.prefix = prefix;
  }

  /** Counter value the next nonce will carry. */
  get counter(): number {
    return this.#counter;
  }

  /** Writes the next nonce into out[offset, offset + 12) and consumes it. */
  next(out: Uint8Array, offset = 0): void {
    this.write(out, offset);
    this.#counter += 1;
  }

  /** Writes the next nonce without consuming it (the receiver's expected nonce). */
  write(out: Uint8Array, offset = 0): void {
    if (this.#counter >= Number.MAX_SAFE_INTEGER) throw new RangeError('nonce counter exhausted: the key must be replaced');
    const view = new DataView(out.buffer, out.byteOffset + offset, NONCE_BYTES);
    view.setUint32(0, this.prefix);
    view.setUint32(4, Math.floor(this.#counter / 0x1_0000_0000));
    view.setUint32(8, this.#counter >>> 0);
  }

  /** True when `nonce` is exactly the next nonce of this sequence. */
  matches(nonce: Uint8Array): boolean {
    if (nonce.byteLength !== NONCE_BYTES) return false;
    const view = new DataView(nonce.buffer, nonce.byteOffset, NONCE_BYTES);
    return (
      view.getUint32(0) === this.prefix &&
      view.getUint32(4) === Math.floor(this.#counter / 0x1_0000_0000) &&
      view.getUint32(8) === this.#counter >>> 0
    );
  }

  /** Consumes the next nonce (the receiver, once a frame under it authenticated). */
  consume(): void {
    this.#counter += 1;
  }

  /** Starts over for a new key. */
  reset(): void {
    this.#counter = 0;
  }
}
