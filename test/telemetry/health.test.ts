import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Server } from 'node:net';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GrpcHealthService, healthClientConstructor } from '../../src/telemetry/grpc-health.ts';
import { HealthModel } from '../../src/telemetry/health.ts';
import { HealthProbe } from '../../src/telemetry/health-probe.ts';

const INFER = 'inference.GRPCInferenceService';
const TRAIN = 'sluice.v1.TensorTransfer';

test('ready only after start-up, with every component up, and not while draining', () => {
  const h = new HealthModel();
  let changes = 0;
  h.on('change', () => changes++);
  assert.equal(h.ready(), false);
  h.markStarted();
  assert.equal(h.ready(), true, 'no components: ready once started');
  const up = h.register('upstream:simple', { kind: 'upstream', services: [INFER] });
  const seg = h.register('segment:training', { kind: 'segment', services: [TRAIN] });
  assert.equal(h.ready(), false);
  assert.equal(h.notReadyReason(), 'down: upstream:simple (starting), segment:training (starting)');
  up.up();
  assert.equal(h.serviceStatus(INFER), 'SERVING', 'training segment does not gate inference');
  assert.equal(h.serviceStatus(TRAIN), 'NOT_SERVING');
  assert.equal(h.ready(), false, 'the node as a whole needs everything');
  seg.up();
  assert.equal(h.ready(), true);
  const n = changes;
  seg.up('again');
  assert.equal(changes, n, 'no change event when nothing changed');
  seg.remove();
  assert.equal(h.serviceStatus(TRAIN), 'SERVING');
  assert.equal(h.serviceStatus('no.such.Service'), 'SERVICE_UNKNOWN');
  h.startDraining();
  assert.equal(h.ready(), false);
  assert.equal(h.serviceStatus(INFER), 'NOT_SERVING');
  assert.equal(h.notReadyReason(), 'draining');
  assert.equal(h.live, true);
  assert.throws(() => h.register('upstream:simple', { kind: 'upstream' }), /already registered/);
});

test('a probe of a real upstream flips readiness when the upstream goes away and comes back', async () => {
  const h = new HealthModel();
  h.markStarted();
  let server: Server = createServer((s) => s.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const tcpCheck = (signal: AbortSignal): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const sock = connect({ host: '127.0.0.1', port, signal });
      sock.once('connect', () => (sock.destroy(), resolve(true)));
      sock.once('error', reject);
    });
  const probe = new HealthProbe(h.register('upstream:model', { kind: 'upstream' }), tcpCheck, { intervalMs: 30, timeoutMs: 500, failureThreshold: 2 });
  try {
    assert.equal(await probe.runOnce(), true);
    assert.equal(h.ready(), true);
    server.close();
    await once(server, 'close');
    assert.equal(await probe.runOnce(), false);
    assert.equal(h.ready(), true, 'one failure is below the threshold');
    assert.equal(await probe.runOnce(), false);
    assert.equal(h.ready(), false);
    assert.match(h.component('upstream:model')!.detail, /ECONNREFUSED/);
    server = createServer((s) => s.end());
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    probe.start();
    const deadline = Date.now() + 5_000;
    while (!h.ready() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(h.ready(), true, 'periodic probing brings it back');
  } finally {
    probe.stop();
    server.close();
  }
});

test('a probe that hangs counts as a failure after its timeout', async () => {
  const h = new HealthModel();
  h.markStarted();
  const probe = new HealthProbe(h.register('slow', { kind: 'other' }), () => new Promise(() => {}), { intervalMs: 1000, timeoutMs: 50 });
  assert.equal(await probe.runOnce(), false);
  assert.match(h.component('slow')!.detail, /timed out after 50 ms/);
  probe.stop();
});

async function startGrpc(health: HealthModel): Promise<{ server: grpc.Server; svc: GrpcHealthService; client: grpc.Client & Record<string, Function> }> {
  const server = new grpc.Server();
  const svc = new GrpcHealthService(health).addTo(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const Client = healthClientConstructor();
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>;
  return { server, svc, client };
}

function unary<T>(client: Record<string, Function>, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => client[method]!(req, { deadline: Date.now() + 5_000 }, (err: Error | null, res: T) => (err ? reject(err) : resolve(res))));
}

test('grpc.health.v1 Check and List follow the health model', async () => {
  const health = new HealthModel();
  health.defineService(INFER);
  health.defineService(TRAIN);
  const up = health.register('upstream:simple', { kind: 'upstream', services: [INFER] });
  const { server, client } = await startGrpc(health);
  try {
    assert.deepEqual(await unary(client, 'Check', { service: '' }), { status: 'NOT_SERVING' });
    health.markStarted();
    assert.deepEqual(await unary(client, 'Check', { service: TRAIN }), { status: 'SERVING' });
    assert.deepEqual(await unary(client, 'Check', { service: INFER }), { status: 'NOT_SERVING' });
    up.up();
    assert.deepEqual(await unary(client, 'Check', { service: INFER }), { status: 'SERVING' });
    await assert.rejects(unary(client, 'Check', { service: 'nope.Svc' }), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND && /unknown service "nope.Svc"/.test(err.details));
    const list = await unary<{ statuses: Record<string, { status: string }> }>(client, 'List', {});
    assert.deepEqual(list.statuses, { '': { status: 'SERVING' }, [INFER]: { status: 'SERVING' }, [TRAIN]: { status: 'SERVING' } });
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test('grpc.health.v1 Watch streams every change and ends with UNAVAILABLE on drain', async () => {
  const health = new HealthModel();
  health.defineService(INFER);
  health.markStarted();
  const up = health.register('upstream:simple', { kind: 'upstream', services: [INFER], up: true });
  const { server, svc, client } = await startGrpc(health);
  try {
    const call = client.Watch!({ service: INFER }) as grpc.ClientReadableStream<{ status: string }>;
    const seen: string[] = [];
    const next = (): Promise<string> => new Promise((resolve) => call.once('data', (m: { status: string }) => (seen.push(m.status), resolve(m.status))));
    assert.equal(await next(), 'SERVING');
    let p = next();
    up.down('upstream gone');
    assert.equal(await p, 'NOT_SERVING');
    p = next();
    up.up();
    assert.equal(await p, 'SERVING');

    const unknown = client.Watch!({ service: 'later.Service' }) as grpc.ClientReadableStream<{ status: string }>;
    const [first] = (await once(unknown, 'data')) as [{ status: string }];
    assert.equal(first.status, 'SERVICE_UNKNOWN', 'unknown service does not end the call');
    const becomes = once(unknown, 'data');
    health.defineService('later.Service');
    assert.equal(((await becomes) as [{ status: string }])[0].status, 'SERVING');
    assert.equal(svc.watchers, 2);

    health.startDraining();
    assert.equal(await next(), 'NOT_SERVING');
    const ended = new Promise<grpc.ServiceError>((resolve) => call.once('error', resolve));
    unknown.on('error', () => {});
    svc.endWatches();
    const err = await ended;
    assert.equal(err.code, grpc.status.UNAVAILABLE);
    assert.equal(svc.watchers, 0);
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING', 'SERVING', 'NOT_SERVING']);
    // With the watches ended, a graceful shutdown completes instead of hanging.
    await new Promise<void>((resolve, reject) => server.tryShutdown((e) => (e ? reject(e) : resolve())));
  } finally {
    client.close();
    server.forceShutdown();
  }
});
