import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { isSluiceError } from '../../src/errors.ts';
import { createKey, readKeyStore, revokeKey, rotateKey } from '../../src/security/api-key-store.ts';
import { ApiKeyWatcher } from '../../src/security/api-key-watcher.ts';
import { ApiKeySet, generateApiKey } from '../../src/security/api-keys.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('a key authenticates to its tenant and capabilities; near misses do not', () => {
  const a = generateApiKey('acme', ['infer']);
  const b = generateApiKey('globex', ['infer', 'train']);
  const set = new ApiKeySet([a.record, b.record]);
  const ok = set.check(a.key);
  assert.deepEqual(ok.ok && { tenant: ok.principal.tenant, caps: ok.principal.caps, id: ok.principal.keyId }, { tenant: 'acme', caps: ['infer'], id: a.record.id });
  // Same id, different secret.
  const forged = `${a.key.slice(0, -1)}${a.key.endsWith('A') ? 'B' : 'A'}`;
  assert.deepEqual(set.check(forged), { ok: false, reason: 'mismatch', keyId: a.record.id });
  // Another key's secret under this key's id.
  assert.equal(set.check(`slk_${a.record.id}_${b.key.split('_')[2]}`).ok, false);
  assert.deepEqual(set.check(generateApiKey('acme', ['infer']).key).ok, false);
  assert.equal((set.check('Bearer nonsense') as { reason: string }).reason, 'malformed');
  const expired = new ApiKeySet([{ ...a.record, expires_at: new Date(Date.now() - 1).toISOString() }]);
  assert.equal((expired.check(a.key) as { reason: string }).reason, 'expired');
});

test('property: arbitrary presented strings never throw and never authenticate', () => {
  const a = generateApiKey('acme', ['infer']);
  const set = new ApiKeySet([a.record]);
  const keyLike = fc.tuple(fc.constantFrom(a.record.id, '000000000000'), fc.string({ minLength: 43, maxLength: 43 })).map(([id, s]) => `slk_${id}_${s}`);
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), keyLike), (s) => {
      fc.pre(s !== a.key);
      return set.check(s).ok === false;
    }),
    { numRuns: 500 },
  );
});

test('the store keeps only hashes (0600), rotation cannot widen scope, revocation and grace periods hold', async () => {
  const store = path.join(tempDir(), 'keys.json');
  const made = await createKey(store, { tenant: 'acme', caps: ['infer', 'train'] });
  const text = readFileSync(store, 'utf8');
  assert.ok(!text.includes(made.key.split('_')[2] as string), 'the secret is not stored');
  assert.ok(text.includes(made.record.hash));
  assert.equal(statSync(store).mode & 0o777, 0o600);

  await assert.rejects(rotateKey(store, made.record.id, { caps: ['infer', 'admin'] }), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_SCOPE_WIDENING'));
  const t0 = new Date();
  const rotated = await rotateKey(store, made.record.id, { caps: ['infer'], graceSeconds: 30 }, t0);
  assert.equal(rotated.record.tenant, 'acme');
  assert.deepEqual(rotated.record.caps, ['infer']);
  assert.equal(rotated.record.rotated_from, made.record.id);
  const set = new ApiKeySet(await readKeyStore(store));
  assert.equal(set.check(made.key, t0.getTime() + 29_000).ok, true, 'old key works during the grace period');
  assert.equal(set.check(made.key, t0.getTime() + 30_000).ok, false, 'and not after');
  assert.equal(set.check(rotated.key).ok, true);

  await revokeKey(store, rotated.record.id, 'leaked');
  assert.equal(new ApiKeySet(await readKeyStore(store)).check(rotated.key).ok, false);
  await assert.rejects(revokeKey(store, rotated.record.id, 'again'), /already revoked/);
  await assert.rejects(rotateKey(store, 'ffffffffffff'), /no key with id/);
});

test('concurrent writers never lose a key (lock + atomic rename)', async () => {
  const store = path.join(tempDir(), 'keys.json');
  const made = await Promise.all(Array.from({ length: 12 }, (_, i) => createKey(store, { tenant: `t${i}`, caps: ['infer'] })));
  const ids = new Set((await readKeyStore(store)).map((r) => r.id));
  for (const m of made) assert.ok(ids.has(m.record.id));
});

test('a corrupted store is refused with the path of the problem', async () => {
  const store = path.join(tempDir(), 'keys.json');
  writeFileSync(store, JSON.stringify({ version: 1, keys: [{ id: 'zz', tenant: 'a', caps: ['root'] }] }));
  await assert.rejects(readKeyStore(store), /key store is invalid at keys\.0\./);
});

function cli(args: string[], cwd: string) {
  return spawnSync(process.execPath, [path.join(root, 'bin/sluice.mjs'), ...args], { cwd, encoding: 'utf8', env: { ...process.env, SLUICE_CONFIG: '' } });
}

test('sluice keys: create prints the key once, list never shows secrets, rotate/revoke apply to a running watcher, all audited', async () => {
  const dir = tempDir();
  const store = path.join(dir, 'sluice-keys.json');
  const watcher = await ApiKeyWatcher.start({ file: store, reloadSeconds: 60 });
  watcher.on('error', (e: unknown) => assert.fail(String(e)));
  try {
    const created = cli(['keys', 'create', '--tenant', 'acme', '--caps', 'infer,train', '--label', 'ci'], dir);
    assert.equal(created.status, 0, created.stderr);
    const key = created.stdout.trim();
    assert.match(key, /^slk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const id = key.split('_')[1] as string;
    // fs.watch on the directory picks up the atomic rename without waiting for the poll.
    if (watcher.keys.check(key).ok !== true) {
      // The watcher never keeps a process alive on its own: hold the loop open while waiting.
      const keepAlive = setTimeout(() => assert.fail('no reload within 10 s'), 10_000);
      await once(watcher, 'reload');
      clearTimeout(keepAlive);
    }
    assert.equal(watcher.keys.check(key).ok, true);

    const list = cli(['keys', 'list', '--json'], dir);
    assert.equal(list.status, 0, list.stderr);
    assert.ok(!list.stdout.includes(key.split('_')[2] as string) && !list.stdout.includes('"hash"'));
    assert.equal((JSON.parse(list.stdout) as { id: string; state: string }[])[0]?.state, 'active');

    const widen = cli(['keys', 'rotate', id, '--caps', 'admin'], dir);
    assert.equal(widen.status, 1);
    assert.match(widen.stderr, /exceed the key's own/);

    const rotated = cli(['keys', 'rotate', id], dir);
    assert.equal(rotated.status, 0, rotated.stderr);
    const key2 = rotated.stdout.trim();
    await watcher.poll();
    assert.equal(watcher.keys.check(key).ok, false, 'rotation without grace retires the old key at once');
    assert.equal(watcher.keys.check(key2).ok, true);

    const revoked = cli(['keys', 'revoke', key2.split('_')[1] as string, '--reason', 'test'], dir);
    assert.equal(revoked.status, 0, revoked.stderr);
    await watcher.poll();
    assert.equal(watcher.keys.check(key2).ok, false);

    const audit = path.join(dir, 'sluice-admin-audit.jsonl');
    const verified = await verifyAuditFile(audit);
    assert.equal(verified.ok, true, verified.problem?.message);
    const actions = readFileSync(audit, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditEntry)
      .filter((e) => e.action.startsWith('keys.'))
      .map((e) => `${e.action}:${e.outcome}`);
    assert.deepEqual(actions, ['keys.create:success', 'keys.rotate:denied', 'keys.rotate:success', 'keys.revoke:success']);
    assert.ok(!readFileSync(audit, 'utf8').includes(key.split('_')[2] as string), 'the audit log never holds a secret');
  } finally {
    watcher.close();
  }
});
