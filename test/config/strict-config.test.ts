// Unknown config keys are errors that name the path and the nearest known key (a typo must not
// silently drop a setting), and `sluice config check` runs every check `sluice serve` runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import { ROOT } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const key = randomBytes(32).toString('hex');

function configError(text: string): string {
  try {
    parseConfigText(text, 'c.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail(`accepted:\n${text}`);
}

describe('unknown keys', () => {
  test('a misspelled top-level section names the nearest known one', () => {
    assert.equal(configError('listners:\n  http: {port: 8000}\n'), 'c.yaml: listners: unknown key (did you mean "listeners"?)');
  });

  test('an unrelated section is refused and the known ones are listed', () => {
    assert.match(configError('bogusSection: {}\n'), /^c\.yaml: bogusSection: unknown key \(known keys: node, listeners, .*log\)$/);
  });

  test('nested typos name their full path', () => {
    assert.match(configError(`segments:\n  inference:\n    key: ${key}\n    lisen: {port: 7470}\n`), /segments\.inference\.lisen: unknown key \(did you mean "listen"\?\)/);
    assert.match(configError('listeners:\n  grpc: {host: 127.0.0.1, prot: 8001}\n'), /listeners\.grpc\.prot: unknown key \(did you mean "port"\?\)/);
    assert.match(configError('listeners:\n  grpc: {handshakeTimoutMs: 500}\n'), /listeners\.grpc\.handshakeTimoutMs: unknown key \(did you mean "handshakeTimeoutMs"\?\)/);
    assert.match(configError('security:\n  tenants:\n    - {name: a, id: 1, modles: ["*"]}\n'), /security\.tenants\[0\]\.modles: unknown key \(did you mean "models"\?\)/);
    assert.match(configError('scheduling:\n  bulk: {minShar: 0.2}\n'), /scheduling\.bulk\.minShar: unknown key \(did you mean "minShare"\?\)/);
    assert.match(configError('security:\n  rateLimits:\n    tenants:\n      acme: {burts: 3}\n'), /security\.rateLimits\.tenants\.acme\.burts: unknown key \(did you mean "burst"\?\)/);
  });

  test('every unknown key is reported, not only the first', () => {
    const msg = configError('listners: {}\nroutse: []\n');
    assert.match(msg, /listners: unknown key \(did you mean "listeners"\?\)/);
    assert.match(msg, /routse: unknown key \(did you mean "routes"\?\)/);
  });

  test('the listener connection limits have their defaults', () => {
    const cfg = parseConfigText('listeners:\n  grpc: {}\n  metrics: {maxConnections: 64}\n', 'c.yaml');
    assert.deepEqual(
      { h: cfg.listeners.grpc?.handshakeTimeoutMs, i: cfg.listeners.grpc?.idleTimeoutMs, m: cfg.listeners.grpc?.maxConnections, mm: cfg.listeners.metrics?.maxConnections },
      { h: 10_000, i: 300_000, m: undefined, mm: 64 },
    );
  });
});

describe('`sluice config check` runs the checks of `sluice serve`', () => {
  const dir = tempDir('sluice-check-');
  const check = (name: string, text: string): { status: number | null; stderr: string } => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'config', 'check', '--quiet', file], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  };
  const ingress = (peersBlock: string): string =>
    `listeners:\n  grpc: {port: 18001}\nsegments:\n  inference: {key: ${key}}\n${peersBlock}routes:\n  - {model: '*', peers: [egress-a]}\n`;

  test('a consistent topology passes', () => {
    const ok = check('ok.yaml', ingress('peers:\n  - {name: egress-a, segment: inference, host: 127.0.0.1, port: 7470}\n'));
    assert.equal(ok.status, 0, ok.stderr);
  });

  test('a route naming an unknown peer', () => {
    const r = check('peer.yaml', ingress('peers:\n  - {name: egress-b, segment: inference, host: 127.0.0.1, port: 7470}\n'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /routes\[0\]\.peers\[0\]: peer 'egress-a' is not in peers \(segment inference\)/);
  });

  test('an ingress without the inference segment', () => {
    const r = check('seg.yaml', `listeners:\n  http: {port: 18000}\npeers:\n  - {name: e, segment: inference, host: 127.0.0.1, port: 7470}\nroutes:\n  - {model: '*', peers: [e]}\n`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /segments\.inference: required for the ingress and the egress/);
  });

  test('two listeners on one port', () => {
    const r = check(
      'ports.yaml',
      `listeners:\n  grpc: {port: 18001}\n  metrics: {host: 0.0.0.0, port: 18001}\nsegments:\n  inference: {key: ${key}}\npeers:\n  - {name: egress-a, segment: inference, host: 127.0.0.1, port: 7470}\nroutes:\n  - {model: '*', peers: [egress-a]}\n`,
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /listeners\.metrics\.port: 18001 is also the port of listeners\.grpc/);
  });

  test('the spool directory is checked only when a training segment is set, and its error names training.spoolDir', () => {
    const notADir = path.join(dir, 'plain-file');
    writeFileSync(notADir, 'x');
    const spool = `training:\n  spoolDir: ${path.join(notADir, 'spool')}\n`;
    const without = check('nospool.yaml', `${spool}`);
    assert.equal(without.status, 0, without.stderr);
    const r = check('spool.yaml', `segments:\n  training: {key: ${key}}\n${spool}`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /training\.spoolDir: '.*plain-file' is not a directory/);
  });

  test('an unknown key fails the check', () => {
    const r = check('typo.yaml', 'listners:\n  http: {port: 8000}\n');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /listners: unknown key \(did you mean "listeners"\?\)/);
  });
});
