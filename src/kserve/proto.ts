// Loads proto/grpc_service.proto once and exposes its message types (protobufjs) and the
// TypeScript shapes of decoded messages (camelCase, as protobufjs decodes them).
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const PROTO_FILE = fileURLToPath(new URL('../../proto/grpc_service.proto', import.meta.url));

const root = new protobuf.Root();
root.loadSync(PROTO_FILE, { keepCase: false });
root.resolveAll();

function type(name: string): protobuf.Type {
  return root.lookupType(`inference.${name}`);
}

export const ProtoTypes = {
  ServerLiveRequest: type('ServerLiveRequest'),
  ServerLiveResponse: type('ServerLiveResponse'),
  ServerReadyRequest: type('ServerReadyRequest'),
  ServerReadyResponse: type('ServerReadyResponse'),
  ModelReadyRequest: type('ModelReadyRequest'),
  ModelReadyResponse: type('ModelReadyResponse'),
  ServerMetadataRequest: type('ServerMetadataRequest'),
  ServerMetadataResponse: type('ServerMetadataResponse'),
  ModelMetadataRequest: type('ModelMetadataRequest'),
  ModelMetadataResponse: type('ModelMetadataResponse'),
  ModelInferRequest: type('ModelInferRequest'),
  ModelInferResponse: type('ModelInferResponse'),
  ModelStreamInferResponse: type('ModelStreamInferResponse'),
  ModelConfigRequest: type('ModelConfigRequest'),
  ModelConfigResponse: type('ModelConfigResponse'),
  ModelStatisticsRequest: type('ModelStatisticsRequest'),
  ModelStatisticsResponse: type('ModelStatisticsResponse'),
  RepositoryIndexRequest: type('RepositoryIndexRequest'),
  RepositoryIndexResponse: type('RepositoryIndexResponse'),
} as const;

export type ProtoTypeName = keyof typeof ProtoTypes;

export function protoRoot(): protobuf.Root {
  return root;
}

/** The same definitions with the .proto field names (snake_case), for Triton's JSON forms. */
let snakeRoot: protobuf.Root | undefined;

/**
 * A serialized message as the JSON object Triton's HTTP API returns for it: .proto field names,
 * enum names, 64-bit integers as numbers, unset scalars and lists present with their defaults.
 */
export function messageToJsonObject(name: ProtoTypeName, buf: Uint8Array): Record<string, unknown> {
  if (snakeRoot === undefined) {
    snakeRoot = new protobuf.Root();
    snakeRoot.loadSync(PROTO_FILE, { keepCase: true });
    snakeRoot.resolveAll();
  }
  const t = snakeRoot.lookupType(`inference.${name}`);
  return withoutNulls(t.toObject(t.decode(buf), { enums: String, longs: Number, defaults: true, arrays: true, objects: true })) as Record<string, unknown>;
}

/** Unset sub-messages come out of toObject as null; Triton leaves them out. */
function withoutNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNulls);
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = withoutNulls(x);
  return out;
}

/** int64/uint64 values decode as Long objects when the `long` package is present, else numbers. */
export interface LongLike {
  low: number;
  high: number;
  unsigned: boolean;
  toNumber(): number;
  toString(): string;
}
export type Int64 = number | LongLike;

export function int64ToNumber(v: Int64): number {
  return typeof v === 'number' ? v : v.toNumber();
}

export function int64ToBigInt(v: Int64, unsigned: boolean): bigint {
  if (typeof v === 'number') return BigInt(v);
  const lo = BigInt(v.low >>> 0);
  const hi = BigInt(v.high >>> 0);
  const u = (hi << 32n) | lo;
  return unsigned ? u : BigInt.asIntN(64, u);
}

export interface InferParameterMsg {
  boolParam?: boolean;
  int64Param?: Int64;
  stringParam?: string;
  doubleParam?: number;
  uint64Param?: Int64;
  parameterChoice?: string;
}

export type ParameterMap = Record<string, InferParameterMsg>;

export interface TensorContentsMsg {
  boolContents?: boolean[];
  intContents?: number[];
  int64Contents?: Int64[];
  uintContents?: number[];
  uint64Contents?: Int64[];
  fp32Contents?: number[];
  fp64Contents?: number[];
  bytesContents?: Uint8Array[];
}

export interface InferInputTensorMsg {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: ParameterMap;
  contents?: TensorContentsMsg | null;
}

export interface InferRequestedOutputMsg {
  name: string;
  parameters?: ParameterMap;
}

export interface ModelInferRequestMsg {
  modelName: string;
  modelVersion: string;
  id: string;
  parameters?: ParameterMap;
  inputs: InferInputTensorMsg[];
  outputs: InferRequestedOutputMsg[];
  rawInputContents: Uint8Array[];
}

export interface InferOutputTensorMsg {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: ParameterMap;
  contents?: TensorContentsMsg | null;
}

export interface ModelInferResponseMsg {
  modelName: string;
  modelVersion: string;
  id: string;
  parameters?: ParameterMap;
  outputs: InferOutputTensorMsg[];
  rawOutputContents: Uint8Array[];
}

export interface TensorMetadataMsg {
  name: string;
  datatype: string;
  shape: Int64[];
}

export interface ModelMetadataResponseMsg {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadataMsg[];
  outputs: TensorMetadataMsg[];
  properties?: Record<string, string>;
}

export interface ServerMetadataResponseMsg {
  name: string;
  version: string;
  extensions: string[];
}

export interface NameVersionMsg {
  name: string;
  version: string;
}

/** Encodes a plain object (camelCase fields) as the named message. */
export function encodeMessage(name: ProtoTypeName, value: object): Buffer {
  const bytes = ProtoTypes[name].encode(value).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A message built from a plain object the protobuf-JSON way (enum names as strings, 64-bit
 * integers as decimal strings), ready for encodeMessage or a grpc-js callback.
 */
export function messageFromObject(name: ProtoTypeName, value: object): protobuf.Message {
  return ProtoTypes[name].fromObject(value);
}

/** Decodes bytes as the named message; bytes fields are views into `buf`, not copies. */
export function decodeMessage<T>(name: ProtoTypeName, buf: Uint8Array): T {
  return ProtoTypes[name].decode(buf) as unknown as T;
}
