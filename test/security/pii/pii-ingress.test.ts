// The PII policy on a real node (ingress + egress + the identity reference model, real
// sockets): each mode over gRPC (raw and typed BYTES, string parameters), REST and WebSocket;
// the request and response channels; the vault and the break-glass reveal; metrics; and that
// logs, audit details and webhook bodies never carry a matched value.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import WebSocket from 'ws';
import { parseConfig } from '../../../src/config/load.ts';
import { SluiceNode } from '../../../src/node/sluice-node.ts';
import { defaultTransports } from '../../../src/node/transports.ts';
import { createKey } from '../../../src/security/api-key-store.ts';
import { tenantsNeedingSlowPath } from '../../../src/security/pii/policy.ts';
import { Logging } from '../../../src/telemetry/logger.ts';
import { KserveClient } from '../../helpers/kserve-client.ts';
import { closedPort } from '../../helpers/sluice-process.ts';
import { tempDir } from '../../helpers/temp-dir.ts';

const run = promisify(execFile);
const dir = tempDir();
const auditFile = path.join(dir, 'audit.jsonl');
const adminAudit = path.join(dir, 'admin-audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const vaultDir = path.join(dir, 'vault');
const vaultKey = path.join(dir, 'vault.key');
const logFile = path.join(dir, 'node.log');
const configFile = path.join(dir, 'sluice.yaml');
const keys: Record<string, string> = {};
const hooks: string[] = [];
let hookServer: Server;
let node: SluiceNode;
let models: SluiceNode;
let http: string;
let client: KserveClient;

const EMAIL = 'jane.roe@example.com';
const CARD = '4111 1111 1111 1111';
const PHONE = '+14155552671';
const PROMPT = `Contact ${EMAIL} or call ${PHONE}; charge card ${CARD}.`;
const VALUES = [EMAIL, CARD, PHONE];

function securityConfig(hookUrl: string) {
  return {
    tenants: [
      { name: 'acme', id: 17 },
      { name: 'globex', id: 18 },
      { name: 'initech', id: 19 },
      { name: 'plain', id: 20 },
      { name: 'oneway', id: 21 },
    ],
    audit: { enabled: true, path: auditFile, adminPath: adminAudit, checkpointSeconds: 3600 },
    apiKeys: { enabled: true, store: keyStore },
    webhooks: { endpoints: [{ url: hookUrl, secret: 'w'.repeat(40), events: ['pii.flagged', 'pii.redacted', 'pii.tokenized'] }] },
    pii: {
      enabled: true,
      policies: [
        { tenant: 'acme', mode: 'strict' },
        { tenant: 'globex', mode: 'reversible' },
        { tenant: 'initech', mode: 'flag' },
        { tenant: 'oneway', mode: 'reversible', channels: ['request'], classes: ['email'] },
      ],
      vault: { path: vaultDir, keyFile: vaultKey },
    },
  };
}

before(async () => {
  writeFileSync(vaultKey, randomBytes(32).toString('hex'));
  for (const t of ['acme', 'globex', 'initech', 'plain', 'oneway']) keys[t] = (await createKey(keyStore, { tenant: t, caps: ['infer'] })).key;
  hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      hooks.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/hook`;
  const logging = new Logging({ level: 'debug', node: 'pii-test', destination: pino.destination({ dest: logFile, sync: true }) });
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const seg = await closedPort();
  const cfg = parseConfig({
    node: { name: 'pii' },
    listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
    segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
    peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
    routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
    log: { level: 'debug' },
    security: securityConfig(hookUrl),
  });
  writeFileSync(configFile, JSON.stringify({ security: { ...securityConfig(hookUrl), webhooks: { endpoints: [] } } }));
  node = new SluiceNode({ config: cfg, logger: logging.component('node'), transports: defaultTransports });
  await node.start();
  http = `http://${node.endpoints.http}`;
  client = new KserveClient(node.endpoints.grpc!);
});

after(async () => {
  client?.raw.close();
  await node?.stop(0);
  await models?.stop(0);
  hookServer?.close();
});

const auth = (tenant: string) => ({ authorization: `Bearer ${keys[tenant]}` });

function bytesRaw(...texts: string[]): Buffer {
  return Buffer.concat(
    texts.flatMap((t) => {
      const b = Buffer.from(t, 'utf8');
      const h = Buffer.alloc(4);
      h.writeUInt32LE(b.length);
      return [h, b];
    }),
  );
}

function bytesOf(raw: Uint8Array): string[] {
  const out: string[] = [];
  const b = Buffer.from(raw);
  for (let p = 0; p < b.length; ) {
    const n = b.readUInt32LE(p);
    out.push(b.toString('utf8', p + 4, p + 4 + n));
    p += 4 + n;
  }
  return out;
}

async function grpcRaw(tenant: string, texts: string[], parameters: Record<string, object> = {}) {
  const r = await client.infer(
    { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [texts.length] }], rawInputContents: [bytesRaw(...texts)], parameters },
    { metadata: { authorization: `Bearer ${keys[tenant]}` } },
  );
  return { texts: bytesOf(r.response.rawOutputContents[0]!), params: r.response.parameters ?? {}, trailers: r.trailers };
}

async function rest(tenant: string, texts: string[], parameters: Record<string, unknown> = {}) {
  const res = await fetch(`${http}/v2/models/identity/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth(tenant) },
    body: JSON.stringify({ parameters, inputs: [{ name: 'INPUT0', shape: [texts.length], datatype: 'BYTES', data: texts }] }),
  });
  const body = (await res.json()) as { outputs?: { data: string[] }[]; parameters?: Record<string, unknown> };
  return { status: res.status, flags: res.headers.get('pii-flags'), texts: body.outputs?.[0]?.data ?? [], params: body.parameters ?? {}, body };
}

async function ws(tenant: string, texts: string[]) {
  const sock = new WebSocket(`ws://${node.endpoints.http}/v2/models/identity/infer/stream`, { headers: auth(tenant) });
  await new Promise((resolve, reject) => {
    sock.once('open', resolve);
    sock.once('error', reject);
  });
  const answer = new Promise<Record<string, unknown>>((resolve) => sock.once('message', (d) => resolve(JSON.parse(String(d)) as Record<string, unknown>)));
  sock.send(JSON.stringify({ id: 'w1', inputs: [{ name: 'INPUT0', shape: [texts.length], datatype: 'BYTES', data: texts }] }));
  const a = await answer;
  sock.close();
  return { texts: ((a.outputs as { data: string[] }[] | undefined)?.[0]?.data ?? []) as string[], params: (a.parameters ?? {}) as Record<string, unknown>, raw: a };
}

test('the slow-path table names exactly the tenants with a policy', () => {
  const cfg = parseConfig({ security: securityConfig('http://127.0.0.1:1/') });
  assert.deepEqual([...tenantsNeedingSlowPath(cfg)].sort(), ['acme', 'globex', 'initech', 'oneway']);
  assert.equal(tenantsNeedingSlowPath(parseConfig({})).size, 0);
});

test('strict: typed tokens on gRPC (raw BYTES and string parameters), REST and WebSocket', async () => {
  const g = await grpcRaw('acme', [PROMPT, 'nothing here'], { note: { stringParam: `from ${EMAIL}` }, n: { int64Param: 3 } });
  assert.deepEqual(g.texts, ['Contact [EMAIL] or call [PHONE]; charge card [PAYMENT_CARD].', 'nothing here']);
  const r = await rest('acme', [PROMPT]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.texts, ['Contact [EMAIL] or call [PHONE]; charge card [PAYMENT_CARD].']);
  assert.equal(r.flags, null, 'strict mode does not flag');
  const w = await ws('acme', [PROMPT]);
  assert.deepEqual(w.texts, ['Contact [EMAIL] or call [PHONE]; charge card [PAYMENT_CARD].']);
});

test('strict: typed bytes_contents over gRPC are redacted too', async () => {
  const r = await client.infer(
    { modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'BYTES', shape: [1], contents: { bytesContents: [Buffer.from(`SSN 123-45-6789, ${EMAIL}`)] } }] },
    { metadata: auth('acme') },
  );
  const out = r.response.outputs[0]!;
  const texts = out.contents?.bytesContents?.length ? out.contents.bytesContents.map((b) => Buffer.from(b).toString()) : bytesOf(r.response.rawOutputContents[0]!);
  assert.deepEqual(texts, ['SSN [GOV_ID], [EMAIL]']);
});

test('a tenant without a policy passes unchanged (and binary BYTES elements are never touched)', async () => {
  const g = await grpcRaw('plain', [PROMPT]);
  assert.deepEqual(g.texts, [PROMPT]);
  assert.equal(g.trailers?.['pii-flags'], undefined);
  const bin = Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('latin1');
  const s = await grpcRaw('acme', [bin]);
  assert.equal(s.texts.length, 1);
});

test('flag: bytes unchanged; pii-flags as response parameter and header (REST), trailer (gRPC), parameter (WS)', async () => {
  const r = await rest('initech', [PROMPT]);
  assert.deepEqual(r.texts, [PROMPT]);
  assert.equal(r.flags, 'email,phone,payment_card');
  assert.equal(r.params['pii-flags'], 'email,phone,payment_card');
  const g = await grpcRaw('initech', [`write to ${EMAIL}`]);
  assert.deepEqual(g.texts, [`write to ${EMAIL}`]);
  assert.equal(g.params['pii-flags']?.stringParam, 'email');
  assert.equal(g.trailers?.['pii-flags'], 'email');
  const w = await ws('initech', [`call ${PHONE}`]);
  assert.deepEqual(w.texts, [`call ${PHONE}`]);
  assert.equal(w.params['pii-flags'], 'phone');
  const clean = await rest('initech', ['nothing to see']);
  assert.equal(clean.flags, null);
});

test('reversible: the model sees tokens; the tenant gets originals back; the vault is encrypted', async () => {
  // oneway covers only the request channel: the identity model echoes what it was sent.
  const seen = await rest('oneway', [`mail ${EMAIL} now`]);
  const m = /\[EMAIL:([0-9a-f]{16})\]/.exec(seen.texts[0]!);
  assert.ok(m, seen.texts[0]);
  const token = m[0];
  assert.equal(seen.texts[0], `mail ${token} now`);
  // Same value, same tenant: same token (consistent across a conversation).
  assert.equal((await rest('oneway', [`${EMAIL}`])).texts[0], token);
  // globex covers both channels: originals come back, over every transport.
  assert.deepEqual((await rest('globex', [PROMPT])).texts, [PROMPT]);
  assert.deepEqual((await grpcRaw('globex', [PROMPT])).texts, [PROMPT]);
  assert.deepEqual((await ws('globex', [PROMPT])).texts, [PROMPT]);
  // Another tenant's token is not restored for globex.
  assert.deepEqual((await rest('globex', [`echo ${token}`])).texts, [`echo ${token}`]);
  // On disk: one file per tenant, no plaintext.
  const files = readdirSync(vaultDir).sort();
  assert.deepEqual(files, ['globex.vault.jsonl', 'oneway.vault.jsonl']);
  for (const f of files) {
    const text = readFileSync(path.join(vaultDir, f), 'utf8');
    for (const v of VALUES) assert.ok(!text.includes(v), `${f} holds ${v} in clear`);
  }
  // Break glass: the CLI reveals it only with a reason, and records the reveal.
  const cli = ['--import', 'tsx', 'src/cli/main.ts', 'pii', 'reveal', token, '--tenant', 'oneway', '--config', configFile];
  await assert.rejects(run(process.execPath, cli), /--reason/);
  const ok = await run(process.execPath, [...cli, '--reason', 'incident 4711 customer request']);
  assert.equal(ok.stdout.trim(), EMAIL);
  await assert.rejects(run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pii', 'reveal', token, '--tenant', 'globex', '--reason', 'wrong tenant test', '--config', configFile]), /not in the vault/);
  const admin = readFileSync(adminAudit, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const reveals = admin.filter((e) => e.action === 'pii.reveal');
  assert.deepEqual(reveals.map((e) => [e.tenant, e.outcome, e.reason]), [
    ['oneway', 'success', 'incident 4711 customer request'],
    ['globex', 'failure', 'wrong tenant test'],
  ]);
  assert.ok(!JSON.stringify(admin).includes(EMAIL));
});

test('audit events carry classes, counts and scores; metrics count by class, mode, tenant; no value leaks anywhere', async () => {
  await rest('initech', [PROMPT]);
  const entries = readFileSync(auditFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; tenant: string; detail?: Record<string, unknown> });
  const flagged = entries.filter((e) => e.action === 'pii.flagged' && e.tenant === 'initech');
  assert.ok(flagged.length >= 1);
  const classes = flagged.at(-1)!.detail!.classes as Record<string, { count: number; max_score: number }>;
  assert.deepEqual(Object.keys(classes).sort(), ['email', 'payment_card', 'phone']);
  assert.equal(classes.email!.count, 1);
  assert.ok(classes.payment_card!.max_score >= 0.5);
  assert.ok(entries.some((e) => e.action === 'pii.redacted' && e.tenant === 'acme'));
  assert.ok(entries.some((e) => e.action === 'pii.tokenized' && e.tenant === 'globex'));
  const metrics = await (await fetch(`http://${node.endpoints.metrics}/metrics`)).text();
  assert.match(metrics, /sluice_pii_matches_total\{class="email",mode="strict",tenant="acme",channel="request"\} [1-9]/);
  assert.match(metrics, /sluice_pii_matches_total\{class="payment_card",mode="flag",tenant="initech",channel="request"\} [1-9]/);
  // Webhook deliveries arrive asynchronously.
  const deadline = Date.now() + 5000;
  while (!hooks.some((h) => h.includes('pii.flagged')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(hooks.some((h) => h.includes('pii.flagged')));
  const everywhere = [readFileSync(auditFile, 'utf8'), hooks.join('\n'), readFileSync(logFile, 'utf8')];
  for (const text of everywhere) for (const v of [...VALUES, '123-45-6789']) assert.ok(!text.includes(v), `a matched value (${v}) leaked`);
});
