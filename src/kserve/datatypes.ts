// The tensor datatypes of the KServe v2 protocol: element size in raw form and the typed
// `InferTensorContents` field that carries them (FP16 and BF16 have none: raw only).

export type Datatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'BF16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

/** Field number inside InferTensorContents (proto/grpc_service.proto). */
export type ContentsField = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8;

export interface DatatypeInfo {
  readonly name: Datatype;
  /** Bytes per element in raw form; 0 for BYTES (each element is length-prefixed). */
  readonly size: number;
  /** InferTensorContents field for the typed form, or undefined when only raw is allowed. */
  readonly contentsField: ContentsField | undefined;
  /** protobufjs (camelCase) name of that field. */
  readonly contentsKey: string | undefined;
}

function info(name: Datatype, size: number, contentsField: ContentsField | undefined, contentsKey: string | undefined): DatatypeInfo {
  return { name, size, contentsField, contentsKey };
}

export const DATATYPES: ReadonlyMap<string, DatatypeInfo> = new Map<string, DatatypeInfo>([
  ['BOOL', info('BOOL', 1, 1, 'boolContents')],
  ['UINT8', info('UINT8', 1, 4, 'uintContents')],
  ['UINT16', info('UINT16', 2, 4, 'uintContents')],
  ['UINT32', info('UINT32', 4, 4, 'uintContents')],
  ['UINT64', info('UINT64', 8, 5, 'uint64Contents')],
  ['INT8', info('INT8', 1, 2, 'intContents')],
  ['INT16', info('INT16', 2, 2, 'intContents')],
  ['INT32', info('INT32', 4, 2, 'intContents')],
  ['INT64', info('INT64', 8, 3, 'int64Contents')],
  ['FP16', info('FP16', 2, undefined, undefined)],
  ['BF16', info('BF16', 2, undefined, undefined)],
  ['FP32', info('FP32', 4, 6, 'fp32Contents')],
  ['FP64', info('FP64', 8, 7, 'fp64Contents')],
  ['BYTES', info('BYTES', 0, 8, 'bytesContents')],
]);

export const DATATYPE_NAMES: readonly string[] = [...DATATYPES.keys()];

export function datatypeInfo(name: string): DatatypeInfo | undefined {
  return DATATYPES.get(name);
}

/** Number of elements of a shape; NaN when a dimension is negative or not an integer. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return Number.NaN;
    n *= d;
  }
  return n;
}
