// A training-only node (no inference routes) as operators see it, with real `sluice serve`
// processes: grpc.health.v1 on its gRPC port, a health component per training peer that follows
// the link, and the training metrics (bytes, transfers by state, endings, failures by status).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { connect } from '../../src/index.ts';
import { healthClientConstructor } from '../../src/telemetry/grpc-health.ts';
import { sampleValue, scrape } from '../helpers/prom-text.ts';
import { startSluice, type SluiceProcess } from '../helpers/sluice-process.ts';

const any = { host: '127.0.0.1', port: 0 };
const MiB = 1024 * 1024;
const procs: SluiceProcess[] = [];
const dir = mkdtempSync(path.join(tmpdir(), 'sluice-training-obs-'));
after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  rmSync(dir, { recursive: true, force: true });
});

interface Health {
  live: boolean;
  ready: boolean;
  components: { name: string; kind: string; up: boolean; detail: string }[];
}

function check(address: string, service: string): Promise<string> {
  const C = healthClientConstructor();
  const c = new C(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>;
  return new Promise((resolve, reject) =>
    c.Check!({ service }, { deadline: Date.now() + 5_000 }, (err: Error | null, res: { status: string }) => {
      c.close();
      if (err) reject(err);
      else resolve(res.status);
    }),
  );
}

test('training-only nodes: grpc.health.v1, training-peer components, training metrics', { timeout: 180_000 }, async () => {
  const key = randomBytes(32).toString('hex');
  const receiver = await startSluice(
    {
      node: { name: 'receiver' },
      listeners: { grpc: any, training: any, metrics: any },
      segments: { training: { transport: 'tcp', key, listen: any } },
      training: { spoolDir: path.join(dir, 'rx') },
    },
    { name: 'receiver' },
  );
  procs.push(receiver);
  const [host, port] = receiver.endpoints.training!.split(':') as [string, string];
  const sender = await startSluice(
    {
      node: { name: 'sender' },
      listeners: { grpc: any, training: any, metrics: any },
      segments: { training: { transport: 'tcp', key } },
      peers: [{ name: 'rx', segment: 'training', host, port: Number(port) }],
      training: { spoolDir: path.join(dir, 'tx') },
    },
    { name: 'sender' },
  );
  procs.push(sender);

  // grpc.health.v1 on the training-only gRPC port.
  assert.equal(await check(sender.endpoints.grpc!, ''), 'SERVING');
  assert.equal(await check(sender.endpoints.grpc!, 'sluice.v1.TensorTransfer'), 'SERVING');
  assert.equal(await check(receiver.endpoints.grpc!, 'sluice.v1.TensorTransfer'), 'SERVING');
  await assert.rejects(check(sender.endpoints.grpc!, 'inference.GRPCInferenceService'), (e: { code?: number }) => e.code === grpc.status.NOT_FOUND);

  const health = async (p: SluiceProcess): Promise<Health> => (await fetch(`http://${p.endpoints.metrics}/health`)).json() as Promise<Health>;
  let h = await health(sender);
  const peer = () => h.components.find((c) => c.name === 'peer:rx');
  assert.ok(peer(), JSON.stringify(h));
  assert.equal(peer()!.kind, 'peer');
  assert.equal(peer()!.up, false, 'no link before the first transfer');
  assert.equal(h.ready, true, 'a training peer is shown, not gating');
  assert.ok((await health(receiver)).components.some((c) => c.name === 'segment:training' && c.up));

  // A transfer: the peer component comes up, the metrics move on both sides.
  const tx = connect(sender.endpoints.trainingService!);
  const data = randomBytes(3 * MiB + 7);
  await tx.push('rx', 'ckpt/obs', data, { transferId: 'obs-1' });
  h = await health(sender);
  assert.equal(peer()!.up, true, JSON.stringify(peer()));
  // A transfer to a peer that is not configured fails (and is not a started transfer).
  await assert.rejects(tx.push('nobody', 'ckpt/x', randomBytes(10), { transferId: 'obs-2' }));
  tx.close();

  const s = await scrape(`http://${sender.endpoints.metrics}/metrics`);
  assert.equal(sampleValue(s, 'sluice_training_bytes_total', { direction: 'outbound' }), data.length);
  assert.equal(sampleValue(s, 'sluice_training_transfers_started_total', { direction: 'outbound' }), 1);
  assert.equal(sampleValue(s, 'sluice_training_transfers_ended_total', { direction: 'outbound', state: 'completed' }), 1);
  assert.ok((sampleValue(s, 'sluice_link_bytes_total', { segment: 'training', direction: 'tx', transport: 'tcp', peer: 'rx' }) ?? 0) > data.length);
  const end = Date.now() + 10_000;
  let r = await scrape(`http://${receiver.endpoints.metrics}/metrics`);
  while (sampleValue(r, 'sluice_training_transfers_ended_total', { direction: 'inbound', state: 'completed' }) !== 1 && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 100));
    r = await scrape(`http://${receiver.endpoints.metrics}/metrics`);
  }
  assert.equal(sampleValue(r, 'sluice_training_bytes_total', { direction: 'inbound' }), data.length);
  assert.equal(sampleValue(r, 'sluice_training_transfers_ended_total', { direction: 'inbound', state: 'completed' }), 1);
  assert.equal(sampleValue(r, 'sluice_training_resumes_total', { direction: 'inbound' }), 0);
});
