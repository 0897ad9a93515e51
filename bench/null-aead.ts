// A "no encryption" Aead for the transport benchmark ONLY: it copies the payload and writes
// a zero tag, so the benchmark can show what framing costs without the cipher. Nothing
// outside bench/ imports it and no config can select it.
import type { Aead } from '../src/crypto/aead.ts';
import type { AeadFactory } from '../src/crypto/aead-factory.ts';

const TAG = 16;

class NullAead implements Aead {
  seal(_nonce: Uint8Array, _aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    out.set(plaintext, 0);
    out.fill(0, plaintext.byteLength);
  }

  sealv(_nonce: Uint8Array, _aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void {
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    out.fill(0, off);
  }

  open(_nonce: Uint8Array, _aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean {
    out.set(sealed.subarray(0, sealed.byteLength - TAG));
    return true;
  }

  destroy(): void {}
}

export const benchOnlyNullAeadFactory: AeadFactory = () => new NullAead();
