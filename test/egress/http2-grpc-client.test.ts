// The egress's gRPC client (node:http2) against the reference model server (grpc-js): answers,
// statuses from trailers and trailers-only responses, deadlines, cancellation, a dead upstream,
// and the response size limit.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type GrpcCallError, grpcTimeoutHeader, Http2GrpcClient } from '../../src/egress/http2-grpc-client.ts';
import { METHODS } from '../../src/kserve/grpc-service.ts';
import { decodeMessage, encodeMessage, type ModelInferResponseMsg } from '../../src/kserve/proto.ts';
import { ModelServer } from '../../src/models/model-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { closedPort } from '../../scripts/sluice-child.ts';

let server: ModelServer;
let address: string;
const INFER = METHODS.ModelInfer.path;

before(async () => {
  server = new ModelServer({
    host: '127.0.0.1',
    port: 0,
    models: ['identity'],
    dense: { k: 1, n: 1, seed: 1, maxBatch: 1 },
    maxMessageBytes: 8 << 20,
    maxDelayMs: 5000,
    logger: createLogger('silent', 'test'),
  });
  address = `127.0.0.1:${await server.start()}`;
});

after(() => server.stop(100));

function identity(bytes: number, delayMs = 0): Buffer {
  return encodeMessage('ModelInferRequest', {
    modelName: 'identity',
    ...(delayMs > 0 ? { parameters: { delay_ms: { int64Param: delayMs } } } : {}),
    inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [bytes] }],
    rawInputContents: [Buffer.alloc(bytes, 9)],
  });
}

async function failure(p: Promise<unknown>): Promise<GrpcCallError> {
  try {
    await p;
  } catch (err) {
    return err as GrpcCallError;
  }
  throw new Error('expected a failure');
}

test('grpc-timeout header format', () => {
  assert.equal(grpcTimeoutHeader(0.3), '1m');
  assert.equal(grpcTimeoutHeader(1500), '1500m');
  assert.equal(grpcTimeoutHeader(2e8), '200000S');
});

test('a call returns the serialized response; many calls share one connection', async () => {
  const c = new Http2GrpcClient(address, { maxMessageBytes: 1 << 20 });
  try {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => c.unary(INFER, identity(100 + i), Date.now() + 5000, { 'x-request-id': `r${i}` }).result));
    results.forEach((r, i) => {
      const msg = decodeMessage<ModelInferResponseMsg>('ModelInferResponse', r);
      assert.equal(msg.rawOutputContents[0]!.length, 100 + i);
    });
  } finally {
    c.close();
  }
});

test('error statuses come through with their details', async () => {
  const c = new Http2GrpcClient(address, { maxMessageBytes: 1 << 20 });
  try {
    const nf = await failure(c.unary(INFER, encodeMessage('ModelInferRequest', { modelName: 'nope' }), Date.now() + 5000, {}).result);
    assert.deepEqual(nf, { status: 5, details: "unknown model 'nope'" });
    const bad = await failure(c.unary(INFER, Buffer.from([0x0a, 0x05, 1]), Date.now() + 5000, {}).result);
    assert.notEqual(bad.status, 0);
  } finally {
    c.close();
  }
});

test('deadline, cancel, size limit and a dead upstream', async () => {
  const c = new Http2GrpcClient(address, { maxMessageBytes: 1000 });
  try {
    const t0 = Date.now();
    assert.equal((await failure(c.unary(INFER, identity(10, 2000), Date.now() + 150, {}).result)).status, 4);
    assert.ok(Date.now() - t0 < 1000);
    const call = c.unary(INFER, identity(10, 2000), Date.now() + 5000, {});
    setTimeout(() => call.cancel(), 50);
    assert.equal((await failure(call.result)).status, 1);
    assert.equal((await failure(c.unary(INFER, identity(5000), Date.now() + 5000, {}).result)).status, 8);
    assert.equal((await c.unary(INFER, identity(10), Date.now() + 5000, {}).result).length > 0, true);
  } finally {
    c.close();
  }
  const dead = new Http2GrpcClient(`127.0.0.1:${await closedPort()}`, { maxMessageBytes: 1000 });
  try {
    const t0 = Date.now();
    const f = await failure(dead.unary(INFER, identity(1), Date.now() + 5000, {}).result);
    assert.equal(f.status, 14);
    assert.match(f.details, /ECONNREFUSED/);
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    dead.close();
  }
});
