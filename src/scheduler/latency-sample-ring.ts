// Inference latency samples crossing from the thread that measures them (the main thread's
// ingress and egress) to the training thread, whose governor paces bulk: a single-writer ring
// in a SharedArrayBuffer, so a sample costs two stores and no message. The reader drains it
// when its links ask for the bulk share; a reader that fell more than a ring behind skips to
// the newest samples (old ones no longer move a 1 s window). Times are absolute
// (performance.timeOrigin + now), as each thread's performance.now() has its own origin.
// The same buffer carries the governor's state back (share, p99, samples, cuts, baseline, futile cuts).

/** Latency value of a sample that only says "inference passed" (an egress relaying a call). */
const NOTE = Number.NaN;
// Int32: write index, byte offset of the slots. The native engine's writer
// (native/engine/latency_ring.h) reads the offset from the ring, so the stats may grow.
const HEADER_WORDS = 2;
const STATS_SLOTS = 6; // Float64: share, p99 ms, samples, decreases, baseline p99 ms, futile cuts
const SLOTS_OFFSET = HEADER_WORDS * 4 + STATS_SLOTS * 8;

export interface GovernorStats {
  share: number;
  p99Ms: number;
  samples: number;
  decreases: number;
  /** Inference p99 measured while no bulk ran (NaN until there is one). */
  baselineP99Ms: number;
  /** Cuts undone because inference p99 did not drop after them. */
  futileCuts: number;
}

export class LatencySampleRing {
  readonly buffer: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly stats: Float64Array;
  private readonly slots: Float64Array;
  private readonly capacity: number;
  private readIndex: number;

  /** A new ring of `capacity` samples, or a view of one made on another thread (`buffer`). */
  constructor(init: { capacity: number } | { buffer: SharedArrayBuffer }) {
    if ('buffer' in init) {
      this.buffer = init.buffer;
    } else {
      if (!Number.isInteger(init.capacity) || init.capacity < 16) throw new RangeError('capacity must be an integer of at least 16');
      this.buffer = new SharedArrayBuffer(SLOTS_OFFSET + init.capacity * 16);
    }
    this.header = new Int32Array(this.buffer, 0, HEADER_WORDS);
    if ('buffer' in init && Atomics.load(this.header, 1) !== SLOTS_OFFSET) throw new RangeError(`not a latency sample ring of this layout (slots at ${Atomics.load(this.header, 1)}, expected ${SLOTS_OFFSET})`);
    this.stats = new Float64Array(this.buffer, HEADER_WORDS * 4, STATS_SLOTS);
    this.capacity = (this.buffer.byteLength - SLOTS_OFFSET) / 16;
    this.slots = new Float64Array(this.buffer, SLOTS_OFFSET, this.capacity * 2);
    this.readIndex = Atomics.load(this.header, 0);
    if (!('buffer' in init)) {
      Atomics.store(this.header, 1, SLOTS_OFFSET);
      this.stats[0] = 1;
      this.stats[1] = this.stats[4] = Number.NaN;
    }
  }

  /** Writer (one thread only): an inference round trip of `latencyMs`, seen now. */
  record(latencyMs: number): void {
    this.push(latencyMs);
  }

  /** Writer: inference passed through without a round trip to measure. */
  note(): void {
    this.push(NOTE);
  }

  /**
   * Reader: hands every sample written since the last drain (at most a ring's worth) to the
   * callbacks, with its time on this thread's performance.now() clock.
   */
  drain(onSample: (latencyMs: number, nowMs: number) => void, onNote: (nowMs: number) => void): void {
    const written = Atomics.load(this.header, 0);
    let lag = (written - this.readIndex) | 0;
    if (lag <= 0) return;
    if (lag > this.capacity) lag = this.capacity;
    const origin = performance.timeOrigin;
    for (let i = (written - lag) | 0; i !== written; i = (i + 1) | 0) {
      const slot = ((i % this.capacity) + this.capacity) % this.capacity;
      const at = this.slots[2 * slot]! - origin;
      const latency = this.slots[2 * slot + 1]!;
      if (Number.isNaN(latency)) onNote(at);
      else onSample(latency, at);
    }
    this.readIndex = written;
  }

  /** The governor's thread publishes its state; any thread reads it. */
  publish(s: GovernorStats): void {
    this.stats[0] = s.share;
    this.stats[1] = s.p99Ms;
    this.stats[2] = s.samples;
    this.stats[3] = s.decreases;
    this.stats[4] = s.baselineP99Ms;
    this.stats[5] = s.futileCuts;
  }

  published(): GovernorStats {
    return { share: this.stats[0]!, p99Ms: this.stats[1]!, samples: this.stats[2]!, decreases: this.stats[3]!, baselineP99Ms: this.stats[4]!, futileCuts: this.stats[5]! };
  }

  private push(latencyMs: number): void {
    const index = Atomics.load(this.header, 0);
    const slot = ((index % this.capacity) + this.capacity) % this.capacity;
    this.slots[2 * slot] = performance.timeOrigin + performance.now();
    this.slots[2 * slot + 1] = latencyMs;
    Atomics.store(this.header, 0, (index + 1) | 0);
  }
}
