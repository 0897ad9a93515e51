// Adversarial-input detection for one model input: during a warm-up window the detector learns
// a baseline of tensor statistics (mean, variance, min/max, L2 norm, saturated fraction, and
// high-frequency energy); after it, each input's score is the largest distance of a feature
// from its baseline in standard deviations (a floor on the deviation keeps near-constant
// features from making every wobble an outlier). Inputs scoring above `threshold` are flagged:
// FGSM-style perturbations add sign noise, which raises high-frequency energy and variance far
// outside what natural inputs of the same source show.
import { RunningStats } from './running-stats.ts';
import { tensorStats, type TensorStats } from './tensor-stats.ts';

export interface AdversarialOptions {
  /** Inputs learnt before scoring starts. */
  warmup: number;
  /** Flag when the score (in baseline standard deviations) exceeds this. */
  threshold: number;
  /** Saturation bound for the saturated-fraction feature. */
  saturation: number;
}

export const DEFAULT_ADVERSARIAL: AdversarialOptions = { warmup: 200, threshold: 8, saturation: 1 };

const FEATURES = ['mean', 'variance', 'min', 'max', 'l2', 'saturatedFraction', 'highFrequencyEnergy'] as const;
export type AdversarialFeature = (typeof FEATURES)[number];

export interface AdversarialVerdict {
  /** Undefined while warming up. */
  score: number | undefined;
  /** The feature farthest from its baseline. */
  feature: AdversarialFeature | undefined;
  flagged: boolean;
  stats: TensorStats;
}

export class AdversarialDetector {
  private readonly opts: AdversarialOptions;
  private readonly baseline = new Map<AdversarialFeature, RunningStats>(FEATURES.map((f) => [f, new RunningStats()]));
  private seen = 0;

  constructor(opts: Partial<AdversarialOptions> = {}) {
    this.opts = { ...DEFAULT_ADVERSARIAL, ...opts };
  }

  get warmedUp(): boolean {
    return this.seen >= this.opts.warmup;
  }

  observe(values: ArrayLike<number>, shape: readonly number[]): AdversarialVerdict {
    const stats = tensorStats(values, shape, { saturation: this.opts.saturation });
    if (stats.nonFinite > 0) return { score: Infinity, feature: undefined, flagged: true, stats };
    if (!this.warmedUp) {
      this.seen++;
      for (const f of FEATURES) this.baseline.get(f)!.push(stats[f]);
      return { score: undefined, feature: undefined, flagged: false, stats };
    }
    let score = 0;
    let feature: AdversarialFeature | undefined;
    for (const f of FEATURES) {
      const b = this.baseline.get(f)!;
      // Deviation floor, so a feature that hardly varied in warm-up (saturated fraction 0, say)
      // is judged on a sensible scale rather than a zero one: 1% of its size, and for the
      // saturated fraction two elements' worth.
      const floor = Math.max(f === 'saturatedFraction' ? 2 / Math.max(1, stats.count) : 1e-6, 0.01 * Math.abs(b.mean));
      const z = Math.abs(stats[f] - b.mean) / Math.max(b.std, floor);
      if (z > score) {
        score = z;
        feature = f;
      }
    }
    return { score, feature, flagged: score > this.opts.threshold, stats };
  }
}
