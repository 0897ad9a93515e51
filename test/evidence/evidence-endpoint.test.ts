// POST /v2/sluice/evidence on a real node: the admin capability through the gates (401 without
// a credential, 403 without admin), a pack that verifies against the node's live log, typed
// problems for bad bodies, and nothing of it on the unauthenticated metrics port.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { readTar } from '../../src/evidence/tar.ts';
import { verifyEvidencePack } from '../../src/evidence/verify-pack.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir();
const auditFile = path.join(dir, 'audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const signer = generateKeyPairSync('ed25519');
let node: SluiceNode;
let http: string;
let admin: string;
let user: string;

before(async () => {
  writeFileSync(path.join(dir, 'sign.pem'), signer.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  admin = (await createKey(keyStore, { tenant: 'ops', caps: ['admin'] })).key;
  user = (await createKey(keyStore, { tenant: 'ops', caps: ['infer'] })).key;
  const seg = await closedPort();
  const cfg = parseConfig({
    node: { name: 'ev-http' },
    listeners: { http: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
    segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
    peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
    models: { listen: { host: '127.0.0.1', port: 0 } },
    routes: [{ model: '*', peers: ['self'], upstreams: [{ address: '127.0.0.1:1' }] }],
    log: { level: 'silent' },
    security: {
      tenants: [{ name: 'ops', id: 3 }],
      audit: { enabled: true, path: auditFile, checkpointSeconds: 3600 },
      apiKeys: { enabled: true, store: keyStore },
      evidence: { signingKeyFile: path.join(dir, 'sign.pem') },
    },
  });
  node = new SluiceNode({ config: cfg, logger: new Logging({ level: 'silent', node: 'ev' }).component('node'), transports: defaultTransports });
  await node.start();
  http = `http://${node.endpoints.http}`;
});

after(async () => {
  await node?.stop(0);
});

const body = () => JSON.stringify({ from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString(), framework: 'soc2' });

test('no credential: 401; infer-only key: 403 (typed problems); metrics port has no such endpoint', async () => {
  const none = await fetch(`${http}/v2/sluice/evidence`, { method: 'POST', body: body() });
  assert.equal(none.status, 401);
  assert.match(none.headers.get('content-type') ?? '', /problem\+json/);
  const weak = await fetch(`${http}/v2/sluice/evidence`, { method: 'POST', headers: { authorization: `Bearer ${user}` }, body: body() });
  assert.equal(weak.status, 403);
  const metrics = await fetch(`http://${node.endpoints.metrics}/v2/sluice/evidence`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: body() });
  assert.notEqual(metrics.status, 200);
});

test('admin key: a signed pack that verifies against the live log, with the refusals above in it', async () => {
  const res = await fetch(`${http}/v2/sluice/evidence`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: body() });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get('content-type'), 'application/x-tar');
  const pack = Buffer.from(await res.arrayBuffer());
  const v = await verifyEvidencePack(pack, signer.publicKey, { auditLog: auditFile });
  assert.equal(v.ok, true, JSON.stringify(v.problem));
  const entries = readTar(pack).find((e) => e.name === 'audit/entries.jsonl')!.data.toString();
  assert.match(entries, /"action":"auth\.failed"/);
  assert.match(entries, /"action":"policy\.denied"/);
  const metrics = readTar(pack).find((e) => e.name === 'metrics.txt')!.data.toString();
  assert.match(metrics, /sluice_/);
  // The export itself is audited.
  await new Promise((r) => setTimeout(r, 50));
  assert.match(readFileSync(auditFile, 'utf8'), /"action":"evidence\.export"/);
});

test('bad bodies get 400 problems', async () => {
  for (const b of ['not json', '{"from":"yesterday","to":"2026-01-01T00:00:00Z"}', JSON.stringify({ from: '2026-01-01T00:00:00Z', to: '2026-02-01T00:00:00Z', framework: 'gdpr' })]) {
    const res = await fetch(`${http}/v2/sluice/evidence`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: b });
    assert.equal(res.status, 400, b);
    assert.ok(((await res.json()) as { request_id?: string }).request_id);
  }
});
