import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { scanAuditFile } from '../../src/audit/scan.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const fixture = path.resolve(import.meta.dirname, '../fixtures/audit-full-disk.ts');

test('a failing write (EFBIG under ulimit -f) poisons the log: nothing after it is acknowledged', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  // 16 blocks of 512 bytes: the limit is hit after a few dozen entries.
  const r = spawnSync('bash', ['-c', 'ulimit -f 16 && exec "$0" --import tsx "$1" "$2"', process.execPath, fixture, file], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { acked: number[]; firstError: string; laterError: string; failureEvent: string };
  assert.ok(report.acked.length > 5);
  assert.equal(report.firstError, 'SLUICE_ERR_AUDIT_WRITE');
  assert.equal(report.laterError, 'SLUICE_ERR_AUDIT_WRITE', 'appends after a failure are refused');
  assert.equal(report.failureEvent, 'SLUICE_ERR_AUDIT_WRITE');
  const scan = await scanAuditFile(file);
  assert.ok(scan.problem === null || scan.problem.kind === 'truncated', scan.problem?.message);
  const valid = readFileSync(file, 'utf8').slice(0, scan.validBytes).split('\n').filter(Boolean);
  const seqs = new Set(valid.map((l) => (JSON.parse(l) as AuditEntry).seq));
  for (const seq of report.acked) assert.ok(seqs.has(seq), `acknowledged seq ${seq} is in the valid prefix`);
});
