// The tensor tap of the inference path: for a sampled ModelInfer call, copies its numeric input
// tensors (as float values) for the threat detectors, which look at them later. The call does not
// wait for the detectors; the copy is what it costs, and only sampled calls pay it. BYTES and
// BOOL inputs are not looked at; typed (non-raw) contents are decoded on this sampled path only.
import { datatypeInfo, type Datatype } from '../../kserve/datatypes.ts';
import { bf16ToF32, f16ToF32 } from '../../kserve/half-float.ts';
import { scanInferRequest } from '../../kserve/infer-request-scan.ts';
import { decodeMessage, int64ToNumber, type ModelInferRequestMsg } from '../../kserve/proto.ts';
import { contentsToRaw, rawView } from '../../kserve/tensor-codec.ts';
import type { TappedTensor } from './threat-monitor.ts';

/** Most elements copied per input (larger tensors are strided down to this many). */
export const TAP_MAX_ELEMENTS = 1 << 20;

/** Numeric tensor bytes as floats (strided down to TAP_MAX_ELEMENTS); undefined for BYTES and BOOL. */
export function rawToFloats(dt: Datatype, raw: Uint8Array): Float32Array | undefined {
  if (dt === 'BYTES' || dt === 'BOOL') return undefined;
  const view = rawView(dt, raw);
  const n = view.length;
  const stride = Math.max(1, Math.ceil(n / TAP_MAX_ELEMENTS));
  const out = new Float32Array(Math.ceil(n / stride));
  for (let i = 0, j = 0; i < n; i += stride, j++) {
    const v = view[i]!;
    out[j] = dt === 'FP16' ? f16ToF32(v as number) : dt === 'BF16' ? bf16ToF32(v as number) : Number(v);
  }
  return out;
}

/** The numeric inputs of a serialized ModelInferRequest (already validated by the ingress). */
export function tapInputs(payload: Uint8Array): TappedTensor[] {
  const scan = scanInferRequest(payload);
  const out: TappedTensor[] = [];
  if (scan.raw.length > 0) {
    scan.inputs.forEach((input, i) => {
      const span = scan.raw[i];
      const info = datatypeInfo(input.datatype);
      if (span === undefined || info === undefined) return;
      const values = rawToFloats(info.name, payload.subarray(span.start, span.end));
      if (values !== undefined) out.push({ name: input.name, shape: input.shape, values });
    });
    return out;
  }
  if (!scan.inputs.some((i) => i.contents !== undefined)) return out;
  const msg = decodeMessage<ModelInferRequestMsg>('ModelInferRequest', payload);
  for (const input of msg.inputs) {
    const info = datatypeInfo(input.datatype);
    if (info === undefined || input.contents == null) continue;
    const shape = input.shape.map(int64ToNumber);
    const count = shape.reduce((a, b) => a * b, 1);
    const values = rawToFloats(info.name, contentsToRaw(info, count, input.contents, input.name));
    if (values !== undefined) out.push({ name: input.name, shape, values });
  }
  return out;
}
