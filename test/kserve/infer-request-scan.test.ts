// The ingress reads routing fields and tensor shapes straight from serialized requests; these
// bytes are untrusted, so the scanner is checked against protobufjs on valid input and must
// fail only with a typed error on arbitrary input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { scanInferRequest, scanRequestHead, validateInferRequest } from '../../src/kserve/infer-request-scan.ts';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import { decodeMessage, encodeMessage, int64ToNumber, type ModelInferRequestMsg } from '../../src/kserve/proto.ts';
import { encodeBytesElements } from '../../src/kserve/tensor-codec.ts';

const name = fc.string({ maxLength: 12 });
const param = fc.oneof(
  fc.record({ boolParam: fc.boolean() }),
  fc.record({ int64Param: fc.integer() }),
  fc.record({ stringParam: fc.string({ maxLength: 8 }) }),
  fc.record({ doubleParam: fc.double({ noNaN: true }) }),
);
const input = fc.record({
  name,
  datatype: fc.constantFrom('FP32', 'INT32', 'BYTES', 'FP16', 'INT64', 'BOOL', 'NOPE'),
  shape: fc.array(fc.nat({ max: 5000 }), { maxLength: 4 }),
  parameters: fc.dictionary(fc.string({ maxLength: 5 }), param, { maxKeys: 2 }),
  contents: fc.option(
    fc.record({ fp32Contents: fc.array(fc.float({ noNaN: true }), { maxLength: 5 }), intContents: fc.array(fc.integer({ min: -1000, max: 1000 }), { maxLength: 5 }) }),
    { nil: undefined },
  ),
});
const request = fc.record({
  modelName: name,
  modelVersion: name,
  id: name,
  parameters: fc.dictionary(fc.string({ maxLength: 5 }), param, { maxKeys: 3 }),
  inputs: fc.array(input, { maxLength: 4 }),
  outputs: fc.array(fc.record({ name }), { maxLength: 2 }),
  rawInputContents: fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }),
});

test('scanner agrees with protobufjs on every valid request', () => {
  fc.assert(
    fc.property(request, (req) => {
      const bytes = encodeMessage('ModelInferRequest', req);
      const scan = scanInferRequest(bytes);
      const ref = decodeMessage<ModelInferRequestMsg>('ModelInferRequest', bytes);
      assert.equal(scan.modelName, ref.modelName);
      assert.equal(scan.modelVersion, ref.modelVersion);
      assert.equal(scan.id, ref.id);
      assert.deepEqual(scanRequestHead(bytes), { modelName: ref.modelName, modelVersion: ref.modelVersion, id: ref.id });
      assert.equal(scan.inputs.length, ref.inputs.length);
      scan.inputs.forEach((s, i) => {
        const r = ref.inputs[i]!;
        assert.equal(s.name, r.name);
        assert.equal(s.datatype, r.datatype);
        assert.deepEqual(s.shape, r.shape.map(int64ToNumber));
        assert.equal(s.contents === undefined, r.contents === null || r.contents === undefined);
        if (s.contents !== undefined) {
          assert.equal(s.contents[6], r.contents!.fp32Contents!.length);
          assert.equal(s.contents[2], r.contents!.intContents!.length);
        }
      });
      assert.deepEqual(
        scan.raw.map((sp) => Buffer.from(bytes.subarray(sp.start, sp.end))),
        ref.rawInputContents.map((b) => Buffer.from(b)),
      );
    }),
    { numRuns: 300 },
  );
});

test('arbitrary bytes: the scanner returns or throws an InferenceError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      for (const f of [() => validateInferRequest(scanInferRequest(bytes), bytes), () => scanRequestHead(bytes)]) {
        try {
          f();
        } catch (err) {
          assert.ok(err instanceof InferenceError, `unexpected ${String(err)}`);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

test('mutated valid requests never crash the scanner', () => {
  fc.assert(
    fc.property(request, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat({ max: 8 }), (req, pos, byte, cut) => {
      const bytes = Buffer.from(encodeMessage('ModelInferRequest', req));
      if (bytes.length > 0) bytes[pos % bytes.length] = byte;
      const mutated = bytes.subarray(0, Math.max(0, bytes.length - cut));
      try {
        validateInferRequest(scanInferRequest(mutated), mutated);
      } catch (err) {
        assert.ok(err instanceof InferenceError, `unexpected ${String(err)}`);
      }
    }),
    { numRuns: 1000 },
  );
});

function req(inputs: object[], raw?: Buffer[]): Buffer {
  return encodeMessage('ModelInferRequest', { modelName: 'm', inputs, ...(raw ? { rawInputContents: raw } : {}) });
}

function codeOf(bytes: Buffer): string | undefined {
  try {
    validateInferRequest(scanInferRequest(bytes), bytes);
    return undefined;
  } catch (err) {
    return (err as InferenceError).code;
  }
}

test('validation: raw sizes, typed counts, datatypes, BYTES layout', () => {
  const fp32x4 = { name: 'x', datatype: 'FP32', shape: [2, 2] };
  assert.equal(codeOf(req([fp32x4], [Buffer.alloc(16)])), undefined);
  assert.equal(codeOf(req([fp32x4], [Buffer.alloc(12)])), 'SLUICE_ERR_TENSOR_SIZE');
  assert.equal(codeOf(req([{ ...fp32x4, datatype: 'FP8' }], [Buffer.alloc(16)])), 'SLUICE_ERR_UNKNOWN_DATATYPE');
  assert.equal(codeOf(req([fp32x4, { name: 'y', datatype: 'INT8', shape: [1] }], [Buffer.alloc(16)])), 'SLUICE_ERR_BAD_REQUEST');
  assert.equal(codeOf(req([{ ...fp32x4, contents: { fp32Contents: [1, 2, 3, 4] } }])), undefined);
  assert.equal(codeOf(req([{ ...fp32x4, contents: { fp32Contents: [1, 2, 3] } }])), 'SLUICE_ERR_TENSOR_SIZE');
  assert.equal(codeOf(req([{ ...fp32x4, contents: { intContents: [1, 2, 3, 4] } }])), 'SLUICE_ERR_BAD_REQUEST');
  assert.equal(codeOf(req([{ name: 'h', datatype: 'FP16', shape: [3], contents: { intContents: [1, 2, 3] } }])), 'SLUICE_ERR_BAD_REQUEST');
  assert.equal(codeOf(req([{ name: 'h', datatype: 'FP16', shape: [3] }], [Buffer.alloc(6)])), undefined);
  const strings = encodeBytesElements([Buffer.from('ab'), Buffer.from('')]);
  assert.equal(codeOf(req([{ name: 's', datatype: 'BYTES', shape: [2] }], [strings])), undefined);
  assert.equal(codeOf(req([{ name: 's', datatype: 'BYTES', shape: [3] }], [strings])), 'SLUICE_ERR_TENSOR_SIZE');
  assert.equal(codeOf(req([{ name: 's', datatype: 'BYTES', shape: [2] }], [strings.subarray(0, 5)])), 'SLUICE_ERR_TENSOR_SIZE');
  assert.equal(codeOf(req([{ name: 'i', datatype: 'INT64', shape: [2], contents: { int64Contents: [-1, 2] } }])), undefined);
  assert.equal(codeOf(req([{ name: 'i', datatype: 'INT32', shape: [-1] }], [Buffer.alloc(4)])), 'SLUICE_ERR_BAD_REQUEST');
});
