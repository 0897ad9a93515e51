// `sluice keys segment`: a new 32-byte key, to stdout or into a file of mode 0600 that a config
// can use as keyFile; never over an existing file without --force.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { loadSegmentKey } from '../../src/config/segment-key.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const sluice = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin', 'sluice.mjs'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

test('to stdout: 64 hex digits, a different key each time', () => {
  const a = sluice('keys', 'segment');
  const b = sluice('keys', 'segment');
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stdout, /^[0-9a-f]{64}\n$/);
  assert.notEqual(a.stdout, b.stdout);
});

test('--out: mode 0600 in a new 0700 directory, loadable as keyFile; refuses to overwrite without --force', () => {
  const dir = tempDir('sluice-keys-segment-');
  const file = path.join(dir, 'secrets', 'inference.key');
  const r = sluice('keys', 'segment', '--out', file);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(path.dirname(file)).mode & 0o777, 0o700);
  const key = loadSegmentKey({ keyFile: file }, 'inference');
  assert.equal(key.length, 32);
  const first = readFileSync(file, 'utf8');

  const again = sluice('keys', 'segment', '--out', file);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists; pass --force/);
  assert.equal(readFileSync(file, 'utf8'), first, 'the old key is untouched');

  writeFileSync(path.join(dir, 'loose.key'), 'x');
  chmodSync(path.join(dir, 'loose.key'), 0o644);
  const forced = sluice('keys', 'segment', '--out', path.join(dir, 'loose.key'), '--force');
  assert.equal(forced.status, 0, forced.stderr);
  assert.equal(statSync(path.join(dir, 'loose.key')).mode & 0o777, 0o600);
  assert.match(readFileSync(path.join(dir, 'loose.key'), 'utf8'), /^[0-9a-f]{64}\n$/);
});
