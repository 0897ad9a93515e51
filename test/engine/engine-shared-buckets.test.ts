// One rate-limit bucket per tenant across both ingress paths: a node whose listeners.grpc is
// served by the native engine and whose HTTP REST listener by TypeScript gives a tenant limited
// to N calls (burst N, a rate too low to refill during the test) N calls in total, however they
// are split between gRPC ModelInfer (the engine's gate) and HTTP (the TypeScript gate), with the
// usual refusals (RESOURCE_EXHAUSTED / 429 RFC 7807) and audit summary; a republish of the
// policy table (an API-key reload) does not refill the bucket.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { AuditEntry } from '../../src/audit/entry.ts';
import type { SluiceNode } from '../../src/node/sluice-node.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { inferWhenLinked, type NodeChain, startNodeChain } from '../helpers/node-chain.ts';
import { tempDir } from '../helpers/temp-dir.ts';
import { int32Raw } from '../helpers/tensors.ts';

const N = 6;
const dir = tempDir();
const auditFile = path.join(dir, 'audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const grpcReq = {
  modelName: 'simple',
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
  ],
  rawInputContents: [int32Raw(Array.from({ length: 16 }, (_, i) => i)), int32Raw(Array.from({ length: 16 }, () => 2))],
};
let chain: NodeChain;
let node: SluiceNode;
let client: KserveClient;
let http: string;
let tinyKey: string;
let otherKey: string;

before(async () => {
  tinyKey = (await createKey(keyStore, { tenant: 'tiny', caps: ['infer'] })).key;
  otherKey = (await createKey(keyStore, { tenant: 'other', caps: ['infer'] })).key;
  chain = await startNodeChain({
    name: 'engine-shared-buckets',
    ingress: {
      listeners: { grpc: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 } },
      security: {
        tenants: [
          { name: 'tiny', id: 31 },
          { name: 'other', id: 32 },
        ],
        audit: { enabled: true, path: auditFile, checkpointSeconds: 3600, allowedRequests: false },
        apiKeys: { enabled: true, store: keyStore, reloadSeconds: 3600 },
        rateLimits: { enabled: true, tenants: { tiny: { requestsPerSecond: 0.001, burst: N, maxRequestBytes: 100_000 } } },
      },
    },
  });
  node = chain.ingress;
  client = new KserveClient(node.endpoints.grpc!);
  http = `http://${node.endpoints.http}`;
  // The segment link comes up in the background; a call of another tenant waits for it.
  await inferWhenLinked(client, grpcReq, { authorization: `Bearer ${otherKey}` });
});

after(async () => {
  client?.close();
  await chain?.stop();
});

const httpBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, (_, i) => i) },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: Array.from({ length: 16 }, () => 1) },
  ],
});

let seq = 0;
type Outcome = { path: 'grpc' | 'http'; allowed: boolean; refusal?: string };

async function viaGrpc(key: string): Promise<Outcome> {
  const id = `sb-grpc-${++seq}`;
  return client.infer(grpcReq, { requestId: id, metadata: { authorization: `Bearer ${key}` } }).then(
    () => ({ path: 'grpc', allowed: true }),
    (e: CallFailure) => {
      assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED, `${id}: ${e.details}`);
      assert.match(e.details, /^tenant "tiny" is over its rate limit of 0\.001\/s; retry in \d+ ms$/);
      return { path: 'grpc', allowed: false, refusal: 'RESOURCE_EXHAUSTED' };
    },
  );
}

async function viaHttp(key: string): Promise<Outcome> {
  const id = `sb-http-${++seq}`;
  const res = await fetch(`${http}/v2/models/simple/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id, authorization: `Bearer ${key}` }, body: httpBody });
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status === 200) return { path: 'http', allowed: true };
  assert.equal(res.status, 429, `${id}: ${JSON.stringify(body)}`);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal(body.type, 'urn:sluice:problem:rate-limited');
  assert.equal(body.request_id, id);
  return { path: 'http', allowed: false, refusal: '429' };
}

function engineCalls(): { fast: number; relayed: number } {
  const c = node.engineIngressCalls;
  assert.ok(c !== undefined, 'listeners.grpc is served by the engine');
  return c;
}

async function summaries(): Promise<AuditEntry[]> {
  let s: AuditEntry[] = [];
  for (let i = 0; i < 200 && s.length === 0; i++) {
    s = readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry).filter((e) => e.action === 'ratelimit.exceeded' && e.tenant === 'tiny');
    if (s.length === 0) await new Promise((r) => setTimeout(r, 20));
  }
  return s;
}

test('gRPC on the engine and HTTP on TypeScript share one bucket: N allowed in total', async () => {
  assert.equal(node.grpcOnEngine, true);
  const before = engineCalls();
  // Interleaved and concurrent: the engine thread and the main thread take from the bucket at once.
  const outcomes = await Promise.all(Array.from({ length: 2 * N }, (_, i) => (i % 2 === 0 ? viaGrpc(tinyKey) : viaHttp(tinyKey))));
  const allowed = outcomes.filter((o) => o.allowed);
  assert.equal(allowed.length, N, `allowed ${JSON.stringify(outcomes)}`);
  assert.equal(outcomes.filter((o) => !o.allowed).length, N);
  const after = engineCalls();
  assert.equal(after.fast - before.fast, N, 'every gRPC call was gated by the engine (none relayed)');
  assert.equal(after.relayed - before.relayed, 0);
  // Both paths are spent now.
  assert.equal((await viaGrpc(tinyKey)).allowed, false);
  assert.equal((await viaHttp(tinyKey)).allowed, false);
  assert.ok((await summaries()).length >= 1, 'the refusals are summarised in the audit log');
  // Another tenant has its own bucket.
  assert.equal((await viaGrpc(otherKey)).allowed, true);
  assert.equal((await viaHttp(otherKey)).allowed, true);
});

test('a republished policy table (API-key reload) keeps the bucket: no refill', async () => {
  // A key created now is known to the engine only once the table is republished.
  const fresh = (await createKey(keyStore, { tenant: 'tiny', caps: ['infer'] })).key;
  await node.reloadCredentials();
  // RESOURCE_EXHAUSTED (not UNAUTHENTICATED) proves the engine has the new table, and its bucket is still empty.
  for (const key of [fresh, tinyKey]) {
    assert.equal((await viaGrpc(key)).allowed, false);
    assert.equal((await viaHttp(key)).allowed, false);
  }
});
