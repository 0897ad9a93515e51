// `identity`: returns INPUT0 as OUTPUT0, bytes untouched. Metadata and configuration name a
// protocol datatype and Triton's variable shape [-1]. The model called `identity` declares its
// configured datatype (FP32 by default) but takes any datatype and shape, as it always has; each
// `identity_<datatype>` variant (models.identity.variants) takes exactly its datatype, any length.
import type { Datatype } from '../kserve/datatypes.ts';
import { type ReferenceModel, rejectUnknownInputs, requireInput, type TensorSpec } from './reference-model.ts';

export const IDENTITY = 'identity';

/** The variant's model name: identity_fp32, identity_bytes, ... */
export function identityVariantName(datatype: Datatype): string {
  return `${IDENTITY}_${datatype.toLowerCase()}`;
}

export function createIdentityModel(datatype: Datatype, variant: boolean): ReferenceModel {
  const name = variant ? identityVariantName(datatype) : IDENTITY;
  const input: TensorSpec = { name: 'INPUT0', datatype, shape: [-1], ...(variant ? {} : { lenient: true }) };
  const model: ReferenceModel = {
    name,
    versions: ['1'],
    platform: 'sluice_reference',
    maxBatchSize: 0,
    inputs: [input],
    outputs: [{ name: 'OUTPUT0', datatype, shape: [-1] }],
    infer(inputs) {
      rejectUnknownInputs(model, inputs);
      const t = requireInput(name, inputs, input);
      return [{ name: 'OUTPUT0', datatype: t.datatype, shape: t.shape, data: t.data }];
    },
  };
  return model;
}
