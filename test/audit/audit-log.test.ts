import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { sealEntry, type AuditEntry } from '../../src/audit/entry.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { merkleRoot } from '../../src/audit/merkle.ts';
import { scanAuditFile } from '../../src/audit/scan.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { isSluiceError } from '../../src/errors.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const root = path.resolve(import.meta.dirname, '../..');

function rec(i: number) {
  return { tenant: `tenant-${i % 2}`, requestId: `req-${i}`, actor: 'key:abc', action: 'infer.request', outcome: 'success' as const, detail: { model: 'simple', i } };
}

async function writeLog(file: string, n: number, checkpointEntries = 4): Promise<AuditEntry[]> {
  const log = await AuditLog.open({ path: file, checkpointEntries, checkpointSeconds: 0 });
  const out = await Promise.all(Array.from({ length: n }, (_, i) => log.append(rec(i))));
  await log.close();
  return out;
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

test('entries chain by hash, checkpoints carry the Merkle root of the entries before them', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  await writeLog(file, 10, 4);
  const parsed = lines(file).map((l) => JSON.parse(l) as AuditEntry);
  // audit.open + 10 events, a checkpoint after every 4 entries, and a final one on close.
  assert.equal(parsed[0]?.action, 'audit.open');
  assert.deepEqual(parsed.map((e) => e.seq), parsed.map((_, i) => i + 1));
  for (let i = 1; i < parsed.length; i++) assert.equal(parsed[i]?.prev, parsed[i - 1]?.hash);
  const cps = parsed.filter((e) => e.kind === 'checkpoint');
  assert.equal(cps.length, 3);
  let from = 1;
  let prevRoot = '0'.repeat(64);
  for (const cp of cps) {
    const covered = parsed.filter((e) => e.seq >= from && e.seq < cp.seq).map((e) => e.hash);
    assert.equal(cp.checkpoint?.root, merkleRoot(covered));
    assert.equal(cp.checkpoint?.prev_root, prevRoot);
    prevRoot = cp.checkpoint?.root ?? '';
    from = cp.seq + 1;
  }
  assert.equal(parsed.at(-1)?.kind, 'checkpoint', 'close writes a final checkpoint');
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, true, v.problem?.message);
  assert.equal(v.entries, parsed.length);
  assert.equal(v.anchor?.seq, parsed.at(-1)?.seq, 'the anchor names the last checkpoint');
});

test('the Merkle root follows RFC 6962 shapes (odd sizes, order sensitive)', () => {
  const h = (s: string) => sealEntry({ seq: 1, time: 't', kind: 'event', tenant: null, request_id: null, actor: s, action: 'a', outcome: 'success', policy_version: '1', prev: '0'.repeat(64) }).entry.hash;
  const hs = ['a', 'b', 'c', 'd', 'e'].map(h);
  assert.notEqual(merkleRoot(hs), merkleRoot([hs[1] as string, hs[0] as string, ...hs.slice(2)]));
  assert.notEqual(merkleRoot(hs.slice(0, 4)), merkleRoot(hs));
  assert.match(merkleRoot([]), /^[0-9a-f]{64}$/);
});

test('concurrent appends are group-committed: fewer fsyncs than entries, every promise after its fsync', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: file, checkpointEntries: 1000, checkpointSeconds: 0 });
  const n = 300;
  const acked = await Promise.all(Array.from({ length: n }, (_, i) => log.append(rec(i))));
  const stats = log.stats();
  assert.ok(stats.batches < stats.appended / 4, `expected batching, got ${stats.batches} batches for ${stats.appended} lines`);
  // Every acknowledged entry is already in the file before close.
  const onDisk = new Set(lines(file).map((l) => (JSON.parse(l) as AuditEntry).hash));
  for (const e of acked) assert.ok(onDisk.has(e.hash));
  await log.close();
  assert.equal((await verifyAuditFile(file)).ok, true);
});

test('the log file is written with synchronous data integrity (O_DSYNC): a write returns only once durable', { skip: process.platform !== 'linux' && 'reads /proc/self/fdinfo' }, async () => {
  const { constants, readdirSync, readlinkSync } = await import('node:fs');
  const file = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: file, checkpointSeconds: 0 });
  try {
    const fd = readdirSync('/proc/self/fd').find((n) => {
      try {
        return readlinkSync(`/proc/self/fd/${n}`) === file;
      } catch {
        return false;
      }
    });
    assert.ok(fd !== undefined, 'the log holds the file open');
    const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8);
    assert.equal(flags & constants.O_DSYNC, constants.O_DSYNC, `flags ${flags.toString(8)} lack O_DSYNC`);
    assert.equal(flags & constants.O_APPEND, constants.O_APPEND);
  } finally {
    await log.close();
  }
});

test('reopening resumes the chain; a second writer is refused while the first is alive', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  await writeLog(file, 5);
  const log = await AuditLog.open({ path: file, checkpointEntries: 4, checkpointSeconds: 0 });
  await assert.rejects(AuditLog.open({ path: file }), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_AUDIT_LOCKED'));
  const e = await log.append(rec(99));
  await log.close();
  const all = lines(file).map((l) => JSON.parse(l) as AuditEntry);
  assert.equal(all.filter((x) => x.action === 'audit.open').length, 2);
  assert.ok(all.some((x) => x.hash === e.hash));
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, true, v.problem?.message);
});

test('time-based checkpoints are written without new traffic', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: file, checkpointEntries: 1_000_000, checkpointSeconds: 0.05 });
  await log.append(rec(1));
  // The log's timer is unref'd (it never keeps a process alive): hold the loop open meanwhile.
  const keepAlive = setTimeout(() => undefined, 10_000);
  const [cp] = (await once(log, 'checkpoint')) as [AuditEntry];
  clearTimeout(keepAlive);
  assert.equal(cp.kind, 'checkpoint');
  assert.equal(cp.checkpoint?.count, 2);
  await log.close();
});

test('the break-glass reason and detail land in the entry', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: file, checkpointSeconds: 0, policyVersion: 'p7' });
  const e = await log.append({ tenant: null, requestId: 'r1', actor: 'ops', action: 'admin.break_glass', outcome: 'success', reason: 'incident 42' });
  await log.close();
  const line = lines(file).find((l) => (JSON.parse(l) as AuditEntry).seq === e.seq);
  assert.match(line ?? '', /"reason":"incident 42"/);
  assert.match(line ?? '', /"policy_version":"p7"/);
});

async function tampered(mutate: (ls: string[]) => string[], opts: { keepNewline?: boolean } = {}) {
  const file = path.join(tempDir(), 'audit.jsonl');
  await writeLog(file, 12, 5);
  const ls = mutate(lines(file));
  writeFileSync(file, ls.join('\n') + (opts.keepNewline === false ? '' : '\n'));
  return verifyAuditFile(file);
}

test('an edited entry is named', async () => {
  const v = await tampered((ls) => ls.map((l, i) => (i === 6 ? l.replace('"outcome":"success"', '"outcome":"denied"') : l)));
  assert.equal(v.problem?.kind, 'edited');
  assert.equal(v.problem?.line, 7);
  assert.equal(v.problem?.seq, 7);
});

test('an edited entry with a recomputed hash breaks the chain at the next entry', async () => {
  const v = await tampered((ls) =>
    ls.map((l, i) => {
      if (i !== 3) return l;
      const { hash: _h, ...body } = JSON.parse(l) as AuditEntry;
      return sealEntry({ ...body, actor: 'someone-else' }).line.trimEnd();
    }),
  );
  assert.equal(v.problem?.kind, 'chain');
  assert.equal(v.problem?.line, 5);
});

test('a deleted entry is named', async () => {
  const v = await tampered((ls) => ls.filter((_, i) => i !== 2));
  assert.equal(v.problem?.kind, 'missing');
  assert.equal(v.problem?.line, 3);
  assert.match(v.problem?.message ?? '', /expected seq 3/);
});

test('reordered entries are named', async () => {
  const v = await tampered((ls) => {
    const c = [...ls];
    [c[4], c[5]] = [c[5] as string, c[4] as string];
    return c;
  });
  assert.equal(v.problem?.line, 5);
  assert.ok(v.problem?.kind === 'missing' || v.problem?.kind === 'reordered');
});

test('a duplicated (replayed) entry is named', async () => {
  const v = await tampered((ls) => [...ls.slice(0, 4), ls[3] as string, ...ls.slice(4)]);
  assert.equal(v.problem?.kind, 'reordered');
  assert.equal(v.problem?.line, 5);
});

test('a forged checkpoint (root changed, hash recomputed) is named', async () => {
  const v = await tampered((ls) =>
    ls.map((l) => {
      const e = JSON.parse(l) as AuditEntry;
      if (e.kind !== 'checkpoint' || e.checkpoint?.from_seq !== 1) return l;
      const { hash: _h, ...body } = e;
      return sealEntry({ ...body, checkpoint: { ...e.checkpoint, root: 'f'.repeat(64) } }).line.trimEnd();
    }),
  );
  assert.equal(v.problem?.kind, 'checkpoint');
});

test('truncation: a cut inside a line, and whole lines removed from the end (caught by the anchor)', async () => {
  const torn = await tampered((ls) => [...ls.slice(0, -1), (ls.at(-1) as string).slice(0, 40)], { keepNewline: false });
  assert.equal(torn.problem?.kind, 'truncated');
  const cut = await tampered((ls) => ls.slice(0, -3));
  assert.equal(cut.problem?.kind, 'truncated');
  assert.match(cut.problem?.message ?? '', /anchor names seq/);
});

test('reopening refuses a broken log, refuses a deleted log with an anchor, repairs a torn tail and records it', async () => {
  const dir = tempDir();
  const broken = path.join(dir, 'broken.jsonl');
  await writeLog(broken, 6);
  writeFileSync(broken, readFileSync(broken, 'utf8').replace('"req-2"', '"req-X"'));
  await assert.rejects(AuditLog.open({ path: broken }), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_AUDIT_CORRUPT') && /line \d+ \(seq \d+\)/.test((e as Error).message));
  assert.equal(existsSync(`${broken}.lock`), false, 'a refused open releases its lock');

  const deleted = path.join(dir, 'deleted.jsonl');
  await writeLog(deleted, 3);
  rmSync(deleted);
  await assert.rejects(AuditLog.open({ path: deleted }), /log was deleted/);

  const torn = path.join(dir, 'torn.jsonl');
  await writeLog(torn, 3);
  appendFileSync(torn, '{"seq":99,"time":"20');
  await assert.rejects(AuditLog.open({ path: torn, onTornTail: 'refuse' }), /file ends inside a line/);
  const log = await AuditLog.open({ path: torn, checkpointSeconds: 0 });
  await log.close();
  const last = lines(torn).map((l) => JSON.parse(l) as AuditEntry).find((e) => e.action === 'audit.recovered');
  assert.equal(last?.detail?.dropped_torn_bytes, 20);
  assert.equal((await verifyAuditFile(torn)).ok, true);
});

test('property: any single-byte change anywhere in the file fails verification', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  await writeLog(file, 8, 3);
  const original = readFileSync(file);
  await fc.assert(
    fc.asyncProperty(fc.nat(original.length - 1), fc.integer({ min: 1, max: 255 }), async (pos, delta) => {
      const copy = Buffer.from(original);
      copy[pos] = ((copy[pos] as number) + delta) & 0xff;
      writeFileSync(file, copy);
      const v = await scanAuditFile(file);
      return v.problem !== null;
    }),
    { numRuns: 150 },
  );
});

test('property: arbitrary bytes never crash the scanner; it reports a problem or a valid empty log', async () => {
  const file = path.join(tempDir(), 'junk.jsonl');
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (bytes) => {
      writeFileSync(file, bytes);
      const v = await scanAuditFile(file);
      return bytes.length === 0 ? v.problem === null : v.problem !== null;
    }),
    { numRuns: 150 },
  );
});

test('sluice audit verify: exit 0 on a good log, 1 naming the first bad entry on a tampered one', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  await writeLog(file, 6);
  const cli = (f: string) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'audit', 'verify', f], { cwd: root, encoding: 'utf8' });
  const good = cli(file);
  assert.equal(good.status, 0, good.stderr);
  assert.match(good.stdout, /ok, \d+ entries/);
  writeFileSync(file, readFileSync(file, 'utf8').replace('"req-3"', '"req-9"'));
  const bad = cli(file);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /FAILED at line \d+ \(seq \d+\): content does not match its hash/);
  const missing = cli(path.join(path.dirname(file), 'nope.jsonl'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot read \(ENOENT\)/);
});

test('an appended line with a bad file truncated to zero is still a valid empty log', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  await writeLog(file, 2);
  truncateSync(file, 0);
  const v = await verifyAuditFile(file, { anchorFile: false });
  assert.equal(v.ok, true);
  assert.equal((await verifyAuditFile(file)).problem?.kind, 'truncated', 'but not against its anchor');
});
