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

test("the example's first commands work when followed literally (from a clone's root)", { timeout: 120_000 }, async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { existsSync, rmSync, statSync } = await import('node:fs');
  const repo = path.resolve(import.meta.dirname, '../..');
  const secrets = path.join(repo, 'docs', 'examples', 'secrets');
  // They write docs/examples/secrets/ (git-ignored); keys someone made there are left alone.
  if (existsSync(secrets)) {
    t.skip(`${secrets} exists already (keys of your own): not touching it`);
    return;
  }
  // The commands the header lists before "To serve, ...", run as written from the repo root.
  const header = readFileSync(example, 'utf8').split('\n').filter((l) => l.startsWith('#'));
  const cut = header.findIndex((l) => l.includes('To serve'));
  const commands = header
    .slice(0, cut)
    .map((l) => /^#\s{3}(npx sluice .+)$/.exec(l)?.[1])
    .filter((c): c is string => c !== undefined);
  assert.ok(commands.length >= 3 && commands.at(-1)!.startsWith('npx sluice config check'), commands.join('\n'));
  try {
    for (const c of commands) {
      const [cmd, ...args] = c.split(' ');
      execFileSync(cmd!, args, { cwd: repo, stdio: 'pipe', timeout: 60_000, env: { ...process.env, npm_config_offline: 'true' } });
    }
    for (const f of ['inference-segment.key', 'training-segment.key']) assert.equal(statSync(path.join(secrets, f)).mode & 0o777, 0o600);
  } finally {
    rmSync(secrets, { recursive: true, force: true });
  }
});
