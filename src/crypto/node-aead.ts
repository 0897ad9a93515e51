// Aead over node:crypto, one createCipheriv/createDecipheriv per message: the baseline of the
// benchmarks and the independent oracle of the tests. Same contract and argument checks as
// NativeAead; the extra copies it makes are the price of node:crypto's API.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { TAG_BYTES, type Aead } from './aead.ts';
import { checkKey, checkOpenArgs, checkSealArgs, checkSealvArgs } from './aead-args.ts';
import { CryptoError, CryptoErrorCode } from './errors.ts';

const CIPHER = 'aes-256-gcm';

export class NodeCryptoAead implements Aead {
  #key: Buffer | null;

  /** `key` (32 bytes) is copied; destroy() wipes the copy. */
  constructor(key: Uint8Array) {
    checkKey(key);
    this.#key = Buffer.from(key);
  }

  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    const key = this.#live();
    checkSealArgs(nonce, aad, plaintext, out);
    this.#seal(key, nonce, aad, [plaintext], out);
  }

  sealv(nonce: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void {
    const key = this.#live();
    checkSealvArgs(nonce, aad, parts, out);
    this.#seal(key, nonce, aad, parts, out);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean {
    const key = this.#live();
    checkOpenArgs(nonce, aad, sealed, out);
    const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES });
    if (aad.byteLength > 0) decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(out.byteLength));
    const plaintext = decipher.update(sealed.subarray(0, out.byteLength));
    try {
      decipher.final();
    } catch {
      // node:crypto reports a tag mismatch only as "Unsupported state or unable to authenticate data".
      plaintext.fill(0);
      out.fill(0);
      return false;
    }
    out.set(plaintext);
    return true;
  }

  destroy(): void {
    this.#key?.fill(0);
    this.#key = null;
  }

  #seal(key: Buffer, nonce: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void {
    const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES });
    if (aad.byteLength > 0) cipher.setAAD(aad);
    // Each chunk is read before it is written back, so exact in-place parts stay correct.
    let pos = 0;
    for (const part of parts) {
      const chunk = cipher.update(part);
      out.set(chunk, pos);
      pos += chunk.byteLength;
    }
    const tail = cipher.final();
    out.set(tail, pos);
    pos += tail.byteLength;
    out.set(cipher.getAuthTag(), pos);
  }

  #live(): Buffer {
    if (this.#key === null) throw new CryptoError(CryptoErrorCode.DESTROYED, 'AEAD used after destroy()');
    return this.#key;
  }
}
