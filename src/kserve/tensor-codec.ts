// Converts tensor data between its three forms: raw bytes (row-major little-endian, BYTES
// elements length-prefixed: the form of raw_*_contents and of the binary-tensor extension),
// typed InferTensorContents, and JSON arrays (the REST protocol).
import { endianness } from 'node:os';
import { type Datatype, type DatatypeInfo, datatypeInfo } from './datatypes.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './half-float.ts';
import { InferenceError, InferenceErrorCode } from './inference-error.ts';
import { int64ToBigInt, type TensorContentsMsg } from './proto.ts';

if (endianness() !== 'LE') {
  // Typed-array views below read raw tensors in host order; the protocol's raw form is little-endian.
  throw new Error('sluice: tensor conversion needs a little-endian host');
}

export interface Tensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  /** Raw form. */
  data: Buffer;
}

function bad(message: string): InferenceError {
  return new InferenceError(InferenceErrorCode.BAD_REQUEST, message);
}

/** A Buffer whose start is aligned to `align` (copies only when the view is misaligned). */
export function aligned(buf: Uint8Array, align: number): Buffer {
  if (buf.byteOffset % align === 0) return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const copy = Buffer.from(new ArrayBuffer(buf.byteLength));
  copy.set(buf);
  return copy;
}

function newRaw(bytes: number): Buffer {
  return Buffer.from(new ArrayBuffer(bytes));
}

type NumericView = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

function numericView(dt: Datatype, buf: Buffer): NumericView | BigInt64Array | BigUint64Array {
  const { buffer, byteOffset, byteLength } = buf;
  switch (dt) {
    case 'BOOL':
    case 'UINT8':
      return new Uint8Array(buffer, byteOffset, byteLength);
    case 'INT8':
      return new Int8Array(buffer, byteOffset, byteLength);
    case 'UINT16':
    case 'FP16':
    case 'BF16':
      return new Uint16Array(buffer, byteOffset, byteLength / 2);
    case 'INT16':
      return new Int16Array(buffer, byteOffset, byteLength / 2);
    case 'UINT32':
      return new Uint32Array(buffer, byteOffset, byteLength / 4);
    case 'INT32':
      return new Int32Array(buffer, byteOffset, byteLength / 4);
    case 'FP32':
      return new Float32Array(buffer, byteOffset, byteLength / 4);
    case 'FP64':
      return new Float64Array(buffer, byteOffset, byteLength / 8);
    case 'UINT64':
      return new BigUint64Array(buffer, byteOffset, byteLength / 8);
    case 'INT64':
      return new BigInt64Array(buffer, byteOffset, byteLength / 8);
    case 'BYTES':
      throw new Error('BYTES has no numeric view');
  }
}

/** A typed view of a raw tensor (copying only if misaligned). */
export function rawView(dt: Datatype, raw: Uint8Array): NumericView | BigInt64Array | BigUint64Array {
  const info = datatypeInfo(dt)!;
  return numericView(dt, aligned(raw, Math.max(1, info.size)));
}

// ---- BYTES ----

export function encodeBytesElements(elements: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const e of elements) total += 4 + e.byteLength;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const e of elements) {
    out.writeUInt32LE(e.byteLength, pos);
    out.set(e, pos + 4);
    pos += 4 + e.byteLength;
  }
  return out;
}

/** Splits a raw BYTES tensor into its elements (views, not copies). */
export function decodeBytesElements(raw: Uint8Array, what = 'BYTES tensor'): Buffer[] {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf.length - pos < 4) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: truncated element length`);
    const len = buf.readUInt32LE(pos);
    pos += 4;
    if (len > buf.length - pos) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: element runs past the tensor`);
    out.push(buf.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

// ---- typed contents <-> raw ----

function rangeCheck(v: number, min: number, max: number, dt: string, what: string): number {
  if (!Number.isInteger(v) || v < min || v > max) throw bad(`${what}: ${v} is not a valid ${dt} value`);
  return v;
}

const INT_RANGES: Partial<Record<Datatype, [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
};

/** Typed InferTensorContents -> raw bytes. `count` is the element count of the shape. */
export function contentsToRaw(info: DatatypeInfo, count: number, contents: TensorContentsMsg | null | undefined, what: string): Buffer {
  const dt = info.name;
  if (dt === 'BYTES') {
    const els = contents?.bytesContents ?? [];
    if (els.length !== count) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: has ${els.length} elements, shape needs ${count}`);
    return encodeBytesElements(els);
  }
  if (info.contentsKey === undefined) {
    if (count === 0) return Buffer.alloc(0);
    throw bad(`${what}: ${dt} has no typed contents; send it as raw contents`);
  }
  const values = ((contents as Record<string, unknown[] | undefined> | null | undefined)?.[info.contentsKey] ?? []) as unknown[];
  if (values.length !== count) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: has ${values.length} elements, shape needs ${count}`);
  const raw = newRaw(count * info.size);
  const view = numericView(dt, raw);
  if (view instanceof BigInt64Array || view instanceof BigUint64Array) {
    for (let i = 0; i < count; i++) view[i] = int64ToBigInt(values[i] as number, dt === 'UINT64');
  } else if (dt === 'BOOL') {
    for (let i = 0; i < count; i++) view[i] = values[i] ? 1 : 0;
  } else if (dt === 'FP32' || dt === 'FP64') {
    for (let i = 0; i < count; i++) view[i] = values[i] as number;
  } else {
    const [min, max] = INT_RANGES[dt]!;
    for (let i = 0; i < count; i++) view[i] = rangeCheck(values[i] as number, min, max, dt, what);
  }
  return raw;
}

/** Raw bytes -> typed InferTensorContents (FP16/BF16 have no typed form: undefined). */
export function rawToContents(dt: Datatype, raw: Uint8Array): TensorContentsMsg | undefined {
  const info = datatypeInfo(dt)!;
  if (dt === 'BYTES') return { bytesContents: decodeBytesElements(raw) };
  if (info.contentsKey === undefined) return undefined;
  const view = rawView(dt, raw);
  let values: unknown[];
  if (view instanceof BigInt64Array || view instanceof BigUint64Array) values = Array.from(view, (b) => b.toString());
  else if (dt === 'BOOL') values = Array.from(view as Uint8Array, (b) => b !== 0);
  else values = Array.from(view as NumericView);
  return { [info.contentsKey]: values } as TensorContentsMsg;
}

// ---- JSON <-> raw ----

/** Flattens nested JSON arrays (row-major) into `out`. */
function flatten(data: unknown, out: unknown[], depth: number): void {
  if (depth > 64) throw bad('tensor data nests deeper than 64 levels');
  if (Array.isArray(data)) {
    for (const d of data) flatten(d, out, depth + 1);
  } else {
    out.push(data);
  }
}

const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };

function jsonFloat(v: unknown, what: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && Object.hasOwn(NON_FINITE, v)) return NON_FINITE[v]!;
  throw bad(`${what}: expected a number, got ${JSON.stringify(v)?.slice(0, 40)}`);
}

function jsonBig(v: unknown, unsigned: boolean, what: string): bigint {
  let b: bigint;
  if (typeof v === 'number' && Number.isInteger(v)) b = BigInt(v);
  else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) b = BigInt(v);
  else throw bad(`${what}: expected an integer, got ${JSON.stringify(v)?.slice(0, 40)}`);
  const ok = unsigned ? b >= 0n && b < 1n << 64n : b >= -(1n << 63n) && b < 1n << 63n;
  if (!ok) throw bad(`${what}: ${b} is out of range for ${unsigned ? 'UINT64' : 'INT64'}`);
  return b;
}

/** JSON tensor data (flat or nested) -> raw bytes, checking element types and count. */
export function jsonToRaw(info: DatatypeInfo, count: number, data: unknown, what: string): Buffer {
  if (!Array.isArray(data)) throw bad(`${what}: "data" must be an array`);
  const flat: unknown[] = [];
  flatten(data, flat, 0);
  if (flat.length !== count) {
    throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: "data" has ${flat.length} elements, shape needs ${count}`);
  }
  const dt = info.name;
  if (dt === 'BYTES') {
    return encodeBytesElements(
      flat.map((v) => {
        if (typeof v !== 'string') throw bad(`${what}: BYTES elements must be strings`);
        return Buffer.from(v, 'utf8');
      }),
    );
  }
  const raw = newRaw(count * info.size);
  const view = numericView(dt, raw);
  switch (dt) {
    case 'BOOL':
      for (let i = 0; i < count; i++) {
        const v = flat[i];
        if (typeof v !== 'boolean') throw bad(`${what}: BOOL elements must be true or false`);
        view[i] = v ? 1 : 0;
      }
      break;
    case 'FP16':
      for (let i = 0; i < count; i++) view[i] = f32ToF16(jsonFloat(flat[i], what));
      break;
    case 'BF16':
      for (let i = 0; i < count; i++) view[i] = f32ToBf16(jsonFloat(flat[i], what));
      break;
    case 'FP32':
    case 'FP64':
      for (let i = 0; i < count; i++) view[i] = jsonFloat(flat[i], what);
      break;
    case 'INT64':
    case 'UINT64':
      for (let i = 0; i < count; i++) view[i] = jsonBig(flat[i], dt === 'UINT64', what);
      break;
    default: {
      const [min, max] = INT_RANGES[dt]!;
      for (let i = 0; i < count; i++) {
        const v = flat[i];
        if (typeof v !== 'number') throw bad(`${what}: expected an integer, got ${JSON.stringify(v)?.slice(0, 40)}`);
        view[i] = rangeCheck(v, min, max, dt, what);
      }
    }
  }
  return raw;
}

function floatText(v: number): string {
  return Number.isFinite(v) ? String(v) : `"${String(v)}"`;
}

/** Raw bytes -> the JSON text of a flat data array (64-bit integers printed exactly). */
export function rawToJsonText(dt: Datatype, raw: Uint8Array): string {
  if (dt === 'BYTES') return JSON.stringify(decodeBytesElements(raw).map((b) => b.toString('utf8')));
  const view = rawView(dt, raw);
  const parts: string[] = new Array<string>(view.length);
  switch (dt) {
    case 'BOOL':
      for (let i = 0; i < view.length; i++) parts[i] = view[i] !== 0 ? 'true' : 'false';
      break;
    case 'FP16':
      for (let i = 0; i < view.length; i++) parts[i] = floatText(f16ToF32(view[i] as number));
      break;
    case 'BF16':
      for (let i = 0; i < view.length; i++) parts[i] = floatText(bf16ToF32(view[i] as number));
      break;
    case 'FP32':
    case 'FP64':
      for (let i = 0; i < view.length; i++) parts[i] = floatText(view[i] as number);
      break;
    default:
      for (let i = 0; i < view.length; i++) parts[i] = String(view[i]);
  }
  return `[${parts.join(',')}]`;
}

/** Byte length a raw tensor must have, or -1 for BYTES (checked element by element). */
export function rawByteLength(info: DatatypeInfo, count: number): number {
  return info.size === 0 ? -1 : info.size * count;
}
