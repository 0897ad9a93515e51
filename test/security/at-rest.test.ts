// Per-tenant key wrapping for data at rest: the format, the key store, rotation and
// crypto-shredding, with real files (and a second store on the same file standing in for the CLI).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { AtRestError } from '../../src/security/at-rest/at-rest-error.ts';
import { encodeHeader, openBlob, openRecords, sealBlob, sealRecord, newHeader } from '../../src/security/at-rest/at-rest-format.ts';
import { FileKeyProvider } from '../../src/security/at-rest/file-key-provider.ts';
import { TenantKeyStore } from '../../src/security/at-rest/tenant-key-store.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const code = (err: unknown): string => (err as { code?: string }).code ?? String(err);

test('format: records round-trip; a torn last record is left out; FINAL marks a complete blob', async () => {
  const key = randomBytes(32);
  const h = newHeader('acme', 1);
  const hb = encodeHeader(h);
  const r0 = sealRecord(key, h, hb, 0, Buffer.from('hello '), false);
  const r1 = sealRecord(key, h, hb, 1, Buffer.from('world'), false);
  const fin = sealRecord(key, h, hb, 2, Buffer.alloc(0), true);
  const k = async () => key;
  const partial = await openRecords(Buffer.concat([hb, r0, r1.subarray(0, 7)]), k);
  assert.deepEqual(partial.records.map(String), ['hello ']);
  assert.equal(partial.complete, false);
  assert.equal(partial.validLength, hb.length + r0.length);
  const whole = await openBlob(Buffer.concat([hb, r0, r1, fin]), k);
  assert.equal(whole.plaintext.toString(), 'hello world');
  await assert.rejects(openBlob(Buffer.concat([hb, r0, r1]), k), (e) => code(e) === 'SLUICE_ERR_AT_REST_FORMAT');
  // records swapped, or one removed: the index is in the nonce and the additional data
  await assert.rejects(openBlob(Buffer.concat([hb, r1, r0, fin]), k), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
  await assert.rejects(openBlob(Buffer.concat([hb, r1, fin]), k), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
});

test('format: any bytes, and any single-byte change of a sealed blob, give a typed error, never a crash', async () => {
  const key = randomBytes(32);
  const blob = sealBlob(key, 'acme', 3, randomBytes(5000), 1024);
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: blob.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, x) => {
      const bad = Buffer.from(blob);
      bad[at] = bad[at]! ^ x;
      await assert.rejects(openBlob(bad, async () => key), (e) => e instanceof AtRestError);
    }),
    { numRuns: 300 },
  );
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
      const withMagic = Buffer.concat([Buffer.from('SLAR'), Buffer.from(bytes)]);
      for (const b of [Buffer.from(bytes), withMagic]) {
        try {
          await openRecords(b, async () => key);
        } catch (e) {
          assert.ok(e instanceof AtRestError, String(e));
        }
      }
    }),
    { numRuns: 500 },
  );
});

test("store: one tenant's data never opens under another tenant's key, even with its header rewritten", async () => {
  const dir = tempDir('at-rest');
  const store = new TenantKeyStore(path.join(dir, 'keys.json'), new FileKeyProvider(randomBytes(32)));
  const a = await store.seal('acme', Buffer.from('acme secret'));
  const b = await store.seal('globex', Buffer.from('globex secret'));
  assert.equal((await store.open(a, 'acme')).toString(), 'acme secret');
  await assert.rejects(store.open(a, 'globex'), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
  // Relabel acme's blob as globex's (same tenant-name length): globex's key cannot open it.
  const relabelled = Buffer.from(a.toString('latin1').replace('acme', 'glob'), 'latin1');
  await store.seal('glob', Buffer.from('x'));
  await assert.rejects(store.open(relabelled), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
  assert.equal((await store.open(b)).toString(), 'globex secret');
  // Only wrapped keys are on disk, mode 0600.
  const text = readFileSync(path.join(dir, 'keys.json'), 'utf8');
  assert.equal(statSync(path.join(dir, 'keys.json')).mode & 0o777, 0o600);
  const key = await store.activeKey('acme');
  assert.ok(!text.includes(key.key.toString('base64')) && !text.includes(key.key.toString('hex')));
});

test('store: rotation under load loses nothing; old versions stay readable and are re-encrypted lazily', async () => {
  const dir = tempDir('at-rest');
  const file = path.join(dir, 'keys.json');
  const provider = new FileKeyProvider(randomBytes(32));
  const server = new TenantKeyStore(file, provider);
  const operator = new TenantKeyStore(file, provider); // the CLI's view of the same file
  const sealed: { blob: Buffer; text: string }[] = [];
  // Version 1 exists before the first rotation (on a loaded machine the writers may not have sealed yet).
  await server.activeKey('acme');
  let stop = false;
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; !stop && i < 2000; i++) {
      const text = `w${w}-${i}-${randomBytes(8).toString('hex')}`;
      sealed.push({ blob: await server.seal('acme', Buffer.from(text)), text });
      await new Promise((r) => setImmediate(r));
    }
  });
  const versions: number[] = [];
  for (let r = 0; r < 5; r++) {
    await new Promise((res) => setTimeout(res, 20));
    versions.push((await operator.rotate('acme', { newKey: true })).version);
  }
  stop = true;
  await Promise.all(writers);
  assert.deepEqual(versions, [2, 3, 4, 5, 6]);
  assert.ok(sealed.length > 20);
  for (const s of sealed) assert.equal((await server.open(s.blob, 'acme')).toString(), s.text);
  const old = sealed[0]!.blob;
  const fresh = await server.reencrypt(old);
  assert.ok(fresh !== undefined);
  assert.equal((await server.open(fresh)).toString(), sealed[0]!.text);
  assert.equal(await server.reencrypt(fresh), undefined);
});

test('store: a KEK rotation re-wraps every version; without the old KEK the keys are unreadable', async () => {
  const dir = tempDir('at-rest');
  const file = path.join(dir, 'keys.json');
  const kek1 = randomBytes(32);
  const kek2 = randomBytes(32);
  const blob = await new TenantKeyStore(file, new FileKeyProvider(kek1)).seal('acme', Buffer.from('data'));
  await assert.rejects(new TenantKeyStore(file, new FileKeyProvider(kek2)).open(blob), (e) => code(e) === 'SLUICE_ERR_AT_REST_KEY');
  const r = await new TenantKeyStore(file, new FileKeyProvider(kek2, [kek1])).rotate('acme', { newKey: false });
  assert.equal(r.rewrapped, 1);
  assert.equal((await new TenantKeyStore(file, new FileKeyProvider(kek2)).open(blob)).toString(), 'data');
});

test('store: destroy crypto-shreds a tenant (its data unreadable, new keys refused), others untouched', async () => {
  const dir = tempDir('at-rest');
  const file = path.join(dir, 'keys.json');
  const provider = new FileKeyProvider(randomBytes(32));
  const server = new TenantKeyStore(file, provider);
  const a = await server.seal('acme', Buffer.from('gone soon'));
  const b = await server.seal('globex', Buffer.from('stays'));
  assert.equal(await new TenantKeyStore(file, provider).destroy('acme'), 1);
  // The server notices the file changed and drops the key it had unwrapped.
  await assert.rejects(server.open(a), (e) => code(e) === 'SLUICE_ERR_AT_REST_KEY' && /destroyed/.test((e as Error).message));
  await assert.rejects(server.seal('acme', Buffer.from('new')), (e) => code(e) === 'SLUICE_ERR_AT_REST_KEY');
  assert.equal((await server.open(b)).toString(), 'stays');
  const listed = await server.list();
  assert.ok(listed.find((t) => t.tenant === 'acme')?.destroyedAt !== undefined);
  // A corrupt store is a typed error.
  writeFileSync(file, '{"version":1,"tenants":{"x":{"keys":"nope"}}}');
  await assert.rejects(new TenantKeyStore(file, provider).list(), (e) => code(e) === 'SLUICE_ERR_AT_REST_FORMAT');
});

test('CLI: tenant-key rotate and destroy act on the store and are recorded in the admin audit log', async () => {
  const { spawnSync } = await import('node:child_process');
  const dir = tempDir('at-rest-cli');
  const kek = randomBytes(32);
  writeFileSync(path.join(dir, 'kek.key'), kek.toString('hex'), { mode: 0o600 });
  writeFileSync(
    path.join(dir, 'sluice.yaml'),
    ['security:', '  audit:', `    adminPath: ${path.join(dir, 'admin-audit.jsonl')}`, '  atRest:', '    enabled: true', '    kekFile: kek.key', '    keyStore: tenant-keys.json', ''].join('\n'),
  );
  const store = new TenantKeyStore(path.join(dir, 'tenant-keys.json'), new FileKeyProvider(kek));
  const blob = await store.seal('acme', Buffer.from('spooled tensor bytes'));
  const root = path.resolve(import.meta.dirname, '../..');
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/sluice.mjs'), ...args, '--config', path.join(dir, 'sluice.yaml')], { cwd: dir, encoding: 'utf8', env: { ...process.env, SLUICE_CONFIG: '' } });
  const rot = cli('tenant-key', 'rotate', 'acme', '--new-key');
  assert.equal(rot.status, 0, rot.stderr);
  assert.match(rot.stdout, /active version 2/);
  assert.equal((await store.open(blob)).toString(), 'spooled tensor bytes');
  const refused = cli('tenant-key', 'destroy', 'acme');
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /--yes/);
  const gone = cli('tenant-key', 'destroy', 'acme', '--yes', '--reason', 'tenant offboarded');
  assert.equal(gone.status, 0, gone.stderr);
  await assert.rejects(store.open(blob), (e) => code(e) === 'SLUICE_ERR_AT_REST_KEY');
  const audit = readFileSync(path.join(dir, 'admin-audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; tenant: string; outcome: string; detail: Record<string, unknown> });
  const destroyed = audit.find((e) => e.action === 'tenant_key.destroy');
  assert.equal(destroyed?.tenant, 'acme');
  assert.equal(destroyed?.outcome, 'success');
  assert.equal(destroyed?.detail.versions_destroyed, 2);
  assert.ok(audit.some((e) => e.action === 'tenant_key.rotate'));
  const list = cli('tenant-key', 'list');
  assert.match(list.stdout, /acme\tdestroyed /);
});
