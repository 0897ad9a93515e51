// The slow-path part of the policy table: which tenants (PII policies, threat profiles) and
// whether calls without a tenant go to TypeScript, compiled into the blob the engine parses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { slowPathSet } from '../../src/engine/engine-slow-path.ts';
import { compilePolicyTable, PolicyFlag } from '../../src/engine/policy-compiler.ts';
import { threatsSchema } from '../../src/security/threats/threat-config.ts';
import { ThreatMonitor } from '../../src/security/threats/threat-monitor.ts';

function security(pii: unknown) {
  return parseConfig({ security: { tenants: [{ name: 'acme', id: 7 }, { name: 'plain', id: 8 }], pii } }, 'test');
}

/** Tenant flags of a compiled table, by name (layout: native/engine/policy_table.h). */
function tenantFlags(blob: Buffer): { flags: number; tenants: Map<string, number> } {
  const flags = blob.readUInt16LE(6);
  const n = blob.readUInt32LE(16);
  let p = 32;
  const tenants = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const f = blob.readUInt32LE(p + 4);
    p += 8 + 24;
    const len = blob.readUInt16LE(p);
    const name = blob.toString('utf8', p + 2, p + 2 + len);
    p += 2 + len;
    const models = blob.readUInt32LE(p);
    p += 4;
    for (let m = 0; m < models; m++) p += 2 + blob.readUInt16LE(p);
    p += 4; // the shared rate-limit bucket slot
    tenants.set(name, f);
  }
  return { flags, tenants };
}

function compile(config: ReturnType<typeof security>, monitor?: ThreatMonitor) {
  const slow = slowPathSet(config, monitor);
  return tenantFlags(compilePolicyTable({ generation: 1, security: config.security, apiKeys: [], routes: [], slowPathTenants: slow.tenants, noTenantSlowPath: slow.noTenant }));
}

test('a tenant PII policy marks only that tenant', () => {
  const t = compile(security({ enabled: true, policies: [{ tenant: 'acme', mode: 'strict' }] }));
  assert.equal(t.tenants.get('acme')! & 2, 2);
  assert.equal(t.tenants.get('plain')! & 2, 0);
  assert.equal(t.flags & PolicyFlag.NO_TENANT_SLOW, 0);
});

test('a catch-all PII policy marks every tenant and the calls without one', () => {
  const t = compile(security({ enabled: true, policies: [{ tenant: '*', mode: 'flag' }] }));
  assert.equal(t.tenants.get('acme')! & 2, 2);
  assert.equal(t.tenants.get('plain')! & 2, 2);
  assert.equal(t.flags & PolicyFlag.NO_TENANT_SLOW, PolicyFlag.NO_TENANT_SLOW);
});

test('PII off: nobody takes the slow path', () => {
  const t = compile(security({ enabled: false, policies: [{ tenant: 'acme', mode: 'strict' }] }));
  assert.equal(t.tenants.get('acme')! & 2, 0);
});

test('a tenant in a threat profile takes the slow path for the profile\'s duration; "anonymous" means the calls without a tenant', () => {
  let now = 1_000_000;
  const events: { type: string }[] = [];
  const monitor = new ThreatMonitor(threatsSchema.parse({ enabled: true, adversarial: { enabled: false }, extraction: { maxQueriesPerMinute: 1 }, profile: { durationSeconds: 10 } }), { emit: (e) => events.push(e) }, {}, () => now);
  let changes = 0;
  monitor.onProfilesChanged(() => changes++);
  const config = security({ enabled: false });
  assert.equal(compile(config, monitor).tenants.get('plain')! & 2, 0);
  for (const tenant of ['plain', 'anonymous']) {
    for (let i = 0; i < 3; i++) monitor.inspect({ tenant, model: 'm', requestId: `r${i}`, inputs: [{ name: 'x', shape: [1, 4], values: new Float32Array(4) }] });
  }
  assert.equal(changes, 2);
  const during = compile(config, monitor);
  assert.equal(during.tenants.get('plain')! & 2, 2);
  assert.equal(during.tenants.get('acme')! & 2, 0);
  assert.equal(during.flags & PolicyFlag.NO_TENANT_SLOW, PolicyFlag.NO_TENANT_SLOW);
  assert.equal(monitor.nextProfileEnd(), now + 10_000);
  now += 10_001;
  const afterwards = compile(config, monitor);
  assert.equal(afterwards.tenants.get('plain')! & 2, 0);
  assert.equal(afterwards.flags & PolicyFlag.NO_TENANT_SLOW, 0);
  assert.equal(changes, 4, 'each profile end is a change (the engine republishes)');
  assert.equal(events.filter((e) => e.type === 'threat.profile_exited').length, 2);
});
