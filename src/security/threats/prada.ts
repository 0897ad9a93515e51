// PRADA (Juuti, Szyller, Marchal, Asokan: "PRADA: Protecting against DNN Model Stealing
// Attacks", EuroS&P 2019), for one (tenant, model). For each query, the minimum L2 distance to
// the client's earlier queries (its "growing set") joins a distance sample; benign queries
// drawn from a natural distribution give distances that look normal, while synthetic probing
// (random points, small Jacobian-style steps around seeds) does not. The Shapiro-Wilk W of the
// recent distances below `wThreshold` flags the client. A query enters the growing set only when
// it is farther from it than mean - std of the set's own distances (the paper's rule), which
// keeps the set small for clustered traffic; memory is bounded by `maxGrowingSet` vectors
// (reservoir replacement past it) and `window` distances.
import { shapiroWilk } from './shapiro-wilk.ts';

export interface PradaOptions {
  /** Flag when the recent distances' W falls below this (the paper tunes delta per model; 0.90-0.96). */
  wThreshold: number;
  /** Distances needed before testing (the test is meaningless on a handful). */
  minQueries: number;
  /** Most recent distances tested (bounded memory, and old behaviour ages out). */
  window: number;
  /** Vectors kept in the growing set at most. */
  maxGrowingSet: number;
  /** Test every this many queries once minQueries is reached (the test costs O(window log window)). */
  testEvery: number;
}

export const DEFAULT_PRADA: PradaOptions = { wThreshold: 0.9, minQueries: 100, window: 500, maxGrowingSet: 1000, testEvery: 10 };

export interface PradaVerdict {
  /** Minimum distance of this query to the growing set (undefined for the first query). */
  distance: number | undefined;
  /** The last test's W (undefined until minQueries distances). */
  w: number | undefined;
  flagged: boolean;
  queries: number;
}

export class PradaDetector {
  private readonly opts: PradaOptions;
  private readonly dim: number;
  /** Growing set, row-major, `size` rows of `dim`. */
  private readonly set: Float32Array;
  private size = 0;
  /** Distances that admitted a vector into the set: their mean and spread set the admission threshold. */
  private admittedSum = 0;
  private admittedSumSq = 0;
  private admittedCount = 0;
  private readonly distances: Float64Array;
  private distanceCount = 0;
  private queries = 0;
  private lastW: number | undefined;
  private readonly random: () => number;

  constructor(dim: number, opts: Partial<PradaOptions> = {}, random: () => number = Math.random) {
    if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`PRADA needs a positive vector length, got ${dim}`);
    this.opts = { ...DEFAULT_PRADA, ...opts };
    if (this.opts.window < 3 || this.opts.minQueries < 3) throw new RangeError('PRADA window and minQueries must be at least 3');
    this.dim = dim;
    this.set = new Float32Array(dim * this.opts.maxGrowingSet);
    this.distances = new Float64Array(this.opts.window);
    this.random = random;
  }

  get vectorLength(): number {
    return this.dim;
  }

  /** Bytes held (for the bounded-memory claim and metrics). */
  get memoryBytes(): number {
    return this.set.byteLength + this.distances.byteLength;
  }

  observe(query: ArrayLike<number>): PradaVerdict {
    if (query.length !== this.dim) throw new RangeError(`PRADA query of ${query.length} values, expected ${this.dim}`);
    this.queries++;
    if (this.size === 0) {
      this.set.set(query, 0);
      this.size = 1;
      return { distance: undefined, w: this.lastW, flagged: false, queries: this.queries };
    }
    const d = this.minDistance(query);
    this.distances[this.distanceCount % this.opts.window] = d;
    this.distanceCount++;
    if (d > this.admissionThreshold()) this.admit(query, d);
    const n = Math.min(this.distanceCount, this.opts.window);
    if (n >= this.opts.minQueries && (this.distanceCount - this.opts.minQueries) % this.opts.testEvery === 0) {
      this.lastW = shapiroWilk(this.distances.subarray(0, n)).w;
    }
    const flagged = this.lastW !== undefined && this.lastW < this.opts.wThreshold;
    return { distance: d, w: this.lastW, flagged, queries: this.queries };
  }

  private minDistance(q: ArrayLike<number>): number {
    let best = Infinity;
    const dim = this.dim;
    for (let r = 0; r < this.size; r++) {
      const base = r * dim;
      let s = 0;
      for (let i = 0; i < dim && s < best; i++) {
        const diff = q[i]! - this.set[base + i]!;
        s += diff * diff;
      }
      if (s < best) best = s;
    }
    return Math.sqrt(best);
  }

  private admissionThreshold(): number {
    if (this.admittedCount < 2) return 0;
    const mean = this.admittedSum / this.admittedCount;
    const variance = Math.max(0, this.admittedSumSq / this.admittedCount - mean * mean);
    return Math.max(0, mean - Math.sqrt(variance));
  }

  private admit(q: ArrayLike<number>, d: number): void {
    this.admittedSum += d;
    this.admittedSumSq += d * d;
    this.admittedCount++;
    let row: number;
    if (this.size < this.opts.maxGrowingSet) row = this.size++;
    else row = Math.floor(this.random() * this.size); // reservoir-style replacement keeps memory bounded
    this.set.set(q, row * this.dim);
  }
}
