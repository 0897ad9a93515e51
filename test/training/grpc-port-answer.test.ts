// sluice.v1.TensorTransfer is served on listeners.training (8003) alone. A call that reaches
// listeners.grpc (8001) gets UNIMPLEMENTED with a message naming the training listener's bound
// port and x-request-id in its trailers, and reaches no transfer, on every path that serves the
// port: the native engine's ingress (which relays the call to TypeScript), the TypeScript
// ingress, the training thread of a node without inference routes, and an ingress without a
// training segment (which says so). SluiceNode in-process, real sockets, every port 0.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.ts';
import { connect, type TransferError } from '../../src/index.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { healthClientConstructor } from '../../src/telemetry/grpc-health.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { tensorTransferClientConstructor } from '../../src/training/proto.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('grpc-port-answer-');
const logging = new Logging({ level: 'silent', node: 'grpc-port-answer' });
const any = { host: '127.0.0.1', port: 0 };
const trainKey = randomBytes(32).toString('hex');
const nodes: Record<'engine' | 'typescript' | 'trainingOnly' | 'noTraining', SluiceNode> = {} as never;
const clients: grpc.Client[] = [];

/** An ingress (inference on its gRPC port, routed to its own egress); with a training segment unless `training` is false. */
async function ingress(name: string, opts: { training: boolean; engine: boolean }): Promise<SluiceNode> {
  const seg = await closedPort();
  const node = new SluiceNode({
    config: parseConfig({
      node: { name },
      listeners: { grpc: any, ...(opts.training ? { training: any } : {}) },
      segments: {
        inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } },
        ...(opts.training ? { training: { transport: 'tcp', key: trainKey } } : {}),
      },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: '127.0.0.1:1' }] }],
      ...(opts.training ? { training: { spoolDir: path.join(dir, `${name}-spool`) } } : {}),
      log: { level: 'silent' },
    }),
    logger: logging.component(name),
    transports: defaultTransports,
  });
  // The ingress path is chosen at start.
  const saved = process.env.SLUICE_ENGINE_INGRESS;
  if (!opts.engine) process.env.SLUICE_ENGINE_INGRESS = '0';
  try {
    await node.start();
  } finally {
    if (saved === undefined) delete process.env.SLUICE_ENGINE_INGRESS;
    else process.env.SLUICE_ENGINE_INGRESS = saved;
  }
  return node;
}

before(async () => {
  nodes.engine = await ingress('engine', { training: true, engine: true });
  nodes.typescript = await ingress('typescript', { training: true, engine: false });
  nodes.noTraining = await ingress('no-training', { training: false, engine: true });
  nodes.trainingOnly = new SluiceNode({
    config: parseConfig({
      node: { name: 'training-only' },
      listeners: { grpc: any, training: any },
      segments: { training: { transport: 'tcp', key: trainKey, listen: any } },
      training: { spoolDir: path.join(dir, 'rx-spool') },
      log: { level: 'silent' },
    }),
    logger: logging.component('training-only'),
    transports: defaultTransports,
  });
  await nodes.trainingOnly.start();
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(Object.values(nodes).map((n) => n?.stop(0)));
});

type RawClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function rawClient(address: string): RawClient {
  const C = tensorTransferClientConstructor();
  const c = new C(address, grpc.credentials.createInsecure()) as unknown as RawClient;
  clients.push(c);
  return c;
}

const portOf = (endpoint: string): string => endpoint.slice(endpoint.lastIndexOf(':') + 1);

function metadata(requestId: string | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (requestId !== undefined) md.set('x-request-id', requestId);
  return md;
}

const deadline = () => ({ deadline: Date.now() + 10_000 });

/** Each kind of TensorTransfer method on `address`: unary, server streaming, bidi streaming. */
async function refusals(address: string, requestId: string | undefined): Promise<grpc.ServiceError[]> {
  const c = rawClient(address);
  const unary = (method: string, req: object) =>
    new Promise<grpc.ServiceError>((resolve, reject) =>
      c[method]!(req, metadata(requestId), deadline(), (err: grpc.ServiceError | null) => (err ? resolve(err) : reject(new Error(`${method} answered OK on ${address}`)))),
    );
  const streamed = (call: grpc.ClientReadableStream<unknown>, what: string) =>
    new Promise<grpc.ServiceError>((resolve, reject) => {
      call.on('data', () => reject(new Error(`${what} sent a message on ${address}`)));
      call.on('error', resolve);
      call.on('end', () => reject(new Error(`${what} ended OK on ${address}`)));
    });
  const push = c.Push!(metadata(requestId), deadline()) as grpc.ClientDuplexStream<object, unknown>;
  const pushed = streamed(push, 'Push');
  push.write({ start: { transferId: 'never', peer: 'nobody', tensor: { name: 'x', datatype: 'UINT8', shape: [1] }, totalBytes: 1 } });
  push.end();
  return Promise.all([
    unary('GetStatus', { transferId: 'never' }),
    unary('List', {}),
    streamed(c.Subscribe!({ namePrefix: '' }, metadata(requestId), deadline()) as grpc.ClientReadableStream<unknown>, 'Subscribe'),
    pushed,
  ]);
}

function assertRefused(errors: grpc.ServiceError[], message: string, requestId: string | undefined): void {
  for (const e of errors) {
    assert.equal(e.code, grpc.status.UNIMPLEMENTED, `${e.code} ${e.details}`);
    assert.equal(e.details, message);
    const rid = e.metadata.get('x-request-id');
    assert.equal(rid.length, 1, 'x-request-id in the trailers');
    if (requestId !== undefined) assert.equal(rid[0], requestId);
    else assert.match(String(rid[0]), /^[0-9a-f-]{36}$/);
  }
}

const onTraining = (n: SluiceNode) => `sluice.v1.TensorTransfer is served on listeners.training (port ${portOf(n.endpoints.trainingService!)}), not on listeners.grpc`;

test('the engine ingress: TensorTransfer on the gRPC port is UNIMPLEMENTED, naming the training port', async () => {
  const n = nodes.engine;
  assert.equal(n.grpcOnEngine, true, 'listeners.grpc is on the native engine');
  const relayedBefore = n.engineIngressCalls!.relayed;
  assertRefused(await refusals(n.endpoints.grpc!, 'tt-on-engine'), onTraining(n), 'tt-on-engine');
  assertRefused(await refusals(n.endpoints.grpc!, undefined), onTraining(n), undefined);
  assert.ok(n.engineIngressCalls!.relayed >= relayedBefore + 8, 'the engine relayed the calls to the TypeScript server, which answered');
});

test('the TypeScript ingress answers the same', async () => {
  const n = nodes.typescript;
  assert.equal(n.grpcOnEngine, false, 'listeners.grpc is on the TypeScript ingress');
  assertRefused(await refusals(n.endpoints.grpc!, 'tt-on-ts'), onTraining(n), 'tt-on-ts');
  assertRefused(await refusals(n.endpoints.grpc!, undefined), onTraining(n), undefined);
});

test("a training-only node's gRPC port (the training thread's) answers the same, and still serves grpc.health.v1", async () => {
  const n = nodes.trainingOnly;
  assertRefused(await refusals(n.endpoints.grpc!, 'tt-on-training-only'), onTraining(n), 'tt-on-training-only');
  assertRefused(await refusals(n.endpoints.grpc!, undefined), onTraining(n), undefined);
  const C = healthClientConstructor();
  const health = new C(n.endpoints.grpc!, grpc.credentials.createInsecure()) as unknown as RawClient;
  clients.push(health);
  const status = await new Promise<string>((resolve, reject) =>
    health.Check!({ service: 'sluice.v1.TensorTransfer' }, deadline(), (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
  );
  assert.equal(status, 'SERVING');
});

test('an ingress without a training segment says it has none', async () => {
  const n = nodes.noTraining;
  assertRefused(
    await refusals(n.endpoints.grpc!, 'tt-no-training'),
    'sluice.v1.TensorTransfer is not served here: this node has no segments.training; training nodes serve it on listeners.training (port 8003 by default)',
    'tt-no-training',
  );
});

test('the training listener serves it; the client fails at once on the gRPC port (no resume attempts)', async () => {
  for (const n of [nodes.engine, nodes.typescript]) {
    const right = connect(n.endpoints.trainingService!);
    assert.deepEqual(await right.list(), []);
    right.close();
    const wrong = connect(n.endpoints.grpc!);
    const started = Date.now();
    await assert.rejects(
      wrong.push('training-only', 'x/y', randomBytes(1024), { maxAttempts: 8 }),
      (e: TransferError) => e.status === 'FAILED_PRECONDITION' && e.code === 'SLUICE_ERR_TRANSFER_PRECONDITION' && e.message === onTraining(n),
    );
    // Eight attempts would back off for 16 s in all; one refused call is far quicker.
    assert.ok(Date.now() - started < 3000, `refused in ${Date.now() - started} ms`);
    wrong.close();
  }
});
