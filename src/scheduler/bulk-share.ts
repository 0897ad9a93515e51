// AIMD control of the bulk (training) class's share of a link, driven by measured inference
// latency. When inference p99 nears its target the share is cut multiplicatively; when it has
// recovered the share grows back additively. The share never goes below `minShare`, so bulk
// always progresses, and never above 1 (the whole link).
export interface BulkShareOptions {
  /** Inference latency target (p99), milliseconds. */
  targetMs: number;
  /** Lowest share bulk may be cut to (0 < minShare <= 1). */
  minShare: number;
  /** Cut when p99 > targetMs * highWater. */
  highWater?: number;
  /** Grow when p99 < targetMs * lowWater (between the two, hold). */
  lowWater?: number;
  /** Multiplicative decrease factor (0 < decrease < 1). */
  decrease?: number;
  /** Additive increase per step (share units). */
  increase?: number;
  /** Minimum time between two increases, milliseconds. */
  increaseIntervalMs?: number;
  /** Minimum time between two cuts: lets the latency window see the effect of the last cut. */
  decreaseIntervalMs?: number;
}

export type BulkShareAction = 'decrease' | 'increase' | 'hold';

/**
 * Thresholds from inference's own latency without bulk (BulkGovernor's baseline): cut only
 * above `cutAboveMs`, grow only below `growBelowMs`, whatever the absolute target says.
 */
export interface LatencyFloor {
  cutAboveMs: number;
  growBelowMs: number;
}

export class BulkShareController {
  readonly targetMs: number;
  readonly minShare: number;
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly decreaseFactor: number;
  private readonly increaseStep: number;
  private readonly increaseIntervalMs: number;
  private readonly decreaseIntervalMs: number;
  private current = 1;
  private lastIncrease = -Infinity;
  private lastDecrease = -Infinity;
  private cuts = 0;

  constructor(opts: BulkShareOptions) {
    if (!(opts.targetMs > 0)) throw new RangeError(`targetMs must be > 0, got ${opts.targetMs}`);
    if (!(opts.minShare > 0 && opts.minShare <= 1)) throw new RangeError(`minShare must be in (0, 1], got ${opts.minShare}`);
    this.targetMs = opts.targetMs;
    this.minShare = opts.minShare;
    this.highWater = opts.highWater ?? 0.8;
    this.lowWater = opts.lowWater ?? 0.5;
    this.decreaseFactor = opts.decrease ?? 0.5;
    this.increaseStep = opts.increase ?? 0.05;
    this.increaseIntervalMs = opts.increaseIntervalMs ?? 100;
    this.decreaseIntervalMs = opts.decreaseIntervalMs ?? 250;
    if (!(this.lowWater > 0 && this.lowWater <= this.highWater)) {
      throw new RangeError(`lowWater must be in (0, highWater], got ${this.lowWater} (highWater ${this.highWater})`);
    }
    if (!(this.decreaseFactor > 0 && this.decreaseFactor < 1)) throw new RangeError(`decrease must be in (0, 1), got ${this.decreaseFactor}`);
    if (!(this.increaseStep > 0 && this.increaseStep <= 1)) throw new RangeError(`increase must be in (0, 1], got ${this.increaseStep}`);
  }

  /** Current share of the link the bulk class may use, in [minShare, 1]. */
  get share(): number {
    return this.current;
  }

  /** Number of multiplicative cuts so far (exported as a metric). */
  get decreases(): number {
    return this.cuts;
  }

  /**
   * Feeds the latest inference p99 (milliseconds; NaN when there were no inference samples,
   * which counts as "no pressure") and returns what the controller did.
   */
  update(p99Ms: number, nowMs: number, floor?: LatencyFloor, noCutBelow = 0): BulkShareAction {
    const cutAbove = this.cutLine(floor);
    const growBelow = this.growLine(floor);
    if (p99Ms > cutAbove) {
      // `noCutBelow`: the governor learned that cutting below this share bought inference nothing.
      const lowest = Math.max(this.minShare, noCutBelow);
      if (nowMs - this.lastDecrease < this.decreaseIntervalMs || this.current <= lowest) return 'hold';
      this.current = Math.max(lowest, this.current * this.decreaseFactor);
      this.lastDecrease = nowMs;
      // Growth restarts a full interval after a cut.
      this.lastIncrease = nowMs;
      this.cuts++;
      return 'decrease';
    }
    if (Number.isNaN(p99Ms)) {
      // No inference traffic to protect: bulk gets the whole link back at once rather than
      // ramping up additively (from the minimum share that takes seconds of an idle link).
      if (this.current >= 1) return 'hold';
      this.current = 1;
      this.lastIncrease = nowMs;
      return 'increase';
    }
    if (p99Ms < growBelow) {
      if (nowMs - this.lastIncrease < this.increaseIntervalMs || this.current >= 1) return 'hold';
      this.current = Math.min(1, this.current + this.increaseStep);
      this.lastIncrease = nowMs;
      return 'increase';
    }
    return 'hold';
  }

  /** The p99 below which update() grows the share. */
  growLine(floor?: LatencyFloor): number {
    return Math.max(this.targetMs * this.lowWater, floor?.growBelowMs ?? 0);
  }

  /** The p99 above which update() cuts. */
  cutLine(floor?: LatencyFloor): number {
    return Math.max(this.targetMs * this.highWater, floor?.cutAboveMs ?? 0);
  }

  /** Undoes a cut that did not help (BulkGovernor): the share goes back to `share`; growth restarts a full interval later. */
  restore(share: number, nowMs: number): void {
    this.current = Math.min(1, Math.max(this.minShare, share));
    this.lastIncrease = nowMs;
  }
}
