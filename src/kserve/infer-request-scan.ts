// Reads the fields of a serialized ModelInferRequest the ingress needs (model, version, id,
// each input's name/datatype/shape and where its contents are) without decoding tensor bytes,
// so the original bytes can be forwarded as they are. Field numbers: proto/grpc_service.proto.
import { DATATYPE_NAMES, datatypeInfo, elementCount } from './datatypes.ts';
import { InferenceError, InferenceErrorCode } from './inference-error.ts';
import { malformed, ProtoReader, VARINT_TOO_BIG, WireType } from './proto-reader.ts';

export interface ByteSpan {
  start: number;
  end: number;
}

export interface ScannedInput {
  name: string;
  datatype: string;
  /** Dimensions; a dimension that does not fit a safe integer (or is negative) reads as -1. */
  shape: number[];
  /** Element count per InferTensorContents field (index = field number); undefined: no contents. */
  contents: number[] | undefined;
}

export interface ScannedInferRequest {
  modelName: string;
  modelVersion: string;
  id: string;
  inputs: ScannedInput[];
  /** raw_input_contents entries, as spans into the scanned buffer. */
  raw: ByteSpan[];
}

export interface RequestHead {
  modelName: string;
  modelVersion: string;
  id: string;
}

/**
 * Reads only fields 1-3 (model_name, model_version, id) and skips everything else. Also reads
 * ModelReadyRequest / ModelMetadataRequest (name = 1, version = 2), whose field 3 is absent.
 */
export function scanRequestHead(buf: Uint8Array): RequestHead {
  const r = new ProtoReader(buf);
  const head: RequestHead = { modelName: '', modelVersion: '', id: '' };
  while (!r.done) {
    const tag = r.readTag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field <= 3 && wt === WireType.LEN) {
      const s = r.readString();
      if (field === 1) head.modelName = s;
      else if (field === 2) head.modelVersion = s;
      else head.id = s;
    } else if (field <= 3) {
      throw malformed(`field ${field} must be length-delimited`);
    } else {
      r.skip(wt);
    }
  }
  return head;
}

export function scanInferRequest(buf: Uint8Array): ScannedInferRequest {
  const r = new ProtoReader(buf);
  const out: ScannedInferRequest = { modelName: '', modelVersion: '', id: '', inputs: [], raw: [] };
  while (!r.done) {
    const tag = r.readTag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field >= 1 && field <= 7 && field !== 4 && field !== 6 && wt !== WireType.LEN) {
      throw malformed(`ModelInferRequest field ${field} must be length-delimited`);
    }
    switch (field) {
      case 1:
        out.modelName = r.readString();
        break;
      case 2:
        out.modelVersion = r.readString();
        break;
      case 3:
        out.id = r.readString();
        break;
      case 5: {
        const end = r.readLengthEnd();
        out.inputs.push(scanInput(buf, r.pos, end));
        r.pos = end;
        break;
      }
      case 7: {
        const end = r.readLengthEnd();
        out.raw.push({ start: r.pos, end });
        r.pos = end;
        break;
      }
      default:
        r.skip(wt);
    }
  }
  return out;
}

function scanInput(buf: Uint8Array, start: number, end: number): ScannedInput {
  const r = new ProtoReader(buf, start, end);
  const input: ScannedInput = { name: '', datatype: '', shape: [], contents: undefined };
  while (!r.done) {
    const tag = r.readTag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 || field === 2) {
      if (wt !== WireType.LEN) throw malformed(`InferInputTensor field ${field} must be length-delimited`);
      const s = r.readString();
      if (field === 1) input.name = s;
      else input.datatype = s;
    } else if (field === 3) {
      if (wt === WireType.LEN) {
        const e = r.readLengthEnd();
        while (r.pos < e) input.shape.push(r.readVarint());
        if (r.pos !== e) throw malformed('packed shape overruns its length');
      } else if (wt === WireType.VARINT) {
        input.shape.push(r.readVarint());
      } else {
        throw malformed('InferInputTensor.shape has the wrong wire type');
      }
    } else if (field === 5) {
      if (wt !== WireType.LEN) throw malformed('InferInputTensor.contents must be length-delimited');
      const e = r.readLengthEnd();
      input.contents = countContents(buf, r.pos, e, input.contents);
      r.pos = e;
    } else {
      r.skip(wt);
    }
  }
  for (let i = 0; i < input.shape.length; i++) {
    if (input.shape[i] === VARINT_TOO_BIG) input.shape[i] = -1;
  }
  return input;
}

/** Counts elements per InferTensorContents field, packed or not (both are valid encodings). */
function countContents(buf: Uint8Array, start: number, end: number, prev: number[] | undefined): number[] {
  const counts = prev ?? [0, 0, 0, 0, 0, 0, 0, 0, 0];
  const r = new ProtoReader(buf, start, end);
  while (!r.done) {
    const tag = r.readTag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field < 1 || field > 8) {
      r.skip(wt);
      continue;
    }
    if (field === 8) {
      if (wt !== WireType.LEN) throw malformed('bytes_contents must be length-delimited');
      r.pos = r.readLengthEnd();
      counts[8]!++;
    } else if (wt === WireType.LEN) {
      const e = r.readLengthEnd();
      const len = e - r.pos;
      if (field === 6) {
        if (len % 4 !== 0) throw malformed('packed fp32_contents length is not a multiple of 4');
        counts[6]! += len / 4;
      } else if (field === 7) {
        if (len % 8 !== 0) throw malformed('packed fp64_contents length is not a multiple of 8');
        counts[7]! += len / 8;
      } else {
        let n = 0;
        for (let p = r.pos; p < e; p++) if (buf[p]! < 0x80) n++;
        if (len > 0 && buf[e - 1]! >= 0x80) throw malformed('packed varints end inside a varint');
        counts[field]! += n;
      }
      r.pos = e;
    } else {
      const expected = field === 6 ? WireType.I32 : field === 7 ? WireType.I64 : WireType.VARINT;
      if (wt !== expected) throw malformed(`InferTensorContents field ${field} has the wrong wire type`);
      r.skip(wt);
      counts[field]!++;
    }
  }
  return counts;
}

function describe(input: ScannedInput): string {
  return `input '${input.name}' (${input.datatype} [${input.shape.join(',')}])`;
}

/**
 * Checks what can be checked without decoding tensor values: known datatypes, sane shapes,
 * and that every tensor's bytes (raw) or element count (typed) match its shape.
 */
export function validateInferRequest(scan: ScannedInferRequest, buf: Uint8Array): void {
  const useRaw = scan.raw.length > 0;
  if (useRaw && scan.raw.length !== scan.inputs.length) {
    throw new InferenceError(
      InferenceErrorCode.BAD_REQUEST,
      `raw_input_contents has ${scan.raw.length} entries for ${scan.inputs.length} inputs; give one per input, in order`,
    );
  }
  const names = new Set<string>();
  scan.inputs.forEach((input, i) => {
    if (input.name === '') throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `input ${i} has no name`);
    if (names.has(input.name)) throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `input '${input.name}' appears twice`);
    names.add(input.name);
    const dt = datatypeInfo(input.datatype);
    if (dt === undefined) {
      throw new InferenceError(
        InferenceErrorCode.UNKNOWN_DATATYPE,
        `input '${input.name}': unknown datatype '${input.datatype}'; expected one of ${DATATYPE_NAMES.join(', ')}`,
      );
    }
    const count = elementCount(input.shape);
    if (Number.isNaN(count)) {
      throw new InferenceError(InferenceErrorCode.BAD_REQUEST, `${describe(input)}: shape dimensions must be non-negative integers`);
    }
    if (!Number.isSafeInteger(count)) {
      throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${describe(input)}: too many elements`);
    }
    if (useRaw) {
      if (input.contents !== undefined) {
        throw new InferenceError(
          InferenceErrorCode.BAD_REQUEST,
          `${describe(input)}: contents must not be set when raw_input_contents is used`,
        );
      }
      const span = scan.raw[i]!;
      const len = span.end - span.start;
      if (dt.size > 0) {
        if (len !== count * dt.size) {
          throw new InferenceError(
            InferenceErrorCode.TENSOR_SIZE,
            `${describe(input)} needs ${count * dt.size} bytes; raw_input_contents[${i}] has ${len}`,
          );
        }
      } else {
        checkBytesElements(buf, span, count, `${describe(input)}: raw_input_contents[${i}]`);
      }
      return;
    }
    if (dt.contentsField === undefined) {
      if (count === 0) return;
      throw new InferenceError(
        InferenceErrorCode.BAD_REQUEST,
        `${describe(input)}: ${dt.name} has no typed contents; send it in raw_input_contents`,
      );
    }
    const counts = input.contents;
    const got = counts === undefined ? 0 : counts[dt.contentsField]!;
    if (counts !== undefined) {
      for (let f = 1; f <= 8; f++) {
        if (f !== dt.contentsField && counts[f]! > 0) {
          throw new InferenceError(
            InferenceErrorCode.BAD_REQUEST,
            `${describe(input)}: contents field ${f} does not hold ${dt.name} elements`,
          );
        }
      }
    }
    if (got !== count) {
      throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${describe(input)} needs ${count} elements; contents has ${got}`);
    }
  });
}

/** BYTES raw layout: each element is a 4-byte little-endian length followed by that many bytes. */
export function checkBytesElements(buf: Uint8Array, span: ByteSpan, count: number, what: string): void {
  let pos = span.start;
  let n = 0;
  while (pos < span.end) {
    if (span.end - pos < 4) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: truncated BYTES element length`);
    const len = buf[pos]! + buf[pos + 1]! * 0x100 + buf[pos + 2]! * 0x10000 + buf[pos + 3]! * 0x1000000;
    pos += 4;
    if (len > span.end - pos) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: BYTES element ${n} runs past the tensor`);
    pos += len;
    n++;
  }
  if (n !== count) throw new InferenceError(InferenceErrorCode.TENSOR_SIZE, `${what}: has ${n} BYTES elements, shape needs ${count}`);
}
