// Where key-encryption keys (KEKs) live. sluice never stores a tenant's data key in the clear:
// it keeps it wrapped by a KEK from a provider. The provider here is a key file; a KMS or Vault
// transit engine implements the same three calls (wrap, unwrap, id) without sluice changing.
export interface WrappedKey {
  /** Which KEK wrapped it (a provider may hold several across its own rotations). */
  kekId: string;
  /** Opaque to sluice: the provider's ciphertext of the data key. */
  ciphertext: string;
}

export interface KeyEncryptionKeyProvider {
  /** The id of the KEK new wraps use. */
  readonly currentKekId: string;
  /** Wraps a data key; `context` (tenant, key version) is bound in and must match on unwrap. */
  wrap(dataKey: Buffer, context: string): Promise<WrappedKey>;
  /** Unwraps, or rejects with AtRestError (wrong KEK, tampered ciphertext, other context). */
  unwrap(wrapped: WrappedKey, context: string): Promise<Buffer>;
}
