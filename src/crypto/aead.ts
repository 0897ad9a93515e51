// The AEAD contract (AES-256-GCM) used on every back-end frame. Two implementations:
// the native addon (hot path: reused EVP context per key, caller-provided buffers) and
// node:crypto (baseline for benchmarks and the oracle in tests).
export const KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

export interface Aead {
  /**
   * Encrypts `plaintext` under `nonce` with `aad` authenticated, writing ciphertext followed by
   * the 16-byte tag into `out` (out.byteLength must be plaintext.byteLength + TAG_BYTES).
   * A nonce must never be reused under one key: callers own the nonce sequence.
   */
  seal(nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** Like seal, with the plaintext given as a gather list (no concatenation). */
  sealv(nonce: Uint8Array, aad: Uint8Array, parts: readonly Uint8Array[], out: Uint8Array): void;
  /**
   * Decrypts `sealed` (ciphertext followed by tag) into `out` (sealed.byteLength - TAG_BYTES).
   * Returns false, leaving `out` zeroed, when the tag does not authenticate.
   */
  open(nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean;
  /** Releases the key material; further calls throw. */
  destroy(): void;
}
