// Link bandwidth estimate from the writer's own measurements: bytes the link drained while it
// was backlogged (the sender had more to write than the link took), over intervals of at least
// `minIntervalMs`. Samples taken while the sender was idle or paced would measure the offered
// load, not the link, so callers report only busy intervals. The estimate is an EWMA of those
// samples, so one slow interval (a GC pause) does not collapse the chunk size.
export interface BandwidthEstimatorOptions {
  /** Weight of a new sample (0 < alpha <= 1). */
  alpha?: number;
  /** Shortest interval that makes a sample, milliseconds. */
  minIntervalMs?: number;
}

export class BandwidthEstimator {
  private readonly alpha: number;
  private readonly minIntervalMs: number;
  private estimate = 0;
  private busyBytes = 0;
  private busySince = -1;

  constructor(opts: BandwidthEstimatorOptions = {}) {
    this.alpha = opts.alpha ?? 0.25;
    this.minIntervalMs = opts.minIntervalMs ?? 20;
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new RangeError(`alpha must be in (0, 1], got ${this.alpha}`);
  }

  /** Bytes per second; 0 until the first sample. */
  get bytesPerSec(): number {
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
      this.addSample((this.busyBytes * 1000) / dt);
      this.busySince = nowMs;
      this.busyBytes = 0;
    }
  }

  /** The sender ran out of work (or got paced): the next busy period starts a fresh interval. */
  onIdle(): void {
    this.busySince = -1;
    this.busyBytes = 0;
  }

  /** A direct sample (e.g. a completed transfer's throughput), bytes per second. */
  addSample(bytesPerSec: number): void {
    if (!(bytesPerSec > 0 && Number.isFinite(bytesPerSec))) return;
    this.estimate = this.estimate === 0 ? bytesPerSec : this.estimate + this.alpha * (bytesPerSec - this.estimate);
  }
}
