// Streaming latency quantiles over a sliding time window with no allocation per sample.
//
// Values are recorded in integer microseconds into log-linear buckets (HDR-histogram style):
// exact below 64 µs, then 32 buckets per power of two, so a reported quantile is within 1/32
// (3.1%) above the true value. The window is a ring of `slots` sub-histograms; a slot older
// than the window is subtracted from a running aggregate and cleared, so a quantile query scans
// one fixed array of BUCKETS counters whatever the sample rate.
const EXACT = 64;
const SUB_BITS = 5; // 32 buckets per power of two above EXACT
const SUB = 1 << SUB_BITS;
const MAX_US = 2 ** 31 - 1; // about 35 minutes
export const BUCKETS = EXACT + (30 - 6 + 1) * SUB; // 864

/** Bucket index of a value in microseconds (0 <= us <= MAX_US). */
export function bucketOf(us: number): number {
  if (us < EXACT) return us;
  const e = 31 - Math.clz32(us); // floor(log2 us) >= 6
  const mantissa = us >>> (e - SUB_BITS); // top SUB_BITS+1 bits: [32, 63]
  return EXACT + (e - 6) * SUB + (mantissa - SUB);
}

/** Largest value (µs) that falls in a bucket: quantiles are reported conservatively. */
export function bucketUpperBound(index: number): number {
  if (index < EXACT) return index;
  const e = Math.floor((index - EXACT) / SUB) + 6;
  const mantissa = ((index - EXACT) % SUB) + SUB;
  return Math.min(MAX_US, (mantissa + 1) * 2 ** (e - SUB_BITS) - 1);
}

export interface LatencyHistogramOptions {
  /** Length of the sliding window in milliseconds. */
  windowMs: number;
  /** Number of sub-windows; the window advances in steps of windowMs / slots. */
  slots?: number;
}

export class LatencyHistogram {
  readonly windowMs: number;
  private readonly slotMs: number;
  private readonly slotCounts: Uint32Array[];
  private readonly slotMax: Float64Array;
  private readonly slotTotal: Float64Array;
  private readonly slotEpoch: Float64Array;
  private readonly aggregate = new Float64Array(BUCKETS);
  private total = 0;

  constructor(opts: LatencyHistogramOptions) {
    const slots = opts.slots ?? 10;
    if (!(opts.windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${opts.windowMs}`);
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`slots must be a positive integer, got ${slots}`);
    this.windowMs = opts.windowMs;
    this.slotMs = opts.windowMs / slots;
    this.slotCounts = Array.from({ length: slots }, () => new Uint32Array(BUCKETS));
    this.slotMax = new Float64Array(slots);
    this.slotTotal = new Float64Array(slots);
    this.slotEpoch = new Float64Array(slots).fill(-Infinity);
  }

  /** Records one latency sample (milliseconds) observed at time `nowMs` (monotonic). */
  record(latencyMs: number, nowMs: number): void {
    const us = latencyMs <= 0 || Number.isNaN(latencyMs) ? 0 : Math.min(MAX_US, Math.round(latencyMs * 1000));
    const slot = this.advance(nowMs);
    const b = bucketOf(us);
    (this.slotCounts[slot] as Uint32Array)[b]! += 1;
    this.aggregate[b]! += 1;
    this.slotTotal[slot]! += 1;
    this.total += 1;
    if (us > this.slotMax[slot]!) this.slotMax[slot] = us;
  }

  /** Number of samples inside the window ending at `nowMs`. */
  count(nowMs: number): number {
    this.advance(nowMs);
    return this.total;
  }

  /**
   * The q-quantile (0 < q <= 1, nearest rank) of the samples in the window, in milliseconds;
   * NaN when the window holds no sample.
   */
  quantile(q: number, nowMs: number): number {
    if (!(q > 0 && q <= 1)) throw new RangeError(`q must be in (0, 1], got ${q}`);
    this.advance(nowMs);
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.aggregate[b]!;
      if (seen >= rank) return Math.min(bucketUpperBound(b), this.maxUs()) / 1000;
    }
    return this.maxUs() / 1000;
  }

  /** Largest sample in the window, in milliseconds (NaN when empty). */
  max(nowMs: number): number {
    this.advance(nowMs);
    return this.total === 0 ? Number.NaN : this.maxUs() / 1000;
  }

  reset(): void {
    for (const c of this.slotCounts) c.fill(0);
    this.slotMax.fill(0);
    this.slotTotal.fill(0);
    this.slotEpoch.fill(-Infinity);
    this.aggregate.fill(0);
    this.total = 0;
  }

  private maxUs(): number {
    let m = 0;
    for (let i = 0; i < this.slotMax.length; i++) if (this.slotTotal[i]! > 0 && this.slotMax[i]! > m) m = this.slotMax[i]!;
    return m;
  }

  /** Expires slots that fell out of the window; returns the slot index for time `nowMs`. */
  private advance(nowMs: number): number {
    const epoch = Math.floor(nowMs / this.slotMs);
    const n = this.slotCounts.length;
    const slot = ((epoch % n) + n) % n;
    if (this.slotEpoch[slot] === epoch) return slot;
    for (let i = 0; i < n; i++) {
      const e = this.slotEpoch[i]!;
      // A slot is stale when it is older than the window; the current slot is reused below.
      if (e !== -Infinity && (e <= epoch - n || i === slot)) this.clearSlot(i);
    }
    this.slotEpoch[slot] = epoch;
    return slot;
  }

  private clearSlot(i: number): void {
    if (this.slotTotal[i]! > 0) {
      const counts = this.slotCounts[i] as Uint32Array;
      for (let b = 0; b < BUCKETS; b++) {
        const c = counts[b]!;
        if (c !== 0) {
          this.aggregate[b]! -= c;
          counts[b] = 0;
        }
      }
      this.total -= this.slotTotal[i]!;
    }
    this.slotTotal[i] = 0;
    this.slotMax[i] = 0;
    this.slotEpoch[i] = -Infinity;
  }
}
