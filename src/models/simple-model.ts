// `simple`: the contract of Triton's example model of that name. INPUT0 and INPUT1 are INT32
// [1,16]; OUTPUT0 is their sum and OUTPUT1 their difference (32-bit wrap-around, as in C).
import { rawView, type Tensor } from '../kserve/tensor-codec.ts';
import { type ReferenceModel, rejectUnknownInputs, requireInput, type TensorSpec } from './reference-model.ts';

const INPUT0: TensorSpec = { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] };
const INPUT1: TensorSpec = { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] };

export function createSimpleModel(): ReferenceModel {
  const model: ReferenceModel = {
    name: 'simple',
    versions: ['1'],
    platform: 'sluice_reference',
    maxBatchSize: 0,
    inputs: [INPUT0, INPUT1],
    outputs: [
      { name: 'OUTPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'OUTPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    infer(inputs) {
      rejectUnknownInputs(model, inputs);
      const a = rawView('INT32', requireInput('simple', inputs, INPUT0).data) as Int32Array;
      const b = rawView('INT32', requireInput('simple', inputs, INPUT1).data) as Int32Array;
      const sum = new Int32Array(a.length);
      const diff = new Int32Array(a.length);
      for (let i = 0; i < a.length; i++) {
        sum[i] = (a[i]! + b[i]!) | 0;
        diff[i] = (a[i]! - b[i]!) | 0;
      }
      const out = (name: string, v: Int32Array): Tensor => ({ name, datatype: 'INT32', shape: [1, 16], data: Buffer.from(v.buffer) });
      return [out('OUTPUT0', sum), out('OUTPUT1', diff)];
    },
  };
  return model;
}
