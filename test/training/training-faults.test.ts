// Transfer faults through the training thread as `sluice serve` runs it (SluiceNode, real
// sockets, real processes): a job killed mid-push resumes from where the node stopped (no
// acknowledged byte is sent twice to the peer, the digest checks out), and a receiver whose
// spool disk fills up (a 4 MiB tmpfs) fails the transfer with RESOURCE_EXHAUSTED at once, drops
// the partial and takes the next tensor that fits.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import { connect, type TransferError } from '../../src/index.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 * 1024;
const dir = tempDir();
// Its own directory (not under `dir`, which is removed before this file's after() unmounts it).
const fullSpool = mkdtempSync(path.join(tmpdir(), 'sluice-small-spool-'));
const logging = new Logging({ level: 'silent', node: 'training-faults' });
const any = { host: '127.0.0.1', port: 0 };
let mounted = false;
let rx: SluiceNode;
let tx: SluiceNode;

before(async () => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', fullSpool], { stdio: 'ignore' });
    mounted = true;
  } catch {
    // Not root (or no mount in this sandbox): the full-disk test is skipped, the rest runs.
  }
  const key = randomBytes(32).toString('hex');
  rx = new SluiceNode({
    config: parseConfig({
      node: { name: 'rx' },
      listeners: { training: any },
      segments: { training: { transport: 'tcp', key, listen: any } },
      training: { spoolDir: fullSpool },
      log: { level: 'silent' },
    }),
    logger: logging.component('rx'),
    transports: defaultTransports,
  });
  await rx.start();
  const [host, port] = rx.endpoints.training!.split(':') as [string, string];
  tx = new SluiceNode({
    config: parseConfig({
      node: { name: 'tx' },
      listeners: { training: any },
      segments: { training: { transport: 'tcp', key } },
      peers: [{ name: 'rx', segment: 'training', host, port: Number(port) }],
      training: { spoolDir: path.join(dir, 'tx-spool'), windowBytes: 512 * 1024, maxChunkBytes: 64 * 1024 },
      log: { level: 'silent' },
    }),
    logger: logging.component('tx'),
    transports: defaultTransports,
  });
  await tx.start();
});

after(async () => {
  await tx?.stop(0);
  await rx?.stop(0);
  if (mounted) execFileSync('umount', ['-l', fullSpool]);
  rmSync(fullSpool, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a job SIGKILLed mid-push resumes the same transfer; the tensor arrives whole', { timeout: 120_000 }, async () => {
  const file = path.join(dir, 'job.bin');
  const data = randomBytes(3 * MiB + 17);
  writeFileSync(file, data);
  const job = spawn(process.execPath, ['--import', 'tsx', path.join(here, '../fixtures/push-job.ts'), tx.endpoints.trainingService!, 'rx', file, 'job-killed'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: job.stdout! });
  const exited = new Promise((r) => job.once('exit', r));
  for await (const line of lines) {
    if (line === 'started') break;
    if (line === 'finished') assert.fail('the job finished before it could be killed');
  }
  job.kill('SIGKILL');
  await exited;
  const client = connect(tx.endpoints.trainingService!);
  const before = await client.status('job-killed');
  assert.ok(before.ackedBytes < data.length, `acked ${before.ackedBytes} of ${data.length} when the job died`);
  const r = await client.push('rx', 'fault/job', { path: file }, { transferId: 'job-killed', resume: true });
  assert.equal(r.sha256.toString('hex'), sha(data));
  const rxClient = connect(rx.endpoints.trainingService!);
  assert.equal((await rxClient.status('job-killed')).state, 'completed');
  assert.equal(sha(readFileSync(path.join(fullSpool, 'job-killed.tensor'))), sha(data));
  client.close();
  rxClient.close();
});

test('a full spool disk fails the transfer with RESOURCE_EXHAUSTED, drops the partial, and takes the next tensor', { timeout: 120_000 }, async (t) => {
  if (!mounted) {
    t.skip('cannot mount a small tmpfs here (needs root)');
    return;
  }
  const client = connect(tx.endpoints.trainingService!);
  const tooBig = randomBytes(6 * MiB);
  await assert.rejects(client.push('rx', 'fault/big', tooBig, { transferId: 'too-big', maxAttempts: 1 }), (e: TransferError) => {
    assert.equal(e.status, 'RESOURCE_EXHAUSTED', e.message);
    assert.match(e.message, /spool on the receiving node is full/);
    return true;
  });
  // The partial is gone, so the space is back for the next tensor.
  for (let i = 0; i < 50 && readdirSync(fullSpool).some((f) => f.startsWith('too-big')); i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(readdirSync(fullSpool).filter((f) => f.startsWith('too-big')), []);
  const fits = randomBytes(512 * 1024 + 3);
  const r = await client.push('rx', 'fault/fits', fits, { transferId: 'fits-after-full' });
  assert.equal(r.sha256.toString('hex'), sha(fits));
  client.close();
});
