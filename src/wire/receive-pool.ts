// Fixed-size receive buffers (slabs) for bulk messages, handed to the consumer and given back
// with an explicit release(), so a link receiving bulk decrypts into the same few buffers
// instead of allocating (and the GC collecting) a new one per message. The pool is bounded:
// when every slab is out, a link waiting for one stops reading (its peer's sends back up)
// instead of allocating. Slabs are allocated on first use, up to `slabs`, and kept.
// A message larger than a slab gets a one-off buffer, counted in `oneOffAllocations`.

export interface ReceivePoolOptions {
  /** Bytes per slab: the largest message that fits one. */
  slabBytes: number;
  /** Slabs at most (memory bound: slabs x slabBytes). */
  slabs: number;
}

/** A slab lent to one message: `body` is its view; release() gives the slab back (once). */
export interface PooledBody {
  readonly body: Buffer;
  release(): void;
}

export class ReceivePool {
  readonly slabBytes: number;
  readonly slabs: number;
  readonly #free: Buffer[] = [];
  #allocated = 0;
  #waiters: Array<() => void> = [];
  #wakeScheduled = false;
  /** Messages larger than a slab that got a one-off buffer. */
  oneOffAllocations = 0;
  /** Times a link found the pool empty and stopped reading until a slab came back. */
  exhaustions = 0;

  constructor(opts: ReceivePoolOptions) {
    if (!Number.isSafeInteger(opts.slabBytes) || opts.slabBytes < 1) throw new RangeError(`slabBytes must be a positive integer, got ${opts.slabBytes}`);
    if (!Number.isSafeInteger(opts.slabs) || opts.slabs < 1) throw new RangeError(`slabs must be a positive integer, got ${opts.slabs}`);
    this.slabBytes = opts.slabBytes;
    this.slabs = opts.slabs;
  }

  /** Slabs that can be taken now (free, or not yet allocated). */
  get available(): number {
    return this.#free.length + (this.slabs - this.#allocated);
  }

  /** Slabs lent out and not yet released. */
  get inUse(): number {
    return this.#allocated - this.#free.length;
  }

  /** Bytes of slabs allocated so far (free or lent). */
  get allocatedBytes(): number {
    return this.#allocated * this.slabBytes;
  }

  /** True when a message of `length` bytes takes a slab (else it gets a one-off buffer). */
  fits(length: number): boolean {
    return length <= this.slabBytes;
  }

  /** Lends a slab for a message of `length` bytes (<= slabBytes); undefined when none is free. */
  take(length: number): PooledBody | undefined {
    if (length > this.slabBytes) throw new RangeError(`a ${length}-byte message does not fit a ${this.slabBytes}-byte slab`);
    let slab = this.#free.pop();
    if (slab === undefined) {
      if (this.#allocated >= this.slabs) return undefined;
      slab = Buffer.allocUnsafeSlow(this.slabBytes);
      this.#allocated += 1;
    }
    return new Lease(this, slab, length);
  }

  /** A one-off buffer for a message larger than a slab (counted). */
  oneOff(length: number): Buffer {
    this.oneOffAllocations += 1;
    return Buffer.allocUnsafe(length);
  }

  /** Calls `wake` (once, on a later turn) when a slab is free again. */
  whenAvailable(wake: () => void): void {
    this.exhaustions += 1;
    this.#waiters.push(wake);
    if (this.available > 0) this.#scheduleWake();
  }

  /** Forgets a waiter (its link closed). */
  cancelWait(wake: () => void): void {
    const i = this.#waiters.indexOf(wake);
    if (i >= 0) this.#waiters.splice(i, 1);
  }

  /** @internal Lease.release() */
  giveBack(slab: Buffer): void {
    this.#free.push(slab);
    if (this.#waiters.length > 0) this.#scheduleWake();
  }

  // Waiters run on a later turn, never inside the release() that freed the slab (which may be
  // deep in another link's delivery), and in arrival order while slabs last.
  #scheduleWake(): void {
    if (this.#wakeScheduled) return;
    this.#wakeScheduled = true;
    setImmediate(() => {
      this.#wakeScheduled = false;
      while (this.available > 0 && this.#waiters.length > 0) (this.#waiters.shift() as () => void)();
    });
  }
}

class Lease implements PooledBody {
  readonly body: Buffer;
  #slab: Buffer | undefined;
  readonly #pool: ReceivePool;

  constructor(pool: ReceivePool, slab: Buffer, length: number) {
    this.#pool = pool;
    this.#slab = slab;
    this.body = slab.subarray(0, length);
  }

  release(): void {
    const slab = this.#slab;
    if (slab === undefined) return; // released already
    this.#slab = undefined;
    this.#pool.giveBack(slab);
  }
}
