// Upstream choice for inference: power of two choices (Mitzenmacher) on cost =
// peak-EWMA latency x (outstanding + 1). Two distinct healthy upstreams are drawn at random and
// the cheaper one wins, which avoids both herding onto one "best" upstream and the blindness of
// round robin to a slow one. Ejected upstreams (outlier detector) are skipped; if every
// upstream is ejected the pick falls back to all of them (panic mode) rather than failing.
import { OutlierDetector, defaultOutlierOptions, type FailureOutcome, type OutlierDetectorOptions } from './outlier-detector.ts';
import { PeakEwma } from './peak-ewma.ts';

export interface P2cOptions {
  /** Peak-EWMA decay time constant, milliseconds. */
  decayMs?: number;
  /** Latency assumed for an upstream with no sample yet, milliseconds. */
  defaultRttMs?: number;
  outlier?: OutlierDetectorOptions;
  /** Uniform random in [0, 1): injectable for deterministic tests. */
  random?: () => number;
}

interface Member<T> {
  readonly key: string;
  readonly value: T;
  readonly ewma: PeakEwma;
  outstanding: number;
}

export interface UpstreamLease<T> {
  readonly key: string;
  readonly value: T;
  /**
   * Reports the outcome of the call made on this upstream; call exactly once. A NaN rttMs
   * (an outcome that says nothing about the upstream's speed, e.g. the caller cancelled)
   * releases the lease without a latency sample.
   */
  done(ok: boolean, rttMs: number, nowMs: number): FailureOutcome | 'ok';
}

export class P2cBalancer<T> {
  private readonly members: Member<T>[] = [];
  private readonly decayMs: number;
  private readonly defaultRttMs: number;
  private readonly random: () => number;
  readonly outliers: OutlierDetector;
  /** Reused scratch list of candidates: no allocation per pick. */
  private readonly scratch: Member<T>[] = [];

  constructor(opts: P2cOptions = {}) {
    this.decayMs = opts.decayMs ?? 10_000;
    this.defaultRttMs = opts.defaultRttMs ?? 1;
    this.random = opts.random ?? Math.random;
    this.outliers = new OutlierDetector(opts.outlier ?? defaultOutlierOptions);
  }

  get size(): number {
    return this.members.length;
  }

  add(key: string, value: T, nowMs: number): void {
    if (this.members.some((m) => m.key === key)) throw new Error(`upstream ${key} is already in the balancer`);
    this.members.push({ key, value, ewma: new PeakEwma(this.decayMs, this.defaultRttMs, nowMs), outstanding: 0 });
    this.outliers.add(key);
  }

  remove(key: string): void {
    const i = this.members.findIndex((m) => m.key === key);
    if (i >= 0) this.members.splice(i, 1);
    this.outliers.remove(key);
  }

  /** Cost of an upstream: what the pick compares (exported for metrics and tests). */
  cost(key: string, nowMs: number): number {
    const m = this.members.find((x) => x.key === key);
    return m === undefined ? Number.NaN : P2cBalancer.costOf(m, nowMs);
  }

  outstanding(key: string): number {
    return this.members.find((x) => x.key === key)?.outstanding ?? 0;
  }

  /**
   * Picks an upstream among those `allowed` (all when omitted; e.g. the route's peers whose
   * link is up), preferring ones not in `exclude` (those a retry already tried). Returns
   * undefined when no upstream is allowed.
   */
  pick(nowMs: number, exclude?: ReadonlySet<string>, allowed?: (key: string) => boolean): UpstreamLease<T> | undefined {
    const c = this.scratch;
    c.length = 0;
    // Healthy and untried first; then untried (panic: all ejected); then anything allowed.
    for (const m of this.members) if ((allowed === undefined || allowed(m.key)) && !this.outliers.isEjected(m.key, nowMs) && !exclude?.has(m.key)) c.push(m);
    if (c.length === 0) for (const m of this.members) if ((allowed === undefined || allowed(m.key)) && !exclude?.has(m.key)) c.push(m);
    if (c.length === 0) for (const m of this.members) if (allowed === undefined || allowed(m.key)) c.push(m);
    if (c.length === 0) return undefined;
    let chosen: Member<T>;
    if (c.length === 1) {
      chosen = c[0] as Member<T>;
    } else {
      const i = Math.floor(this.random() * c.length);
      let j = Math.floor(this.random() * (c.length - 1));
      if (j >= i) j++;
      const a = c[i] as Member<T>;
      const b = c[j] as Member<T>;
      chosen = P2cBalancer.costOf(a, nowMs) <= P2cBalancer.costOf(b, nowMs) ? a : b;
    }
    c.length = 0;
    return this.lease(chosen);
  }

  private lease(m: Member<T>): UpstreamLease<T> {
    m.outstanding++;
    let finished = false;
    return {
      key: m.key,
      value: m.value,
      done: (ok, rttMs, nowMs) => {
        if (finished) throw new Error(`lease on upstream ${m.key} finished twice`);
        finished = true;
        m.outstanding--;
        if (ok) {
          m.ewma.observe(rttMs, nowMs);
          this.outliers.onSuccess(m.key);
          return 'ok';
        }
        // A failure costs at least what it took: a fast-failing upstream must not look cheap.
        if (!Number.isNaN(rttMs)) m.ewma.observe(Math.max(rttMs, m.ewma.get(nowMs)), nowMs);
        return this.outliers.onFailure(m.key, nowMs);
      },
    };
  }

  private static costOf<T>(m: Member<T>, nowMs: number): number {
    return m.ewma.get(nowMs) * (m.outstanding + 1);
  }
}
