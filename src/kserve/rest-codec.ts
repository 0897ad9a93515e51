// The KServe v2 REST protocol, including the binary-tensor extension, translated to and from
// the gRPC messages that cross the inference segment: a REST request becomes a serialized
// ModelInferRequest (tensors in raw_input_contents), a ModelInferResponse becomes JSON (and
// binary output data when asked for).
import { datatypeInfo, DATATYPE_NAMES, elementCount } from './datatypes.ts';
import { checkBytesElements } from './infer-request-scan.ts';
import { InferenceError, InferenceErrorCode } from './inference-error.ts';
import { parametersFromJson, parametersToJson } from './parameters.ts';
import {
  decodeMessage,
  encodeMessage,
  int64ToNumber,
  type InferInputTensorMsg,
  type InferRequestedOutputMsg,
  type ModelInferResponseMsg,
  type ModelMetadataResponseMsg,
  type ParameterMap,
  type ServerMetadataResponseMsg,
  type TensorMetadataMsg,
} from './proto.ts';
import { contentsToRaw, jsonToRaw, rawToJsonText } from './tensor-codec.ts';

export const INFERENCE_HEADER = 'inference-header-content-length';

const REQUEST_HTTP_PARAMS: ReadonlySet<string> = new Set(['binary_data_output']);
const INPUT_HTTP_PARAMS: ReadonlySet<string> = new Set(['binary_data_size']);
const OUTPUT_HTTP_PARAMS: ReadonlySet<string> = new Set(['binary_data']);

/** Which outputs the client wants as binary data rather than JSON. */
export interface BinaryOutputPrefs {
  all: boolean;
  byName: Map<string, boolean>;
}

export interface RestInferRequest {
  /** Serialized ModelInferRequest. */
  proto: Buffer;
  /** The client's `id` ('' when absent). */
  id: string;
  binaryOutputs: BinaryOutputPrefs;
}

function bad(message: string): InferenceError {
  return new InferenceError(InferenceErrorCode.BAD_REQUEST, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Splits a request body into its JSON header and binary part. `headerLength` is the value of
 * Inference-Header-Content-Length (undefined when the header is absent: all JSON).
 */
export function splitBinaryBody(body: Buffer, headerLength: string | undefined): { json: Buffer; binary: Buffer } {
  if (headerLength === undefined || headerLength === '') return { json: body, binary: body.subarray(body.length) };
  if (!/^\d{1,15}$/.test(headerLength)) {
    throw new InferenceError(InferenceErrorCode.BINARY_HEADER, `Inference-Header-Content-Length must be a byte count, got '${headerLength.slice(0, 32)}'`);
  }
  const n = Number(headerLength);
  if (n > body.length) {
    throw new InferenceError(
      InferenceErrorCode.BINARY_HEADER,
      `Inference-Header-Content-Length is ${n} but the body has only ${body.length} bytes`,
    );
  }
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

export function parseJson(text: Buffer | string, what = 'request body'): unknown {
  try {
    return JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch (err) {
    throw new InferenceError(InferenceErrorCode.MALFORMED_JSON, `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

function readShape(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw bad(`${what}: "shape" must be an array of non-negative integers`);
  }
  return v as number[];
}

/**
 * Parses a REST inference request (JSON, or JSON + binary tensors) into a serialized
 * ModelInferRequest for `model`/`version`. Every tensor is checked against its shape.
 */
export function parseRestInferRequest(body: Buffer, headerLength: string | undefined, model: string, version: string): RestInferRequest {
  const { json, binary } = splitBinaryBody(body, headerLength);
  const doc = parseJson(json);
  return buildInferRequest(doc, binary, model, version);
}

export function buildInferRequest(doc: unknown, binary: Buffer, model: string, version: string): RestInferRequest {
  if (!isObject(doc)) throw bad('the inference request must be a JSON object');
  const id = doc.id === undefined ? '' : doc.id;
  if (typeof id !== 'string') throw bad('"id" must be a string');
  const params = doc.parameters;
  if (params !== undefined && !isObject(params)) throw bad('"parameters" must be an object');
  const binaryOutputs: BinaryOutputPrefs = { all: params?.binary_data_output === true, byName: new Map() };
  if (!Array.isArray(doc.inputs)) throw bad('"inputs" must be an array');

  const inputs: InferInputTensorMsg[] = [];
  const raws: Buffer[] = [];
  let offset = 0;
  doc.inputs.forEach((input: unknown, i: number) => {
    if (!isObject(input)) throw bad(`inputs[${i}] must be an object`);
    const name = input.name;
    if (typeof name !== 'string' || name === '') throw bad(`inputs[${i}]: "name" must be a non-empty string`);
    const what = `input '${name}'`;
    const datatype = input.datatype;
    if (typeof datatype !== 'string') throw bad(`${what}: "datatype" must be a string`);
    const info = datatypeInfo(datatype);
    if (info === undefined) {
      throw new InferenceError(
        InferenceErrorCode.UNKNOWN_DATATYPE,
        `${what}: unknown datatype '${datatype.slice(0, 32)}'; expected one of ${DATATYPE_NAMES.join(', ')}`,
      );
    }
    const shape = readShape(input.shape, what);
    const count = elementCount(shape);
    if (!Number.isSafeInteger(count)) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: too many elements`);
    const ip = input.parameters;
    if (ip !== undefined && !isObject(ip)) throw bad(`${what}: "parameters" must be an object`);
    const binarySize = ip?.binary_data_size;
    let raw: Buffer;
    if (binarySize !== undefined) {
      if (typeof binarySize !== 'number' || !Number.isSafeInteger(binarySize) || binarySize < 0) {
        throw new InferenceError(InferenceErrorCode.BINARY_HEADER, `${what}: binary_data_size must be a non-negative integer`);
      }
      if (binarySize > binary.length - offset) {
        throw new InferenceError(
          InferenceErrorCode.BINARY_HEADER,
          `${what}: binary_data_size ${binarySize} runs past the body (${binary.length - offset} binary bytes left)`,
        );
      }
      if (input.data !== undefined) throw bad(`${what}: give either "data" or binary_data_size, not both`);
      raw = binary.subarray(offset, offset + binarySize);
      offset += binarySize;
      const what2 = `${what} (${datatype} [${shape.join(',')}])`;
      if (info.size > 0) {
        if (raw.length !== count * info.size) {
          throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what2} needs ${count * info.size} bytes; binary_data_size is ${raw.length}`);
        }
      } else {
        checkBytesElements(raw, { start: 0, end: raw.length }, count, what2);
      }
    } else {
      if (input.data === undefined) throw bad(`${what}: "data" is missing`);
      raw = jsonToRaw(info, count, input.data, what);
    }
    raws.push(raw);
    const parameters = parametersFromJson(ip, what, INPUT_HTTP_PARAMS);
    inputs.push({ name, datatype, shape, ...(parameters === undefined ? {} : { parameters }), contents: null });
  });
  if (offset !== binary.length) {
    throw new InferenceError(
      InferenceErrorCode.BINARY_HEADER,
      `${binary.length - offset} bytes of binary data are not claimed by any input's binary_data_size`,
    );
  }

  const outputs: InferRequestedOutputMsg[] = [];
  if (doc.outputs !== undefined) {
    if (!Array.isArray(doc.outputs)) throw bad('"outputs" must be an array');
    doc.outputs.forEach((o: unknown, i: number) => {
      if (!isObject(o) || typeof o.name !== 'string') throw bad(`outputs[${i}] must be an object with a "name"`);
      const op = o.parameters;
      if (op !== undefined && !isObject(op)) throw bad(`output '${o.name}': "parameters" must be an object`);
      if (op?.binary_data !== undefined) binaryOutputs.byName.set(o.name, op.binary_data === true);
      const parameters = parametersFromJson(op, `output '${o.name}'`, OUTPUT_HTTP_PARAMS);
      outputs.push({ name: o.name, ...(parameters === undefined ? {} : { parameters }) });
    });
  }
  const parameters: ParameterMap | undefined = parametersFromJson(params, 'request', REQUEST_HTTP_PARAMS);
  const proto = encodeMessage('ModelInferRequest', {
    modelName: model,
    modelVersion: version,
    id,
    ...(parameters === undefined ? {} : { parameters }),
    inputs,
    outputs,
    rawInputContents: raws,
  });
  return { proto, id, binaryOutputs };
}

export interface RestInferResponse {
  /** The JSON part. */
  json: string;
  /** Binary output data in output order (empty when every output is JSON). */
  binary: Buffer[];
}

/** Serialized ModelInferResponse -> REST response (JSON, plus binary outputs when asked for). */
export function formatRestInferResponse(proto: Uint8Array, prefs: BinaryOutputPrefs, fallbackId = ''): RestInferResponse {
  let res: ModelInferResponseMsg;
  try {
    res = decodeMessage<ModelInferResponseMsg>('ModelInferResponse', proto);
  } catch (err) {
    throw new InferenceError(InferenceErrorCode.MALFORMED_PROTOBUF, `model server response is not a ModelInferResponse: ${(err as Error).message}`);
  }
  const binary: Buffer[] = [];
  const outs: string[] = [];
  res.outputs.forEach((o, i) => {
    const info = datatypeInfo(o.datatype);
    if (info === undefined) throw new InferenceError(InferenceErrorCode.UNKNOWN_DATATYPE, `model server returned output '${o.name}' with unknown datatype '${o.datatype}'`);
    const shape = o.shape.map(int64ToNumber);
    const count = elementCount(shape);
    const rawIn = res.rawOutputContents[i];
    const raw = rawIn !== undefined ? Buffer.from(rawIn.buffer, rawIn.byteOffset, rawIn.byteLength) : contentsToRaw(info, count, o.contents, `output '${o.name}'`);
    const params = parametersToJson(o.parameters, OUTPUT_HTTP_PARAMS) ?? {};
    const asBinary = prefs.byName.get(o.name) ?? prefs.all;
    let data = '';
    if (asBinary) {
      params.binary_data_size = raw.length;
      binary.push(raw);
    } else {
      data = `,"data":${rawToJsonText(info.name, raw)}`;
    }
    const p = Object.keys(params).length > 0 ? `,"parameters":${JSON.stringify(params)}` : '';
    outs.push(`{"name":${JSON.stringify(o.name)},"datatype":${JSON.stringify(o.datatype)},"shape":${JSON.stringify(shape)}${p}${data}}`);
  });
  const rp = parametersToJson(res.parameters);
  const id = res.id !== '' ? res.id : fallbackId;
  const json =
    `{"model_name":${JSON.stringify(res.modelName)}` +
    (res.modelVersion !== '' ? `,"model_version":${JSON.stringify(res.modelVersion)}` : '') +
    (id !== '' ? `,"id":${JSON.stringify(id)}` : '') +
    (rp !== undefined ? `,"parameters":${JSON.stringify(rp)}` : '') +
    `,"outputs":[${outs.join(',')}]}`;
  return { json, binary };
}

export function modelMetadataToJson(proto: Uint8Array): string {
  const m = decodeMessage<ModelMetadataResponseMsg>('ModelMetadataResponse', proto);
  const tensor = (t: TensorMetadataMsg) => ({
    name: t.name,
    datatype: t.datatype,
    shape: t.shape.map(int64ToNumber),
  });
  const out: Record<string, unknown> = {
    name: m.name,
    versions: m.versions,
    platform: m.platform,
    inputs: m.inputs.map(tensor),
    outputs: m.outputs.map(tensor),
  };
  if (m.properties !== undefined && Object.keys(m.properties).length > 0) out.properties = m.properties;
  return JSON.stringify(out);
}

export function serverMetadataToJson(m: ServerMetadataResponseMsg): string {
  return JSON.stringify({ name: m.name, version: m.version, extensions: m.extensions });
}
