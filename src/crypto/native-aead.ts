// The hot-path Aead: AES-256-GCM in the native addon, with the key set once into reused EVP
// contexts and every output written into the caller's buffer. Arguments are checked here, with
// the same messages as every other Aead (the addon checks types and lengths again itself).
import type { Aead } from './aead.ts';
import { checkKey, checkOpenArgs, checkSealArgs, checkSealvArgs } from './aead-args.ts';
import { CryptoError, CryptoErrorCode, cryptoErrorFromNative } from './errors.ts';
import { loadNativeAddon, type NativeAeadContext } from './native-addon.ts';

export class NativeAead implements Aead {
  #context: NativeAeadContext | null;

  /** `key` (32 bytes) is copied into the native contexts; the caller may wipe its copy. */
  constructor(key: Uint8Array) {
    checkKey(key);
    const { AeadContext } = loadNativeAddon();
    try {
      this.#context = new AeadContext(key);
    } catch (err) {
      throw cryptoErrorFromNative(err);
    }
  }

  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void {
    const context = this.#live();
    checkSealArgs(nonce, aad, plaintext, out);
    try {
      context.seal(nonce, aad, plaintext, out);
    } catch (err) {
      throw cryptoErrorFromNative(err);
    }
  }

  sealv(nonce: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void {
    const context = this.#live();
    checkSealvArgs(nonce, aad, parts, out);
    try {
      context.sealv(nonce, aad, parts, out);
    } catch (err) {
      throw cryptoErrorFromNative(err);
    }
  }

  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean {
    const context = this.#live();
    checkOpenArgs(nonce, aad, sealed, out);
    try {
      return context.open(nonce, aad, sealed, out);
    } catch (err) {
      throw cryptoErrorFromNative(err);
    }
  }

  /** Frees the native contexts now (OpenSSL wipes the key schedule) instead of at garbage collection. */
  destroy(): void {
    this.#context?.destroy();
    this.#context = null;
  }

  #live(): NativeAeadContext {
    if (this.#context === null) throw new CryptoError(CryptoErrorCode.DESTROYED, 'AEAD used after destroy()');
    return this.#context;
  }
}
