// Input-space coverage of a client's recent queries: each query is hashed to a coarse cell
// (the signs of a few fixed random projections, SimHash-style), and the signal is how many
// distinct cells the last `window` queries visited. Clients drawn from one natural
// distribution revisit a few regions; probing spreads out over the space.
import { mulberry32 } from '../../models/seeded-random.ts';

export class CoverageSketch {
  private readonly planes: Float32Array;
  private readonly bits: number;
  private readonly dim: number;
  private readonly recent: Uint32Array;
  private readonly counts = new Map<number, number>();
  private seen = 0;

  constructor(dim: number, window = 1000, bits = 12, seed = 0x0c0ffee) {
    this.dim = dim;
    this.bits = bits;
    this.recent = new Uint32Array(window);
    const rand = mulberry32(seed + dim);
    this.planes = new Float32Array(bits * dim);
    for (let i = 0; i < this.planes.length; i++) this.planes[i] = rand() * 2 - 1;
  }

  /** Adds a query; returns the distinct cells among the last `window` queries. */
  add(q: ArrayLike<number>): number {
    let cell = 0;
    for (let b = 0; b < this.bits; b++) {
      let dot = 0;
      for (let i = 0; i < this.dim; i++) dot += this.planes[b * this.dim + i]! * (q[i] ?? 0);
      if (dot > 0) cell |= 1 << b;
    }
    const slot = this.seen % this.recent.length;
    if (this.seen >= this.recent.length) {
      const old = this.recent[slot]!;
      const n = this.counts.get(old)! - 1;
      if (n === 0) this.counts.delete(old);
      else this.counts.set(old, n);
    }
    this.recent[slot] = cell;
    this.counts.set(cell, (this.counts.get(cell) ?? 0) + 1);
    this.seen++;
    return this.counts.size;
  }

  /** Distinct cells per 1000 queries over the window so far. */
  get coveragePer1000(): number {
    const n = Math.min(this.seen, this.recent.length);
    return n === 0 ? 0 : (this.counts.size * 1000) / n;
  }

  get queries(): number {
    return this.seen;
  }
}
