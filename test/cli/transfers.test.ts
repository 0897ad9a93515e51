// `sluice transfers list|status|watch` against a real training transfer between two sluice
// processes: the watch follows a push that is still running (its source yields slowly) with
// progress bars and a rate, and ends when it completes.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect } from '../../src/index.ts';
import { ROOT, type SluiceProcess, startSluice } from '../helpers/sluice-process.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const MiB = 1024 * 1024;
const any = { host: '127.0.0.1', port: 0 };
let receiver: SluiceProcess;
let sender: SluiceProcess;
let dir: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-cli-transfers-'));
  const key = randomBytes(32).toString('hex');
  receiver = await startSluice(
    { node: { name: 'rx' }, listeners: { grpc: any, training: any }, segments: { training: { transport: 'tcp', key, listen: any } }, training: { spoolDir: path.join(dir, 'rx') } },
    { name: 'rx' },
  );
  const [host, port] = receiver.endpoints.training!.split(':') as [string, string];
  sender = await startSluice(
    { node: { name: 'tx' }, listeners: { grpc: any, training: any }, segments: { training: { transport: 'tcp', key } }, peers: [{ name: 'rx', segment: 'training', host, port: Number(port) }], training: { spoolDir: path.join(dir, 'tx') } },
    { name: 'tx' },
  );
});

after(async () => {
  await Promise.all([sender?.stop(), receiver?.stop()]);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function sluice(args: string[], onOutput?: () => void): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'sluice.mjs'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onOutput?.();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('watch follows a running transfer to the end; status and list show it on both nodes', { timeout: 300_000 }, async () => {
  const data = randomBytes(8 * MiB);
  // The source holds its bytes back until the watch has drawn its first line, so the watch (a
  // new process, slow to start on a busy machine) sees the transfer under way whatever the load.
  let watching!: () => void;
  const watchStarted = new Promise<void>((resolve) => (watching = resolve));
  async function* slowly(): AsyncGenerator<Uint8Array> {
    await watchStarted;
    for (let off = 0; off < data.length; off += MiB / 2) {
      yield data.subarray(off, off + MiB / 2);
      await sleep(300);
    }
  }
  const tx = connect(sender.endpoints.trainingService!);
  const pushed = tx.push('rx', 'ckpt/cli-watch', slowly(), { transferId: 'cli-watch-1', totalBytes: data.length });
  for (let i = 0; i < 500 && !(await tx.list()).some((s) => s.transferId === 'cli-watch-1'); i++) await sleep(20);
  const watch = await sluice(['transfers', 'watch', 'cli-watch-1', '--address', sender.endpoints.trainingService!, '--interval-ms', '100', '--timeout-s', '120'], () => watching());
  const result = await pushed;
  assert.equal(watch.status, 0, watch.stderr);
  const lines = watch.stdout.trim().split('\n');
  assert.ok(lines.length >= 3, `several redraws while it ran:\n${watch.stdout}`);
  const percents = lines.map((l) => Number(/(\d+\.\d)%/.exec(l)?.[1]));
  assert.ok(percents.every((p, i) => i === 0 || p >= percents[i - 1]!), 'progress never goes back');
  assert.ok(percents[0]! < 100, `the first line shows a transfer under way: ${lines[0]}`);
  assert.match(lines.at(-1)!, /^cli-watch-1 {2}-> rx {2}ckpt\/cli-watch {2}COMPLETED +\[#{24}\] 100\.0% {2}8\.0 MiB \/ 8\.0 MiB/);
  assert.ok(lines.some((l) => /\d B\/s|KiB\/s|MiB\/s/.test(l)), 'a rate is shown');

  const status = await sluice(['transfers', 'status', 'cli-watch-1', '--address', sender.endpoints.trainingService!]);
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /state {6}COMPLETED/);
  assert.match(status.stdout, new RegExp(`sha256 {5}${createHash('sha256').update(data).digest('hex')}`));
  assert.equal(result.sha256.toString('hex'), createHash('sha256').update(data).digest('hex'));

  const list = await sluice(['transfers', 'list', '--address', receiver.endpoints.trainingService!, '--json']);
  assert.equal(list.status, 0, list.stderr);
  const inbound = (JSON.parse(list.stdout) as { transferId: string; direction: string; peer: string; state: string; ackedBytes: number }[]).find((s) => s.transferId === 'cli-watch-1');
  assert.deepEqual(inbound && [inbound.direction, inbound.peer, inbound.state, inbound.ackedBytes], ['inbound', 'tx', 'completed', data.length]);
  const table = await sluice(['transfers', 'list', '--address', receiver.endpoints.trainingService!]);
  assert.match(table.stdout, /cli-watch-1 {2}<- tx {2}ckpt\/cli-watch {2}COMPLETED/);
  tx.close();
});

test('an unknown transfer, the gRPC port and a missing ID are clear one-line failures', { timeout: 300_000 }, async () => {
  const missing = await sluice(['transfers', 'status', 'no-such-transfer', '--address', sender.endpoints.trainingService!]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no-such-transfer/);
  // The gRPC port (8001) serves no TensorTransfer: the failure names the training listener's port.
  const wrongPort = await sluice(['transfers', 'status', 'no-such-transfer', '--address', sender.endpoints.grpc!]);
  assert.equal(wrongPort.status, 1);
  assert.ok(wrongPort.stderr.includes(`listeners.training (port ${sender.endpoints.trainingService!.split(':').at(-1)})`), wrongPort.stderr);
  const usage = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sluice.mjs'), 'transfers', 'status'], { encoding: 'utf8', timeout: 180_000 });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /expected exactly one transfer ID/);
});
