// Tenant policy at the egress end: an ingress that sends a tenant the egress does not serve
// (here: an ingress with security off, sending tenant 0) is refused there, and audited there.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { startNodeChain } from '../helpers/node-chain.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('the egress refuses calls whose frame tenant it does not serve, and audits them', async () => {
  const audit = path.join(tempDir(), 'egress-audit.jsonl');
  const chain = await startNodeChain({
    name: 'egress-policy',
    egress: { security: { tenants: [{ name: 'acme', id: 17 }], audit: { enabled: true, path: audit } } },
    ingress: { listeners: { http: { host: '127.0.0.1', port: 0 } } },
  });
  const { ingress } = chain;
  try {
    const meta = await fetch(`http://${ingress.endpoints.http}/v2/models/simple`, { headers: { 'x-request-id': 'tenantless-2' } });
    assert.equal(meta.status, 403);
    assert.equal(((await meta.json()) as { type: string }).type, 'urn:sluice:problem:tenant-denied');
  } finally {
    await chain.stop();
  }
  const entries = readFileSync(audit, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry);
  assert.ok(entries.some((e) => e.request_id === 'tenantless-2' && e.action === 'policy.denied' && e.detail?.gate === 'egress'));
});
