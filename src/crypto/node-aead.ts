// AES-256-GCM through node:crypto, one cipher object per message. It is the baseline the
// native addon is measured against, the oracle in tests, and the fallback when the addon
// cannot load. Arguments are checked with exact messages, as the native one does.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, type Aead } from './aead.ts';

function check(cond: boolean, message: string): void {
  if (!cond) throw new RangeError(message);
}

export class NodeCryptoAead implements Aead {
  #key: Buffer | undefined;

  constructor(key: Uint8Array) {
    check(key.byteLength === KEY_BYTES, `key must be ${KEY_BYTES} bytes, got ${key.byteLength}`);
    this.#key = Buffer.from(key); // own copy: the caller may wipe theirs
  }

  #liveKey(): Buffer {
    if (this.#key === undefined) throw new Error('Aead used after destroy()');
    return this.#key;
  }

  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    this.sealv(nonce, aad, [plaintext], out);
  }

  sealv(nonce: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void {
    check(nonce.byteLength === NONCE_BYTES, `nonce must be ${NONCE_BYTES} bytes, got ${nonce.byteLength}`);
    let total = 0;
    for (const p of parts) total += p.byteLength;
    check(out.byteLength === total + TAG_BYTES, `out must be 'plaintext.byteLength + TAG_BYTES' (${total + TAG_BYTES}) bytes, got ${out.byteLength}`);
    const cipher = createCipheriv('aes-256-gcm', this.#liveKey(), nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad);
    let off = 0;
    for (const p of parts) {
      if (p.byteLength === 0) continue;
      const ct = cipher.update(p);
      out.set(ct, off);
      off += ct.byteLength;
    }
    const rest = cipher.final();
    out.set(rest, off);
    out.set(cipher.getAuthTag(), total);
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean {
    check(nonce.byteLength === NONCE_BYTES, `nonce must be ${NONCE_BYTES} bytes, got ${nonce.byteLength}`);
    check(sealed.byteLength >= TAG_BYTES, `sealed must be at least TAG_BYTES (${TAG_BYTES}) bytes, got ${sealed.byteLength}`);
    const len = sealed.byteLength - TAG_BYTES;
    check(out.byteLength === len, `out must be 'sealed.byteLength - TAG_BYTES' (${len}) bytes, got ${out.byteLength}`);
    const decipher = createDecipheriv('aes-256-gcm', this.#liveKey(), nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(len));
    // update() returns plaintext before the tag is checked: it is copied to `out` only after
    // final() has accepted the tag.
    const pt = len === 0 ? undefined : decipher.update(sealed.subarray(0, len));
    try {
      decipher.final();
    } catch {
      out.fill(0);
      return false;
    }
    if (pt !== undefined) out.set(pt);
    return true;
  }

  destroy(): void {
    this.#key?.fill(0);
    this.#key = undefined;
  }
}
