// A fixed-bucket histogram kept as plain numbers where observations happen.
// observe() is a few compares and adds (~10 ns); prom-client's Histogram.observe costs
// ~1.4 µs here because it hashes the label set on every call. The metrics registry reads
// these at scrape time (src/telemetry/metrics.ts), so the data path never touches prom-client.

/** Upper bounds in seconds for request latency: 100 µs .. 30 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Upper bounds in seconds for time spent queued in a link scheduler: 10 µs .. 1 s. */
export const QUEUE_DELAY_BUCKETS_SECONDS: readonly number[] = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

export class BucketHistogram {
  /** Ascending finite upper bounds; an implicit +Inf bucket follows the last. */
  readonly bounds: readonly number[];
  /** Per-bucket (not cumulative) counts; index bounds.length is the +Inf bucket. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    if (bounds.length === 0) throw new RangeError('bounds must not be empty');
    for (let i = 0; i < bounds.length; i++) {
      const b = bounds[i]!;
      if (!Number.isFinite(b)) throw new RangeError(`bounds[${i}] must be finite, got ${b}`);
      if (i > 0 && b <= bounds[i - 1]!) throw new RangeError(`bounds must ascend strictly (bounds[${i}] = ${b})`);
    }
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one observation. NaN is ignored (it would poison sum for good). */
  observe(value: number): void {
    if (value !== value) return;
    const bounds = this.bounds;
    const n = bounds.length;
    // Prometheus buckets are "less than or equal": the first bound >= value.
    let i = 0;
    while (i < n && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  /**
   * Adds observations already counted per bucket elsewhere (e.g. the native engine's request
   * tally): `counts` per bucket of these bounds, +Inf last, and their sum.
   */
  addCounts(counts: ArrayLike<number>, sum: number): void {
    if (counts.length !== this.counts.length) throw new RangeError(`expected ${this.counts.length} bucket counts, got ${counts.length}`);
    let n = 0;
    for (let i = 0; i < counts.length; i++) {
      this.counts[i]! += counts[i]!;
      n += counts[i]!;
    }
    this.sum += sum;
    this.count += n;
  }

  /** Cumulative counts per bound (the Prometheus `le` series), +Inf last. */
  cumulative(): number[] {
    const out = new Array<number>(this.counts.length);
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) {
      acc += this.counts[i]!;
      out[i] = acc;
    }
    return out;
  }

  /** Adds another histogram with the same bounds into this one. */
  add(other: BucketHistogram): void {
    if (other.bounds !== this.bounds && !sameBounds(other.bounds, this.bounds)) {
      throw new RangeError('cannot add histograms with different bounds');
    }
    for (let i = 0; i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.sum += other.sum;
    this.count += other.count;
  }

  /**
   * Estimated value at quantile q (0..1) by linear interpolation inside the bucket, the way
   * Prometheus' histogram_quantile does. Returns NaN when empty.
   */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const rank = q * this.count;
    let acc = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const c = this.counts[i]!;
      if (acc + c >= rank && c > 0) {
        if (i === this.bounds.length) return this.bounds[i - 1]!;
        const lo = i === 0 ? 0 : this.bounds[i - 1]!;
        const hi = this.bounds[i]!;
        return lo + (hi - lo) * ((rank - acc) / c);
      }
      acc += c;
    }
    return this.bounds[this.bounds.length - 1]!;
  }
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
