// Rotation into segments: size and age triggers, the chain and checkpoints running on across
// files, reopening and verify across segments, read-only closed segments, retention recorded
// before deletion, and the tamper cases a segmented log adds (a deleted middle or oldest
// segment, an edited closed segment, a segment swapped in from elsewhere).
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { listSegments, segmentPath } from '../../src/audit/segments.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const rec = (i: number) => ({ tenant: 't', requestId: `r${i}`, actor: 'test', action: 'infer.request', outcome: 'success' as const, detail: { i, pad: 'x'.repeat(200) } });

function lines(file: string): AuditEntry[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEntry);
}

async function writeRotated(dir: string, n: number, opts: { maxBytes?: number; retentionDays?: number } = {}): Promise<string> {
  const file = path.join(dir, 'audit.jsonl');
  const log = await AuditLog.open({ path: file, checkpointSeconds: 0, anchorSeconds: 0, rotate: { maxBytes: opts.maxBytes ?? 2000 }, ...(opts.retentionDays !== undefined ? { retentionDays: opts.retentionDays } : {}) });
  for (let i = 0; i < n; i++) await log.append(rec(i));
  await log.close();
  return file;
}

test('size rotation: segments are read-only, each closed one ends with a checkpoint, the chain runs on', async () => {
  const file = await writeRotated(tempDir(), 40);
  const segs = await listSegments(file);
  assert.ok(segs.length >= 4, `${segs.length} segments`);
  let prev: AuditEntry | null = null;
  for (const s of segs) {
    const es = lines(s.file);
    if (Number.isFinite(s.index)) {
      assert.equal(statSync(s.file).mode & 0o222, 0, 'closed segment is read-only');
      assert.equal(es.at(-1)!.kind, 'checkpoint');
      assert.ok(statSync(s.file).size < 2000 + 1000);
    }
    if (prev !== null) {
      assert.equal(es[0]!.prev, prev.hash, 'first entry chains to the previous segment');
      assert.equal(es[0]!.seq, prev.seq + 1);
      assert.equal(es[0]!.action, 'audit.segment');
    }
    prev = es.at(-1)!;
  }
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, true, v.problem?.message);
  assert.equal(v.segments.length, segs.length);
  assert.ok(v.entries > 40);
  // Reopen continues the chain in the active file.
  const log = await AuditLog.open({ path: file, checkpointSeconds: 0, rotate: { maxBytes: 2000 } });
  await log.append(rec(99));
  await log.close();
  assert.equal((await verifyAuditFile(file)).ok, true);
});

test('age rotation closes the active file once it is older than maxAgeMs', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  const log = await AuditLog.open({ path: file, checkpointSeconds: 0, anchorSeconds: 0, rotate: { maxAgeMs: 150 } });
  await log.append(rec(1));
  await new Promise((r) => setTimeout(r, 250));
  await log.append(rec(2));
  await log.append(rec(3));
  await log.close();
  assert.ok((await listSegments(file)).length >= 2);
  assert.equal((await verifyAuditFile(file)).ok, true);
});

test('tamper: a deleted middle segment, a deleted oldest segment, an edited closed segment, a swapped segment', async () => {
  const dir = tempDir();
  const file = await writeRotated(dir, 40);
  const segs = (await listSegments(file)).filter((s) => Number.isFinite(s.index));
  const backup = segs.map((s) => readFileSync(s.file));
  const restore = () =>
    segs.forEach((s, i) => {
      try {
        chmodSync(s.file, 0o600);
      } catch {
        // deleted
      }
      writeFileSync(s.file, backup[i]!);
    });
  unlinkSync(segs[1]!.file);
  let v = await verifyAuditFile(file);
  assert.equal(v.ok, false);
  assert.equal(v.problem!.kind, 'missing');
  restore();
  unlinkSync(segs[0]!.file);
  v = await verifyAuditFile(file);
  assert.equal(v.ok, false, 'the oldest segment removed without a retention event');
  assert.match(v.problem!.message, /no retention event/);
  restore();
  assert.equal((await verifyAuditFile(file)).ok, true);
  chmodSync(segs[1]!.file, 0o600);
  const text = backup[1]!.toString().replace('"i":', '"i" :');
  writeFileSync(segs[1]!.file, text);
  v = await verifyAuditFile(file);
  assert.equal(v.problem?.kind, 'edited');
  assert.match(v.problem!.message, /audit\.jsonl\.000002/);
  restore();
  // A segment from another log with the same shape does not chain.
  const other = await writeRotated(tempDir(), 40);
  chmodSync(segs[2]!.file, 0o600);
  writeFileSync(segs[2]!.file, readFileSync(segmentPath(other, 3)));
  v = await verifyAuditFile(file);
  assert.equal(v.ok, false);
  assert.equal(v.problem!.kind, 'chain');
});

test('retention deletes old closed segments only after recording it; the retained log verifies', async () => {
  const dir = tempDir();
  const file = await writeRotated(dir, 40);
  const segs = (await listSegments(file)).filter((s) => Number.isFinite(s.index));
  const old = (Date.now() - 10 * 86_400_000) / 1000;
  utimesSync(segs[0]!.file, old, old);
  utimesSync(segs[1]!.file, old, old);
  const log = await AuditLog.open({ path: file, checkpointSeconds: 0, anchorSeconds: 0, rotate: { maxBytes: 2000 }, retentionDays: 7 });
  await log.close();
  const names = readdirSync(dir);
  assert.ok(!names.includes(path.basename(segs[0]!.file)) && !names.includes(path.basename(segs[1]!.file)));
  assert.ok(names.includes(path.basename(segs[2]!.file)));
  const all = (await listSegments(file)).flatMap((s) => lines(s.file));
  const retention = all.find((e) => e.action === 'audit.retention')!;
  assert.ok(retention, all.map((e) => e.action).join(','));
  assert.deepEqual(retention.detail!.deleted_segments, [path.basename(segs[0]!.file), path.basename(segs[1]!.file)]);
  const v = await verifyAuditFile(file);
  assert.equal(v.ok, true, v.problem?.message);
  assert.equal(v.segments[0]!.firstSeq, retention.detail!.retained_from_seq);
  // Deleting one more segment than retention recorded is detected.
  unlinkSync(segs[2]!.file);
  assert.equal((await verifyAuditFile(file)).ok, false);
});
