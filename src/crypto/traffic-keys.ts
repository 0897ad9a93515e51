// The key state of one direction of a link: the current epoch's secret, its AEAD, its nonce
// sequence and how much it has protected. Both ends hold one for each direction and step
// them in lockstep: the sender announces a rekey (REKEY frame under the old key), the
// receiver ratchets when it opens that frame.
import type { Aead } from './aead.ts';
import type { AeadFactory } from './aead-factory.ts';
import { DEFAULT_KEY_LIMITS, checkKeyLimits, type KeyLimits } from './key-limits.ts';
import { nextTrafficSecret, tenantTrafficKey, trafficKey } from './key-schedule.ts';
import { NonceSequence } from './nonce-sequence.ts';

export const MAX_EPOCH = 0xffff_ffff;
/** Tenant AEADs kept per epoch; beyond this the least recently created is released. */
export const MAX_TENANT_KEYS = 4096;

export class TrafficKeys {
  readonly nonces: NonceSequence;
  readonly limits: KeyLimits;
  #secret: Buffer;
  #aead: Aead;
  readonly #tenantAeads = new Map<number, Aead>();
  #epoch = 0;
  #bytes = 0;
  readonly #factory: AeadFactory;

  constructor(secret: Buffer, direction: number, factory: AeadFactory, limits: KeyLimits = DEFAULT_KEY_LIMITS) {
    this.limits = checkKeyLimits(limits);
    this.nonces = new NonceSequence(direction);
    this.#factory = factory;
    this.#secret = Buffer.from(secret);
    this.#aead = this.#makeAead();
  }

  #makeAead(tenant = 0): Aead {
    const key = tenant === 0 ? trafficKey(this.#secret) : tenantTrafficKey(this.#secret, tenant);
    try {
      return this.#factory(key);
    } finally {
      key.fill(0);
    }
  }

  /** Key id carried in frame headers. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The current epoch's AEAD of tenant 0 (the system: link control). */
  get aead(): Aead {
    return this.#aead;
  }

  /** The current epoch's AEAD of `tenant` (its own key; tenant 0 is the system key). */
  aeadFor(tenant: number): Aead {
    if (tenant === 0) return this.#aead;
    let aead = this.#tenantAeads.get(tenant);
    if (aead === undefined) {
      if (this.#tenantAeads.size >= MAX_TENANT_KEYS) {
        const oldest = this.#tenantAeads.entries().next().value as [number, Aead];
        this.#tenantAeads.delete(oldest[0]);
        oldest[1].destroy();
      }
      aead = this.#makeAead(tenant);
      this.#tenantAeads.set(tenant, aead);
    }
    return aead;
  }

  #releaseTenantAeads(): void {
    for (const a of this.#tenantAeads.values()) a.destroy();
    this.#tenantAeads.clear();
  }

  get framesUnderKey(): number {
    return this.nonces.counter;
  }

  get bytesUnderKey(): number {
    return this.#bytes;
  }

  /**
   * True when a frame of `frameBytes` must go under the next key, leaving room for the REKEY
   * frame (`rekeyFrameBytes`) under this one. A fresh key always takes at least one frame.
   */
  rekeyDue(frameBytes: number, rekeyFrameBytes: number): boolean {
    const frames = this.nonces.counter;
    if (frames === 0) return false;
    return frames + 2 > this.limits.maxFramesPerKey || this.#bytes + frameBytes + rekeyFrameBytes > this.limits.maxBytesPerKey;
  }

  /** Records `bytes` authenticated under the current key. */
  account(bytes: number): void {
    this.#bytes += bytes;
  }

  /** Moves to the next epoch: ratchets the secret, replaces the AEAD, restarts the nonces. */
  advance(): void {
    if (this.#epoch >= MAX_EPOCH) throw new RangeError('key epochs exhausted: the link must be re-established');
    const next = nextTrafficSecret(this.#secret);
    this.#secret.fill(0);
    this.#secret = next;
    this.#aead.destroy();
    this.#releaseTenantAeads();
    this.#aead = this.#makeAead();
    this.#epoch += 1;
    this.#bytes = 0;
    this.nonces.reset();
  }

  destroy(): void {
    this.#secret.fill(0);
    this.#aead.destroy();
    this.#releaseTenantAeads();
  }
}
