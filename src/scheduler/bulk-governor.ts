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
  /** After a cut that did not lower inference p99, no cut below the share before it for this long, ms (default 10 s). */
  futileCutHoldMs?: number;
}

/** A cut whose effect is not judged yet: when, the p99 that caused it, the share before it. */
interface PendingCut {
  atMs: number;
  p99Ms: number;
  shareBefore: number;
}

/** The baseline p99 (no bulk) is taken over this window and kept while bulk runs. */
const BASELINE_WINDOW_MS = 10_000;
/** A cut worked when inference p99 after it is below this fraction of the p99 that caused it. */
const EFFECTIVE_CUT_RATIO = 0.9;
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
  private pendingCut: PendingCut | undefined;
  private readonly futileCutHoldMs: number;
  private readonly verdictSamples: number;
  private lastCutAt = -Infinity;
  private noCutBelow = 0;
  private noCutUntil = -Infinity;
  private futile = 0;
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
  }

  /** An inference request took `latencyMs` end to end (recorded at time `nowMs`, performance.now()). */
  recordInference(latencyMs: number, nowMs: number): void {
    this.ingest(latencyMs, nowMs);
    this.mirror?.record(latencyMs);
  }

  private ingest(latencyMs: number, nowMs: number): void {
    this.latency.record(latencyMs, nowMs);
    this.sinceCut.record(latencyMs, nowMs);
    if (!this.bulkActive(nowMs)) this.idleLatency.record(latencyMs, nowMs);
    this.lastInference = Math.max(this.lastInference, nowMs);
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
    const cut = this.pendingCut;
    if (cut !== undefined) {
      if (!(p99 > this.controller.cutLine(floor))) {
        this.pendingCut = undefined; // the cut worked (or inference went quiet)
      } else if (p99 >= cut.p99Ms * EFFECTIVE_CUT_RATIO) {
        // Inference is as slow with less bulk: what slows it is not bulk. Undo the cut, and
        // probe with a cut below that share again only after futileCutHoldMs.
        this.pendingCut = undefined;
        this.futile++;
        this.controller.restore(cut.shareBefore, nowMs);
        this.noCutBelow = cut.shareBefore;
        this.noCutUntil = nowMs + this.futileCutHoldMs;
        return;
      }
      // Else the cut helped but not enough: update() cuts again.
    }
    const before = this.controller.share;
    const action = this.controller.update(p99, nowMs, floor, nowMs < this.noCutUntil ? this.noCutBelow : 0);
    if (action === 'decrease') {
      this.pendingCut = { atMs: nowMs, p99Ms: p99, shareBefore: before };
      this.lastCutAt = nowMs;
      this.sinceCut.reset();
    }
  }
}
