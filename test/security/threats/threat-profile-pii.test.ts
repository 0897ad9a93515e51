// The stricter threat profile includes PII flag mode (issue 17, "Actions and adaptive
// protection"): a real node (ingress + egress + the identity model, real sockets) with threat
// detection; a tenant with no PII policy is flagged by its query volume and, while in the
// profile, its requests are scanned in flag mode (audit event with classes, counts and scores;
// `pii-flags` header and parameter); a tenant whose own policy is stricter keeps it; when the
// profile ends the flagging stops.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseConfig } from '../../../src/config/load.ts';
import { SluiceNode } from '../../../src/node/sluice-node.ts';
import { defaultTransports } from '../../../src/node/transports.ts';
import { createKey } from '../../../src/security/api-key-store.ts';
import { Logging } from '../../../src/telemetry/logger.ts';
import { KserveClient } from '../../helpers/kserve-client.ts';
import { closedPort } from '../../helpers/sluice-process.ts';
import { tempDir } from '../../helpers/temp-dir.ts';

const dir = tempDir('threat-pii-');
const auditFile = path.join(dir, 'audit.jsonl');
const keyStore = path.join(dir, 'keys.json');
const keys: Record<string, string> = {};
let node: SluiceNode;
let models: SluiceNode;
let client: KserveClient;
const EMAIL = 'jane.roe@example.com';
const PROFILE_SECONDS = 3;

before(async () => {
  for (const t of ['suspect', 'acme']) keys[t] = (await createKey(keyStore, { tenant: t, caps: ['infer'] })).key;
  const logging = new Logging({ level: 'silent', node: 'threat-pii' });
  models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('models'), transports: defaultTransports });
  await models.start();
  const seg = await closedPort();
  node = new SluiceNode({
    config: parseConfig({
      node: { name: 'threat-pii' },
      listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: randomBytes(32).toString('hex'), listen: { host: '127.0.0.1', port: seg } } },
      peers: [{ name: 'self', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['self'], upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: {
        tenants: [
          { name: 'suspect', id: 31 },
          { name: 'acme', id: 32 },
        ],
        audit: { enabled: true, path: auditFile, adminPath: path.join(dir, 'admin.jsonl'), checkpointSeconds: 3600 },
        apiKeys: { enabled: true, store: keyStore },
        pii: { enabled: true, policies: [{ tenant: 'acme', mode: 'strict' }] },
        threats: { enabled: true, defaultAction: 'observe', extraction: { maxQueriesPerMinute: 3 }, adversarial: { enabled: false }, profile: { durationSeconds: PROFILE_SECONDS } },
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

type AuditLine = { action: string; tenant: string | null; detail: Record<string, unknown> };
const audit = (): AuditLine[] =>
  readFileSync(auditFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditLine & { kind?: string });

async function rest(tenant: string, text: string) {
  const res = await fetch(`http://${node.endpoints.http}/v2/models/identity/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${keys[tenant]}` },
    body: JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1], datatype: 'BYTES', data: [text] }] }),
  });
  const body = (await res.json()) as { outputs?: { data: string[] }[]; parameters?: Record<string, unknown> };
  return { status: res.status, flags: res.headers.get('pii-flags'), text: body.outputs?.[0]?.data?.[0], params: body.parameters ?? {} };
}

/** Numeric queries until the volume signal puts the tenant in the profile (audited). */
async function flag(tenant: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const values = Buffer.from(new Float32Array([i, i + 1, i * 2, 1]).buffer);
    await client.infer({ modelName: 'identity', inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 4] }], rawInputContents: [values] }, { metadata: { authorization: `Bearer ${keys[tenant]}` } });
    await sleep(20);
    if (audit().some((e) => e.action === 'threat.profile_entered' && e.tenant === tenant)) return;
  }
  assert.fail(`${tenant} never entered the stricter profile`);
}

test('a flagged tenant without a PII policy is scanned in flag mode while in the profile, and not after', async () => {
  const calm = await rest('suspect', `write to ${EMAIL}`);
  assert.equal(calm.status, 200);
  assert.equal(calm.flags, null, 'no policy, no profile: no scan');
  await flag('suspect');
  const r = await rest('suspect', `write to ${EMAIL}`);
  assert.equal(r.status, 200);
  assert.equal(r.text, `write to ${EMAIL}`, 'flag mode never changes the bytes');
  assert.equal(r.flags, 'email');
  assert.equal(r.params['pii-flags'], 'email');
  const flagged = audit().filter((e) => e.action === 'pii.flagged' && e.tenant === 'suspect');
  assert.ok(flagged.length >= 1);
  assert.equal(flagged[0]!.detail.threat_profile, true);
  assert.equal((flagged[0]!.detail.classes as Record<string, { count: number }>).email!.count, 1);
  assert.ok(!JSON.stringify(flagged).includes(EMAIL), 'no value in the audit log');
  assert.ok(audit().some((e) => e.action === 'threat.profile_request' && e.tenant === 'suspect'), 'every request audited');
  // The profile ends: back to no scanning.
  await sleep(PROFILE_SECONDS * 1000 + 300);
  const after = await rest('suspect', `write to ${EMAIL}`);
  assert.equal(after.flags, null);
  assert.ok(audit().some((e) => e.action === 'threat.profile_exited' && e.tenant === 'suspect'));
});

test("a flagged tenant whose own policy is stricter (strict) keeps it; the profile does not weaken it to flag mode", async () => {
  await flag('acme');
  const r = await rest('acme', `write to ${EMAIL}`);
  assert.equal(r.status, 200);
  assert.equal(r.text, 'write to [EMAIL]');
  assert.equal(r.flags, null);
  assert.ok(!audit().some((e) => e.action === 'pii.flagged' && e.tenant === 'acme'));
});
