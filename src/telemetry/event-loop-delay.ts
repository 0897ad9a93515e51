// How late the event loop runs ready work: a timer armed every `resolutionMs` records how far
// past its due time it fired. Everything in a sluice process (inference relaying, bulk sealing,
// decrypting, hashing) shares one loop, so a long synchronous slice of bulk work shows up here
// as delay that every inference request behind it also waits. Kept as a BucketHistogram (plain
// numbers, read at scrape time) plus the largest delay of the last two windows, because a
// histogram's top bucket hides how bad the worst stall was.
import { BucketHistogram } from './bucket-histogram.ts';

/** Upper bounds in seconds: 0.5 ms .. 1 s, fine around the 5 ms inference target. */
export const EVENT_LOOP_DELAY_BUCKETS_SECONDS: readonly number[] = [
  0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1,
];

export interface EventLoopDelayOptions {
  /** How often the probe timer fires; the delay is measured against this period. Default 2 ms. */
  resolutionMs?: number;
  /** The max gauge covers the last one to two windows of this length. Default 10 s. */
  maxWindowMs?: number;
}

export class EventLoopDelayMonitor {
  readonly histogram = new BucketHistogram(EVENT_LOOP_DELAY_BUCKETS_SECONDS);
  #resolutionMs: number;
  readonly #maxWindowMs: number;
  #timer: NodeJS.Timeout | undefined;
  #due = 0;
  #windowStart = 0;
  #maxCurrent = 0;
  #maxPrevious = 0;

  constructor(opts: EventLoopDelayOptions = {}) {
    this.#resolutionMs = opts.resolutionMs ?? 2;
    this.#maxWindowMs = opts.maxWindowMs ?? 10_000;
    if (!(this.#resolutionMs >= 1)) throw new RangeError(`resolutionMs must be >= 1, got ${this.#resolutionMs}`);
    if (!(this.#maxWindowMs > 0)) throw new RangeError(`maxWindowMs must be > 0, got ${this.#maxWindowMs}`);
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  get resolutionMs(): number {
    return this.#resolutionMs;
  }

  /**
   * Changes how often the probe fires (restarting it if running). The period sets how many
   * samples are taken, not what one means: a probe due at a random moment is late by what is
   * left of the slice it falls in, at any period. A slower probe costs the idle loop fewer
   * wake-ups and catches a short stall less often (one of d ms with chance d / period).
   */
  retune(resolutionMs: number): void {
    if (!(resolutionMs >= 1)) throw new RangeError(`resolutionMs must be >= 1, got ${resolutionMs}`);
    if (resolutionMs === this.#resolutionMs) return;
    this.#resolutionMs = resolutionMs;
    if (this.#timer === undefined) return;
    this.stop();
    this.start();
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const now = performance.now();
    this.#windowStart = now;
    this.#due = now + this.#resolutionMs;
    // unref: the probe alone must never keep a process alive.
    this.#timer = setInterval(this.#tick, this.#resolutionMs).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Largest delay seen over the last one to two windows, in seconds. */
  maxSeconds(now = performance.now()): number {
    this.#rotate(now);
    return Math.max(this.#maxCurrent, this.#maxPrevious) / 1000;
  }

  readonly #tick = (): void => {
    const now = performance.now();
    const lateMs = Math.max(0, now - this.#due);
    this.#due = now + this.#resolutionMs;
    this.histogram.observe(lateMs / 1000);
    this.#rotate(now);
    if (lateMs > this.#maxCurrent) this.#maxCurrent = lateMs;
  };

  #rotate(now: number): void {
    if (now - this.#windowStart < this.#maxWindowMs) return;
    // A whole idle window (no ticks) leaves nothing to carry over.
    this.#maxPrevious = now - this.#windowStart < 2 * this.#maxWindowMs ? this.#maxCurrent : 0;
    this.#maxCurrent = 0;
    this.#windowStart = now;
  }
}
