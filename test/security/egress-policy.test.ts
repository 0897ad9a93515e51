// Tenant policy at the egress end: an ingress that sends a tenant the egress does not serve
// (here: an ingress with security off, sending tenant 0) is refused there, and audited there.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { parseConfig } from '../../src/config/load.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

test('the egress refuses calls whose frame tenant it does not serve, and audits them', async () => {
  const logging = new Logging({ level: 'silent', node: 'egress-policy' });
  const audit = path.join(tempDir(), 'egress-audit.jsonl');
  const key = randomBytes(32).toString('hex');
  const seg = await closedPort();
  const models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('m'), transports: defaultTransports });
  await models.start();
  const egress = new SluiceNode({
    config: parseConfig({
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: seg } } },
      routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
      security: { tenants: [{ name: 'acme', id: 17 }], audit: { enabled: true, path: audit } },
    }),
    logger: logging.component('e'),
    transports: defaultTransports,
  });
  await egress.start();
  const ingress = new SluiceNode({
    config: parseConfig({
      listeners: { http: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('i'),
    transports: defaultTransports,
  });
  await ingress.start();
  try {
    const meta = await fetch(`http://${ingress.endpoints.http}/v2/models/simple`, { headers: { 'x-request-id': 'tenantless-2' } });
    assert.equal(meta.status, 403);
    assert.equal(((await meta.json()) as { type: string }).type, 'urn:sluice:problem:tenant-denied');
  } finally {
    await ingress.stop(0);
    await egress.stop(0);
    await models.stop(0);
  }
  const entries = readFileSync(audit, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry);
  assert.ok(entries.some((e) => e.request_id === 'tenantless-2' && e.action === 'policy.denied' && e.detail?.gate === 'egress'));
});
