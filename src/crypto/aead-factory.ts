// Which AES-256-GCM implementation seals a link's frames. The transport takes an
// `aeadFactory` so the native addon, node:crypto, or (in benchmarks only) anything else
// implementing `Aead` can be plugged in; config never selects it.
import type { Aead } from './aead.ts';
import { NativeAead } from './native-aead.ts';
import { NodeCryptoAead } from './node-aead.ts';

export type AeadFactory = (key: Uint8Array) => Aead;

export const nodeCryptoAeadFactory: AeadFactory = (key) => new NodeCryptoAead(key);

export const nativeAeadFactory: AeadFactory = (key) => new NativeAead(key);

/**
 * The implementation links use unless told otherwise: the native addon (reused EVP contexts,
 * caller buffers). `npm install` always builds it, so a missing addon is an install error
 * that NativeAead reports with a hint, not something to paper over with a slower fallback.
 */
export function defaultAeadFactory(): AeadFactory {
  return nativeAeadFactory;
}

/** Which implementation defaultAeadFactory() gives, for logs and benchmark tables. */
export function defaultAeadName(): string {
  return 'native addon';
}
