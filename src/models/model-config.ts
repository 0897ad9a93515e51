// Triton's ModelConfig (proto/model_config.proto) of a reference model, as protobufjs
// (camelCase) objects: the answer to ModelConfig and, through the ingress, to
// GET /v2/models/{m}/config. Dims leave out the batch dimension when max_batch_size > 0, as
// in Triton; BYTES is TYPE_STRING there.
import type { Datatype } from '../kserve/datatypes.ts';
import type { ReferenceModel, TensorSpec } from './reference-model.ts';

/** Triton's DataType enum name of a protocol datatype. */
export function configDataType(datatype: Datatype): string {
  return datatype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${datatype}`;
}

function dims(model: ReferenceModel, spec: TensorSpec): number[] {
  return model.maxBatchSize > 0 ? spec.shape.slice(1) : [...spec.shape];
}

export function modelConfigOf(model: ReferenceModel): object {
  return {
    name: model.name,
    platform: model.platform,
    backend: 'sluice',
    versionPolicy: { latest: { numVersions: model.versions.length } },
    maxBatchSize: model.maxBatchSize,
    input: model.inputs.map((s) => ({ name: s.name, dataType: configDataType(s.datatype), format: 'FORMAT_NONE', dims: dims(model, s) })),
    output: model.outputs.map((s) => ({ name: s.name, dataType: configDataType(s.datatype), dims: dims(model, s) })),
    instanceGroup: [{ name: `${model.name}_0`, kind: 'KIND_CPU', count: 1 }],
  };
}
