// Training transfers and the ingress's upstream policy across `sluice serve` processes:
//   models : the reference model server
//   good   : egress (routes to models) + training listener + gRPC health (the receiving side)
//   broken : an egress whose model server is a closed port
//   front  : ingress (gRPC) routing "*" to both egress peers; training sender to "good"
// A tensor pushed through `front` arrives verified on `good`; inference keeps answering while
// `broken` fails (each failure happened before the model, so it is retried on `good`, and
// `broken` is ejected).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type TransferError } from '../../src/index.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { closedPort, type SluiceProcess, startSluice } from '../helpers/sluice-process.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const any = { host: '127.0.0.1', port: 0 };
const hostPort = (a: string) => {
  const [host, port] = a.split(':') as [string, string];
  return { host, port: Number(port) };
};

let models: SluiceProcess;
let good: SluiceProcess;
let broken: SluiceProcess;
let front: SluiceProcess;
let dir: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-e2e-training-'));
  const infKey = randomBytes(32).toString('hex');
  const trainKey = randomBytes(32).toString('hex');
  const dead = await closedPort();
  models = await startSluice({ node: { name: 'models' }, models: { listen: any } }, { name: 'models' });
  [good, broken] = await Promise.all([
    startSluice(
      {
        node: { name: 'good' },
        listeners: { grpc: any, training: any },
        segments: { inference: { transport: 'tcp', key: infKey, listen: any }, training: { transport: 'tcp', key: trainKey, listen: any } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
        training: { spoolDir: path.join(dir, 'good-spool') },
      },
      { name: 'good' },
    ),
    startSluice(
      {
        node: { name: 'broken' },
        segments: { inference: { transport: 'tcp', key: infKey, listen: any } },
        routes: [{ model: '*', upstreams: [{ address: `127.0.0.1:${dead}` }] }],
      },
      { name: 'broken' },
    ),
  ]);
  front = await startSluice(
    {
      node: { name: 'front' },
      listeners: { grpc: any, training: any },
      segments: { inference: { transport: 'tcp', key: infKey }, training: { transport: 'tcp', key: trainKey } },
      peers: [
        { name: 'good', segment: 'inference', ...hostPort(good.endpoints.segment!) },
        { name: 'broken', segment: 'inference', ...hostPort(broken.endpoints.segment!) },
        { name: 'good-training', segment: 'training', ...hostPort(good.endpoints.training!) },
      ],
      routes: [{ model: '*', peers: ['good', 'broken'] }],
      training: { spoolDir: path.join(dir, 'front-spool') },
      // A short latency memory lets the failing peer look cheap again soon, so it is tried until ejected.
      scheduling: { upstreams: { decayMs: 20, consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionMs: 60_000 }, retries: { maxAttempts: 2, minPerSec: 50 } },
      limits: { defaultTimeoutMs: 10_000 },
    },
    { name: 'front' },
  );
}, { timeout: 240_000 });

after(async () => {
  await Promise.all([front?.stop(), broken?.stop(), good?.stop()]);
  await models?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a tensor pushed through the front node arrives verified on the training peer', async () => {
  const tx = connect(front.endpoints.trainingService!);
  const rx = connect(good.endpoints.trainingService!);
  const data = randomBytes(12 * MiB + 5);
  const r = await tx.push('good-training', 'ckpt/e2e', data, { transferId: 'e2e-1' });
  assert.equal(r.sha256.toString('hex'), sha(data));
  const parts: Buffer[] = [];
  for await (const e of rx.pull({ transferId: 'e2e-1' })) if ('data' in e) parts.push(e.data.data);
  assert.equal(sha(Buffer.concat(parts)), sha(data));
  const st = await rx.status('e2e-1');
  assert.equal(st.state, 'completed');
  assert.equal(st.peer, 'front');
  tx.close();
  rx.close();
});

test('the gRPC port (8001) serves no TensorTransfer: the answer names the training listener, nothing is sent', async () => {
  const tx = connect(front.endpoints.grpc!);
  const rx = connect(good.endpoints.grpc!);
  const port = (e: string) => e.slice(e.lastIndexOf(':') + 1);
  const data = randomBytes(3 * MiB + 7);
  // The ingress (engine or TypeScript path) and the training-only node answer alike; the client does not retry.
  await assert.rejects(
    tx.push('good-training', 'ckpt/e2e-8001', data, { transferId: 'e2e-8001' }),
    (e: TransferError) => e.status === 'FAILED_PRECONDITION' && e.message.includes(`listeners.training (port ${port(front.endpoints.trainingService!)})`),
  );
  await assert.rejects(rx.status('e2e-8001'), (e: TransferError) => e.status === 'FAILED_PRECONDITION' && e.message.includes(`listeners.training (port ${port(good.endpoints.trainingService!)})`));
  const onTraining = connect(front.endpoints.trainingService!);
  assert.ok(!(await onTraining.list()).some((s) => s.transferId === 'e2e-8001'), 'no transfer was started');
  tx.close();
  rx.close();
  onTraining.close();
});

test('transfers to an unknown peer or an inference peer are refused', async () => {
  const tx = connect(front.endpoints.trainingService!);
  await assert.rejects(tx.push('elsewhere', 'x', Buffer.alloc(8)), (e: TransferError) => e.status === 'NOT_FOUND' && /training peers: good-training/.test(e.message));
  await assert.rejects(tx.push('good', 'x', Buffer.alloc(8)), (e: TransferError) => e.status === 'FAILED_PRECONDITION' && /inference segment/.test(e.message));
  tx.close();
});

test('inference keeps answering while one egress peer fails: retried before the model, then ejected', async () => {
  const client = new KserveClient(front.endpoints.grpc!);
  const input = Buffer.from(Array.from({ length: 64 }, (_, i) => i));
  for (let i = 0; i < 30; i++) {
    const { response } = await client.call<{ rawOutputContents: Uint8Array[] }>(
      'ModelInfer',
      { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [64] }], rawInputContents: [input] },
      { timeoutMs: 5000 },
    );
    assert.deepEqual(Buffer.from(response.rawOutputContents[0]!), input);
    await new Promise((r) => setTimeout(r, 30));
  }
  const ejected = front.logs.filter((l) => l.msg === 'egress peer ejected after consecutive failures');
  assert.equal(ejected.length, 1);
  assert.equal(ejected[0]!.peer, 'broken');
  const retried = front.logs.filter((l) => l.msg === 'request retried on another egress peer');
  assert.ok(retried.length >= 2 && retried.every((l) => l.peer === 'broken'), `retries ${retried.length}`);
  client.raw.close();
});
