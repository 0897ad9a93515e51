// The engine's per-tenant slow path and its sampled tensor tap, on a real node (engine ingress,
// engine links, the identity reference model; real sockets): a tenant with a PII policy is
// relayed to the TypeScript ingress and rewritten there, a tenant without one on the same node
// stays native (the engine's fast/relayed counters say which path served each call); the tap
// feeds the threat detectors from fast-path calls, and a verdict (block) moves the tenant to the
// slow path, where it is refused, until its profile ends; and with nothing draining the ring the
// samples are dropped and counted while every call is still answered.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { type CallFailure, KserveClient } from '../helpers/kserve-client.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir('engine-slow-path-');
const auditFile = path.join(dir, 'audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const keys: Record<string, string> = {};
let node: SluiceNode;
let models: SluiceNode;
let client: KserveClient;
const EMAIL = 'jane.roe@example.com';
const PROFILE_SECONDS = 3;

before(async () => {
  for (const t of ['acme', 'plain', 'suspect']) keys[t] = (await createKey(keyStore, { tenant: t, caps: ['infer'] })).key;
  const logging = new Logging({ level: 'silent', node: 'engine-slow-path' });
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const seg = await closedPort();
  node = new SluiceNode({
    config: parseConfig({
      node: { name: 'engine-slow-path' },
      listeners: { grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: {
        tenants: [
          { name: 'acme', id: 41 },
          { name: 'plain', id: 42 },
          { name: 'suspect', id: 43 },
        ],
        audit: { enabled: true, path: auditFile, adminPath: path.join(dir, 'admin.jsonl'), checkpointSeconds: 3600, allowedRequests: false },
        apiKeys: { enabled: true, store: keyStore },
        pii: { enabled: true, policies: [{ tenant: 'acme', mode: 'strict' }] },
        threats: {
          enabled: true,
          sampleRate: 1,
          engineTapBytes: 4096,
          extraction: { maxQueriesPerMinute: 5 },
          adversarial: { enabled: false },
          tenants: [{ tenant: 'suspect', action: 'block' }],
          profile: { durationSeconds: PROFILE_SECONDS },
        },
      },
    }),
    logger: logging.component('node'),
    transports: defaultTransports,
  });
  await node.start();
  client = new KserveClient(node.endpoints.grpc!);
});

after(async () => {
  client?.raw.close();
  await node?.stop(0);
  await models?.stop(0);
});

function calls(): { fast: number; relayed: number } {
  const c = node.engineIngressCalls;
  assert.ok(c !== undefined, 'listeners.grpc is served by the engine (PII policies and threats no longer keep it on TypeScript)');
  return c;
}

function bytesRaw(text: string): Buffer {
  const b = Buffer.from(text, 'utf8');
  const h = Buffer.alloc(4);
  h.writeUInt32LE(b.length);
  return Buffer.concat([h, b]);
}

async function text(tenant: string, t: string): Promise<string> {
  const r = await client.infer(
    { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1] }], rawInputContents: [bytesRaw(t)] },
    { metadata: { authorization: `Bearer ${keys[tenant]}` } },
  );
  const out = Buffer.from(r.response.rawOutputContents[0]!);
  return out.toString('utf8', 4, 4 + out.readUInt32LE(0));
}

function fp32(tenant: string, values: Float32Array, timeoutMs = 10_000) {
  return client.infer(
    { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, values.length] }], rawInputContents: [Buffer.from(values.buffer, values.byteOffset, values.byteLength)] },
    { metadata: { authorization: `Bearer ${keys[tenant]}` }, timeoutMs },
  );
}

test('a PII tenant is relayed to the TypeScript rewrite; a tenant without a policy on the same node stays native', async () => {
  const before = calls();
  for (let i = 0; i < 5; i++) assert.equal(await text('plain', `mail ${EMAIL}`), `mail ${EMAIL}`);
  const mid = calls();
  assert.equal(mid.fast - before.fast, 5, 'the tenant without a PII policy is served by the engine');
  assert.equal(mid.relayed - before.relayed, 0);
  for (let i = 0; i < 3; i++) assert.equal(await text('acme', `mail ${EMAIL}`), 'mail [EMAIL]');
  const end = calls();
  assert.equal(end.relayed - mid.relayed, 3, 'the PII tenant took the TypeScript slow path');
  assert.equal(end.fast - mid.fast, 0);
});

test('the tap feeds the detectors from native calls; a block verdict sends the tenant to the slow path until its profile ends', { timeout: 60_000 }, async () => {
  const tap = node.engineThreatTap;
  assert.ok(tap !== undefined, 'the engine taps tensors for the threat detectors');
  const written = tap.ring.written;
  const before = calls();
  let refused: CallFailure | undefined;
  let served = 0;
  for (let i = 0; i < 200 && refused === undefined; i++) {
    try {
      await fp32('suspect', Float32Array.from({ length: 8 }, (_, k) => Math.sin(i * 8 + k)));
      served++;
    } catch (err) {
      refused = err as CallFailure;
    }
  }
  assert.ok(refused !== undefined, 'the flagged tenant was never refused');
  assert.equal(refused.code, 7, `PERMISSION_DENIED, got ${JSON.stringify(refused)}`);
  assert.match(refused.details, /tenant suspect is blocked .* suspected extraction/);
  const mid = calls();
  // Served natively until the verdict (maxQueriesPerMinute 5: the 6th tapped row trips it).
  assert.ok(mid.fast - before.fast >= 6 && mid.fast - before.fast === served, `native calls before the verdict: ${mid.fast - before.fast}, served ${served}`);
  assert.ok(tap.ring.written - written >= 6, 'the detectors saw the engine\'s samples');
  assert.equal(tap.ring.badRecords, 0, 'every record the engine wrote was read (the ring wrapped several times)');
  assert.equal(mid.relayed - before.relayed, 1, 'the refused call was relayed to the profile hook');
  // Another tenant stays native meanwhile.
  await fp32('plain', new Float32Array(8));
  assert.equal(calls().fast - mid.fast, 1);
  // Security events go to the audit log asynchronously (the answer does not wait for them): a
  // bounded wait for the refused call's entry.
  let audit = readFileSync(auditFile, 'utf8');
  for (let i = 0; i < 100 && !audit.includes('"action":"threat.profile_request"'); i++) {
    await sleep(50);
    audit = readFileSync(auditFile, 'utf8');
  }
  assert.match(audit, /"action":"threat.extraction_suspected"/);
  assert.match(audit, /"action":"threat.profile_request"/);
  // The profile ends: the table drops the tenant from the slow path (no call needed to notice).
  await sleep(PROFILE_SECONDS * 1000 + 300);
  const after = calls();
  await fp32('suspect', new Float32Array(8));
  assert.equal(calls().fast - after.fast, 1, 'served natively again after the profile');
  assert.match(readFileSync(auditFile, 'utf8'), /"action":"threat.profile_exited"/);
});

test('with nothing draining the ring, samples are dropped and counted and every call is still answered', { timeout: 60_000 }, async () => {
  const tap = node.engineThreatTap!;
  tap.close(); // the reader stops: the ring fills and stays full
  tap.ring.takeDropped();
  const written = tap.ring.written;
  const before = calls();
  const N = 40;
  // 400 floats: a record of about 1.7 KB in a 4 KiB ring, so at most two fit.
  const results = await Promise.allSettled(Array.from({ length: N }, (_, i) => fp32('plain', Float32Array.from({ length: 400 }, (_, k) => i + k), 5000)));
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 0, `every call answered within its deadline: ${JSON.stringify(failed.slice(0, 2))}`);
  assert.equal(calls().fast - before.fast, N);
  const wrote = tap.ring.written - written;
  const dropped = tap.ring.takeDropped();
  assert.ok(wrote <= 2, `at most two records fit: ${wrote}`);
  assert.equal(wrote + dropped, N, 'every native call was sampled (sampleRate 1): written or dropped');
});
