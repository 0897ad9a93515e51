import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { parseConfig } from '../../src/config/load.ts';
import { createKey } from '../../src/security/api-key-store.ts';
import { gateInterceptor } from '../../src/security/grpc-gate-interceptor.ts';
import { SecurityRuntime } from '../../src/security/security-runtime.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const dir = tempDir();
const raw = (b: Buffer) => b;
const method = (p: string) => ({ path: p, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
const TRAIN = '/sluice.v1.TensorTransfer/Status';
const ADMIN = '/sluice.admin.v1.Ops/Drain';
const HEALTH = '/grpc.health.v1.Health/Check';

let runtime: SecurityRuntime;
let server: grpc.Server;
let address: string;
let handled = 0;
const keys: Record<string, string> = {};

before(async () => {
  const store = path.join(dir, 'keys.json');
  keys.train = (await createKey(store, { tenant: 'acme', caps: ['train'] })).key;
  keys.infer = (await createKey(store, { tenant: 'acme', caps: ['infer'] })).key;
  keys.admin = (await createKey(store, { tenant: 'acme', caps: ['admin'] })).key;
  const cfg = parseConfig({ security: { tenants: [{ name: 'acme', id: 1 }], apiKeys: { enabled: true, store }, audit: { enabled: true, path: path.join(dir, 'audit.jsonl') } } });
  runtime = await SecurityRuntime.start({ config: cfg.security, nodeName: 't', logger: new Logging({ level: 'silent' }).component('security') });
  server = new grpc.Server({ interceptors: [gateInterceptor(runtime.gates)] });
  const ok = (_c: unknown, cb: grpc.sendUnaryData<Buffer>) => {
    handled++;
    cb(null, Buffer.from('ok'));
  };
  server.addService({ status: method(TRAIN), drain: method(ADMIN), check: method(HEALTH) }, { status: ok, drain: ok, check: ok });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

after(async () => {
  server.forceShutdown();
  await runtime.close();
});

function call(p: string, key: string | null): Promise<{ code: number; details: string; requestId: unknown }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('x-request-id', `rid-${p.split('/')[2]}-${key === null ? 'none' : key.slice(4, 10)}`);
  if (key !== null) md.set('authorization', `Bearer ${key}`);
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const c = client.makeUnaryRequest(p, raw, raw, Buffer.alloc(0), md, { deadline: Date.now() + 5000 }, (err) => {
      setImmediate(() => {
        client.close();
        resolve({ code: err?.code ?? 0, details: err?.details ?? '', requestId: trailers?.get('x-request-id')[0] });
      });
    });
    c.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

test('training calls need the train capability; admin calls need admin; health is ungated', async () => {
  assert.equal((await call(TRAIN, keys.train!)).code, 0);
  const before = handled;
  const noCap = await call(TRAIN, keys.infer!);
  assert.equal(noCap.code, grpc.status.PERMISSION_DENIED);
  assert.match(noCap.details, /"train" capability/);
  const anon = await call(TRAIN, null);
  assert.equal(anon.code, grpc.status.UNAUTHENTICATED);
  assert.equal(anon.requestId, 'rid-Status-none');
  assert.equal(handled, before, 'refused calls never reach the handler');
  assert.equal((await call(ADMIN, keys.train!)).code, grpc.status.PERMISSION_DENIED);
  assert.equal((await call(ADMIN, keys.admin!)).code, 0);
  assert.equal((await call(HEALTH, null)).code, 0);
  const v = await verifyAuditFile(path.join(dir, 'audit.jsonl'), { anchorFile: false });
  assert.equal(v.ok, true);
  assert.ok(v.entries >= 6);
});

test('segment policy in the gates: inference only on the inference segment, training only on the training segment', async () => {
  const check = (action: 'infer' | 'train', segment: 'inference' | 'training', key: string) =>
    runtime.gates
      .check({ requestId: `seg-${action}-${segment}`, action, segment, model: null, bytes: 0, headers: { authorization: `Bearer ${key}` }, protocol: 'test' })
      .then(
        () => 'ok',
        (e: { code: string }) => e.code,
      );
  assert.equal(await check('train', 'training', keys.train!), 'ok');
  assert.equal(await check('train', 'inference', keys.train!), 'SLUICE_ERR_SEGMENT_POLICY');
  assert.equal(await check('infer', 'training', keys.infer!), 'SLUICE_ERR_SEGMENT_POLICY');
  assert.equal(await check('infer', 'inference', keys.infer!), 'ok');
  // Each refusal is in the audit log (durable before the refusal was returned), naming the gate.
  const { readFile } = await import('node:fs/promises');
  const entries = (await readFile(path.join(dir, 'audit.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { request_id: string | null; action: string; outcome: string; detail?: { gate?: string; code?: string } });
  for (const rid of ['seg-train-inference', 'seg-infer-training']) {
    const e = entries.find((x) => x.request_id === rid);
    assert.ok(e !== undefined, `${rid} is audited`);
    assert.equal(e.action, 'policy.denied');
    assert.equal(e.outcome, 'denied');
    assert.equal(e.detail?.gate, 'isolation');
    assert.equal(e.detail?.code, 'SLUICE_ERR_SEGMENT_POLICY');
  }
});
