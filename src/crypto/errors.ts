// Errors of the AEAD layer. The native addon throws plain errors carrying one of these codes;
// src/crypto/native-aead.ts turns them into CryptoError.
import { CodedError } from '../errors.ts';

export const CryptoErrorCode = {
  /** An argument has the wrong type or size (a caller bug). */
  ARG: 'SLUICE_ERR_CRYPTO_ARG',
  /** The AEAD was used after destroy(). */
  DESTROYED: 'SLUICE_ERR_CRYPTO_DESTROYED',
  /** OpenSSL reported a failure; the message carries its reason. */
  OPENSSL: 'SLUICE_ERR_CRYPTO_OPENSSL',
} as const;
export type CryptoErrorCode = (typeof CryptoErrorCode)[keyof typeof CryptoErrorCode];

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(CryptoErrorCode));

export class CryptoError extends CodedError<CryptoErrorCode> {}

/** Maps an error thrown by the native addon ({code, message}) onto CryptoError. */
export function cryptoErrorFromNative(err: unknown): CryptoError {
  if (err instanceof CryptoError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const known = typeof code === 'string' && KNOWN_CODES.has(code);
  return new CryptoError(known ? (code as CryptoErrorCode) : CryptoErrorCode.OPENSSL, message, { cause: err });
}
