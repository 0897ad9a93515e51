// The gate pipeline attached to a real node (ingress + egress + reference models in-process,
// real sockets): every gate's refusal on HTTP and gRPC, the audit trail they leave, and TLS.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { int32Raw } from '../helpers/tensors.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';

const dir = tempDir();
const auditFile = path.join(dir, 'audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const jwksFile = path.join(dir, 'jwks.json');
const logging = new Logging({ level: 'silent', node: 'gates-test' });
let node: SluiceNode;
let models: SluiceNode;
let http: string;
let grpcAddr: string;
const keys: Record<string, string> = {};
let signer: CryptoKey;

async function nodeConfig(extraSecurity: object = {}) {
  const seg = await closedPort();
  return parseConfig({
    node: { name: 'gates' },
    listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
    segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
    peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
    models: { listen: { host: '127.0.0.1', port: 0 } },
    routes: [{ model: '*', peers: ['self'], upstreams: [{ address: '127.0.0.1:1' }] }],
    log: { level: 'silent' },
    security: {
      tenants: [
        { name: 'acme', id: 17, models: ['simple'] },
        { name: 'globex', id: 18 },
        { name: 'tiny', id: 19 },
      ],
      audit: { enabled: true, path: auditFile, checkpointSeconds: 3600 },
      apiKeys: { enabled: true, store: keyStore },
      jwt: { enabled: true, jwksFile },
      rateLimits: { enabled: true, tenants: { tiny: { requestsPerSecond: 0.01, burst: 2, maxRequestBytes: 1000 } } },
      ...extraSecurity,
    },
  });
}

async function startNode(cfg: Awaited<ReturnType<typeof nodeConfig>>): Promise<SluiceNode> {
  // The reference model server listens on port 0: point the route at it once it is up.
  const n = new SluiceNode({ config: cfg, logger: logging.component('node'), transports: defaultTransports });
  await n.start();
  return n;
}

before(async () => {
  for (const [name, tenant, caps] of [
    ['acme', 'acme', ['infer']],
    ['acmeTrain', 'acme', ['train']],
    ['globex', 'globex', ['infer']],
    ['tiny', 'tiny', ['infer']],
    ['admin', 'globex', ['infer', 'admin']],
  ] as const) {
    keys[name] = (await createKey(keyStore, { tenant, caps: [...caps] })).key;
  }
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  signer = privateKey;
  writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] }));
  // Models first (its port is needed by the route), then the node with everything.
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const cfg = await nodeConfig();
  cfg.models = undefined;
  cfg.routes = [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }];
  node = await startNode(cfg);
  http = `http://${node.endpoints.http}`;
  grpcAddr = node.endpoints.grpc!;
});

after(async () => {
  await node?.stop(0);
  await models?.stop(0);
});

const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, () => 1) },
  ],
});

async function infer(model: string, headers: Record<string, string>, requestId = `req-${Math.random().toString(36).slice(2)}`) {
  const res = await fetch(`${http}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': requestId, ...headers }, body: simpleBody });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown>, requestId };
}

const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

async function jwt(claims: Record<string, unknown>, lifetime = 300, iatOffset = 0): Promise<string> {
  const iat = Math.floor(Date.now() / 1000) + iatOffset;
  return new SignJWT({ tenant_id: 'acme', caps: ['infer'], sub: 'job-1', ...claims }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuedAt(iat).setExpirationTime(iat + lifetime).sign(signer);
}

function auditEntries(): AuditEntry[] {
  return readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry);
}

test('HTTP: each gate refuses with a typed RFC 7807 problem carrying the request id', async () => {
  const none = await infer('simple', {});
  assert.equal(none.status, 401);
  assert.equal(none.type, 'application/problem+json');
  assert.equal(none.body.type, 'urn:sluice:problem:unauthenticated');
  assert.equal(none.body.request_id, none.requestId);

  assert.equal((await infer('simple', bearer('slk_000000000000_' + 'A'.repeat(43)))).status, 401, 'unknown key');
  assert.equal((await infer('simple', { authorization: 'Basic abc' })).status, 401);
  const expired = await infer('simple', bearer(await jwt({}, 60, -400)));
  assert.deepEqual([expired.status, expired.body.type], [401, 'urn:sluice:problem:token-expired']);

  const noCap = await infer('simple', bearer(keys.acmeTrain!));
  assert.deepEqual([noCap.status, noCap.body.type], [403, 'urn:sluice:problem:permission-denied']);
  const otherModel = await infer('identity', bearer(keys.acme!));
  assert.deepEqual([otherModel.status, otherModel.body.type], [403, 'urn:sluice:problem:tenant-denied']);
  const otherTenant = await infer('simple', { ...bearer(keys.acme!), 'x-sluice-tenant': 'globex' });
  assert.deepEqual([otherTenant.status, otherTenant.body.type], [403, 'urn:sluice:problem:tenant-denied']);
  const unknownTenant = await infer('simple', bearer(await jwt({ tenant_id: 'initech' })));
  assert.equal(unknownTenant.status, 403);
  const bigBody = JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 1000], datatype: 'INT32', data: Array.from({ length: 1000 }, (_, i) => i) }] });
  const big = await fetch(`${http}/v2/models/identity/infer`, { method: 'POST', headers: { ...bearer(keys.tiny!), 'content-type': 'application/json' }, body: bigBody });
  assert.equal(big.status, 413, 'over the tenant size limit');
  const denials = auditEntries().filter((e) => e.outcome === 'denied');
  for (const rid of [none.requestId, noCap.requestId, otherModel.requestId, otherTenant.requestId]) {
    assert.ok(denials.some((e) => e.request_id === rid), `refusal of ${rid} is in the audit log`);
  }
  assert.equal(denials.find((e) => e.request_id === noCap.requestId)?.actor.startsWith('key:'), true);

  // Each refusal is counted in the node's metrics, by what the request carried and why.
  const m = parsePromText(await node.metrics.render());
  const auth = (method: string, reason: string) => sampleValue(m, 'sluice_auth_rejections_total', { method, reason });
  const policy = (reason: string) => sampleValue(m, 'sluice_policy_rejections_total', { segment: 'client', reason });
  assert.equal(auth('none', 'unauthenticated'), 2, 'no credentials; a Basic header');
  assert.equal(auth('api_key', 'unauthenticated'), 1, 'unknown key');
  assert.equal(auth('jwt', 'token_expired'), 1);
  assert.equal(policy('permission_denied'), 1);
  assert.equal(policy('tenant_denied'), 3, 'other model, other tenant, unknown tenant');
  assert.equal(policy('too_large'), 1);
});

test('HTTP and gRPC: valid keys and tokens pass; the entry is durable before the answer, bound to the tenant', async () => {
  const ok = await infer('simple', bearer(keys.acme!));
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  const entry = auditEntries().find((e) => e.request_id === ok.requestId);
  assert.ok(entry !== undefined, 'the allowed request was on disk when the answer came');
  assert.deepEqual([entry.action, entry.outcome, entry.tenant], ['infer.request', 'success', 'acme']);
  assert.equal(entry.actor, `key:${keys.acme!.split('_')[1]}`);

  const viaJwt = await infer('simple', bearer(await jwt({})));
  assert.equal(viaJwt.status, 200);
  assert.equal(auditEntries().find((e) => e.request_id === viaJwt.requestId)?.actor, 'jwt:job-1');

  const client = new KserveClient(grpcAddr);
  const req = {
    modelName: 'simple',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    rawInputContents: [int32Raw(Array.from({ length: 16 }, (_, i) => i)), int32Raw(Array.from({ length: 16 }, () => 2))],
  };
  try {
    const r = await client.infer(req, { requestId: 'grpc-ok', metadata: bearer(keys.globex!) });
    assert.equal(r.requestId, 'grpc-ok');
    const unauth = (await client.infer(req, { requestId: 'grpc-unauth' }).catch((e: CallFailure) => e)) as CallFailure;
    assert.deepEqual([unauth.code, unauth.requestId], [grpc.status.UNAUTHENTICATED, 'grpc-unauth']);
    const denied = (await client.infer(req, { metadata: bearer(keys.acmeTrain!) }).catch((e: CallFailure) => e)) as CallFailure;
    assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
    assert.match(denied.details, /lack the "infer" capability/);
  } finally {
    client.close();
  }
});

test('per-tenant rate limits: 429 on HTTP, RESOURCE_EXHAUSTED on gRPC, summarised in the audit log', async () => {
  const codes: number[] = [];
  for (let i = 0; i < 4; i++) codes.push((await infer('simple', bearer(keys.tiny!))).status);
  assert.deepEqual(codes, [200, 200, 429, 429]);
  const other = await infer('simple', bearer(keys.globex!));
  assert.equal(other.status, 200, 'another tenant is not affected');
  const client = new KserveClient(grpcAddr);
  try {
    const f = (await client.call('ModelReady', { name: 'simple' }, { metadata: bearer(keys.tiny!) }).catch((e: CallFailure) => e)) as CallFailure;
    assert.equal(f.code, grpc.status.RESOURCE_EXHAUSTED);
  } finally {
    client.close();
  }
  const summaries = auditEntries().filter((e) => e.action === 'ratelimit.exceeded' && e.tenant === 'tiny');
  assert.equal(summaries.length, 1, 'refusals within one second are one entry');
});

test('break-glass: an admin may act for another tenant only with a reason, and it is recorded', async () => {
  const noReason = await infer('identity', { ...bearer(keys.admin!), 'x-sluice-tenant': 'acme', 'x-sluice-break-glass': 'x' });
  assert.equal(noReason.status, 400);
  const nonAdmin = await infer('simple', { ...bearer(keys.globex!), 'x-sluice-tenant': 'acme', 'x-sluice-break-glass': 'incident 4711 recovery' });
  assert.equal(nonAdmin.status, 403);
  const ok = await infer('simple', { ...bearer(keys.admin!), 'x-sluice-tenant': 'acme', 'x-sluice-break-glass': 'incident 4711 recovery' });
  assert.equal(ok.status, 200);
  const e = auditEntries().find((x) => x.request_id === ok.requestId && x.action === 'infer.request');
  assert.deepEqual([e?.tenant, e?.reason], ['acme', 'incident 4711 recovery']);
  assert.ok(auditEntries().some((x) => x.action === 'admin.break_glass' && x.request_id === ok.requestId));
});

test('a revoked key stops working without a restart', async () => {
  const { revokeKey } = await import('../../src/security/api-key-store.ts');
  assert.equal((await infer('simple', bearer(keys.globex!))).status, 200);
  await revokeKey(keyStore, keys.globex!.split('_')[1]!, 'test');
  let status = 200;
  for (let i = 0; i < 100 && status === 200; i++) {
    await new Promise((r) => setTimeout(r, 30));
    status = (await infer('simple', bearer(keys.globex!))).status;
  }
  assert.equal(status, 401);
});

test('the audit log the node wrote verifies after shutdown', async () => {
  await node.stop(0);
  const v = await verifyAuditFile(auditFile);
  assert.equal(v.ok, true, v.problem?.message);
  assert.ok(v.entries > 20);
});
