// Turns a decoded ModelInferRequest into input tensors (from raw or typed contents, each
// checked against its shape) and output tensors into a ModelInferResponse.
import { datatypeInfo, DATATYPE_NAMES, elementCount } from '../kserve/datatypes.ts';
import { checkBytesElements } from '../kserve/infer-request-scan.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import { int64ToNumber, type ModelInferRequestMsg, type ParameterMap } from '../kserve/proto.ts';
import { contentsToRaw, rawToContents, type Tensor } from '../kserve/tensor-codec.ts';

export interface DecodedInputs {
  tensors: Map<string, Tensor>;
  /** The request used raw_input_contents: answer in raw_output_contents too. */
  raw: boolean;
}

export function requestTensors(req: ModelInferRequestMsg): DecodedInputs {
  const raw = req.rawInputContents.length > 0;
  if (raw && req.rawInputContents.length !== req.inputs.length) {
    throw new InferenceError(
      InferenceErrorCode.BAD_REQUEST,
      `raw_input_contents has ${req.rawInputContents.length} entries for ${req.inputs.length} inputs`,
    );
  }
  const tensors = new Map<string, Tensor>();
  req.inputs.forEach((input, i) => {
    const what = `input '${input.name}'`;
    if (tensors.has(input.name)) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${what} appears twice`);
    const info = datatypeInfo(input.datatype);
    if (info === undefined) {
      throw new InferenceError(
        InferenceErrorCode.UNKNOWN_DATATYPE,
        `${what}: unknown datatype '${input.datatype}'; expected one of ${DATATYPE_NAMES.join(', ')}`,
      );
    }
    const shape = input.shape.map(int64ToNumber);
    const count = elementCount(shape);
    if (!Number.isSafeInteger(count)) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${what}: invalid shape [${shape.join(',')}]`);
    let data: Buffer;
    if (raw) {
      if (input.contents) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${what}: contents must not be set when raw_input_contents is used`);
      const r = req.rawInputContents[i]!;
      data = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
      if (info.size > 0 && data.length !== count * info.size) {
        throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what} (${info.name} [${shape.join(',')}]) needs ${count * info.size} bytes, got ${data.length}`);
      }
      if (info.size === 0) checkBytesElements(data, { start: 0, end: data.length }, count, what);
    } else {
      data = contentsToRaw(info, count, input.contents, what);
    }
    tensors.set(input.name, { name: input.name, datatype: info.name, shape, data });
  });
  return { tensors, raw };
}

export interface ResponseMessage {
  modelName: string;
  modelVersion: string;
  id: string;
  parameters?: ParameterMap;
  outputs: { name: string; datatype: string; shape: number[]; contents?: object }[];
  rawOutputContents: Buffer[];
}

/** Builds the response; outputs go raw when the request was raw or a datatype has no typed form. */
export function responseMessage(model: string, version: string, req: ModelInferRequestMsg, outputs: Tensor[], raw: boolean): ResponseMessage {
  let wanted = outputs;
  if (req.outputs.length > 0) {
    wanted = req.outputs.map((o) => {
      const t = outputs.find((x) => x.name === o.name);
      if (t === undefined) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `model '${model}' has no output '${o.name}'`);
      return t;
    });
  }
  const useRaw = raw || wanted.some((t) => datatypeInfo(t.datatype)!.contentsKey === undefined);
  return {
    modelName: model,
    modelVersion: version,
    id: req.id,
    outputs: wanted.map((t) => ({
      name: t.name,
      datatype: t.datatype,
      shape: t.shape,
      ...(useRaw ? {} : { contents: rawToContents(t.datatype, t.data) }),
    })),
    rawOutputContents: useRaw ? wanted.map((t) => t.data) : [],
  };
}
