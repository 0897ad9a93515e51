// One token bucket per tenant for both ingress paths: 64-bit slots in a SharedArrayBuffer that
// the engine's ingress takes from on its thread (native/engine/shared_rate_buckets.h) and
// TenantRateLimiter takes from here. A slot holds the bucket as one number, its theoretical
// arrival time (GCRA) in microseconds of CLOCK_MONOTONIC (process.hrtime here, steady_clock in
// the engine), so a take is one compare-and-swap and neither thread waits on the other:
// allowed iff max(tat, now) + T - now <= burst * T (T = 1 / requestsPerSecond), the same bucket
// as rate-limiter.ts's refill-and-take. 0 is a full bucket.
import type { TenantLimits } from './rate-limiter.ts';

/** The policy table's "no shared slot" (native/engine/shared_rate_buckets.h kNoBucket). */
export const NO_BUCKET = 0xffffffff;

interface Slot {
  index: number;
  requestsPerSecond: number;
  burst: number;
}

export function monotonicMicros(): bigint {
  return process.hrtime.bigint() / 1000n;
}

export class SharedRateBuckets {
  /** The slots (the engine is handed this view: setRateBuckets). */
  readonly view: BigInt64Array;
  readonly #slots = new Map<string, Slot>();

  constructor(capacity = 4096) {
    this.view = new BigInt64Array(new SharedArrayBuffer(capacity * 8));
  }

  /**
   * The tenant's slot: assigned on first sight and kept across policy republishes while its
   * limits stay the same (the bucket keeps its tokens); refilled when they change. NO_BUCKET
   * when every slot is taken (that tenant keeps a bucket per path).
   */
  assign(tenant: string, limits: Pick<TenantLimits, 'requestsPerSecond' | 'burst'>): number {
    const s = this.#slots.get(tenant);
    if (s !== undefined) {
      if (s.requestsPerSecond !== limits.requestsPerSecond || s.burst !== limits.burst) {
        s.requestsPerSecond = limits.requestsPerSecond;
        s.burst = limits.burst;
        Atomics.store(this.view, s.index, 0n);
      }
      return s.index;
    }
    if (this.#slots.size >= this.view.length) return NO_BUCKET;
    const index = this.#slots.size;
    Atomics.store(this.view, index, 0n);
    this.#slots.set(tenant, { index, requestsPerSecond: limits.requestsPerSecond, burst: limits.burst });
    return index;
  }

  /** Takes one token from the tenant's shared bucket: 0 when allowed, else ms until the next token; null: the tenant has no slot. */
  take(tenant: string, nowUs: bigint = monotonicMicros()): number | null {
    const s = this.#slots.get(tenant);
    if (s === undefined) return null;
    // The engine's rounding (llround of the same doubles), so both sides see one bucket.
    const interval = 1e6 / s.requestsPerSecond;
    const step = BigInt(Math.round(interval));
    const tolerance = BigInt(Math.round(s.burst * interval));
    let tat = Atomics.load(this.view, s.index);
    for (;;) {
      const next = (tat > nowUs ? tat : nowUs) + step;
      if (next - nowUs > tolerance) return Math.ceil(Number(next - nowUs - tolerance) / 1000);
      const seen = Atomics.compareExchange(this.view, s.index, tat, next);
      if (seen === tat) return 0;
      tat = seen;
    }
  }
}
