// The reference model server over real gRPC on loopback: the three models, typed and raw
// contents, every datatype through identity, streaming, errors, and the delay parameter.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { denseWeights } from '../../src/models/dense-model.ts';
import { ModelServer } from '../../src/models/model-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { type CallFailure, KserveClient } from '../helpers/kserve-client.ts';
import { float32Of, int32Of, int32Raw, sampleTensors } from '../helpers/tensors.ts';

let server: ModelServer;
let client: KserveClient;
const dense = { k: 8, n: 3, seed: 7, maxBatch: 16 };

before(async () => {
  server = new ModelServer({
    host: '127.0.0.1',
    port: 0,
    models: ['simple', 'identity', 'dense'],
    dense,
    maxMessageBytes: 8 * 1024 * 1024,
    maxDelayMs: 5000,
    logger: createLogger('silent', 'test'),
  });
  const port = await server.start();
  client = new KserveClient(`127.0.0.1:${port}`);
});

after(async () => {
  client.close();
  await server.stop(100);
});

const a = Array.from({ length: 16 }, (_, i) => i * 3 - 7);
const b = Array.from({ length: 16 }, (_, i) => 100 - i);

test('simple, typed contents in, typed contents out', async () => {
  const { response, requestId } = await client.infer(
    {
      modelName: 'simple',
      id: 'req-1',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: a } },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: b } },
      ],
    },
    { requestId: 'trace-me' },
  );
  assert.equal(requestId, 'trace-me');
  assert.equal(response.id, 'req-1');
  assert.equal(response.modelName, 'simple');
  assert.deepEqual(response.outputs.map((o) => o.name), ['OUTPUT0', 'OUTPUT1']);
  assert.deepEqual(response.outputs[0]!.contents!.intContents, a.map((x, i) => x + b[i]!));
  assert.deepEqual(response.outputs[1]!.contents!.intContents, a.map((x, i) => x - b[i]!));
  assert.equal(response.rawOutputContents.length, 0);
});

test('simple, raw in, raw out, with a requested output subset', async () => {
  const { response } = await client.infer({
    modelName: 'simple',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    outputs: [{ name: 'OUTPUT1' }],
    rawInputContents: [int32Raw(a), int32Raw(b)],
  });
  assert.deepEqual(response.outputs.map((o) => o.name), ['OUTPUT1']);
  assert.deepEqual(int32Of(response.rawOutputContents[0]!), a.map((x, i) => x - b[i]!));
});

test('identity returns every datatype bit for bit, raw and typed', async () => {
  for (const t of sampleTensors()) {
    const { response } = await client.infer({
      modelName: 'identity',
      inputs: [{ name: 'INPUT0', datatype: t.datatype, shape: t.shape }],
      rawInputContents: [t.raw],
    });
    assert.equal(response.outputs[0]!.datatype, t.datatype);
    assert.deepEqual(response.outputs[0]!.shape.map(Number), t.shape);
    assert.deepEqual(Buffer.from(response.rawOutputContents[0]!), t.raw, t.datatype);
  }
  const { response } = await client.infer({
    modelName: 'identity',
    inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [2], contents: { bytesContents: [Buffer.from('a'), Buffer.from([0, 255])] } }],
  });
  assert.deepEqual(response.outputs[0]!.contents!.bytesContents!.map((x) => [...x]), [[97], [0, 255]]);
});

test('dense computes x . W with the seeded weights', async () => {
  const x = Float32Array.from({ length: 2 * dense.k }, (_, i) => (i % 5) - 2);
  const { response } = await client.infer({
    modelName: 'dense',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, dense.k] }],
    rawInputContents: [Buffer.from(x.buffer)],
  });
  const w = denseWeights(dense.k, dense.n, dense.seed);
  const got = float32Of(response.rawOutputContents[0]!);
  assert.deepEqual(response.outputs[0]!.shape.map(Number), [2, dense.n]);
  for (let r = 0; r < 2; r++) {
    for (let j = 0; j < dense.n; j++) {
      let s = 0;
      for (let i = 0; i < dense.k; i++) s += x[r * dense.k + i]! * w[i * dense.n + j]!;
      assert.ok(Math.abs(got[r * dense.n + j]! - s) < 1e-5, `row ${r} col ${j}: ${got[r * dense.n + j]} vs ${s}`);
    }
  }
});

async function failure(p: Promise<unknown>): Promise<CallFailure> {
  try {
    await p;
  } catch (err) {
    return err as CallFailure;
  }
  throw new Error('expected the call to fail');
}

test('errors: unknown model, wrong shape, byte length mismatch', async () => {
  const nf = await failure(client.infer({ modelName: 'nope', inputs: [] }, { requestId: 'r-404' }));
  assert.equal(nf.code, 5);
  assert.match(nf.details, /unknown model 'nope'/);
  assert.equal(nf.requestId, 'r-404');
  const shape = await failure(
    client.infer({
      modelName: 'simple',
      inputs: [
        { name: 'INPUT0', datatype: 'INT32', shape: [1, 8], contents: { intContents: a.slice(0, 8) } },
        { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: b } },
      ],
    }),
  );
  assert.equal(shape.code, 3);
  assert.match(shape.details, /must have shape \[1,16\]/);
  const size = await failure(
    client.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [4] }], rawInputContents: [Buffer.alloc(15)] }),
  );
  assert.equal(size.code, 3);
  assert.match(size.details, /needs 16 bytes, got 15/);
});

test('metadata and readiness', async () => {
  const { response } = await client.call<{ name: string; inputs: { name: string; datatype: string }[] }>('ModelMetadata', { name: 'simple' });
  assert.equal(response.name, 'simple');
  assert.deepEqual(response.inputs.map((i) => `${i.name}:${i.datatype}`), ['INPUT0:INT32', 'INPUT1:INT32']);
  assert.equal((await client.call<{ ready: boolean }>('ModelReady', { name: 'dense' })).response.ready, true);
  assert.equal((await client.call<{ ready: boolean }>('ModelReady', { name: 'nope' })).response.ready, false);
});

test('ModelStreamInfer answers each request, errors in error_message', async () => {
  const out = await client.stream([
    { modelName: 'identity', id: 's1', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], contents: { intContents: [5] } }] },
    { modelName: 'missing', id: 's2', inputs: [] },
  ]);
  assert.equal(out.length, 2);
  const byId = new Map(out.map((m) => [m.inferResponse!.id, m]));
  assert.equal(byId.get('s1')!.errorMessage, '');
  assert.deepEqual(byId.get('s1')!.inferResponse!.outputs[0]!.contents!.intContents, [5]);
  assert.match(byId.get('s2')!.errorMessage, /unknown model 'missing'/);
});

test('delay_ms makes a slow model; the client deadline cuts it off', async () => {
  const slow = {
    modelName: 'identity',
    parameters: { delay_ms: { int64Param: 400 } },
    inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], contents: { intContents: [1] } }],
  };
  const t0 = Date.now();
  const f = await failure(client.infer(slow, { timeoutMs: 100 }));
  assert.equal(f.code, 4);
  assert.ok(Date.now() - t0 < 350);
  const ok = await client.infer(slow, { timeoutMs: 2000 });
  assert.deepEqual(ok.response.outputs[0]!.contents!.intContents, [1]);
});
