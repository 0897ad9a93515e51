// Key schedule of a link. Everything comes from the 32-byte segment key and the two random
// 32-byte nonces the ends exchange in the handshake, through HKDF-SHA256 (RFC 5869):
//
//   salt            = nonce_initiator || nonce_acceptor            (fresh per link)
//   auth key        = HKDF(segment key, salt, "sluice/1 handshake <segment>" || transcript hash)
//   secret_i2a[0]   = HKDF(segment key, salt, "sluice/1 i2a <segment>"       || transcript hash)
//   secret_a2i[0]   = HKDF(segment key, salt, "sluice/1 a2i <segment>"       || transcript hash)
//   secret[e+1]     = HKDF(secret[e], "", "sluice/1 next")            (ratchet on rekey)
//   aead key[e]     = HKDF(secret[e], "", "sluice/1 aead key")                 (tenant 0, the system)
//   aead key[e][t]  = HKDF(secret[e], "", "sluice/1 tenant aead key" || u32be(t))  (tenant t > 0)
//
// Fresh nonces from both ends make every link's secrets distinct (one end's random source
// alone suffices); the two directions use different labels, so no two links or directions
// share a key. The ratchet is one-way: a leaked epoch key reveals nothing of earlier epochs.
// Each tenant's frames are sealed under its own key (the tenant id is also in the header, the
// AAD), so one tenant's frames cannot be opened, replayed or accepted as another tenant's.
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { SegmentName } from '../transport/types.ts';
import { KEY_BYTES } from './aead.ts';

export const HANDSHAKE_NONCE_BYTES = 32;
const PROTOCOL_LABEL = 'sluice/1';

export type LinkRole = 'initiator' | 'acceptor';

/** The 32-bit prefix of every nonce on a link: says which direction sealed the frame. */
export const DirectionId = { INITIATOR_TO_ACCEPTOR: 1, ACCEPTOR_TO_INITIATOR: 2 } as const;

export interface HandshakeInputs {
  segmentKey: Uint8Array;
  segment: SegmentName;
  initiatorNonce: Uint8Array;
  acceptorNonce: Uint8Array;
  /** SHA-256 of the handshake records both ends exchanged before the proofs. */
  transcriptHash: Uint8Array;
}

export interface LinkSecrets {
  /** Epoch-0 secret for frames this end seals. */
  send: Buffer;
  /** Epoch-0 secret for frames this end opens. */
  receive: Buffer;
  sendDirection: number;
  receiveDirection: number;
}

function hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, KEY_BYTES));
}

function check(inputs: HandshakeInputs): Buffer {
  if (inputs.segmentKey.byteLength !== KEY_BYTES) throw new RangeError(`segment key must be ${KEY_BYTES} bytes, got ${inputs.segmentKey.byteLength}`);
  for (const [name, n] of [['initiatorNonce', inputs.initiatorNonce], ['acceptorNonce', inputs.acceptorNonce]] as const) {
    if (n.byteLength !== HANDSHAKE_NONCE_BYTES) throw new RangeError(`${name} must be ${HANDSHAKE_NONCE_BYTES} bytes, got ${n.byteLength}`);
  }
  if (inputs.transcriptHash.byteLength !== 32) throw new RangeError(`transcriptHash must be 32 bytes, got ${inputs.transcriptHash.byteLength}`);
  return Buffer.concat([inputs.initiatorNonce, inputs.acceptorNonce]);
}

function info(label: string, segment: SegmentName, transcriptHash: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${PROTOCOL_LABEL} ${label} ${segment}`, 'ascii'), transcriptHash]);
}

/** The key both ends prove knowledge of (HMAC over the transcript) during the handshake. */
export function deriveHandshakeAuthKey(inputs: HandshakeInputs): Buffer {
  const salt = check(inputs);
  return hkdf(inputs.segmentKey, salt, info('handshake', inputs.segment, inputs.transcriptHash));
}

/** Epoch-0 traffic secrets of both directions, oriented for `role`. */
export function deriveLinkSecrets(inputs: HandshakeInputs, role: LinkRole): LinkSecrets {
  const salt = check(inputs);
  const i2a = hkdf(inputs.segmentKey, salt, info('i2a', inputs.segment, inputs.transcriptHash));
  const a2i = hkdf(inputs.segmentKey, salt, info('a2i', inputs.segment, inputs.transcriptHash));
  return role === 'initiator'
    ? { send: i2a, receive: a2i, sendDirection: DirectionId.INITIATOR_TO_ACCEPTOR, receiveDirection: DirectionId.ACCEPTOR_TO_INITIATOR }
    : { send: a2i, receive: i2a, sendDirection: DirectionId.ACCEPTOR_TO_INITIATOR, receiveDirection: DirectionId.INITIATOR_TO_ACCEPTOR };
}

const EMPTY = Buffer.alloc(0);
const NEXT_INFO = Buffer.from(`${PROTOCOL_LABEL} next`, 'ascii');
const AEAD_KEY_INFO = Buffer.from(`${PROTOCOL_LABEL} aead key`, 'ascii');

/** The next epoch's traffic secret (one-way ratchet). */
export function nextTrafficSecret(secret: Uint8Array): Buffer {
  return hkdf(secret, EMPTY, NEXT_INFO);
}

/** The AES-256-GCM key of an epoch (for tenant 0, the system). */
export function trafficKey(secret: Uint8Array): Buffer {
  return hkdf(secret, EMPTY, AEAD_KEY_INFO);
}

const TENANT_KEY_LABEL = Buffer.from(`${PROTOCOL_LABEL} tenant aead key`, 'ascii');

/** The AES-256-GCM key of an epoch for tenant `tenant` (1..2^32-1). */
export function tenantTrafficKey(secret: Uint8Array, tenant: number): Buffer {
  if (!Number.isInteger(tenant) || tenant < 1 || tenant > 0xffff_ffff) throw new RangeError(`tenant must be an integer in 1..4294967295, got ${tenant}`);
  const info = Buffer.allocUnsafe(TENANT_KEY_LABEL.length + 4);
  TENANT_KEY_LABEL.copy(info, 0);
  info.writeUInt32BE(tenant, TENANT_KEY_LABEL.length);
  return hkdf(secret, EMPTY, info);
}

export function transcriptHash(records: readonly Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const r of records) h.update(r);
  return h.digest();
}

export function handshakeProof(authKey: Uint8Array, role: LinkRole, transcript: Uint8Array): Buffer {
  return createHmac('sha256', authKey).update(`${PROTOCOL_LABEL} ${role} proof`).update(transcript).digest();
}

export function proofMatches(expected: Uint8Array, got: Uint8Array): boolean {
  return expected.byteLength === got.byteLength && timingSafeEqual(expected, got);
}
