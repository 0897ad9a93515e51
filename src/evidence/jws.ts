// The pack signature: a detached JWS (RFC 7515 Appendix F) with the unencoded payload option
// (RFC 7797: b64=false, crit ["b64"]) over the exact bytes of manifest.json, made with jose.
// RS256 for RSA keys, EdDSA for Ed25519 keys; `iat` (signing time) in the protected header.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FlattenedSign, flattenedVerify } from 'jose';
import { SluiceError } from '../errors.ts';

export class EvidenceKeyError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_EVIDENCE_KEY', message);
  }
}

function algFor(key: KeyObject): 'RS256' | 'EdDSA' {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  throw new EvidenceKeyError(`signing keys must be RSA or Ed25519, not ${key.asymmetricKeyType ?? 'unknown'}`);
}

export function loadSigningKey(file: string): KeyObject {
  try {
    return createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new EvidenceKeyError(`${file}: not a readable PEM private key (${(err as Error).message})`);
  }
}

export function loadVerifyKey(file: string): KeyObject {
  try {
    return createPublicKey(readFileSync(file));
  } catch (err) {
    throw new EvidenceKeyError(`${file}: not a readable PEM public key or certificate (${(err as Error).message})`);
  }
}

/** `protected..signature` (compact serialization, payload detached). */
export async function signDetached(payload: Uint8Array, key: KeyObject, iat = Math.floor(Date.now() / 1000)): Promise<string> {
  const jws = await new FlattenedSign(payload).setProtectedHeader({ alg: algFor(key), b64: false, crit: ['b64'], iat, typ: 'sluice-evidence+jws' }).sign(key);
  return `${jws.protected}..${jws.signature}`;
}

export interface DetachedVerification {
  ok: boolean;
  reason?: string;
  header?: Record<string, unknown>;
}

export async function verifyDetached(compact: string, payload: Uint8Array, key: KeyObject): Promise<DetachedVerification> {
  // Exactly what the signer writes (one optional final newline), and canonical base64url: a
  // decoder ignores the spare low bits of the last character, and trim() whitespace, so either
  // would let a flipped byte of the pack pass unseen.
  const m = /^([A-Za-z0-9_-]+)\.\.([A-Za-z0-9_-]+)\n?$/.exec(compact);
  if (m === null) return { ok: false, reason: 'not a detached compact JWS (header..signature)' };
  for (const part of [m[1]!, m[2]!]) {
    if (Buffer.from(part, 'base64url').toString('base64url') !== part) return { ok: false, reason: 'not canonical base64url' };
  }
  try {
    const r = await flattenedVerify({ protected: m[1] as string, payload, signature: m[2] as string }, key, { algorithms: ['RS256', 'EdDSA'] });
    const header = r.protectedHeader as Record<string, unknown>;
    if (header.b64 !== false) return { ok: false, reason: 'the header does not declare an unencoded payload (b64: false)' };
    if (typeof header.iat !== 'number') return { ok: false, reason: 'the protected header has no iat' };
    return { ok: true, header };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
}
