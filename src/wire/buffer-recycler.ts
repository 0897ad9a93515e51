// Large outgoing buffers kept for reuse once their write completed. A fresh 1 MiB Buffer per
// message is 1 GiB of external memory per GiB sent, and V8 starts a full mark-compact for about
// every 64 MiB of it (docs/training.md, "Delivering to a job"). Unlike ReceivePool, taking never
// waits: with nothing free that fits, a new buffer is allocated (and counted), so a writer whose
// completions never come back costs garbage, not a stall. Only buffers given back are reused,
// and the caller gives one back only when nothing reads it any more.

export interface BufferRecyclerOptions {
  /** Buffers kept at most while free (the memory bound is keep x the largest size asked for). */
  keep: number;
  /** Requests below this size get a plain Buffer and are not kept (small ones cost no mark-compact). */
  minBytes: number;
}

/** Capacities are rounded up to this, so the last, shorter chunk of a tensor fits a kept buffer. */
const CAPACITY_STEP = 64 * 1024;

export class BufferRecycler {
  readonly keep: number;
  readonly minBytes: number;
  readonly #free: Buffer[] = [];
  /** Buffers allocated because none free fitted (a steady writer stops adding to this). */
  allocations = 0;
  /** Takes served by a kept buffer. */
  reuses = 0;

  constructor(opts: BufferRecyclerOptions) {
    if (!Number.isSafeInteger(opts.keep) || opts.keep < 0) throw new RangeError(`keep must be a non-negative integer, got ${opts.keep}`);
    if (!Number.isSafeInteger(opts.minBytes) || opts.minBytes < 1) throw new RangeError(`minBytes must be a positive integer, got ${opts.minBytes}`);
    this.keep = opts.keep;
    this.minBytes = opts.minBytes;
  }

  /** Free buffers kept now. */
  get freeCount(): number {
    return this.#free.length;
  }

  /** True when a request of `length` bytes is served from (and may be given back to) the recycler. */
  recycles(length: number): boolean {
    return length >= this.minBytes && this.keep > 0;
  }

  /**
   * A buffer of at least `length` bytes whose contents are undefined: the view of exactly
   * `length` bytes is `buf.subarray(0, length)`; give the whole `buf` back.
   */
  take(length: number): Buffer {
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, got ${length}`);
    if (!this.recycles(length)) return Buffer.allocUnsafe(length);
    // Smallest free buffer that fits: keeps the large ones for large requests.
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const b = this.#free[i]!;
      if (b.length >= length && (best < 0 || b.length < this.#free[best]!.length)) best = i;
    }
    if (best >= 0) {
      const b = this.#free[best]!;
      this.#free[best] = this.#free[this.#free.length - 1]!;
      this.#free.pop();
      this.reuses += 1;
      return b;
    }
    this.allocations += 1;
    // allocUnsafeSlow: its own ArrayBuffer, never a slice of Node's shared 8 KiB pool.
    return Buffer.allocUnsafeSlow(Math.ceil(length / CAPACITY_STEP) * CAPACITY_STEP);
  }

  /** Gives back a buffer from take() once nothing reads it; beyond `keep`, the smallest is dropped. */
  give(buf: Buffer): void {
    if (!this.recycles(buf.length) || buf.byteOffset !== 0 || buf.length !== buf.buffer.byteLength) return;
    if (this.#free.includes(buf)) return; // given twice: keep one entry, never lend it to two writers
    this.#free.push(buf);
    if (this.#free.length > this.keep) {
      let smallest = 0;
      for (let i = 1; i < this.#free.length; i++) if (this.#free[i]!.length < this.#free[smallest]!.length) smallest = i;
      this.#free[smallest] = this.#free[this.#free.length - 1]!;
      this.#free.pop();
    }
  }
}
