// Spooled training tensors encrypted at rest (security.atRest): real spool files, real nodes on
// real TCP links (a cut link for the resume), a second key store on the same file standing in
// for the CLI's rotate, the real CLI as a subprocess for destroy, and the record parser under
// fast-check.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { AuditLog } from '../../src/audit/log.ts';
import { AtRestError } from '../../src/security/at-rest/at-rest-error.ts';
import { dataOwnerNames } from '../../src/security/at-rest/data-owner.ts';
import { FileKeyProvider } from '../../src/security/at-rest/file-key-provider.ts';
import { encodeSpoolHeader, parseSealedSpool, SpoolRecordOpener, SpoolRecordSealer } from '../../src/security/at-rest/sealed-spool-format.ts';
import { TenantKeyStore } from '../../src/security/at-rest/tenant-key-store.ts';
import { TransferError } from '../../src/training/errors.ts';
import { Spool } from '../../src/training/spool.ts';
import { SpoolSink } from '../../src/training/tensor-sink.ts';
import { TrainingNode } from '../../src/training/training-node.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { startTcpFaultProxy } from '../helpers/tcp-fault-proxy.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const KiB = 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest();
const code = (e: unknown) => (e as { code?: string }).code;
const meta = (n: number) => ({ name: 'grad/w', datatype: 'UINT8', shape: [n], attributes: {} });

function keyStore(dir: string, kek = randomBytes(32)) {
  return { kek, store: new TenantKeyStore(path.join(dir, 'tenant-keys.json'), new FileKeyProvider(kek)) };
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** Receives `data` into a sealed spool for `tenant` in chunks; returns the completed record. */
async function spoolTensor(spool: Spool, id: string, tenant: string, data: Buffer, chunk = 64 * KiB) {
  const partial = await spool.create(id, 'a', meta(data.length), data.length, tenant);
  const sink = new SpoolSink(spool, id, partial.handle, () => undefined, partial.sealed);
  for (let o = 0; o < data.length; o += chunk) await sink.write(o, data.subarray(o, Math.min(data.length, o + chunk)));
  await sink.complete(sha(data));
  return spool.completedRecord(id)!;
}

test('format: sealed records round-trip; any bytes or any single-byte change give a typed error or a short file, never a crash', () => {
  const key = randomBytes(32);
  const hb = encodeSpoolHeader({ tenant: 'acme', transferId: 't-1' });
  const sealer = new SpoolRecordSealer(hb, key, 3);
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 6 }), (chunks) => {
      const parts: Buffer[] = [hb];
      let off = 0;
      for (const c of chunks) {
        parts.push(sealer.seal(off, c));
        off += c.length;
      }
      const file = Buffer.concat(parts);
      const ok = parseSealedSpool(file, () => key);
      assert.ok(Buffer.concat(ok.records).equals(Buffer.concat(chunks.map((c) => Buffer.from(c)))));
      assert.equal(ok.validLength, file.length);
      const at = off % file.length;
      const bad = Buffer.from(file);
      bad[at] = bad[at]! ^ (1 + (off % 255));
      try {
        const r = parseSealedSpool(bad, () => key);
        // Only a length made larger can pass as a torn tail: the tensor is then short.
        assert.ok(r.plaintextBytes < off, `a changed byte at ${at} went unnoticed`);
      } catch (e) {
        assert.ok(e instanceof AtRestError, String(e));
      }
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, withHeader) => {
      const b = withHeader ? Buffer.concat([hb, Buffer.from(bytes)]) : Buffer.from(bytes);
      try {
        parseSealedSpool(b, () => key);
      } catch (e) {
        assert.ok(e instanceof AtRestError, String(e));
      }
      // The spool reader's native opener, on a record of any bytes.
      try {
        new SpoolRecordOpener(hb, key).open(Buffer.from(bytes));
        assert.fail('random bytes authenticated');
      } catch (e) {
        assert.ok(e instanceof AtRestError, String(e));
      }
    }),
    { numRuns: 1000 },
  );
});

test("one tenant's spooled tensor never decrypts under another tenant's key, relabelled or not", async () => {
  const dir = tempDir('spool-at-rest-');
  const { store } = keyStore(dir);
  const spool = new Spool(path.join(dir, 'spool'), store);
  await spool.init();
  const data = randomBytes(300 * KiB);
  const rec = await spoolTensor(spool, 'acme-1', 'acme', data);
  assert.equal(rec.sealed, true);
  assert.equal(rec.tenant, 'acme');
  const file = readFileSync(spool.tensorPath('acme-1'));
  assert.ok(file.indexOf(data.subarray(1000, 1064)) < 0, 'no plaintext on disk');
  assert.ok((await collect(spool.reader(rec, 0, 64 * KiB))).equals(data));
  assert.ok((await collect(spool.reader(rec, 100_001, 1000))).equals(data.subarray(100_001)), 'Pull from an offset');
  const globex = (await store.activeKey('globex')).key;
  assert.throws(() => parseSealedSpool(file, () => globex), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
  // Relabel the header as tenant "glob" (same length): glob's key, and acme's, both refuse it.
  const relabelled = Buffer.from(file);
  relabelled.write('glob', 8, 'latin1');
  const glob = (await store.activeKey('glob')).key;
  const acme = (await store.activeKey('acme')).key;
  assert.throws(() => parseSealedSpool(relabelled, () => glob), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
  assert.throws(() => parseSealedSpool(relabelled, () => acme), (e) => code(e) === 'SLUICE_ERR_AT_REST_AUTH');
  // Another transfer's file swapped in under this id: refused (the header names the transfer).
  await spoolTensor(spool, 'acme-2', 'acme', data);
  writeFileSync(spool.tensorPath('acme-1'), readFileSync(spool.tensorPath('acme-2')));
  await assert.rejects(collect(spool.reader(rec, 0, 64 * KiB)), (e) => e instanceof TransferError && e.status === 'DATA_LOSS');
});

test('a tampered record is refused with a typed error (DATA_LOSS over an AUTH cause), not a crash', async () => {
  const dir = tempDir('spool-at-rest-');
  const { store } = keyStore(dir);
  const spool = new Spool(path.join(dir, 'spool'), store);
  await spool.init();
  const data = randomBytes(200 * KiB);
  const rec = await spoolTensor(spool, 't-1', 'acme', data);
  const file = readFileSync(spool.tensorPath('t-1'));
  for (const at of [file.length - 5, 200, 30 + 64 * KiB + 44 + 3]) {
    const bad = Buffer.from(file);
    bad[at] = bad[at]! ^ 0x40;
    writeFileSync(spool.tensorPath('t-1'), bad);
    await assert.rejects(collect(spool.reader(rec, 0, 64 * KiB)), (e) => e instanceof TransferError && (e.status === 'DATA_LOSS' || e.status === 'FAILED_PRECONDITION') && e.cause instanceof AtRestError, `byte ${at}`);
    const tf = await spool.openTensor(rec).catch((e: unknown) => (assert.ok(e instanceof TransferError, String(e)), undefined));
    if (tf !== undefined) {
      await assert.rejects(tf.read(Buffer.alloc(data.length), 0, data.length, 0), (e) => e instanceof TransferError);
      await tf.close();
    }
  }
});

test('resume after a crash mid-record: the torn record is cut, the hash continues, the digest is exact', async () => {
  const dir = tempDir('spool-at-rest-');
  const { store } = keyStore(dir);
  const spool = new Spool(path.join(dir, 'spool'), store);
  await spool.init();
  const data = randomBytes(500 * KiB);
  const partial = await spool.create('r-1', 'a', meta(data.length), data.length, 'acme');
  const sink = new SpoolSink(spool, 'r-1', partial.handle, () => undefined, partial.sealed);
  for (let o = 0; o < 200 * KiB; o += 50 * KiB) await sink.write(o, data.subarray(o, o + 50 * KiB));
  await partial.handle.close();
  // A crash in the middle of the next record's write.
  appendFileSync(path.join(dir, 'spool', 'r-1.part'), new SpoolRecordSealer(partial.sealed!.sealer.headerBytes, randomBytes(32), 1).seal(200 * KiB, data.subarray(200 * KiB, 250 * KiB)).subarray(0, 9000));
  const again = new Spool(path.join(dir, 'spool'), store);
  await again.init();
  const resumed = (await again.reopen('r-1'))!;
  assert.equal(resumed.offset, 200 * KiB);
  assert.ok(resumed.hash.copy().digest().equals(sha(data.subarray(0, 200 * KiB))));
  const sink2 = new SpoolSink(again, 'r-1', resumed.handle, () => undefined, resumed.sealed);
  for (let o = 200 * KiB; o < data.length; o += 100 * KiB) await sink2.write(o, data.subarray(o, Math.min(data.length, o + 100 * KiB)));
  resumed.hash.update(data.subarray(200 * KiB));
  await sink2.complete(resumed.hash.digest());
  const rec = again.completedRecord('r-1')!;
  assert.equal(rec.sha256, sha(data).toString('hex'));
  assert.ok((await collect(again.reader(rec, 0, 64 * KiB))).equals(data));
});

test('rotation while a transfer is running loses nothing; old records stay readable; a full read re-seals under the new key', async () => {
  const dir = tempDir('spool-at-rest-');
  const { kek, store } = keyStore(dir);
  const cliStore = new TenantKeyStore(path.join(dir, 'tenant-keys.json'), new FileKeyProvider(kek));
  const spool = new Spool(path.join(dir, 'spool'), store);
  await spool.init();
  const data = randomBytes(600 * KiB);
  const partial = await spool.create('rot-1', 'a', meta(data.length), data.length, 'acme');
  const sink = new SpoolSink(spool, 'rot-1', partial.handle, () => undefined, partial.sealed);
  await sink.write(0, data.subarray(0, 200 * KiB));
  assert.equal((await cliStore.rotate('acme', { newKey: true })).version, 2);
  await sink.write(200 * KiB, data.subarray(200 * KiB, 300 * KiB)); // the running writer keeps its version
  await partial.handle.close();
  // The link drops; the resume continues under the new active key.
  const resumed = (await spool.reopen('rot-1'))!;
  assert.equal(resumed.offset, 300 * KiB);
  assert.equal(resumed.sealed!.sealer.keyVersion, 2);
  const sink2 = new SpoolSink(spool, 'rot-1', resumed.handle, () => undefined, resumed.sealed);
  await sink2.write(300 * KiB, data.subarray(300 * KiB));
  await sink2.complete(sha(data));
  const rec = spool.completedRecord('rot-1')!;
  assert.ok((await collect(spool.reader(rec, 0, 64 * KiB))).equals(data));
  const v1 = await store.keyFor('acme', 1);
  const v2 = await store.keyFor('acme', 2);
  const versions = new Set<number>();
  parseSealedSpool(readFileSync(spool.tensorPath('rot-1')), (_t, v) => (versions.add(v), v === 1 ? v1 : v2));
  assert.deepEqual([...versions].sort(), [1, 2], 'records of both versions in one tensor');
  assert.equal(await spool.reseal(rec), true, 'records under version 1 are re-sealed');
  assert.equal(await spool.reseal(rec), false, 'nothing left under a retired version');
  assert.ok((await collect(spool.reader(rec, 0, 64 * KiB))).equals(data));
  assert.ok(Buffer.concat(parseSealedSpool(readFileSync(spool.tensorPath('rot-1')), (_t, v) => (v === 2 ? v2 : Buffer.alloc(32))).records).equals(data));
});

test('nodes on a cut link with atRest on: the resumed transfer is sealed for the sender tenant and Pull gives the exact digest', async () => {
  const dir = tempDir('spool-at-rest-');
  const { store } = keyStore(dir);
  const KEY = randomBytes(32);
  const transport = new TcpTransport();
  const spoolB = path.join(dir, 'b');
  const b = new TrainingNode({ nodeName: 'b', transport, segmentKey: KEY, peers: [], spoolDir: spoolB, atRest: { keys: store, tenantName: dataOwnerNames([{ id: 7, name: 'acme' }]) } });
  await b.start();
  const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: KEY });
  listener.on('link', (l) => b.attachLink(l));
  const proxy = await startTcpFaultProxy({ host: '127.0.0.1', port: listener.address.port }, (n) => (n === 0 ? { cutAfter: 700 * KiB } : {}));
  const a = new TrainingNode({
    nodeName: 'a',
    transport,
    segmentKey: KEY,
    peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port: proxy.port }],
    spoolDir: path.join(dir, 'a'),
    limits: { windowBytes: 256 * KiB, resumeTimeoutMs: 10_000 },
  });
  await a.start();
  try {
    const data = randomBytes(2 * 1024 * KiB);
    const h = a.push({ peer: 'b', tensor: meta(data.length), total: data.length, transferId: 'cut-1', tenant: 7 });
    let offset = await h.offset;
    while (offset < data.length) {
      await h.transfer.waitForSpace();
      const n = Math.min(32 * KiB, data.length - offset);
      h.transfer.write(offset, data.subarray(offset, offset + n));
      offset += n;
    }
    h.transfer.finish(sha(data));
    const result = await h.transfer.done;
    assert.ok(result.resumes >= 1, 'the link was cut and the transfer resumed');
    const reader = await b.read({ transferId: 'cut-1' }, 0);
    assert.equal(reader.record.tenant, 'acme');
    const got = await collect(reader.chunks);
    assert.ok(sha(got).equals(sha(data)), 'Pull delivers the exact digest');
    const file = await readFile(path.join(spoolB, 'cut-1.tensor'));
    assert.ok(file.indexOf(data.subarray(4096, 4160)) < 0, 'sealed on disk');
    const acme = await store.keyFor('acme', 1);
    assert.ok(Buffer.concat(parseSealedSpool(file, (t) => (t === 'acme' ? acme : Buffer.alloc(32))).records).equals(data));
  } finally {
    await a.close();
    await b.close();
    await listener.close();
    await proxy.close();
  }
});

test('CLI destroy: spooled tensors and evidence packs of the tenant become unreadable, others stay; the audit log says so', async () => {
  const dir = tempDir('spool-at-rest-cli-');
  const kek = randomBytes(32);
  writeFileSync(path.join(dir, 'kek.key'), kek.toString('hex'), { mode: 0o600 });
  const auditFile = path.join(dir, 'audit.jsonl');
  const adminFile = path.join(dir, 'admin.jsonl');
  const spoolDir = path.join(dir, 'spool');
  writeFileSync(
    path.join(dir, 'sluice.yaml'),
    JSON.stringify({
      node: { name: 'ar' },
      training: { spoolDir },
      security: { tenants: [{ name: 'acme', id: 7 }, { name: 'globex', id: 8 }], audit: { enabled: true, path: auditFile, adminPath: adminFile }, atRest: { enabled: true, kekFile: 'kek.key', keyStore: 'tenant-keys.json' } },
    }),
  );
  const log = await AuditLog.open({ path: auditFile, checkpointEntries: 4, checkpointSeconds: 0 });
  const t0 = new Date(Date.now() - 1000).toISOString();
  for (let i = 0; i < 12; i++) await log.append({ tenant: i % 2 === 0 ? 'acme' : 'globex', requestId: `r${i}`, actor: 'k', action: 'infer.request', outcome: 'success', detail: { i } });
  await log.close();
  const t1 = new Date(Date.now() + 1000).toISOString();
  const ed = generateKeyPairSync('ed25519');
  writeFileSync(path.join(dir, 'sign.pem'), ed.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  writeFileSync(path.join(dir, 'sign.pub.pem'), ed.publicKey.export({ format: 'pem', type: 'spki' }) as string);
  const root = path.resolve(import.meta.dirname, '../..');
  const cli = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/sluice.mjs'), ...args, '--config', path.join(dir, 'sluice.yaml')], { cwd: dir, encoding: 'utf8', env: { ...process.env, SLUICE_CONFIG: '' }, timeout: 120_000 });

  const store = new TenantKeyStore(path.join(dir, 'tenant-keys.json'), new FileKeyProvider(kek));
  const spool = new Spool(spoolDir, store);
  await spool.init();
  const data = randomBytes(100 * KiB);
  const acmeRec = await spoolTensor(spool, 'acme-t', 'acme', data);
  const globexRec = await spoolTensor(spool, 'globex-t', 'globex', data);

  for (const t of ['acme', 'globex']) {
    const ex = cli('evidence', 'export', '--from', t0, '--to', t1, '--tenant', t, '--key', path.join(dir, 'sign.pem'), '--out', path.join(dir, `${t}.pack`));
    assert.equal(ex.status, 0, ex.stderr);
    assert.match(ex.stdout, new RegExp(`encrypted at rest for ${t}`));
    assert.equal(readFileSync(path.join(dir, `${t}.pack`)).subarray(0, 4).toString(), 'SLAR');
    const v = cli('evidence', 'verify', path.join(dir, `${t}.pack`), '--key', path.join(dir, 'sign.pub.pem'));
    assert.equal(v.status, 0, v.stderr + v.stdout);
    assert.match(v.stdout, /ok, 6 entries/);
  }
  const opened = cli('evidence', 'open', path.join(dir, 'acme.pack'), '--out', path.join(dir, 'acme.tar'));
  assert.equal(opened.status, 0, opened.stderr);

  const gone = cli('tenant-key', 'destroy', 'acme', '--yes', '--reason', 'offboarded');
  assert.equal(gone.status, 0, gone.stderr);
  assert.match(gone.stdout, /1 spooled tensor file/);
  await assert.rejects(collect(spool.reader(acmeRec, 0, 64 * KiB)), (e) => e instanceof TransferError && e.status === 'FAILED_PRECONDITION' && code(e.cause) === 'SLUICE_ERR_AT_REST_KEY');
  assert.ok((await collect(spool.reader(globexRec, 0, 64 * KiB))).equals(data), "another tenant's tensor is untouched");
  const v = cli('evidence', 'verify', path.join(dir, 'acme.pack'), '--key', path.join(dir, 'sign.pub.pem'));
  assert.notEqual(v.status, 0);
  assert.match(v.stderr, /destroyed/);
  const vg = cli('evidence', 'verify', path.join(dir, 'globex.pack'), '--key', path.join(dir, 'sign.pub.pem'));
  assert.equal(vg.status, 0, vg.stderr);
  const open2 = cli('evidence', 'open', path.join(dir, 'acme.pack'), '--out', path.join(dir, 'acme2.tar'));
  assert.notEqual(open2.status, 0);
  const admin = readFileSync(adminFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { action: string; tenant: string | null; outcome: string; detail: Record<string, unknown> });
  const destroyed = admin.find((e) => e.action === 'tenant_key.destroy')!;
  assert.equal(destroyed.tenant, 'acme');
  assert.equal(destroyed.outcome, 'success');
  assert.equal(destroyed.detail.spooled_tensors_shredded, 1);
  assert.deepEqual(destroyed.detail.covers, ['spooled tensors', 'evidence packs', 'pii vault']);
  assert.ok(admin.some((e) => e.action === 'evidence.open' && e.tenant === 'acme' && e.outcome === 'success'));
  assert.ok(admin.some((e) => e.action === 'evidence.open' && e.tenant === 'acme' && e.outcome === 'failure'), 'the refused open after destroy is audited');
});
