// End to end through two sluice processes (ingress and egress, linked by the encrypted
// inference segment) and the reference model server in a third: gRPC, HTTP (JSON and binary
// tensors) and WebSocket, every reference model and datatype, and every bad-input case.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { denseWeights } from '../../src/models/dense-model.ts';
import { type CallFailure, KserveClient } from '../helpers/kserve-client.ts';
import { float32Of, int32Of, int32Raw, sampleTensors } from '../helpers/tensors.ts';
import { startTopology, type Topology } from './topology.ts';

let topo: Topology;
let client: KserveClient;

before(async () => {
  topo = await startTopology();
  client = new KserveClient(topo.grpc);
});

after(async () => {
  client?.close();
  await topo?.stop();
});

const A = Array.from({ length: 16 }, (_, i) => i * 7 - 50);
const B = Array.from({ length: 16 }, (_, i) => 3 - i * i);
const DENSE = { k: 16, n: 4, seed: 99 };

async function failure(p: Promise<unknown>): Promise<CallFailure> {
  try {
    await p;
  } catch (err) {
    return err as CallFailure;
  }
  throw new Error('expected the call to fail');
}

interface HttpResult {
  status: number;
  headers: Headers;
  body: Buffer;
  json: () => Record<string, unknown>;
}

async function http(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}, base = topo.http): Promise<HttpResult> {
  const res = await fetch(`http://${base}${path}`, { method, body, headers, signal: AbortSignal.timeout(20_000) });
  const buf = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString()) as Record<string, unknown> };
}

function assertProblem(r: HttpResult, status: number, type: string, detail: RegExp): Record<string, unknown> {
  assert.equal(r.status, status, r.body.toString());
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  const p = r.json();
  assert.equal(p.status, status);
  assert.equal(p.type, `urn:sluice:problem:${type}`);
  assert.equal(typeof p.title, 'string');
  assert.match(String(p.detail), detail);
  assert.equal(typeof p.instance, 'string');
  assert.equal(p.request_id, r.headers.get('x-request-id'));
  return p;
}

describe('gRPC through the sluice pair', () => {
  test('simple: typed and raw, request id from x-request-id and from traceparent', async () => {
    const typed = await client.infer(
      {
        modelName: 'simple',
        id: 'mine',
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: B } },
        ],
      },
      { requestId: 'e2e-grpc-1' },
    );
    assert.equal(typed.requestId, 'e2e-grpc-1');
    assert.equal(typed.response.id, 'mine');
    assert.deepEqual(typed.response.outputs[0]!.contents!.intContents, A.map((a, i) => a + B[i]!));
    assert.deepEqual(typed.response.outputs[1]!.contents!.intContents, A.map((a, i) => a - B[i]!));

    const md = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
    const raw = await client.call<{ rawOutputContents: Uint8Array[] }>(
      'ModelInfer',
      {
        modelName: 'simple',
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
        ],
        rawInputContents: [int32Raw(A), int32Raw(B)],
      },
      { metadata: md },
    );
    assert.equal(raw.requestId, '0af7651916cd43dd8448eb211c80319c');
    assert.deepEqual(int32Of(raw.response.rawOutputContents[0]!), A.map((a, i) => a + B[i]!));
  });

  test('identity: every datatype, raw (incl. BYTES and FP16) and typed BYTES', async () => {
    for (const t of sampleTensors()) {
      const { response } = await client.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: t.datatype, shape: t.shape }], rawInputContents: [t.raw] });
      assert.equal(response.outputs[0]!.datatype, t.datatype);
      assert.deepEqual(response.outputs[0]!.shape.map(Number), t.shape);
      assert.deepEqual(Buffer.from(response.rawOutputContents[0]!), t.raw, t.datatype);
    }
    const { response } = await client.infer({
      modelName: 'identity',
      inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [3], contents: { bytesContents: [Buffer.from('a'), Buffer.from([0, 1, 255]), Buffer.alloc(0)] } }],
    });
    assert.deepEqual(response.outputs[0]!.contents!.bytesContents!.map((b) => [...b]), [[97], [0, 1, 255], []]);
  });

  test('dense: x . W computed by the model server behind the egress', async () => {
    const x = Float32Array.from({ length: 3 * DENSE.k }, (_, i) => Math.sin(i));
    const { response } = await client.infer({ modelName: 'dense', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [3, DENSE.k] }], rawInputContents: [Buffer.from(x.buffer)] });
    const w = denseWeights(DENSE.k, DENSE.n, DENSE.seed);
    const y = float32Of(response.rawOutputContents[0]!);
    for (let r = 0; r < 3; r++) {
      for (let j = 0; j < DENSE.n; j++) {
        let s = 0;
        for (let i = 0; i < DENSE.k; i++) s += x[r * DENSE.k + i]! * w[i * DENSE.n + j]!;
        assert.ok(Math.abs(y[r * DENSE.n + j]! - s) < 1e-4);
      }
    }
  });

  test('ModelStreamInfer: answers carry the request ids, errors in error_message', async () => {
    const reqs = Array.from({ length: 6 }, (_, i) => ({
      modelName: i === 3 ? 'nope' : 'identity',
      id: `s${i}`,
      inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], contents: { intContents: [i] } }],
    }));
    const out = await client.stream(reqs);
    assert.equal(out.length, 6);
    for (const m of out) {
      const id = m.inferResponse!.id;
      if (id === 's3') assert.match(m.errorMessage, /unknown model 'nope'/);
      else {
        assert.equal(m.errorMessage, '');
        assert.deepEqual(m.inferResponse!.outputs[0]!.contents!.intContents, [Number(id.slice(1))]);
      }
    }
  });

  test('server and model metadata, readiness', async () => {
    const meta = await client.call<{ name: string; extensions: string[] }>('ServerMetadata', {});
    assert.equal(meta.response.name, 'ingress');
    assert.ok(meta.response.extensions.includes('binary_tensor_data'));
    assert.equal((await client.call<{ live: boolean }>('ServerLive', {})).response.live, true);
    assert.equal((await client.call<{ ready: boolean }>('ServerReady', {})).response.ready, true);
    const mm = await client.call<{ name: string; outputs: { name: string }[] }>('ModelMetadata', { name: 'simple' });
    assert.deepEqual(mm.response.outputs.map((o) => o.name), ['OUTPUT0', 'OUTPUT1']);
    assert.equal((await client.call<{ ready: boolean }>('ModelReady', { name: 'dense' })).response.ready, true);
    assert.equal((await client.call<{ ready: boolean }>('ModelReady', { name: 'nope' })).response.ready, false);
    assert.equal((await client.call<{ ready: boolean }>('ModelReady', { name: 'orphan' })).response.ready, false);
  });

  test('bad input: each a clear status with x-request-id in the trailers', async () => {
    const nf = await failure(client.infer({ modelName: 'nope', inputs: [] }, { requestId: 'bad-1' }));
    assert.deepEqual([nf.code, nf.requestId], [grpc.status.NOT_FOUND, 'bad-1']);
    assert.match(nf.details, /unknown model 'nope'/);

    const size = await failure(client.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, 2] }], rawInputContents: [Buffer.alloc(12)] }, { requestId: 'bad-2' }));
    assert.deepEqual([size.code, size.requestId], [grpc.status.INVALID_ARGUMENT, 'bad-2']);
    assert.match(size.details, /needs 16 bytes; raw_input_contents\[0\] has 12/);

    const dt = await failure(client.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP12', shape: [1] }], rawInputContents: [Buffer.alloc(2)] }));
    assert.equal(dt.code, grpc.status.INVALID_ARGUMENT);
    assert.match(dt.details, /unknown datatype 'FP12'/);

    const t0 = Date.now();
    const down = await failure(client.infer({ modelName: 'ghost', inputs: [] }));
    assert.equal(down.code, grpc.status.UNAVAILABLE);
    assert.match(down.details, /model server .* is unavailable/);
    const orphan = await failure(client.infer({ modelName: 'orphan', inputs: [] }));
    assert.equal(orphan.code, grpc.status.UNAVAILABLE);
    assert.match(orphan.details, /no live link to egress peer/);
    assert.ok(Date.now() - t0 < 3000, 'unavailable answers come quickly');

    const slowStart = Date.now();
    const slow = await failure(
      client.infer(
        { modelName: 'identity', parameters: { delay_ms: { int64Param: 3000 } }, inputs: [{ name: 'INPUT0', datatype: 'INT8', shape: [1], contents: { intContents: [1] } }] },
        { timeoutMs: 300 },
      ),
    );
    assert.equal(slow.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - slowStart < 2000);
  });

  test('malformed protobuf bytes are INVALID_ARGUMENT, not a crash', async () => {
    const raw = new grpc.Client(topo.grpc, grpc.credentials.createInsecure());
    try {
      const f = await new Promise<grpc.ServiceError>((resolve) => {
        raw.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0x50, 0x41]), (err) => resolve(err!));
      });
      assert.equal(f.code, grpc.status.INVALID_ARGUMENT);
      assert.match(f.details, /malformed protobuf/);
    } finally {
      raw.close();
    }
  });

  test('oversize message: RESOURCE_EXHAUSTED at the configured limit', async () => {
    const small = new KserveClient(topo.smallGrpc);
    try {
      const big = await failure(small.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [2 << 20] }], rawInputContents: [Buffer.alloc(2 << 20)] }));
      assert.equal(big.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(big.details, /larger than max/);
      const ok = await small.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [1000] }], rawInputContents: [Buffer.alloc(1000, 3)] });
      assert.equal(ok.response.rawOutputContents[0]!.length, 1000);
    } finally {
      small.close();
    }
  });

  test('a 64 MiB FP32 tensor crosses with the limit raised', async () => {
    const n = (64 << 20) / 4;
    const data = Buffer.alloc(64 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    const { response } = await client.infer(
      { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [n] }], rawInputContents: [data] },
      { timeoutMs: 60_000 },
    );
    const out = Buffer.from(response.rawOutputContents[0]!);
    assert.equal(out.length, data.length);
    assert.ok(out.equals(data));
  });
});

const simpleJson = {
  id: 'h1',
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: [A] },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: B },
  ],
};

describe('HTTP through the sluice pair', () => {
  test('simple as JSON; x-request-id echoed', async () => {
    const r = await http('POST', '/v2/models/simple/infer', JSON.stringify(simpleJson), { 'content-type': 'application/json', 'x-request-id': 'http-1' });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers.get('x-request-id'), 'http-1');
    const j = r.json() as { id: string; model_name: string; outputs: { name: string; data: number[]; shape: number[] }[] };
    assert.equal(j.id, 'h1');
    assert.equal(j.model_name, 'simple');
    assert.deepEqual(j.outputs[0]!.data, A.map((a, i) => a + B[i]!));
    assert.deepEqual(j.outputs[1]!.data, A.map((a, i) => a - B[i]!));
    assert.deepEqual(j.outputs[0]!.shape, [1, 16]);
  });

  test('identity: every datatype as JSON and as binary tensors, in and out', async () => {
    for (const t of sampleTensors()) {
      const js = await http('POST', '/v2/models/identity/infer', JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: t.datatype, shape: t.shape, data: t.json }] }));
      assert.equal(js.status, 200, `${t.datatype}: ${js.body.toString()}`);
      const out = (js.json() as { outputs: { datatype: string; data: unknown[] }[] }).outputs[0]!;
      assert.equal(out.datatype, t.datatype);
      assert.deepEqual(out.data, t.json, t.datatype);

      const header = Buffer.from(
        JSON.stringify({
          inputs: [{ name: 'INPUT0', datatype: t.datatype, shape: t.shape, parameters: { binary_data_size: t.raw.length } }],
          parameters: { binary_data_output: true },
        }),
      );
      const bin = await http('POST', '/v2/models/identity/infer', Buffer.concat([header, t.raw]), {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      });
      assert.equal(bin.status, 200, `${t.datatype}: ${bin.body.toString()}`);
      const hl = Number(bin.headers.get('inference-header-content-length'));
      const doc = JSON.parse(bin.body.subarray(0, hl).toString()) as { outputs: { parameters: { binary_data_size: number } }[] };
      assert.equal(doc.outputs[0]!.parameters.binary_data_size, t.raw.length);
      assert.deepEqual(bin.body.subarray(hl), t.raw, t.datatype);
    }
  });

  test('dense as JSON', async () => {
    const x = Array.from({ length: DENSE.k }, (_, i) => i / 4);
    const r = await http('POST', '/v2/models/dense/versions/1/infer', JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, DENSE.k], data: x }] }));
    assert.equal(r.status, 200, r.body.toString());
    const y = (r.json() as { outputs: { data: number[] }[] }).outputs[0]!.data;
    const w = denseWeights(DENSE.k, DENSE.n, DENSE.seed);
    y.forEach((v, j) => {
      let s = 0;
      for (let i = 0; i < DENSE.k; i++) s += x[i]! * w[i * DENSE.n + j]!;
      assert.ok(Math.abs(v - s) < 1e-4);
    });
  });

  test('metadata, health and readiness endpoints', async () => {
    assert.equal((await http('GET', '/v2/health/live')).status, 200);
    assert.equal((await http('GET', '/v2/health/ready')).status, 200);
    const server = (await http('GET', '/v2')).json();
    assert.equal(server.name, 'ingress');
    const m = await http('GET', '/v2/models/simple');
    assert.equal(m.status, 200);
    assert.deepEqual((m.json() as { inputs: { name: string; datatype: string; shape: number[] }[] }).inputs[0], { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] });
    assert.equal((await http('GET', '/v2/models/identity/ready')).status, 200);
    assertProblem(await http('GET', '/v2/models/nope/ready'), 503, 'not-ready', /not ready/);
    assertProblem(await http('GET', '/v2/models/nope'), 404, 'model-not-found', /unknown model 'nope'/);
  });

  test('bad input: every HTTP error is an RFC 7807 problem with the request id', async () => {
    const p = assertProblem(await http('POST', '/v2/models/nope/infer', JSON.stringify(simpleJson), { 'x-request-id': 'http-404' }), 404, 'model-not-found', /unknown model 'nope'/);
    assert.equal(p.request_id, 'http-404');
    assert.equal(p.instance, '/v2/models/nope/infer');
    assertProblem(await http('POST', '/v2/models/simple/infer', '{"inputs": [', {}), 400, 'malformed-json', /not valid JSON/);
    assertProblem(
      await http('POST', '/v2/models/simple/infer', JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: [1, 2] }] })),
      400,
      'tensor-size',
      /has 2 elements, shape needs 16/,
    );
    assertProblem(
      await http('POST', '/v2/models/identity/infer', JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1], datatype: 'COMPLEX64', data: [1] }] })),
      400,
      'unknown-datatype',
      /unknown datatype 'COMPLEX64'/,
    );
    const hdr = Buffer.from(JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [4], datatype: 'FP32', parameters: { binary_data_size: 16 } }] }));
    assertProblem(
      await http('POST', '/v2/models/identity/infer', Buffer.concat([hdr, Buffer.alloc(16)]), { 'inference-header-content-length': String(hdr.length + 100) }),
      400,
      'binary-header',
      /Inference-Header-Content-Length is \d+ but the body has only \d+ bytes/,
    );
    assertProblem(
      await http('POST', '/v2/models/identity/infer', Buffer.concat([hdr, Buffer.alloc(15)]), { 'inference-header-content-length': String(hdr.length) }),
      400,
      'binary-header',
      /runs past the body/,
    );
    const t0 = Date.now();
    assertProblem(await http('POST', '/v2/models/ghost/infer', JSON.stringify({ inputs: [] })), 503, 'upstream-unavailable', /unavailable/);
    assertProblem(await http('POST', '/v2/models/orphan/infer', JSON.stringify({ inputs: [] })), 503, 'peer-unavailable', /no live link/);
    assert.ok(Date.now() - t0 < 3000);
    const slow = Date.now();
    assertProblem(
      await http(
        'POST',
        '/v2/models/identity/infer',
        JSON.stringify({ parameters: { delay_ms: 3000 }, inputs: [{ name: 'INPUT0', shape: [1], datatype: 'INT8', data: [1] }] }),
        { 'x-request-timeout-ms': '300' },
      ),
      504,
      'deadline-exceeded',
      /deadline/,
    );
    assert.ok(Date.now() - slow < 2000);
    assertProblem(await http('POST', '/v2/models/simple/infer', Buffer.alloc(2 << 20, 0x20), {}, topo.smallHttp), 413, 'too-large', /exceeds the limit of 1048576 bytes/);
    assertProblem(await http('GET', '/v3/whatever'), 404, 'not-found', /no such endpoint/);
    assertProblem(await http('GET', '/v2/models/simple/infer'), 405, 'method-not-allowed', /GET is not allowed/);
    assertProblem(await http('POST', '/v2/models/simple/infer', '{}', { 'x-request-timeout-ms': 'soon' }), 400, 'bad-request', /whole number of milliseconds/);
  });
});

describe('WebSocket stream through the sluice pair', () => {
  test('one request per message; answers carry the request ids', async () => {
    const ws = new WebSocket(`ws://${topo.http}/v2/models/identity/infer/stream`, { headers: { 'x-request-id': 'ws-base' } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const tensors = sampleTensors();
    const answers = new Map<string, Record<string, unknown>>();
    const done = new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString()) as Record<string, unknown>;
        answers.set(String(m.id), m);
        if (answers.size === tensors.length + 2) resolve();
      });
      ws.once('error', reject);
      setTimeout(() => reject(new Error(`only ${answers.size} answers`)), 15_000).unref();
    });
    tensors.forEach((t, i) => ws.send(JSON.stringify({ id: `t${i}`, inputs: [{ name: 'INPUT0', datatype: t.datatype, shape: t.shape, data: t.json }] })));
    ws.send(JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [2], data: [7, 8] }] })); // no id: gets the request id
    ws.send('{"inputs": [ not json');
    await done;
    ws.close();
    tensors.forEach((t, i) => {
      const a = answers.get(`t${i}`) as { outputs: { datatype: string; data: unknown[] }[] };
      assert.equal(a.outputs[0]!.datatype, t.datatype);
      assert.deepEqual(a.outputs[0]!.data, t.json, t.datatype);
    });
    const generated = [...answers.keys()].filter((k) => k.startsWith('ws-base:'));
    assert.equal(generated.length, 2);
    const problems = generated.map((k) => answers.get(k)!).filter((m) => m.status !== undefined);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.type, 'urn:sluice:problem:malformed-json');
    assert.equal(problems[0]!.request_id, problems[0]!.id);
  });

  test('dense over WebSocket', async () => {
    const ws = new WebSocket(`ws://${topo.http}/v2/models/dense/infer/stream`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const x = Array.from({ length: 2 * DENSE.k }, (_, i) => (i % 7) - 3);
    const got = new Promise<Record<string, unknown>>((resolve) => ws.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
    ws.send(JSON.stringify({ id: 'd', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [2, DENSE.k], data: x }] }));
    const m = (await got) as { id: string; outputs: { shape: number[]; data: number[] }[] };
    ws.close();
    assert.equal(m.id, 'd');
    assert.deepEqual(m.outputs[0]!.shape, [2, DENSE.n]);
    const w = denseWeights(DENSE.k, DENSE.n, DENSE.seed);
    m.outputs[0]!.data.forEach((v, o) => {
      const r = Math.floor(o / DENSE.n);
      const j = o % DENSE.n;
      let s = 0;
      for (let i = 0; i < DENSE.k; i++) s += x[r * DENSE.k + i]! * w[i * DENSE.n + j]!;
      assert.ok(Math.abs(v - s) < 1e-4);
    });
  });

  test('simple over WebSocket, and an unknown model answered with a problem', async () => {
    const ws = new WebSocket(`ws://${topo.http}/v2/models/simple/infer/stream`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const got = new Promise<Record<string, unknown>>((resolve) => ws.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
    ws.send(JSON.stringify(simpleJson));
    const m = (await got) as { id: string; outputs: { data: number[] }[] };
    assert.equal(m.id, 'h1');
    assert.deepEqual(m.outputs[0]!.data, A.map((a, i) => a + B[i]!));
    ws.close();

    const ws2 = new WebSocket(`ws://${topo.http}/v2/models/nope/infer/stream`);
    await new Promise<void>((resolve) => ws2.once('open', () => resolve()));
    const got2 = new Promise<Record<string, unknown>>((resolve) => ws2.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()) as Record<string, unknown>)));
    ws2.send(JSON.stringify({ id: 'q', inputs: [] }));
    const p = await got2;
    assert.equal(p.id, 'q');
    assert.equal(p.status, 404);
    assert.equal(p.type, 'urn:sluice:problem:model-not-found');
    ws2.close();
  });
});

describe('logs', () => {
  test('ingress and egress log failed requests with the same request id', async () => {
    await failure(client.infer({ modelName: 'ghost', inputs: [] }, { requestId: 'log-me-1' }));
    // The request's outcome line (a retry on another peer logs a line of its own first). Log
    // lines come through the children's stdout, after the answer: wait for them (bounded).
    const find = () => ({
      ing: topo.ingress.logs.find((l) => l.request_id === 'log-me-1' && l.code !== undefined),
      egr: topo.egress.logs.find((l) => l.request_id === 'log-me-1'),
    });
    for (let i = 0; i < 100 && (find().ing === undefined || find().egr === undefined); i++) await new Promise((r) => setTimeout(r, 50));
    const { ing, egr } = find();
    assert.ok(ing, 'ingress log line');
    assert.ok(egr, 'egress log line');
    assert.equal(ing.code, 'SLUICE_ERR_UPSTREAM_UNAVAILABLE');
  });
});
