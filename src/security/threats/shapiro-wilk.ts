// The Shapiro-Wilk test of normality, as PRADA (Juuti et al., EuroS&P 2019) uses it on the
// distances between a client's queries: W near 1 means the sample looks normal. Coefficients
// and p-value by Royston's approximations (Applied Statistics algorithm AS R94, 1995), valid
// for 3 <= n <= 5000.
import { normalCdf, normalQuantile, normalUpperTail } from './normal-distribution.ts';

export interface ShapiroWilkResult {
  /** The W statistic, in (0, 1]. */
  w: number;
  /** P(W' <= w) under normality: small values reject normality. */
  p: number;
  n: number;
}

export const SHAPIRO_WILK_MAX_N = 5000;

function poly(c: readonly number[], x: number): number {
  let r = 0;
  for (let i = c.length - 1; i >= 0; i--) r = r * x + c[i]!;
  return r;
}

const C1 = [0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056];
const C2 = [0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633];

/** The coefficients a_1..a_n (antisymmetric) for a sample of n. Cached per n by the caller. */
export function shapiroWilkCoefficients(n: number): Float64Array {
  if (!Number.isInteger(n) || n < 3 || n > SHAPIRO_WILK_MAX_N) throw new RangeError(`Shapiro-Wilk needs 3..${SHAPIRO_WILK_MAX_N} values, got ${n}`);
  const a = new Float64Array(n);
  if (n === 3) {
    a[0] = -Math.SQRT1_2;
    a[2] = Math.SQRT1_2;
    return a;
  }
  const m = new Float64Array(n);
  let summ2 = 0;
  for (let i = 0; i < n; i++) {
    m[i] = normalQuantile((i + 1 - 0.375) / (n + 0.25));
    summ2 += m[i]! * m[i]!;
  }
  const ssumm2 = Math.sqrt(summ2);
  const u = 1 / Math.sqrt(n);
  const an = -m[0]! / ssumm2 + poly(C1, u); // a_n, positive
  if (n > 5) {
    const an1 = -m[1]! / ssumm2 + poly(C2, u);
    const phi = (summ2 - 2 * m[0]! * m[0]! - 2 * m[1]! * m[1]!) / (1 - 2 * an * an - 2 * an1 * an1);
    const s = Math.sqrt(phi);
    for (let i = 2; i < n - 2; i++) a[i] = m[i]! / s;
    a[0] = -an;
    a[1] = -an1;
    a[n - 2] = an1;
    a[n - 1] = an;
  } else {
    const phi = (summ2 - 2 * m[0]! * m[0]!) / (1 - 2 * an * an);
    const s = Math.sqrt(phi);
    for (let i = 1; i < n - 1; i++) a[i] = m[i]! / s;
    a[0] = -an;
    a[n - 1] = an;
  }
  return a;
}

const coefficientCache = new Map<number, Float64Array>();

/**
 * The test on `values` (any order; not modified). A constant sample has no spread to test:
 * it returns W = 1, p = 1 (nothing to say against normality).
 */
export function shapiroWilk(values: ArrayLike<number>): ShapiroWilkResult {
  const n = values.length;
  const x = Float64Array.from(values as ArrayLike<number>).sort();
  let a = coefficientCache.get(n);
  if (a === undefined) {
    a = shapiroWilkCoefficients(n);
    if (coefficientCache.size > 64) coefficientCache.clear();
    coefficientCache.set(n, a);
  }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i]!;
  mean /= n;
  let ss = 0;
  let num = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - mean;
    ss += d * d;
    num += a[i]! * x[i]!;
  }
  if (!(ss > 0)) return { w: 1, p: 1, n };
  const w = Math.min(1, (num * num) / ss);
  return { w, p: shapiroWilkP(w, n), n };
}

/** Royston's p-value for W at sample size n. */
function shapiroWilkP(w: number, n: number): number {
  if (n === 3) {
    const p = (6 / Math.PI) * (Math.asin(Math.sqrt(w)) - Math.asin(Math.sqrt(0.75)));
    return Math.min(1, Math.max(0, p));
  }
  const w1 = Math.log(1 - w);
  if (!Number.isFinite(w1)) return 1; // W = 1
  if (n <= 11) {
    const gamma = -2.273 + 0.459 * n;
    if (w1 >= gamma) return 1e-99;
    const y = -Math.log(gamma - w1);
    const mu = 0.544 - 0.39978 * n + 0.025054 * n * n - 0.0006714 * n * n * n;
    const sigma = Math.exp(1.3822 - 0.77857 * n + 0.062767 * n * n - 0.0020322 * n * n * n);
    return normalUpperTail((y - mu) / sigma);
  }
  const ln = Math.log(n);
  const mu = 0.0038915 * ln ** 3 - 0.083751 * ln ** 2 - 0.31082 * ln - 1.5861;
  const sigma = Math.exp(0.0030302 * ln ** 2 - 0.082676 * ln - 0.4803);
  return 1 - normalCdf((w1 - mu) / sigma);
}
