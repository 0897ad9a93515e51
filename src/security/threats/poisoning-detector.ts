// Training-data poisoning checks for pushed tensors, per tensor name: each new version is
// compared with the last accepted one. Signals: non-finite values (NaN/Inf), an L2-norm jump,
// a distribution shift of sampled values (two-sample Kolmogorov-Smirnov statistic), a sender
// other than the ones seen for the name, and repeated digest mismatches from a sender. Memory
// per name is bounded (one sorted sample of `sampleSize` values plus a few numbers).
import { tensorStats } from './tensor-stats.ts';

export interface PoisoningOptions {
  /** Flag when ||new|| / ||previous|| leaves [1/normJump, normJump]. */
  normJump: number;
  /** Flag when the KS statistic between samples of consecutive versions exceeds this. */
  ksThreshold: number;
  /** Values sampled per version (fixed stride). */
  sampleSize: number;
  /** Digest mismatches from one sender for one name before it is flagged. */
  digestMismatches: number;
  /** Senders allowed per name; empty: the first sender seen is the expected one. */
  allowedSenders: readonly string[];
}

export const DEFAULT_POISONING: PoisoningOptions = { normJump: 2, ksThreshold: 0.25, sampleSize: 4096, digestMismatches: 2, allowedSenders: [] };

export type PoisoningSignal = 'non_finite' | 'norm_jump' | 'distribution_shift' | 'unexpected_sender' | 'digest_mismatch';

export interface PoisoningVerdict {
  signals: PoisoningSignal[];
  flagged: boolean;
  detail: { nonFinite: number; normRatio?: number; ks?: number; sender: string };
}

interface History {
  l2: number;
  sample: Float64Array;
  senders: Set<string>;
}

/** Sup |F1 - F2| of two sorted samples. */
export function ksStatistic(a: Float64Array, b: Float64Array): number {
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < a.length && j < b.length) {
    const x = Math.min(a[i]!, b[j]!);
    while (i < a.length && a[i]! <= x) i++;
    while (j < b.length && b[j]! <= x) j++;
    d = Math.max(d, Math.abs(i / a.length - j / b.length));
  }
  return d;
}

function sample(values: ArrayLike<number>, size: number): Float64Array {
  const stride = Math.max(1, Math.floor(values.length / size));
  const out: number[] = [];
  for (let i = 0; i < values.length && out.length < size; i += stride) if (Number.isFinite(values[i]!)) out.push(values[i]!);
  return Float64Array.from(out).sort();
}

export class PoisoningDetector {
  private readonly opts: PoisoningOptions;
  private readonly history = new Map<string, History>();
  private readonly mismatches = new Map<string, number>();
  private readonly maxNames: number;

  constructor(opts: Partial<PoisoningOptions> = {}, maxNames = 10_000) {
    this.opts = { ...DEFAULT_POISONING, ...opts };
    this.maxNames = maxNames;
  }

  /**
   * Checks a received version of `name` from `sender`. Clean versions become the new
   * reference; flagged ones do not (a poisoned push must not move the baseline).
   */
  observe(name: string, sender: string, values: ArrayLike<number>, shape: readonly number[]): PoisoningVerdict {
    const stats = tensorStats(values, shape, { maxElements: Number.MAX_SAFE_INTEGER, saturation: Infinity });
    const signals: PoisoningSignal[] = [];
    const detail: PoisoningVerdict['detail'] = { nonFinite: stats.nonFinite, sender };
    if (stats.nonFinite > 0) signals.push('non_finite');
    const prev = this.history.get(name);
    const s = sample(values, this.opts.sampleSize);
    const allowed = this.opts.allowedSenders.length > 0 ? new Set(this.opts.allowedSenders) : prev?.senders;
    if (allowed !== undefined && !allowed.has(sender)) signals.push('unexpected_sender');
    if (prev !== undefined) {
      const ratio = prev.l2 > 0 ? stats.l2 / prev.l2 : stats.l2 > 0 ? Infinity : 1;
      detail.normRatio = ratio;
      if (ratio > this.opts.normJump || ratio < 1 / this.opts.normJump) signals.push('norm_jump');
      if (s.length >= 32 && prev.sample.length >= 32) {
        detail.ks = ksStatistic(prev.sample, s);
        if (detail.ks > this.opts.ksThreshold) signals.push('distribution_shift');
      }
    }
    if ((this.mismatches.get(`${name}\0${sender}`) ?? 0) >= this.opts.digestMismatches) signals.push('digest_mismatch');
    if (signals.length === 0) {
      if (!this.history.has(name) && this.history.size >= this.maxNames) this.history.delete(this.history.keys().next().value!);
      this.history.set(name, { l2: stats.l2, sample: s, senders: prev?.senders ?? new Set([sender]) });
    }
    return { signals, flagged: signals.length > 0, detail };
  }

  /** A transfer of `name` from `sender` failed its end-to-end digest. Returns the count so far. */
  digestMismatch(name: string, sender: string): number {
    const key = `${name}\0${sender}`;
    const n = (this.mismatches.get(key) ?? 0) + 1;
    if (!this.mismatches.has(key) && this.mismatches.size >= this.maxNames) this.mismatches.delete(this.mismatches.keys().next().value!);
    this.mismatches.set(key, n);
    return n;
  }
}
