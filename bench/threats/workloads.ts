// The threat-detection workloads, FROZEN before any detector was tuned (commit history shows
// this file landing first): the benign distribution, the attacks and their seeds. Tuning a
// detector against these must not change them; a new workload gets a new name and seed.
//  - benign: smooth signals (a sinusoid with random amplitude, frequency, phase and offset, plus
//    small Gaussian noise), the kind of feature vector a real sensor or embedding front end
//    gives; several tenants, each its own seeded stream.
//  - extraction (PRADA's threat model): random probing of the input space for seeds, then
//    Jacobian-style synthetic augmentation: each round adds seed + lambda * sign(direction)
//    for every sample so far (the direction stands in for the substitute model's gradient).
//  - adversarial (FGSM-like): a benign input plus epsilon * sign(direction).
//  - poisoning: a weight tensor's benign version history (small updates), and pushes that are
//    scaled, shifted, or carry NaN/Inf values.
import { mulberry32 } from '../../src/models/seeded-random.ts';

export const WORKLOAD_SEEDS = { benign: 0x5eed_0001, extraction: 0x5eed_0002, adversarial: 0x5eed_0003, poisoning: 0x5eed_0004 } as const;
/** Vector length of the `dense` model's input in the harness. */
export const DIM = 64;

export function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

/** Benign queries of one tenant: deterministic for (tenant index, seed). */
export function benignStream(tenant: number, dim = DIM, seed: number = WORKLOAD_SEEDS.benign): () => Float32Array {
  const rand = mulberry32(seed + tenant * 7919);
  const g = gaussian(rand);
  return () => {
    const amp = 0.3 + 0.4 * rand();
    const freq = 1 + 2 * rand();
    const phase = 2 * Math.PI * rand();
    const offset = 0.1 * g();
    const v = new Float32Array(dim);
    for (let k = 0; k < dim; k++) v[k] = amp * Math.sin((2 * Math.PI * freq * k) / dim + phase) + offset + 0.03 * g();
    return v;
  };
}

/** A PRADA-style extraction attack: `seeds` random probes, then augmentation rounds. */
export function extractionStream(dim = DIM, seeds = 20, lambda = 0.1, seed: number = WORKLOAD_SEEDS.extraction): () => Float32Array {
  const rand = mulberry32(seed);
  const g = gaussian(rand);
  const pool: Float32Array[] = [];
  let queue: Float32Array[] = [];
  return () => {
    if (pool.length < seeds) {
      const v = new Float32Array(dim);
      for (let k = 0; k < dim; k++) v[k] = 2 * rand() - 1;
      pool.push(v);
      return v;
    }
    if (queue.length === 0) {
      // one augmentation round over everything queried so far (capped so rounds stay short)
      queue = pool.slice(-256).map((s) => {
        const v = new Float32Array(dim);
        for (let k = 0; k < dim; k++) v[k] = s[k]! + lambda * Math.sign(g());
        return v;
      });
    }
    const v = queue.shift()!;
    pool.push(v);
    return v;
  };
}

/** FGSM-like perturbations of benign inputs. */
export function adversarialStream(epsilon = 0.1, dim = DIM, seed: number = WORKLOAD_SEEDS.adversarial): () => Float32Array {
  const base = benignStream(1000, dim, seed);
  const g = gaussian(mulberry32(seed ^ 0xa5a5));
  return () => {
    const v = base();
    for (let k = 0; k < dim; k++) v[k] = v[k]! + epsilon * Math.sign(g());
    return v;
  };
}

export const POISON_VARIANTS = ['scaled', 'shifted', 'nan', 'inf'] as const;
export type PoisonVariant = (typeof POISON_VARIANTS)[number];

/** A weight tensor's benign versions: v0 ~ N(0, 0.02), then v + N(0, 0.001) per version. */
export function weightVersions(size = 65536, seed: number = WORKLOAD_SEEDS.poisoning): () => Float32Array {
  const g = gaussian(mulberry32(seed));
  let current: Float32Array | undefined;
  return () => {
    const next = new Float32Array(size);
    for (let i = 0; i < size; i++) next[i] = current === undefined ? 0.02 * g() : current[i]! + 0.001 * g();
    current = next;
    return Float32Array.from(next);
  };
}

/** A poisoned copy of a benign version. */
export function poison(v: Float32Array, variant: PoisonVariant, seed: number = WORKLOAD_SEEDS.poisoning): Float32Array {
  const out = Float32Array.from(v);
  const rand = mulberry32(seed ^ 0x77);
  switch (variant) {
    case 'scaled':
      for (let i = 0; i < out.length; i++) out[i] = out[i]! * 5;
      break;
    case 'shifted':
      for (let i = 0; i < out.length; i++) out[i] = out[i]! + 0.05;
      break;
    case 'nan':
      for (let n = 0; n < 8; n++) out[Math.floor(rand() * out.length)] = Number.NaN;
      break;
    case 'inf':
      out[Math.floor(rand() * out.length)] = Infinity;
      break;
  }
  return out;
}
