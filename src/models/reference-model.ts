// A model served by the reference model server: fixed metadata and a pure function from input
// tensors to output tensors. Inputs arrive validated against their own shape and datatype; a
// model checks them against its signature and throws an InferenceError when they do not fit.
import type { Datatype } from '../kserve/datatypes.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { Tensor } from '../kserve/tensor-codec.ts';

export interface TensorSpec {
  name: string;
  /** The protocol datatype metadata and configuration report. */
  datatype: Datatype;
  /** -1 marks a dimension of any size (Triton's convention); with a batch dimension first. */
  shape: number[];
  /**
   * The `identity` model's leniency: any datatype and any shape are taken (and returned as
   * they came), although metadata names `datatype` and `shape`, so older clients keep working.
   */
  lenient?: boolean;
}

export interface ReferenceModel {
  readonly name: string;
  readonly versions: readonly string[];
  readonly platform: string;
  /**
   * Triton's max_batch_size: 0 when the model has no batch dimension, else the largest batch;
   * the first dimension of every tensor spec is then the batch (-1).
   */
  readonly maxBatchSize: number;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  infer(inputs: ReadonlyMap<string, Tensor>): Tensor[];
}

/** Finds input `spec.name` and checks its datatype and shape against the spec. */
export function requireInput(model: string, inputs: ReadonlyMap<string, Tensor>, spec: TensorSpec): Tensor {
  const t = inputs.get(spec.name);
  if (t === undefined) {
    throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `model '${model}' needs input '${spec.name}'`);
  }
  if (spec.lenient !== true && t.datatype !== spec.datatype) {
    throw new InferenceError(
      InferenceErrorCode.BAD_REQUEST,
      `model '${model}' input '${spec.name}' must be ${spec.datatype}, got ${t.datatype}`,
    );
  }
  if (spec.lenient !== true) {
    const fits = t.shape.length === spec.shape.length && spec.shape.every((d, i) => d === -1 || d === t.shape[i]);
    if (!fits) {
      throw new InferenceError(
        InferenceErrorCode.BAD_REQUEST,
        `model '${model}' input '${spec.name}' must have shape [${spec.shape.join(',')}], got [${t.shape.join(',')}]`,
      );
    }
  }
  return t;
}

export function rejectUnknownInputs(model: ReferenceModel, inputs: ReadonlyMap<string, Tensor>): void {
  for (const name of inputs.keys()) {
    if (!model.inputs.some((s) => s.name === name)) {
      throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `model '${model.name}' has no input '${name}'`);
    }
  }
}
