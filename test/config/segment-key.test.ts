import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfigText } from '../../src/config/load.ts';
import { loadSegmentKey, parseSegmentKey } from '../../src/config/segment-key.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const key = randomBytes(32);

describe('segment keys', () => {
  test('hex, base64 and base64url all give the 32 bytes', () => {
    for (const text of [key.toString('hex'), key.toString('hex').toUpperCase(), key.toString('base64'), key.toString('base64url'), ` ${key.toString('base64')}\n`]) {
      const k = parseSegmentKey(text);
      assert.ok(Buffer.isBuffer(k) && k.equals(key), text);
    }
  });

  test('wrong lengths and junk are refused with what was expected and what was found', () => {
    assert.equal(parseSegmentKey(randomBytes(31).toString('hex')), 'expected a 32-byte key as 64 hex digits or base64 (44 characters), got 31 bytes of hex');
    assert.equal(parseSegmentKey(randomBytes(33).toString('base64')), 'expected a 32-byte key as 64 hex digits or base64 (44 characters), got 33 bytes of base64');
    assert.match(String(parseSegmentKey('not a key!')), /got 10 characters that are neither/);
    assert.match(String(parseSegmentKey('')), /got an empty string/);
  });

  test('the config names the bad setting', () => {
    assert.throws(
      () => parseConfigText(`segments:\n  training:\n    key: ${randomBytes(16).toString('hex')}\n`, 'c.yaml'),
      /c\.yaml: segments\.training\.key: expected a 32-byte key as 64 hex digits or base64 \(44 characters\), got 16 bytes of hex/,
    );
    assert.throws(() => parseConfigText('segments:\n  training:\n    transport: tcp\n', 'c.yaml'), /segments\.training: needs key or keyFile/);
    assert.throws(
      () => parseConfigText(`segments:\n  inference:\n    key: ${key.toString('hex')}\n    keyFile: k\n`, 'c.yaml'),
      /segments\.inference: set key or keyFile, not both/,
    );
    const cfg = parseConfigText(`segments:\n  inference:\n    key: ${key.toString('base64')}\n`, 'c.yaml');
    assert.ok(loadSegmentKey(cfg.segments.inference ?? {}, 'inference').equals(key));
  });

  test('keyFile: text or 32 raw bytes, relative to the config directory; errors name the file', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-key-'));
    writeFileSync(path.join(dir, 'hex.key'), `${key.toString('hex')}\n`);
    writeFileSync(path.join(dir, 'raw.key'), key);
    writeFileSync(path.join(dir, 'short.key'), randomBytes(8).toString('hex'));
    assert.ok(loadSegmentKey({ keyFile: 'hex.key' }, 'training', dir).equals(key));
    assert.ok(loadSegmentKey({ keyFile: path.join(dir, 'raw.key') }, 'training').equals(key));
    assert.throws(() => loadSegmentKey({ keyFile: 'short.key' }, 'training', dir), /segments\.training\.keyFile: .*short\.key: expected a 32-byte key .* got 8 bytes of hex, or exactly 32 raw bytes/);
    assert.throws(() => loadSegmentKey({ keyFile: 'missing.key' }, 'training', dir), /segments\.training\.keyFile: cannot read .*missing\.key \(ENOENT\)/);
  });

  test('`sluice config check` loads the keys and never prints them', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-cfg-'));
    writeFileSync(path.join(dir, 'training.key'), key.toString('base64'));
    const good = path.join(dir, 'good.yaml');
    writeFileSync(good, `segments:\n  inference:\n    key: ${key.toString('hex')}\n  training:\n    keyFile: training.key\ntraining:\n  spoolDir: ${path.join(dir, 'spool')}\n`);
    const ok = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'config', 'check', good], { cwd: root, encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(!ok.stdout.includes(key.toString('hex')));
    assert.match(ok.stdout, /"key": "<redacted>"/);
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'segments:\n  training:\n    keyFile: nowhere.key\n');
    const fail = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'config', 'check', bad], { cwd: root, encoding: 'utf8' });
    assert.equal(fail.status, 1);
    assert.match(fail.stderr, /^sluice config check: segments\.training\.keyFile: cannot read .*nowhere\.key \(ENOENT\)\n$/);
  });
});
