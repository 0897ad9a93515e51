// Reusable memory for sealed frames on their way to the socket. Frames are sealed into
// consecutive regions of one ring buffer and each region is released when the socket has
// written it; writes complete in order, so regions free up in order. This avoids allocating
// (and first-touching) a fresh buffer per frame, which costs more than the copy itself.
import { Fifo } from '../scheduler/fifo.ts';

export class SealRing {
  readonly capacity: number;
  #buf: Buffer | undefined;
  #head = 0; // start of the oldest region in use
  #tail = 0; // where the next region may start
  /** For each buffer handed out, in order: true when it lies in the ring. */
  readonly #order = new Fifo<boolean>();
  /** Start offsets of the ring regions in use, oldest first. */
  readonly #starts = new Fifo<number>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
  }

  /** Buffers handed out and not yet released. */
  get outstanding(): number {
    return this.#order.length;
  }

  /**
   * A buffer of exactly `size` bytes: from the ring when it has room, else a fresh one.
   * Every alloc() must be matched, in the same order, by one release().
   */
  alloc(size: number): Buffer {
    const start = this.#place(size);
    if (start === undefined) {
      this.#order.push(false);
      return Buffer.allocUnsafe(size);
    }
    this.#buf ??= Buffer.allocUnsafe(this.capacity);
    if (this.#starts.length === 0) this.#head = start;
    this.#order.push(true);
    this.#starts.push(start);
    this.#tail = start + size;
    return this.#buf.subarray(start, start + size);
  }

  /** The oldest buffer handed out has been written: its memory may be reused. */
  release(): void {
    const inRing = this.#order.shift();
    if (inRing !== true) return;
    this.#starts.shift();
    const next = this.#starts.peek();
    if (next === undefined) {
      this.#head = 0;
      this.#tail = 0;
    } else {
      this.#head = next;
    }
  }

  #place(size: number): number | undefined {
    if (size > this.capacity) return undefined;
    if (this.#starts.length === 0) return 0;
    if (this.#tail > this.#head) {
      if (this.capacity - this.#tail >= size) return this.#tail;
      return size < this.#head ? 0 : undefined; // wrap to the front, leaving the end unused
    }
    // Wrapped: free space lies between tail and head.
    return this.#head - this.#tail > size ? this.#tail : undefined;
  }
}
