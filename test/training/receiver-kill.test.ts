// Randomized: the receiving node is SIGKILLed at random points of a transfer (several times in
// one transfer, mid-write included), restarted on the same spool, and the transfer resumes. Every
// transfer must complete with the sender's SHA-256; a DATA_LOSS here is a resume bug (issue 14,
// item 6). Bounded in time: SLUICE_KILL_TEST_SECONDS (default 40) of iterations.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import { TrainingNode } from '../../src/training/training-node.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const KEY = randomBytes(32);
const KiB = 1024;
const SECONDS = Number(process.env.SLUICE_KILL_TEST_SECONDS ?? 40);

interface Receiver {
  child: ChildProcess;
  port: number;
}

async function startReceiver(port: number, spool: string): Promise<Receiver> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'receiver-child.ts'), String(port), spool, KEY.toString('hex')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await Promise.race([once(lines, 'line'), sleep(30_000).then(() => assert.fail('receiver did not start in 30 s'))])) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function kill(rx: Receiver): Promise<void> {
  if (rx.child.exitCode !== null || rx.child.signalCode !== null) return;
  const exited = once(rx.child, 'exit');
  rx.child.kill('SIGKILL');
  await exited;
}

test('receiver SIGKILLed at random offsets and restarted: every resumed transfer completes with the right SHA-256', { timeout: (SECONDS + 120) * 1000 }, async () => {
  const spool = tempDir('sluice-rxkill-');
  let rx = await startReceiver(0, spool);
  const port = rx.port;
  const transport = new TcpTransport();
  const a = new TrainingNode({
    nodeName: 'a',
    transport,
    segmentKey: KEY,
    peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port }],
    spoolDir: tempDir('sluice-tx-'),
    // Chunks up to 1 MiB and a window of a few of them keep several spool writes in flight when the kill lands.
    limits: { windowBytes: 2048 * KiB, maxChunkBytes: 1024 * KiB, resumeTimeoutMs: 60_000 },
  });
  await a.start();
  const until = Date.now() + SECONDS * 1000;
  let iterations = 0;
  let kills = 0;
  try {
    while (Date.now() < until || iterations < 3) {
      iterations++;
      const data = randomBytes(randomInt(256 * KiB, 8 * 1024 * KiB));
      const chunk = randomInt(1, 1025) * KiB;
      // One to three kills, each at a random produced offset, after a random extra delay.
      const killAt = Array.from({ length: randomInt(1, 4) }, () => randomInt(0, data.length)).sort((x, y) => x - y);
      const id = `kill-${iterations}`;
      let restarting: Promise<void> = Promise.resolve();
      const handle = a.push({ peer: 'b', tensor: { name: `grad/${id}`, datatype: 'UINT8', shape: [data.length], attributes: {} }, total: data.length, transferId: id });
      let offset = await handle.offset;
      while (offset < data.length) {
        await handle.transfer.waitForSpace();
        const n = Math.min(chunk, data.length - offset);
        handle.transfer.write(offset, data.subarray(offset, offset + n));
        offset += n;
        if (killAt.length > 0 && offset >= (killAt[0] as number)) {
          killAt.shift();
          const delay = randomInt(0, 8);
          await restarting;
          restarting = (async () => {
            await sleep(delay);
            await kill(rx);
            kills++;
            rx = await startReceiver(port, spool);
          })();
        }
      }
      handle.transfer.finish(createHash('sha256').update(data).digest());
      const result = await handle.transfer.done.catch((err: Error) => err);
      await restarting;
      assert.ok(!(result instanceof Error), `iteration ${iterations} (${data.length} bytes, chunk ${chunk}): ${(result as Error).message}`);
      assert.deepEqual(result.sha256, createHash('sha256').update(data).digest());
      const onDisk = await readFile(path.join(spool, `${id}.tensor`));
      assert.ok(onDisk.equals(data), `iteration ${iterations}: the spooled tensor differs`);
    }
  } finally {
    await kill(rx);
    await a.close();
  }
  process.stderr.write(`receiver-kill: ${iterations} transfers, ${kills} kills\n`);
  assert.ok(kills >= iterations);
});
