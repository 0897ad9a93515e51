// The security gates on sluice.v1.TensorTransfer as `sluice serve` composes them (SluiceNode,
// real sockets): on the training thread's own listener (listeners.training, 8003, the one port
// the service is served on) of an ingress node and of a node without inference routes. A push
// needs an identity with the `train` capability; refusals end the call before any data moves and
// are audited; inference on the ingress's gRPC port is still gated by the gateway.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { parseConfig } from '../../src/config/load.ts';
import { connect, type TransferError } from '../../src/index.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir();
const keyStore = path.join(dir, 'keys.json');
const logging = new Logging({ level: 'silent', node: 'training-gates' });
const any = { host: '127.0.0.1', port: 0 };
const keys: Record<string, string> = {};
let shared: SluiceNode;
let trainingOnly: SluiceNode;

function security(name: string) {
  return {
    tenants: [{ name: 'acme', id: 7 }],
    audit: { enabled: true, path: path.join(dir, `${name}-audit.jsonl`), checkpointSeconds: 3600 },
    apiKeys: { enabled: true, store: keyStore },
  };
}

before(async () => {
  keys.train = (await createKey(keyStore, { tenant: 'acme', caps: ['train'] })).key;
  keys.infer = (await createKey(keyStore, { tenant: 'acme', caps: ['infer'] })).key;
  const trainKey = randomBytes(32).toString('hex');
  // Receives tensors (no inference routes).
  trainingOnly = new SluiceNode({
    config: parseConfig({
      node: { name: 'rx' },
      listeners: { grpc: any, training: any },
      segments: { training: { transport: 'tcp', key: trainKey, listen: any } },
      training: { spoolDir: path.join(dir, 'rx-spool') },
      log: { level: 'silent' },
      security: security('rx'),
    }),
    logger: logging.component('rx'),
    transports: defaultTransports,
  });
  await trainingOnly.start();
  const [host, port] = trainingOnly.endpoints.training!.split(':') as [string, string];
  // An ingress: inference on its gRPC port, TensorTransfer on its training listener.
  const seg = await closedPort();
  shared = new SluiceNode({
    config: parseConfig({
      node: { name: 'tx' },
      listeners: { grpc: any, training: any },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } }, training: { transport: 'tcp', key: trainKey } },
      peers: [
        { name: 'self', segment: 'inference', host: '127.0.0.1', port: seg },
        { name: 'rx', segment: 'training', host, port: Number(port) },
      ],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: '127.0.0.1:1' }] }],
      training: { spoolDir: path.join(dir, 'tx-spool') },
      log: { level: 'silent' },
      security: security('tx'),
    }),
    logger: logging.component('tx'),
    transports: defaultTransports,
  });
  await shared.start();
});

after(async () => {
  await shared?.stop(0);
  await trainingOnly?.stop(0);
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a push needs the train capability on an ingress node; refusals are audited', async () => {
  const data = randomBytes(300 * 1024 + 3);
  const none = connect(shared.endpoints.trainingService!);
  await assert.rejects(none.push('rx', 'g/a', data, { maxAttempts: 1 }), (e: TransferError) => e.status === 'UNAUTHENTICATED');
  const inferOnly = connect(shared.endpoints.trainingService!, { metadata: { 'x-api-key': keys.infer! } });
  await assert.rejects(inferOnly.push('rx', 'g/a', data, { maxAttempts: 1 }), (e: TransferError) => e.status === 'PERMISSION_DENIED' && /train/.test(e.message));
  const trainer = connect(shared.endpoints.trainingService!, { metadata: { 'x-api-key': keys.train! } });
  const r = await trainer.push('rx', 'g/a', data, { transferId: 'gated-1' });
  assert.equal(r.sha256.toString('hex'), sha(data));
  // The train key is not an inference key: the gateway still gates ModelInfer on the gRPC port.
  const infer = new KserveClient(shared.endpoints.grpc!);
  const failure = await infer
    .call('ModelInfer', { modelName: 'identity', inputs: [] }, { metadata: { 'x-api-key': keys.train! } })
    .then(() => undefined, (e: CallFailure) => e);
  assert.equal(failure?.code, 7); // PERMISSION_DENIED
  for (const c of [none, inferOnly, trainer]) c.close();
  const audit = path.join(dir, 'tx-audit.jsonl');
  assert.equal((await verifyAuditFile(audit)).ok, true);
  const lines = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const push = lines.filter((l) => JSON.stringify(l).includes('/sluice.v1.TensorTransfer/Push'));
  assert.ok(push.some((l) => JSON.stringify(l).includes('denied')), 'a denied Push is in the audit log');
  assert.ok(push.some((l) => JSON.stringify(l).includes('allowed') || JSON.stringify(l).includes('success')), 'an allowed Push is in the audit log');
});

test('the training-only node is gated the same way', async () => {
  const anon = connect(trainingOnly.endpoints.trainingService!);
  await assert.rejects(anon.status('gated-1'), (e: TransferError) => e.status === 'UNAUTHENTICATED');
  const inferOnly = connect(trainingOnly.endpoints.trainingService!, { metadata: { 'x-api-key': keys.infer! } });
  await assert.rejects(inferOnly.status('gated-1'), (e: TransferError) => e.status === 'PERMISSION_DENIED');
  const trainer = connect(trainingOnly.endpoints.trainingService!, { metadata: { 'x-api-key': keys.train! } });
  const st = await trainer.status('gated-1');
  assert.equal(st.state, 'completed');
  assert.equal(st.peer, 'tx');
  for (const c of [anon, inferOnly, trainer]) c.close();
});

test('the training listener (8003) is gated: train capability, refusals and pushes audited on the main thread', async () => {
  const data = randomBytes(200 * 1024 + 1);
  const anon = connect(shared.endpoints.trainingService!);
  await assert.rejects(anon.push('rx', 'g/b', data, { maxAttempts: 1 }), (e: TransferError) => e.status === 'UNAUTHENTICATED');
  const inferOnly = connect(shared.endpoints.trainingService!, { metadata: { 'x-api-key': keys.infer! } });
  await assert.rejects(inferOnly.push('rx', 'g/b', data, { maxAttempts: 1 }), (e: TransferError) => e.status === 'PERMISSION_DENIED' && /train/.test(e.message));
  const bogus = connect(shared.endpoints.trainingService!, { metadata: { 'x-api-key': 'sk_not_a_real_key_at_all_0000000000' } });
  await assert.rejects(bogus.push('rx', 'g/b', data, { maxAttempts: 1 }), (e: TransferError) => e.status === 'UNAUTHENTICATED');
  const trainer = connect(shared.endpoints.trainingService!, { metadata: { 'x-api-key': keys.train!, 'x-request-id': 'push-on-8003' } });
  const r = await trainer.push('rx', 'g/b', data, { transferId: 'gated-8003' });
  assert.equal(r.sha256.toString('hex'), sha(data));
  // The receiver's own training listener is gated too.
  const rxAnon = connect(trainingOnly.endpoints.trainingService!);
  await assert.rejects(rxAnon.status('gated-8003'), (e: TransferError) => e.status === 'UNAUTHENTICATED');
  const rxTrainer = connect(trainingOnly.endpoints.trainingService!, { metadata: { 'x-api-key': keys.train! } });
  assert.equal((await rxTrainer.status('gated-8003')).state, 'completed');
  for (const c of [anon, inferOnly, bogus, trainer, rxAnon, rxTrainer]) c.close();
  const audit = path.join(dir, 'tx-audit.jsonl');
  assert.equal((await verifyAuditFile(audit)).ok, true);
  const lines = readFileSync(audit, 'utf8').trim().split('\n');
  assert.ok(lines.some((l) => l.includes('push-on-8003') && l.includes('success')), 'the allowed push on 8003 is audited with its request id');
});
