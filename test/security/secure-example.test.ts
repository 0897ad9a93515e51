import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseConfig, parseConfigText } from '../../src/config/load.ts';
import { demoConfig, DEFAULT_DEMO_PORTS } from '../../src/node/demo-config.ts';
import { SecurityRuntime } from '../../src/security/security-runtime.ts';

const example = path.resolve(import.meta.dirname, '../../docs/examples/secure.yaml');

test('docs/examples/secure.yaml is a valid config with every gate on', () => {
  const cfg = parseConfigText(readFileSync(example, 'utf8'), example);
  const s = cfg.security;
  assert.ok(s.audit.enabled && s.apiKeys.enabled && s.jwt.enabled && s.tls.enabled && s.rateLimits.enabled);
  assert.equal(s.tls.clientCerts.mode, 'require');
  assert.ok(s.webhooks.endpoints.length > 0);
  assert.ok(s.tenants.length > 0);
});

test('the embedded demo runs with security off, and the defaults are off', () => {
  assert.equal(SecurityRuntime.wanted(demoConfig(DEFAULT_DEMO_PORTS, '00'.repeat(32)).security), false);
  assert.equal(SecurityRuntime.wanted(parseConfig({}).security), false);
});

test('config errors for half-configured gates name the path', () => {
  assert.throws(() => parseConfig({ security: { apiKeys: { enabled: true } } }), /security\.tenants: at least one tenant is required/);
  assert.throws(() => parseConfig({ security: { jwt: { enabled: true }, tenants: [{ name: 'a', id: 1 }] } }), /security\.jwt\.jwksFile: exactly one of jwksFile or jwksUrl/);
  assert.throws(() => parseConfig({ security: { tls: { clientCerts: { mode: 'require' } } } }), /security\.tls\.enabled: must be true/);
  assert.throws(() => parseConfig({ security: { jwt: { maxLifetimeSeconds: 3600 } } }), /security\.jwt\.maxLifetimeSeconds/);
});
