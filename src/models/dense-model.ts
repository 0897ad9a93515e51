// `dense`: OUTPUT0 = INPUT0 x W, with INPUT0 FP32 [batch, K] and W a fixed FP32 [K, N] matrix
// drawn from a seeded generator, so every server with the same (K, N, seed) gives the same answer.
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { rawView } from '../kserve/tensor-codec.ts';
import { type ReferenceModel, rejectUnknownInputs, requireInput, type TensorSpec } from './reference-model.ts';
import { mulberry32 } from './seeded-random.ts';

export interface DenseOptions {
  k: number;
  n: number;
  seed: number;
  /** Largest batch accepted (bounds the work one request can ask for). */
  maxBatch: number;
}

/** The [K, N] weights, row-major, uniform in [-1, 1) scaled by 1/sqrt(K). */
export function denseWeights(k: number, n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  const w = new Float32Array(k * n);
  const scale = 1 / Math.sqrt(k);
  for (let i = 0; i < w.length; i++) w[i] = (rand() * 2 - 1) * scale;
  return w;
}

export function createDenseModel(opts: DenseOptions): ReferenceModel {
  const { k, n } = opts;
  const w = denseWeights(k, n, opts.seed);
  const input: TensorSpec = { name: 'INPUT0', datatype: 'FP32', shape: [-1, k] };
  const model: ReferenceModel = {
    name: 'dense',
    versions: ['1'],
    platform: 'sluice_reference',
    maxBatchSize: opts.maxBatch,
    inputs: [input],
    outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [-1, n] }],
    infer(inputs) {
      rejectUnknownInputs(model, inputs);
      const t = requireInput('dense', inputs, input);
      const batch = t.shape[0]!;
      if (batch > opts.maxBatch) {
        throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `model 'dense' takes at most ${opts.maxBatch} rows, got ${batch}`);
      }
      const x = rawView('FP32', t.data) as Float32Array;
      const y = new Float32Array(batch * n);
      for (let b = 0; b < batch; b++) {
        const xo = b * k;
        const yo = b * n;
        for (let i = 0; i < k; i++) {
          const xv = x[xo + i]!;
          const wo = i * n;
          for (let j = 0; j < n; j++) y[yo + j]! += xv * w[wo + j]!;
        }
      }
      return [{ name: 'OUTPUT0', datatype: 'FP32', shape: [batch, n], data: Buffer.from(y.buffer) }];
    },
  };
  return model;
}
