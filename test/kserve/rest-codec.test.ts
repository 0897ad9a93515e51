// The REST side of the protocol: JSON and binary-extension requests become ModelInferRequests,
// responses become JSON (+ binary), FP16/BF16 convert exactly, and untrusted bodies fail only
// with typed errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { datatypeInfo } from '../../src/kserve/datatypes.ts';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/kserve/half-float.ts';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import { decodeMessage, encodeMessage, type ModelInferRequestMsg } from '../../src/kserve/proto.ts';
import { formatRestInferResponse, parseRestInferRequest } from '../../src/kserve/rest-codec.ts';
import { encodeBytesElements, jsonToRaw, rawToJsonText } from '../../src/kserve/tensor-codec.ts';

test('FP16: known values and an exact round trip of every half', () => {
  assert.equal(f32ToF16(1), 0x3c00);
  assert.equal(f32ToF16(-2), 0xc000);
  assert.equal(f32ToF16(65504), 0x7bff);
  assert.equal(f32ToF16(65520), 0x7c00); // rounds up to infinity
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f32ToF16(0.1), 0x2e66);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie to even
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie to even (up)
  for (let h = 0; h < 0x10000; h++) {
    const f = f16ToF32(h);
    if (Number.isNaN(f)) assert.ok(Number.isNaN(f16ToF32(f32ToF16(f))));
    else assert.equal(f32ToF16(f), h, `half 0x${h.toString(16)}`);
  }
});

test('BF16: known values and an exact round trip', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(-1.5), 0xbfc0);
  for (let h = 0; h < 0x10000; h++) {
    const f = bf16ToF32(h);
    if (!Number.isNaN(f)) assert.equal(f32ToBf16(f), h);
  }
});

test('JSON data <-> raw for every datatype (nested arrays flatten row-major)', () => {
  const cases: [string, unknown[], string][] = [
    ['BOOL', [[true, false]], '[true,false]'],
    ['UINT8', [0, 255], '[0,255]'],
    ['INT8', [-128, 127], '[-128,127]'],
    ['UINT16', [65535, 1], '[65535,1]'],
    ['INT16', [-32768, 5], '[-32768,5]'],
    ['UINT32', [4294967295, 0], '[4294967295,0]'],
    ['INT32', [[-1], [2]], '[-1,2]'],
    ['INT64', ['-9223372036854775808', 9007199254740991], '[-9223372036854775808,9007199254740991]'],
    ['UINT64', ['18446744073709551615', 0], '[18446744073709551615,0]'],
    ['FP16', [1.5, -0.25], '[1.5,-0.25]'],
    ['BF16', [2, -8], '[2,-8]'],
    ['FP32', [0.5, 'NaN'], '[0.5,"NaN"]'],
    ['FP64', [0.1, -1e300], '[0.1,-1e+300]'],
    ['BYTES', ['héllo', ''], '["héllo",""]'],
  ];
  for (const [dt, data, text] of cases) {
    const raw = jsonToRaw(datatypeInfo(dt)!, 2, data, dt);
    assert.equal(rawToJsonText(datatypeInfo(dt)!.name, raw), text, dt);
  }
  assert.throws(() => jsonToRaw(datatypeInfo('INT8')!, 1, [128], 'x'), /not a valid INT8/);
  assert.throws(() => jsonToRaw(datatypeInfo('INT32')!, 2, [1], 'x'), /has 1 elements, shape needs 2/);
  assert.throws(() => jsonToRaw(datatypeInfo('BOOL')!, 1, [1], 'x'), /true or false/);
});

function body(doc: object, ...binary: Buffer[]): { body: Buffer; header: string } {
  const json = Buffer.from(JSON.stringify(doc));
  return { body: Buffer.concat([json, ...binary]), header: String(json.length) };
}

test('binary tensor extension: inputs taken from the binary part, by binary_data_size', () => {
  const a = Buffer.alloc(64, 1);
  const s = encodeBytesElements([Buffer.from([0, 255, 7])]);
  const { body: b, header } = body(
    {
      id: 'q',
      parameters: { binary_data_output: true, priority: 2 },
      inputs: [
        { name: 'A', datatype: 'INT32', shape: [1, 16], parameters: { binary_data_size: 64 } },
        { name: 'S', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: s.length } },
        { name: 'J', datatype: 'FP32', shape: [2], data: [1, 2] },
      ],
      outputs: [{ name: 'OUT', parameters: { binary_data: false } }],
    },
    a,
    s,
  );
  const r = parseRestInferRequest(b, header, 'm', '2');
  assert.equal(r.id, 'q');
  assert.equal(r.binaryOutputs.all, true);
  assert.equal(r.binaryOutputs.byName.get('OUT'), false);
  const msg = decodeMessage<ModelInferRequestMsg>('ModelInferRequest', r.proto);
  assert.equal(msg.modelName, 'm');
  assert.equal(msg.modelVersion, '2');
  assert.deepEqual(Object.keys(msg.parameters ?? {}), ['priority']); // HTTP-only keys stay behind
  assert.deepEqual(Buffer.from(msg.rawInputContents[0]!), a);
  assert.deepEqual(Buffer.from(msg.rawInputContents[1]!), s);
  assert.deepEqual([...new Float32Array(new Uint8Array(msg.rawInputContents[2]!).buffer)], [1, 2]);
});

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof InferenceError, String(err));
    return err.code;
  }
}

test('REST request errors: each with its own code', () => {
  const input = { name: 'A', datatype: 'INT32', shape: [4] };
  assert.equal(codeOf(() => parseRestInferRequest(Buffer.from('{"inputs": ['), undefined, 'm', '')), 'SLUICE_ERR_MALFORMED_JSON');
  const ok = body({ inputs: [{ ...input, parameters: { binary_data_size: 16 } }] }, Buffer.alloc(16));
  assert.equal(codeOf(() => parseRestInferRequest(ok.body, ok.header, 'm', '')), undefined);
  assert.equal(codeOf(() => parseRestInferRequest(ok.body, String(ok.body.length + 1), 'm', '')), 'SLUICE_ERR_BINARY_HEADER');
  assert.equal(codeOf(() => parseRestInferRequest(ok.body, 'abc', 'm', '')), 'SLUICE_ERR_BINARY_HEADER');
  const short = body({ inputs: [{ ...input, parameters: { binary_data_size: 16 } }] }, Buffer.alloc(12));
  assert.equal(codeOf(() => parseRestInferRequest(short.body, short.header, 'm', '')), 'SLUICE_ERR_BINARY_HEADER');
  const extra = body({ inputs: [{ ...input, parameters: { binary_data_size: 16 } }] }, Buffer.alloc(20));
  assert.equal(codeOf(() => parseRestInferRequest(extra.body, extra.header, 'm', '')), 'SLUICE_ERR_BINARY_HEADER');
  const wrongSize = body({ inputs: [{ ...input, parameters: { binary_data_size: 12 } }] }, Buffer.alloc(12));
  assert.equal(codeOf(() => parseRestInferRequest(wrongSize.body, wrongSize.header, 'm', '')), 'SLUICE_ERR_TENSOR_SIZE');
  const unknown = body({ inputs: [{ ...input, datatype: 'FLOAT', data: [1, 2, 3, 4] }] });
  assert.equal(codeOf(() => parseRestInferRequest(unknown.body, undefined, 'm', '')), 'SLUICE_ERR_UNKNOWN_DATATYPE');
  const count = body({ inputs: [{ ...input, data: [1, 2, 3] }] });
  assert.equal(codeOf(() => parseRestInferRequest(count.body, undefined, 'm', '')), 'SLUICE_ERR_TENSOR_SIZE');
  const shape = body({ inputs: [{ ...input, shape: [-4], data: [1, 2, 3, 4] }] });
  assert.equal(codeOf(() => parseRestInferRequest(shape.body, undefined, 'm', '')), 'SLUICE_ERR_BAD_REQUEST');
});

test('arbitrary bodies and header values fail only with typed errors', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.option(fc.string({ maxLength: 6 }), { nil: undefined }), (bytes, header) => {
      codeOf(() => parseRestInferRequest(Buffer.from(bytes), header, 'm', ''));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.json({ maxDepth: 4 }), fc.nat({ max: 20 }), (json, extra) => {
      const b = Buffer.concat([Buffer.from(json), Buffer.alloc(extra)]);
      codeOf(() => parseRestInferRequest(b, String(json.length), 'm', ''));
    }),
    { numRuns: 1000 },
  );
});

test('responses: JSON data, binary outputs with binary_data_size, exact INT64', () => {
  const res = encodeMessage('ModelInferResponse', {
    modelName: 'm',
    modelVersion: '1',
    id: 'q',
    outputs: [
      { name: 'A', datatype: 'INT64', shape: [1] },
      { name: 'B', datatype: 'FP32', shape: [2] },
    ],
    rawOutputContents: [Buffer.from(new BigInt64Array([-(2n ** 62n) - 1n]).buffer), Buffer.from(new Float32Array([1.5, 2]).buffer)],
  });
  const json = formatRestInferResponse(res, { all: false, byName: new Map() });
  assert.deepEqual(json.binary, []);
  assert.equal(
    json.json,
    '{"model_name":"m","model_version":"1","id":"q","outputs":[{"name":"A","datatype":"INT64","shape":[1],"data":[-4611686018427387905]},{"name":"B","datatype":"FP32","shape":[2],"data":[1.5,2]}]}',
  );
  const bin = formatRestInferResponse(res, { all: false, byName: new Map([['B', true]]) });
  assert.equal(bin.binary.length, 1);
  assert.deepEqual([...new Float32Array(new Uint8Array(bin.binary[0]!).buffer)], [1.5, 2]);
  const doc = JSON.parse(bin.json) as { outputs: { parameters?: { binary_data_size: number }; data?: unknown }[] };
  assert.equal(doc.outputs[1]!.parameters!.binary_data_size, 8);
  assert.equal(doc.outputs[1]!.data, undefined);
});
