// Sample tensors of every KServe datatype for the tests, in raw form, with the JSON `data` that
// denotes the same values (so HTTP and gRPC results can be compared).
import { encodeBytesElements } from '../../src/kserve/tensor-codec.ts';
import { f32ToF16, f32ToBf16 } from '../../src/kserve/half-float.ts';

export interface SampleTensor {
  datatype: string;
  shape: number[];
  raw: Buffer;
  json: unknown[];
}

function buf(ta: ArrayBufferView): Buffer {
  return Buffer.from(ta.buffer, ta.byteOffset, ta.byteLength);
}

export function sampleTensors(): SampleTensor[] {
  const bytes = [Buffer.from('hello'), Buffer.from(''), Buffer.from('sluice ✓'), Buffer.from('x'.repeat(300))];
  const halves = [1.5, -2, 0.0999755859375, 65504];
  return [
    { datatype: 'BOOL', shape: [2, 2], raw: Buffer.from([1, 0, 0, 1]), json: [true, false, false, true] },
    { datatype: 'UINT8', shape: [4], raw: Buffer.from([0, 1, 128, 255]), json: [0, 1, 128, 255] },
    { datatype: 'INT8', shape: [4], raw: buf(new Int8Array([-128, -1, 0, 127])), json: [-128, -1, 0, 127] },
    { datatype: 'UINT16', shape: [2], raw: buf(new Uint16Array([0, 65535])), json: [0, 65535] },
    { datatype: 'INT16', shape: [2], raw: buf(new Int16Array([-32768, 32767])), json: [-32768, 32767] },
    { datatype: 'UINT32', shape: [2], raw: buf(new Uint32Array([0, 4294967295])), json: [0, 4294967295] },
    { datatype: 'INT32', shape: [1, 3], raw: buf(new Int32Array([-2147483648, 0, 2147483647])), json: [-2147483648, 0, 2147483647] },
    { datatype: 'UINT64', shape: [2], raw: buf(new BigUint64Array([0n, 2n ** 53n - 1n])), json: [0, 9007199254740991] },
    { datatype: 'INT64', shape: [2], raw: buf(new BigInt64Array([-(2n ** 53n) + 1n, 42n])), json: [-9007199254740991, 42] },
    { datatype: 'FP16', shape: [4], raw: buf(new Uint16Array(halves.map(f32ToF16))), json: halves },
    { datatype: 'BF16', shape: [2], raw: buf(new Uint16Array([1, -0.5].map(f32ToBf16))), json: [1, -0.5] },
    { datatype: 'FP32', shape: [3], raw: buf(new Float32Array([0.5, -1.25, 3e38])), json: [0.5, -1.25, Math.fround(3e38)] },
    { datatype: 'FP64', shape: [2], raw: buf(new Float64Array([Math.PI, -1e-300])), json: [Math.PI, -1e-300] },
    { datatype: 'BYTES', shape: [2, 2], raw: encodeBytesElements(bytes), json: bytes.map((b) => b.toString('utf8')) },
  ];
}

export function int32Raw(values: number[]): Buffer {
  return buf(new Int32Array(values));
}

export function int32Of(raw: Uint8Array): number[] {
  return [...new Int32Array(new Uint8Array(raw).buffer)];
}

export function float32Of(raw: Uint8Array): number[] {
  return [...new Float32Array(new Uint8Array(raw).buffer)];
}

/** A ModelInfer request for the models server's INT32 [1,16] + [1,16] models (`simple`), as typed contents. */
export function simpleInferRequest(model: string): object {
  const a = Array.from({ length: 16 }, (_, i) => i);
  return {
    modelName: model,
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: a } },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: a } },
    ],
  };
}
