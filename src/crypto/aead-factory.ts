// Which AES-256-GCM implementation seals a link's frames. The transport takes an
// `aeadFactory` so the native addon, node:crypto, or (in benchmarks only) anything else
// implementing `Aead` can be plugged in; config never selects it.
import type { Aead } from './aead.ts';
import { NodeCryptoAead } from './node-aead.ts';

export type AeadFactory = (key: Uint8Array) => Aead;

export const nodeCryptoAeadFactory: AeadFactory = (key) => new NodeCryptoAead(key);

/** The implementation links use unless told otherwise. */
export function defaultAeadFactory(): AeadFactory {
  return nodeCryptoAeadFactory;
}

/** Which implementation defaultAeadFactory() gives, for logs and benchmark tables. */
export function defaultAeadName(): string {
  return 'node:crypto';
}
