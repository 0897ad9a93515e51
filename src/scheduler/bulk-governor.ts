// The node-wide link between inference latency and bulk rate. The ingress records the round
// trip of every inference request; the training links' schedulers ask for the bulk share, which
// an AIMD controller derives (at most every `tickMs`) from the p99 over a short sliding window.
// One governor per process: inference and training links are different links (different
// segments) that share the machine, the NIC and the CPU, so the cut has to cross links.
// The cut is also relative: the governor keeps inference's p99 measured while no bulk runs
// (the baseline) and cuts only when bulk makes inference slower than `maxSlowdown` x that
// baseline. On a machine that misses the absolute target without bulk, holding bulk at its
// floor costs bulk everything and gains inference nothing.
import { BulkShareController, type BulkShareOptions, type LatencyFloor } from './bulk-share.ts';
import { LatencyHistogram } from './latency-histogram.ts';
import type { LatencySampleRing } from './latency-sample-ring.ts';

export interface BulkGovernorOptions extends BulkShareOptions {
  /** Sliding window of the p99 that drives the controller, milliseconds. */
  windowMs?: number;
  /** The controller runs at most this often, milliseconds. */
  tickMs?: number;
  /** Below this many samples in the window the p99 is not trusted (counts as no pressure). */
  minSamples?: number;
  /** Also hands every sample to the training thread's governor (src/scheduler/latency-sample-ring.ts). */
  mirror?: LatencySampleRing;
  /** Bulk may make inference p99 this much slower than with no bulk running (default 1.25). */
  maxSlowdown?: number;
  /**
   * Rings other writers fill (the native engine's ingress: native/engine/latency_ring.h),
   * drained whenever the governor is asked. Their samples are not mirrored: each governor
   * reads such a ring itself, with its own read index.
   */
  sources?: readonly LatencySampleRing[];
  /**
   * After a series of cuts that did not lower inference p99, no cut below the share before it
   * for this long, ms (default 10 s); doubled for each such series in a row, up to 8x.
   */
  futileCutHoldMs?: number;
}

/**
 * A series of cuts whose effect is not judged yet: the p99 that started it and the share
 * before its first cut. A series goes on while each cut helps but not enough, and every
 * verdict compares with its start: on a noisy p99 a cut often looks 10% better than the one
 * before it by chance, and judged cut by cut a series slid down on such luck and stayed there.
 */
interface CutSeries {
  p99Ms: number;
  shareBefore: number;
}

/** The baseline p99 (no bulk) is taken over this window and kept while bulk runs. */
const BASELINE_WINDOW_MS = 10_000;
/** A series of cuts helps when inference p99 after it is below this fraction of the p99 that started it. */
const EFFECTIVE_CUT_RATIO = 0.9;
/** Each futile series in a row doubles the hold after it, up to this many times futileCutHoldMs. */
const MAX_HOLD_DOUBLINGS = 3;
/** A series starts from, and is judged against, the median p99 of the last this many blocks. */
const REFERENCE_BLOCKS = 3;
/** A cut is judged on this many times minSamples after it (a p99 over 20 samples is their maximum). */
const VERDICT_SAMPLES_PER_MIN = 5;

export class BulkGovernor {
  readonly targetMs: number;
  private readonly controller: BulkShareController;
  private readonly latency: LatencyHistogram;
  private readonly tickMs: number;
  private readonly minSamples: number;
  private lastTick = -Infinity;
  private lastP99 = Number.NaN;
  private lastInference = -Infinity;
  private readonly windowMs: number;
  private readonly mirror: LatencySampleRing | undefined;
  private readonly maxSlowdown: number;
  /** Inference samples recorded while no bulk asked for its share within the window. */
  private readonly idleLatency: LatencyHistogram;
  private baselineP99 = Number.NaN;
  private lastBulkAsk = -Infinity;
  private readonly sources: readonly LatencySampleRing[];
  /** Samples since the last cut: the next decision is taken on these alone (reset at each cut). */
  private readonly sinceCut: LatencyHistogram;
  private series: CutSeries | undefined;
  private readonly futileCutHoldMs: number;
  private readonly verdictSamples: number;
  private lastCutAt = -Infinity;
  private noCutBelow = 0;
  private noCutUntil = -Infinity;
  private futile = 0;
  /**
   * While bulk runs and no series is pending: the p99 of each block of verdictSamples samples
   * (the size a verdict is taken on), with when it ended, the last REFERENCE_BLOCKS of them.
   * A series is judged against their median, not against the p99 that started it: that one
   * was picked for being high, so on noise alone the p99 after any cut tends to be lower
   * (regression to the mean), and each such lucky verdict cut again. Cleared when bulk stops.
   */
  private readonly block: LatencyHistogram;
  private readonly blockP99s: number[] = [];
  /** Futile series since the last one that worked: the hold after the next doubles with each. */
  private futileInARow = 0;
  private readonly onSourceSample = (latencyMs: number, nowMs: number): void => this.ingest(latencyMs, nowMs);
  private readonly onSourceNote = (nowMs: number): void => {
    this.lastInference = Math.max(this.lastInference, nowMs);
  };

  constructor(opts: BulkGovernorOptions) {
    this.mirror = opts.mirror;
    this.sources = opts.sources ?? [];
    this.targetMs = opts.targetMs;
    this.controller = new BulkShareController(opts);
    this.windowMs = opts.windowMs ?? 1000;
    this.latency = new LatencyHistogram({ windowMs: this.windowMs, slots: 10 });
    this.tickMs = opts.tickMs ?? 50;
    this.minSamples = opts.minSamples ?? 20;
    this.maxSlowdown = opts.maxSlowdown ?? 1.25;
    if (!(this.maxSlowdown > 1)) throw new RangeError(`maxSlowdown must be > 1, got ${this.maxSlowdown}`);
    this.idleLatency = new LatencyHistogram({ windowMs: BASELINE_WINDOW_MS, slots: 10 });
    this.sinceCut = new LatencyHistogram({ windowMs: this.windowMs, slots: 10 });
    this.futileCutHoldMs = opts.futileCutHoldMs ?? BASELINE_WINDOW_MS;
    this.verdictSamples = VERDICT_SAMPLES_PER_MIN * this.minSamples;
    this.block = new LatencyHistogram({ windowMs: BASELINE_WINDOW_MS, slots: 10 });
  }

  /** An inference request took `latencyMs` end to end (recorded at time `nowMs`, performance.now()). */
  recordInference(latencyMs: number, nowMs: number): void {
    this.ingest(latencyMs, nowMs);
    this.mirror?.record(latencyMs);
  }

  private ingest(latencyMs: number, nowMs: number): void {
    this.latency.record(latencyMs, nowMs);
    this.sinceCut.record(latencyMs, nowMs);
    if (!this.bulkActive(nowMs)) {
      this.idleLatency.record(latencyMs, nowMs);
      if (this.blockP99s.length > 0) this.blockP99s.length = 0;
    } else if (this.series === undefined) this.recordBlock(latencyMs, nowMs);
    this.lastInference = Math.max(this.lastInference, nowMs);
  }

  private recordBlock(latencyMs: number, nowMs: number): void {
    this.block.record(latencyMs, nowMs);
    if (this.block.count(nowMs) < this.verdictSamples) return;
    if (this.blockP99s.length === REFERENCE_BLOCKS) this.blockP99s.shift();
    this.blockP99s.push(this.block.quantile(0.99, nowMs));
    this.block.reset();
  }

  /** The median of the last REFERENCE_BLOCKS block p99s; NaN until there are that many. */
  private reference(): number {
    const b = this.blockP99s;
    if (b.length < REFERENCE_BLOCKS) return Number.NaN;
    const [x, y, z] = b as [number, number, number];
    return Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
  }

  /**
   * Inference passed through this process (an egress relaying a request, which has no round
   * trip to record): makes inferenceActive() true without moving the share.
   */
  noteInference(nowMs: number): void {
    this.lastInference = nowMs;
    this.mirror?.note();
  }

  /**
   * True while inference traffic passed through this process within the last window. Bulk
   * work then runs in short slices per event-loop turn (an inference request waits behind at
   * most one), instead of the long ones that are cheaper when nobody waits.
   */
  inferenceActive(nowMs: number): boolean {
    this.drainSources();
    return nowMs - this.lastInference <= this.windowMs;
  }

  /** Bulk asked for its share within the last window (it is sending). */
  private bulkActive(nowMs: number): boolean {
    return nowMs - this.lastBulkAsk <= this.windowMs;
  }

  /** The bulk class's share of each link now, in [minShare, 1]. Asking marks bulk as running. */
  share(nowMs: number): number {
    this.lastBulkAsk = nowMs;
    this.tick(nowMs);
    return this.controller.share;
  }

  /** For metrics and the benchmark report. */
  snapshot(nowMs: number): { share: number; p99Ms: number; samples: number; decreases: number; baselineP99Ms: number; futileCuts: number } {
    this.tick(nowMs);
    return { share: this.controller.share, p99Ms: this.lastP99, samples: this.latency.count(nowMs), decreases: this.controller.decreases, baselineP99Ms: this.baselineP99, futileCuts: this.futile };
  }

  /** No baseline yet (bulk started before inference had run alone): the absolute target alone rules. */
  private floor(): LatencyFloor | undefined {
    const b = this.baselineP99;
    if (Number.isNaN(b)) return undefined;
    return { cutAboveMs: b * this.maxSlowdown, growBelowMs: b * (1 + (this.maxSlowdown - 1) / 2) };
  }

  private drainSources(): void {
    for (const ring of this.sources) ring.drain(this.onSourceSample, this.onSourceNote);
  }

  private tick(nowMs: number): void {
    this.drainSources();
    if (nowMs - this.lastTick < this.tickMs) return;
    this.lastTick = nowMs;
    const enough = this.latency.count(nowMs) >= this.minSamples;
    this.lastP99 = enough ? this.latency.quantile(0.99, nowMs) : Number.NaN;
    // The baseline follows the idle windows and is kept (not decayed) while bulk runs.
    if (this.idleLatency.count(nowMs) >= this.minSamples) this.baselineP99 = this.idleLatency.quantile(0.99, nowMs);
    const floor = this.floor();
    let p99 = this.lastP99;
    if (nowMs - this.lastCutAt < this.windowMs) {
      // For a window after a cut the sliding window still holds samples from before it, which
      // used to cut again and again for one slow moment: decide on the samples after the cut
      // alone, once there are enough of them for a p99 (hold until then).
      if (this.sinceCut.count(nowMs) < this.verdictSamples) return;
      p99 = this.sinceCut.quantile(0.99, nowMs);
    }
    const series = this.series;
    if (series !== undefined) {
      if (!(p99 >= this.controller.growLine(floor))) {
        // The series worked (or inference went quiet): bulk may grow again.
        this.series = undefined;
        this.futileInARow = 0;
      } else if (!(p99 > this.controller.cutLine(floor))) {
        // Within the allowance but not clearly: the share holds and the series stays judged.
        // Ending it here left bulk at its floor whenever a noisy p99 dipped under the cut line
        // once: at the floor update() cannot cut, so no new series began and none was undone.
      } else if (p99 >= series.p99Ms * EFFECTIVE_CUT_RATIO) {
        // Inference is as slow with less bulk: what slows it is not bulk. Undo the whole
        // series, and probe below that share again only after the hold, which doubles with
        // each futile series in a row: on a machine where bulk's cost is not its share, the
        // probes themselves were what bulk lost (share p50 0.5 in the judged run of 3d14e63).
        this.series = undefined;
        this.futile++;
        this.controller.restore(series.shareBefore, nowMs);
        this.noCutBelow = series.shareBefore;
        this.noCutUntil = nowMs + this.futileCutHoldMs * 2 ** Math.min(this.futileInARow, MAX_HOLD_DOUBLINGS);
        this.futileInARow++;
        return;
      }
      // Else the series helped but not enough: update() cuts again.
    }
    const before = this.controller.share;
    // With a baseline, a series starts only when the median of the last blocks is over the
    // cut line too: what bulk at this share does to inference, not one window's p99 (one
    // slow moment lands in one block). Without one (bulk ran from the start, the absolute
    // target rules) the window's p99 alone may start a series, judged against itself.
    const reference = this.reference();
    const unproven = floor !== undefined && this.series === undefined && !(reference > this.controller.cutLine(floor));
    const noCutBelow = unproven ? 1 : nowMs < this.noCutUntil ? this.noCutBelow : 0;
    const action = this.controller.update(p99, nowMs, floor, noCutBelow);
    if (action === 'decrease') {
      if (this.series === undefined) {
        this.series = { p99Ms: Number.isNaN(reference) ? p99 : reference, shareBefore: before };
        // The next series needs blocks of its own, taken at the share this one leaves.
        this.blockP99s.length = 0;
        this.block.reset();
      }
      this.lastCutAt = nowMs;
      this.sinceCut.reset();
    }
  }
}
