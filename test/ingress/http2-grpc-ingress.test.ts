// The gRPC ingress on the lean node:http2 server, in a real node (ingress + egress + reference
// models in one process, a real loopback segment link), with grpc-js clients: malformed
// protobuf, unknown methods, oversized messages and deadlines get their gRPC statuses with
// x-request-id; grpc.health.v1 (hosted by grpc-js behind the relay) answers on the same port.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.ts';
import { MAX_STREAM_INFLIGHT } from '../../src/ingress/http2-grpc-ingress.ts';
import { METHODS } from '../../src/kserve/grpc-service.ts';
import { encodeMessage } from '../../src/kserve/proto.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { healthClientConstructor } from '../../src/telemetry/grpc-health.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { closedPort } from '../../scripts/sluice-child.ts';

const LIMIT = 256 * 1024;
let node: SluiceNode;
let client: grpc.Client;
const bytes = (b: Buffer): Buffer => b;

before(async () => {
  const seg = await closedPort();
  const models = await closedPort();
  const config = parseConfig({
    listeners: { grpc: { host: '127.0.0.1', port: 0 } },
    segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
    peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
    routes: [{ model: '*', peers: ['self'], upstreams: [{ address: `127.0.0.1:${models}` }] }],
    models: { listen: { host: '127.0.0.1', port: models }, models: ['identity'] },
    limits: { maxRequestBytes: LIMIT },
  });
  node = new SluiceNode({ config, logger: createLogger('silent', 'test'), transports: defaultTransports });
  await node.start();
  client = new grpc.Client(node.endpoints.grpc!, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 4 * LIMIT });
});

after(async () => {
  client.close();
  await node.stop(500);
});

interface Outcome {
  code: number;
  details: string;
  response: Buffer | undefined;
  requestId: string | undefined;
}

function call(path: string, req: Buffer, opts: { deadlineMs?: number; requestId?: string } = {}): Promise<Outcome> {
  const md = new grpc.Metadata();
  if (opts.requestId !== undefined) md.set('x-request-id', opts.requestId);
  return new Promise((resolve) => {
    let response: Buffer | undefined;
    let cbDone = false;
    let status: grpc.StatusObject | undefined;
    const settle = (): void => {
      if (cbDone && status !== undefined) resolve({ code: status.code, details: status.details, response, requestId: status.metadata.get('x-request-id')[0] as string | undefined });
    };
    const c = client.makeUnaryRequest(path, bytes, bytes, req, md, { deadline: Date.now() + (opts.deadlineMs ?? 5000) }, (_err, res) => {
      response = res;
      cbDone = true;
      settle();
    });
    c.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
  });
}

const identityRequest = (extra: object = {}): Buffer =>
  encodeMessage('ModelInferRequest', { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'INT8', shape: [4], contents: { intContents: [1, 2, 3, 4] } }], ...extra });

test('ModelInfer round trip through the lean server; x-request-id in the trailers', async () => {
  const r = await call(METHODS.ModelInfer.path, identityRequest(), { requestId: 'lean-1' });
  assert.equal(r.code, grpc.status.OK, r.details);
  assert.equal(r.requestId, 'lean-1');
  assert.ok(r.response !== undefined && r.response.length > 0);
});

test('malformed protobuf: INVALID_ARGUMENT with the request id', async () => {
  const r = await call(METHODS.ModelInfer.path, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]), { requestId: 'bad-proto' });
  assert.equal(r.code, grpc.status.INVALID_ARGUMENT);
  assert.match(r.details, /malformed protobuf/);
  assert.equal(r.requestId, 'bad-proto');
});

test('unknown method and unknown service: UNIMPLEMENTED', async () => {
  const a = await call('/inference.GRPCInferenceService/ModelTrain', Buffer.alloc(0));
  assert.equal(a.code, grpc.status.UNIMPLEMENTED);
  const b = await call('/no.such.Service/Call', Buffer.from('x'));
  assert.equal(b.code, grpc.status.UNIMPLEMENTED);
});

test('oversized message: RESOURCE_EXHAUSTED at limits.maxRequestBytes', async () => {
  const req = encodeMessage('ModelInferRequest', { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [LIMIT] }], rawInputContents: [Buffer.alloc(LIMIT)] });
  const r = await call(METHODS.ModelInfer.path, req);
  assert.equal(r.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(r.details, /larger than max/);
});

test('deadline: a model slower than grpc-timeout ends in DEADLINE_EXCEEDED near the deadline', async () => {
  const t0 = Date.now();
  const r = await call(METHODS.ModelInfer.path, identityRequest({ parameters: { delay_ms: { int64Param: 3000 } } }), { deadlineMs: 300 });
  assert.equal(r.code, grpc.status.DEADLINE_EXCEEDED);
  assert.ok(Date.now() - t0 < 2000, `answered after ${Date.now() - t0} ms`);
  for (let i = 0; i < 100 && node.inflight.egress > 0; i++) await new Promise((res) => setTimeout(res, 20));
  assert.equal(node.inflight.egress, 0, 'the egress cancelled its model server call');
});

test('grpc.health.v1 shares the port (relayed to grpc-js): Check and Watch', async () => {
  const Health = healthClientConstructor();
  const h = new Health(node.endpoints.grpc!, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>;
  try {
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      h.Check!({ service: '' }, { deadline: Date.now() + 3000 }, (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r))),
    );
    assert.equal(res.status, 'SERVING');
    const unknown = await new Promise<grpc.ServiceError>((resolve) => h.Check!({ service: 'nope' }, { deadline: Date.now() + 3000 }, (err: grpc.ServiceError) => resolve(err)));
    assert.equal(unknown.code, grpc.status.NOT_FOUND);
    const watch = h.Watch!({ service: '' }) as grpc.ClientReadableStream<{ status: string }>;
    const first = await new Promise<{ status: string }>((resolve) => watch.once('data', resolve));
    assert.equal(first.status, 'SERVING');
    watch.on('error', () => undefined);
    watch.cancel();
  } finally {
    h.close();
  }
});

test('ModelStreamInfer: at most MAX_STREAM_INFLIGHT requests in flight per stream; every one answered', async () => {
  const n = MAX_STREAM_INFLIGHT + 40;
  const call = client.makeBidiStreamRequest(METHODS.ModelStreamInfer.path, bytes, bytes, new grpc.Metadata(), { deadline: Date.now() + 20_000 });
  let answers = 0;
  call.on('data', () => answers++);
  const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
  for (let i = 0; i < n; i++) call.write(identityRequest({ id: `s${i}`, parameters: { delay_ms: { int64Param: 1500 } } }));
  call.end();
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, node.inflight.ingress)), 5);
  const s = await status;
  clearInterval(sampler);
  assert.equal(s.code, grpc.status.OK, s.details);
  assert.equal(answers, n);
  assert.ok(peak > 0 && peak <= MAX_STREAM_INFLIGHT, `peak in flight ${peak}`);
});
