import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import type { AuditEntry } from '../../src/audit/entry.ts';
import { AuditLog } from '../../src/audit/log.ts';
import { scanAuditFile } from '../../src/audit/scan.ts';
import { verifyAuditFile } from '../../src/audit/verify.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const fixture = path.resolve(import.meta.dirname, '../fixtures/audit-writer.ts');

/** Runs the writer child until it has acknowledged `acks` entries, then SIGKILLs it. */
async function killWriterAfter(file: string, acks: number): Promise<Map<number, string>> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, file, '24'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const acked = new Map<number, string>();
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for await (const line of createInterface({ input: child.stdout })) {
    const [word, seq, hash] = line.split(' ');
    if (word === 'ack') acked.set(Number(seq), hash as string);
    if (acked.size >= acks && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  clearTimeout(guard);
  assert.equal(await exited, 'SIGKILL');
  return acked;
}

test('a writer SIGKILLed mid-stream leaves a log that verifies and holds every acknowledged entry', async () => {
  const file = path.join(tempDir(), 'audit.jsonl');
  for (let round = 0; round < 2; round++) {
    const acked = await killWriterAfter(file, 400);
    assert.ok(acked.size >= 400);

    // Straight after the kill: every complete line verifies; at most a torn unacknowledged tail follows.
    const scan = await scanAuditFile(file);
    assert.ok(scan.problem === null || (scan.problem.kind === 'truncated' && scan.tornTailBytes > 0), scan.problem?.message);
    const onDisk = new Map<number, string>();
    for (const l of readFileSync(file, 'utf8').slice(0, scan.validBytes).split('\n')) {
      if (l === '') continue;
      const e = JSON.parse(l) as AuditEntry;
      onDisk.set(e.seq, e.hash);
    }
    for (const [seq, hash] of acked) assert.equal(onDisk.get(seq), hash, `acknowledged seq ${seq} is on disk`);

    // The next writer (stale lock of the dead pid is taken over) resumes the chain.
    const log = await AuditLog.open({ path: file, checkpointSeconds: 0 });
    const after = await log.append({ tenant: null, requestId: null, actor: 'test', action: 'test.after_crash', outcome: 'success' });
    assert.equal(after.seq > Math.max(...acked.keys()), true);
    await log.close();
    const v = await verifyAuditFile(file);
    assert.equal(v.ok, true, v.problem?.message);
  }
});
