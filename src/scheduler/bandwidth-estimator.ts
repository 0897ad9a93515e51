// Link bandwidth estimate from the writer's own measurements: bytes the link drained while it
// was backlogged (the sender had more to write than the link took), over intervals of at least
// `minIntervalMs`. Samples taken while the sender was idle or paced would measure the offered
// load, not the link, so callers report only busy intervals. The estimate is an EWMA of those
// samples, so one slow interval (a GC pause) does not collapse the chunk size.
//
// The first busy intervals of a link measure its start-up (TCP slow start, cold JIT, the
// smallest chunks, since chunk size follows this estimate), and they used to seed the EWMA. A
// link whose bulk was cut from the start was then paced at share x that low first figure for as
// long as the cut lasted: paced hand-outs are not samples, so nothing corrected it (measured:
// 4-5 MB/s at shares 0.2 and 0.5, docs/training.md). Now the estimate is *settled* only after
// `warmupSamples` busy intervals, and starts at the largest of them; pacing uses only a settled
// estimate (FairLinkScheduler), while chunk sizing may use the provisional one.
export interface BandwidthEstimatorOptions {
  /** Weight of a new sample (0 < alpha <= 1). */
  alpha?: number;
  /** Shortest interval that makes a sample, milliseconds. */
  minIntervalMs?: number;
  /** Busy intervals measured before the estimate is settled (>= 1). */
  warmupSamples?: number;
}

export class BandwidthEstimator {
  private readonly alpha: number;
  private readonly minIntervalMs: number;
  private readonly warmupSamples: number;
  private estimate = 0;
  private warmupCount = 0;
  private warmupMax = 0;
  private busyBytes = 0;
  private busySince = -1;

  constructor(opts: BandwidthEstimatorOptions = {}) {
    this.alpha = opts.alpha ?? 0.25;
    this.minIntervalMs = opts.minIntervalMs ?? 20;
    this.warmupSamples = opts.warmupSamples ?? 4;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${this.alpha}`);
    if (!Number.isInteger(this.warmupSamples) || this.warmupSamples < 1) throw new RangeError(`warmupSamples must be a positive integer, got ${this.warmupSamples}`);
  }

  /** Bytes per second: the settled estimate, else the largest warm-up sample so far; 0 before any. */
  get bytesPerSec(): number {
    return this.estimate > 0 ? this.estimate : this.warmupMax;
  }

  /** The estimate once settled (enough busy intervals, or a direct sample); 0 before. */
  get settledBytesPerSec(): number {
    return this.estimate;
  }

  /** The link drained `bytes` at `nowMs` while the sender was backlogged. */
  onBusyDrain(bytes: number, nowMs: number): void {
    if (this.busySince < 0) {
      this.busySince = nowMs;
      this.busyBytes = 0;
      return;
    }
    this.busyBytes += bytes;
    const dt = nowMs - this.busySince;
    if (dt >= this.minIntervalMs) {
      this.addBusySample((this.busyBytes * 1000) / dt);
      this.busySince = nowMs;
      this.busyBytes = 0;
    }
  }

  /** The sender ran out of work (or got paced): the next busy period starts a fresh interval. */
  onIdle(): void {
    this.busySince = -1;
    this.busyBytes = 0;
  }

  /** A direct sample (e.g. a completed transfer's throughput), bytes per second: it settles the estimate. */
  addSample(bytesPerSec: number): void {
    if (!(bytesPerSec > 0 && Number.isFinite(bytesPerSec))) return;
    this.estimate = this.estimate === 0 ? Math.max(bytesPerSec, this.warmupMax) : this.estimate + this.alpha * (bytesPerSec - this.estimate);
  }

  private addBusySample(bytesPerSec: number): void {
    if (!(bytesPerSec > 0 && Number.isFinite(bytesPerSec))) return;
    if (this.estimate > 0) {
      this.addSample(bytesPerSec);
      return;
    }
    this.warmupMax = Math.max(this.warmupMax, bytesPerSec);
    this.warmupCount += 1;
    if (this.warmupCount >= this.warmupSamples) this.estimate = this.warmupMax;
  }
}
