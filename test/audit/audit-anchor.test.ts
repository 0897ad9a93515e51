// The anchor keeps up with durability (issue 14, item 2): a cut or rewritten tail is detected
// for every entry older than `anchorSeconds`, a missing anchor fails verification, and a crash's
// anchor temp files are removed on open.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readAnchor } from '../../src/audit/anchor.ts';
import { sealEntry, type AuditEntry } from '../../src/audit/entry.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const root = path.resolve(import.meta.dirname, '../..');

function rec(i: number) {
  return { tenant: 't', requestId: `req-${i}`, actor: 'key:abc', action: 'infer.request', outcome: 'success' as const, detail: { i } };
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

/** Waits (bounded) until FILE.anchor names `seq`. */
async function anchorReaches(file: string, seq: number, withinMs: number): Promise<void> {
  const until = Date.now() + withinMs;
  for (;;) {
    const a = await readAnchor(`${file}.anchor`);
    if (a !== null && a.seq >= seq) return;
    if (Date.now() > until) assert.fail(`anchor still at ${a?.seq ?? 'none'} after ${withinMs} ms, head ${seq}`);
    await sleep(20);
  }
}

/**
 * Writes entries with the default checkpoint policy (no checkpoint within the test), waits past
 * `anchorSeconds`, and snapshots the log and its anchor as a SIGKILL would leave them.
 */
async function crashedLog(anchorSeconds: number): Promise<{ file: string; entries: AuditEntry[] }> {
  const dir = tempDir();
  const live = path.join(dir, 'live.jsonl');
  const log = await AuditLog.open({ path: live, anchorSeconds });
  const entries: AuditEntry[] = [];
  for (let i = 0; i < 12; i++) entries.push(await log.append(rec(i)));
  await anchorReaches(live, log.lastSeq, anchorSeconds * 1000 + 2000);
  const file = path.join(dir, 'audit.jsonl');
  copyFileSync(live, file);
  copyFileSync(`${live}.anchor`, `${file}.anchor`);
  await log.close();
  return { file, entries };
}

test('the anchor follows the durable head without a checkpoint, within anchorSeconds', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: file, anchorSeconds: 0.2 });
  const t0 = Date.now();
  const e = await log.append(rec(1));
  await anchorReaches(file, e.seq, 1500);
  const lag = Date.now() - t0;
  assert.ok(lag < 1500, `anchor lagged ${lag} ms`);
  // A burst within the interval collapses into few anchor writes, and the last one names the head.
  const burst = await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(rec(i))));
  await anchorReaches(file, (burst.at(-1) as AuditEntry).seq, 1500);
  const a = await readAnchor(`${file}.anchor`);
  assert.equal(a?.hash, (burst.at(-1) as AuditEntry).hash);
  assert.equal(lines(file).some((l) => l.includes('"kind":"checkpoint"')), false, 'no checkpoint was needed');
  await log.close();
});

test('whole entries cut from the end of a crashed log fail verify (default anchorSeconds)', async () => {
  const { file } = await crashedLog(1);
  assert.equal((await verifyAuditFile(file)).ok, true);
  writeFileSync(file, `${lines(file).slice(0, -2).join('\n')}\n`);
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.kind, 'truncated');
  assert.match(v.problem?.message ?? '', /anchor names seq/);
});

test('the last entry edited with its hash recomputed fails verify', async () => {
  const { file } = await crashedLog(0);
  const ls = lines(file);
  const { hash: _h, ...body } = JSON.parse(ls.at(-1) as string) as AuditEntry;
  ls[ls.length - 1] = sealEntry({ ...body, outcome: 'denied' }).line.trimEnd();
  writeFileSync(file, `${ls.join('\n')}\n`);
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.kind, 'chain');
  assert.match(v.problem?.message ?? '', /differs from the anchor/);
});

test('a missing anchor fails verify unless --no-anchor', async () => {
  const { file } = await crashedLog(0);
  rmSync(`${file}.anchor`);
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, false);
  assert.equal(v.problem?.kind, 'anchor');
  assert.equal((await verifyAuditFile(file, { anchorFile: false })).ok, true);
  const cli = (...a: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'audit', 'verify', file, ...a], { cwd: root, encoding: 'utf8' });
  const refused = cli();
  assert.equal(refused.status, 1, refused.stderr);
  assert.match(refused.stdout, /FAILED: anchor .* is missing/);
  const skipped = cli('--no-anchor');
  assert.equal(skipped.status, 0, skipped.stderr);
  assert.match(skipped.stdout, /anchor not checked/);
});

test('stale anchor temp files from a crash are removed on open, and the open says so', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'audit.jsonl');
  const log1 = await AuditLog.open({ path: file });
  await log1.close();
  const stale = [`${file}.anchor.4242.deadbeef.tmp`, `${file}.anchor.1.00000000.tmp`];
  for (const s of stale) writeFileSync(s, '{"seq":1');
  const other = path.join(dir, 'other.jsonl.anchor.1.00000000.tmp');
  writeFileSync(other, 'x');
  const log2 = await AuditLog.open({ path: file });
  for (const s of stale) assert.equal(existsSync(s), false, `${s} removed`);
  assert.equal(existsSync(other), true, "another log's temp file is left alone");
  await log2.close();
  const opened = lines(file).map((l) => JSON.parse(l) as AuditEntry).filter((e) => e.action === 'audit.open');
  assert.equal(opened.at(-1)?.detail?.removed_anchor_temps, 2);
  assert.equal((await verifyAuditFile(file)).ok, true);
});
