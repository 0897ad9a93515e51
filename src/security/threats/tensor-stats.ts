// Summary statistics of one numeric tensor, the features the adversarial-input and poisoning
// detectors compare against their baselines. Computed in one pass (two for the spread) over
// at most `maxElements` values picked with a fixed stride, so the cost per call is bounded.

export interface TensorStats {
  /** Elements looked at (after striding). */
  count: number;
  mean: number;
  variance: number;
  min: number;
  max: number;
  /** L2 norm of the values looked at, scaled to the whole tensor (sqrt(n_total / n_seen) * norm). */
  l2: number;
  /** Fraction of values at the saturation bounds (|x| >= saturation), e.g. clipped pixels. */
  saturatedFraction: number;
  /**
   * Mean squared discrete Laplacian (second differences along the last axis; the 4-neighbour
   * Laplacian for image-shaped tensors): the energy of the finest-scale detail. Smooth signals
   * keep it near their noise floor; sign-noise perturbations raise it by about 6 * eps^2
   * (20 * eps^2 in 2-D) whatever the signal's amplitude. 0 with fewer than 3 values per row.
   */
  highFrequencyEnergy: number;
  /** NaN and +-Infinity values seen. */
  nonFinite: number;
}

export interface TensorStatsOptions {
  maxElements?: number;
  /** |x| at or above this counts as saturated (default 1: inputs normalised to [-1, 1] or [0, 1]). */
  saturation?: number;
}

/** Image-shaped: [..., H, W] or [..., H, W, C] with C in 1..4 and H, W >= 4. */
function imageAxes(shape: readonly number[]): { h: number; w: number; c: number } | undefined {
  const n = shape.length;
  if (n >= 3 && shape[n - 1]! >= 1 && shape[n - 1]! <= 4 && shape[n - 2]! >= 4 && shape[n - 3]! >= 4) return { h: shape[n - 3]!, w: shape[n - 2]!, c: shape[n - 1]! };
  if (n >= 3 && shape[n - 1]! >= 4 && shape[n - 2]! >= 4) return { h: shape[n - 2]!, w: shape[n - 1]!, c: 1 };
  return undefined;
}

export function tensorStats(values: ArrayLike<number>, shape: readonly number[], opts: TensorStatsOptions = {}): TensorStats {
  const total = values.length;
  const maxElements = opts.maxElements ?? 65536;
  const saturation = opts.saturation ?? 1;
  const stride = Math.max(1, Math.ceil(total / maxElements));
  let count = 0;
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  let saturated = 0;
  let nonFinite = 0;
  for (let i = 0; i < total; i += stride) {
    const x = values[i]!;
    if (!Number.isFinite(x)) {
      nonFinite++;
      continue;
    }
    count++;
    sum += x;
    sumSq += x * x;
    if (x < min) min = x;
    if (x > max) max = x;
    if (Math.abs(x) >= saturation) saturated++;
  }
  const mean = count > 0 ? sum / count : 0;
  // Squares of huge values overflow: such a tensor's spread is reported as infinite (and so
  // stands out), never as NaN, which every comparison would let pass.
  const variance = count === 0 ? 0 : Number.isFinite(sumSq) ? Math.max(0, sumSq / count - mean * mean) : Infinity;
  return {
    count,
    mean,
    variance,
    min: count > 0 ? min : 0,
    max: count > 0 ? max : 0,
    l2: Math.sqrt(sumSq * (total / Math.max(1, count))),
    saturatedFraction: count > 0 ? saturated / count : 0,
    highFrequencyEnergy: stride === 1 ? laplacianEnergy(values, shape) : 0,
    nonFinite,
  };
}

/** Mean squared discrete Laplacian (see TensorStats.highFrequencyEnergy). */
function laplacianEnergy(values: ArrayLike<number>, shape: readonly number[]): number {
  const img = imageAxes(shape);
  let energy = 0;
  let points = 0;
  const total = values.length;
  if (img !== undefined) {
    const { h, w, c } = img;
    const plane = h * w * c;
    for (let base = 0; base + plane <= total; base += plane) {
      for (let y = 1; y + 1 < h; y++) {
        for (let x = 1; x + 1 < w; x++) {
          for (let k = 0; k < c; k++) {
            const i = base + (y * w + x) * c + k;
            const l = values[i - c]! + values[i + c]! + values[i - w * c]! + values[i + w * c]! - 4 * values[i]!;
            if (Number.isFinite(l)) (energy += l * l), points++;
          }
        }
      }
    }
  } else {
    const last = shape.length > 0 ? shape[shape.length - 1]! : total;
    if (last < 3) return 0;
    for (let row = 0; row + last <= total; row += last) {
      for (let i = row + 1; i + 1 < row + last; i++) {
        const l = values[i - 1]! - 2 * values[i]! + values[i + 1]!;
        if (Number.isFinite(l)) (energy += l * l), points++;
      }
    }
  }
  return points > 0 ? energy / points : 0;
}
