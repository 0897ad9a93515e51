// `identity`: returns INPUT0 as OUTPUT0, any datatype and shape, bytes untouched.
import { type ReferenceModel, rejectUnknownInputs, requireInput, type TensorSpec } from './reference-model.ts';

const INPUT0: TensorSpec = { name: 'INPUT0', datatype: 'ANY', shape: [-1] };

export function createIdentityModel(): ReferenceModel {
  const model: ReferenceModel = {
    name: 'identity',
    versions: ['1'],
    platform: 'sluice_reference',
    inputs: [INPUT0],
    outputs: [{ name: 'OUTPUT0', datatype: 'ANY', shape: [-1] }],
    infer(inputs) {
      rejectUnknownInputs(model, inputs);
      const t = requireInput('identity', inputs, INPUT0);
      return [{ name: 'OUTPUT0', datatype: t.datatype, shape: t.shape, data: t.data }];
    },
  };
  return model;
}
