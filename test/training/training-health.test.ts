// Health of the training plane, which runs on its own thread while the main thread owns the
// HealthModel (SluiceNode in-process, real sockets): peer:<name> follows the training thread's
// links to that peer, segment:training shows the thread's listener, and on a training-only node
// grpc.health.v1 on the gRPC port (served by the training thread) answers what the main
// thread's model says, including a drain.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.ts';
import { connect } from '../../src/index.ts';
import { SluiceNode, TRAINING_SERVICE } from '../../src/node/sluice-node.ts';
import { TrainingHealth } from '../../src/node/training-health.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { healthClientConstructor } from '../../src/telemetry/grpc-health.ts';
import { HealthModel } from '../../src/telemetry/health.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir();
const logging = new Logging({ level: 'silent', node: 'training-health' });
const any = { host: '127.0.0.1', port: 0 };
let rx: SluiceNode;
let tx: SluiceNode;
let rxStopped = false;
const clients: grpc.Client[] = [];

before(async () => {
  const key = randomBytes(32).toString('hex');
  rx = new SluiceNode({
    config: parseConfig({
      node: { name: 'rx' },
      listeners: { grpc: any, training: any },
      segments: { training: { transport: 'tcp', key, listen: any } },
      training: { spoolDir: path.join(dir, 'rx-spool') },
      log: { level: 'silent' },
    }),
    logger: logging.component('rx'),
    transports: defaultTransports,
  });
  await rx.start();
  const [host, port] = rx.endpoints.training!.split(':') as [string, string];
  tx = new SluiceNode({
    config: parseConfig({
      node: { name: 'tx' },
      listeners: { grpc: any, training: any },
      segments: { training: { transport: 'tcp', key } },
      peers: [{ name: 'rx', segment: 'training', host, port: Number(port) }],
      training: { spoolDir: path.join(dir, 'tx-spool') },
      log: { level: 'silent' },
    }),
    logger: logging.component('tx'),
    transports: defaultTransports,
  });
  await tx.start();
});

after(async () => {
  for (const c of clients) c.close();
  await tx?.stop(0);
  if (!rxStopped) await rx?.stop(0);
});

type HealthClient = grpc.Client & Record<string, Function>;

function healthClient(address: string): HealthClient {
  const C = healthClientConstructor();
  const c = new C(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
  clients.push(c);
  return c;
}

function check(address: string, service: string): Promise<string> {
  const c = healthClient(address);
  return new Promise((resolve, reject) =>
    c.Check!({ service }, { deadline: Date.now() + 5_000 }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
  );
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a training-only gRPC port answers grpc.health.v1 for the node and TensorTransfer; inference is NOT_FOUND', async () => {
  const address = tx.endpoints.grpc!;
  assert.equal(await check(address, ''), 'SERVING');
  assert.equal(await check(address, TRAINING_SERVICE), 'SERVING');
  await assert.rejects(check(address, 'inference.GRPCInferenceService'), (e: { code?: number }) => e.code === grpc.status.NOT_FOUND);
  const c = healthClient(address);
  const list = await new Promise<{ statuses: Record<string, { status: string }> }>((resolve, reject) =>
    c.List!({}, { deadline: Date.now() + 5_000 }, (err: Error | null, res: { statuses: Record<string, { status: string }> }) => (err ? reject(err) : resolve(res))),
  );
  assert.deepEqual(Object.keys(list.statuses).sort(), ['', TRAINING_SERVICE]);
  // The thread's 8003 listener answers grpc.health.v1 the same.
  assert.equal(await check(tx.endpoints.trainingService!, TRAINING_SERVICE), 'SERVING');
});

test("the answers follow the main thread's HealthModel (a critical component down: NOT_SERVING)", async () => {
  const address = tx.endpoints.grpc!;
  const c = healthClient(address);
  const seen: string[] = [];
  const watch = c.Watch!({ service: TRAINING_SERVICE }) as grpc.ClientReadableStream<{ status: string }>;
  watch.on('data', (r: { status: string }) => seen.push(r.status));
  watch.on('error', () => {});
  await until('the first Watch answer', () => seen.length >= 1);
  const gate = tx.health.register('test:gate', { kind: 'other', services: [TRAINING_SERVICE] });
  await until('NOT_SERVING on the gRPC port', async () => (await check(address, TRAINING_SERVICE)) === 'NOT_SERVING');
  assert.equal(await check(address, ''), 'NOT_SERVING');
  gate.up();
  await until('SERVING again', async () => (await check(address, TRAINING_SERVICE)) === 'SERVING');
  await until('the watch to see both changes', () => seen.length >= 3);
  assert.deepEqual(seen.slice(0, 3), ['SERVING', 'NOT_SERVING', 'SERVING']);
  gate.remove();
  watch.cancel();
});

test('segment:training shows the listener; peer:<name> is down until a transfer links it, up while linked, down when the link closes', async () => {
  const seg = rx.health.component('segment:training');
  assert.equal(seg?.up, true);
  assert.equal(seg?.critical, false);
  const peer = () => tx.health.component('peer:rx')!;
  assert.equal(peer().kind, 'peer');
  assert.equal(peer().up, false);
  assert.match(peer().detail, /no link yet to 127\.0\.0\.1:\d+/);
  assert.equal(tx.health.ready(), true, 'a training peer is shown, not gating');

  const client = connect(tx.endpoints.trainingService!);
  await client.push('rx', 'health/a', randomBytes(64 * 1024 + 3), { transferId: 'health-1' });
  client.close();
  await until('peer:rx up', () => peer().up);
  assert.equal(peer().detail, rx.endpoints.training, 'the detail names the remote address of the link');

  rxStopped = true;
  await rx.stop(0);
  await until('peer:rx down after the receiver went away', () => !peer().up);
  assert.match(peer().detail, /link closed/);
  assert.equal(tx.health.ready(), true);
});

test('drain: the gRPC port reports NOT_SERVING to watchers, then ends their streams with UNAVAILABLE', async () => {
  const c = healthClient(tx.endpoints.grpc!);
  const seen: string[] = [];
  const watch = c.Watch!({ service: '' }) as grpc.ClientReadableStream<{ status: string }>;
  watch.on('data', (r: { status: string }) => seen.push(r.status));
  const ended = new Promise<number | undefined>((resolve) => {
    watch.on('error', (e: { code?: number }) => resolve(e.code));
    watch.on('end', () => resolve(undefined));
  });
  await until('the first Watch answer', () => seen.length >= 1);
  assert.equal(seen[0], 'SERVING');
  tx.beginDrain(1000);
  assert.equal(await ended, grpc.status.UNAVAILABLE);
  assert.equal(seen.at(-1), 'NOT_SERVING');
});

test('TrainingHealth: a thread that exits takes its segment and peers down; a name both segments use gets its own component', () => {
  const model = new HealthModel();
  const config = parseConfig({
    node: { name: 'n' },
    segments: { training: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: any } },
    peers: [
      { name: 'a', segment: 'training', host: '127.0.0.1', port: 1 },
      { name: 'b', segment: 'training', host: '127.0.0.1', port: 2 },
      { name: 'b', segment: 'inference', host: '127.0.0.1', port: 3 },
    ],
  });
  const th = new TrainingHealth(model, config);
  assert.ok(model.component('peer:a'));
  assert.ok(model.component('peer:training:b'));
  assert.equal(model.component('peer:b'), undefined, 'left to the inference link');
  th.threadReady({ service: '127.0.0.1:8003', segment: '127.0.0.1:7471' });
  th.peerLink('a', true, '127.0.0.1:1');
  th.peerLink('nobody', true, 'x'); // not configured: ignored
  assert.equal(model.component('peer:a')?.up, true);
  assert.equal(model.component('segment:training')?.up, true);
  th.threadExited('training thread exited (1): boom');
  for (const name of ['training-thread', 'segment:training', 'peer:a', 'peer:training:b']) {
    assert.equal(model.component(name)?.up, false, name);
    assert.equal(model.component(name)?.detail, 'training thread exited (1): boom');
  }
  model.markStarted();
  assert.equal(model.ready(), true, 'none of them gates readiness');
});
