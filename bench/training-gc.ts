// Garbage collection on the training threads during bulk: two nodes in this process (each with
// its training thread), a job in another process pushing TENSORS x TENSOR_MIB MiB through them
// to the receiver's spool. `node --import tsx bench/training-gc.ts [--quick]` runs itself under
// `node --trace-gc --expose-gc` (--run), keeps the trace in a temporary file and tallies it:
// scavenges and mark-compacts per GiB pushed on each training thread, their pauses, and MB/s.
// V8 prints one line per collection, prefixed by the isolate; the run prints markers around
// the pushes and forces one collection on the main isolate to tell it apart from the training
// threads'. `--count <trace file>` tallies a trace kept from an earlier run. `--quick`: 2 x 64
// MiB (a smoke run; the default is 4 x 64 MiB).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfig } from '../src/config/load.ts';
import { SluiceNode } from '../src/node/sluice-node.ts';
import { defaultTransports } from '../src/node/transports.ts';
import { Logging } from '../src/telemetry/logger.ts';

const QUICK = process.argv.includes('--quick');
const TENSORS = Number(process.env.TENSORS ?? (QUICK ? 2 : 4));
const TENSOR_MIB = Number(process.env.TENSOR_MIB ?? 64);

function count(file: string): void {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes('GC-MARK start'));
  const end = lines.findIndex((l) => l.includes('GC-MARK end'));
  if (start < 0 || end < 0) throw new Error('markers not found');
  const mainIso = lines.slice(start).find((l) => l.includes('testing'))?.match(/^\[\d+:(0x[0-9a-f]+)\]/)?.[1];
  const per = new Map<string, { scavenge: number; full: number; pauses: number[] }>();
  for (const l of lines.slice(start + 1, end)) {
    const m = l.match(/^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact)[^,]*, ([\d.]+) \/ [\d.]+ ms/);
    if (m === null || l.includes('testing')) continue;
    const e = per.get(m[1]!) ?? { scavenge: 0, full: 0, pauses: [] };
    if (m[2] === 'Scavenge' || m[2] === 'Minor Mark-Compact') e.scavenge++;
    else e.full++;
    e.pauses.push(Number(m[3]));
    per.set(m[1]!, e);
  }
  // The receiver's thread starts first, so its isolate's clock (ms since it was created) reads
  // higher than the sender's at the same moment: compare neighbouring lines of the two.
  const parsed = lines.slice(start + 1, end).flatMap((l) => {
    const m = l.match(/^\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms/);
    return m === null || m[1] === mainIso ? [] : [{ iso: m[1]!, ts: Number(m[2]) }];
  });
  const votes = new Map<string, number>();
  for (let i = 1; i < parsed.length; i++) {
    const a = parsed[i - 1]!;
    const b = parsed[i]!;
    if (a.iso === b.iso) continue;
    const older = a.ts > b.ts ? a.iso : b.iso;
    votes.set(older, (votes.get(older) ?? 0) + 1);
  }
  const rxIso = [...votes].sort((x, y) => y[1] - x[1])[0]?.[0];
  const gib = (TENSORS * TENSOR_MIB) / 1024;
  for (const [iso, e] of per) {
    const who = iso === mainIso ? 'main' : iso === rxIso ? 'training (receiver)' : 'training (sender)';
    const sorted = e.pauses.sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    console.log(`${who} ${iso}: ${e.full} full + ${e.scavenge} scavenges (${(e.full / gib).toFixed(1)} mark-compacts, ${(e.scavenge / gib).toFixed(1)} scavenges per GiB received), pause median ${median} ms, max ${sorted.at(-1) ?? 0} ms, total ${e.pauses.reduce((a, b) => a + b, 0).toFixed(1)} ms`);
  }
  const rate = lines.find((l) => l.startsWith('pushed '));
  if (rate !== undefined) console.log(rate);
}

/** Runs the bench under --trace-gc in a child process and tallies its trace. */
function traced(): void {
  const args = ['--trace-gc', '--expose-gc', '--import', 'tsx', import.meta.filename, '--run', ...(QUICK ? ['--quick'] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: process.env, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`the traced run exited with ${r.status ?? r.signal}`);
  const file = path.join(tmpdir(), `training-gc-${process.pid}.trace`);
  writeFileSync(file, r.stdout);
  console.log(`${TENSORS} x ${TENSOR_MIB} MiB pushed; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; trace kept in ${file}`);
  count(file);
}

async function run(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'training-gc-'));
  const logging = new Logging({ level: 'silent', node: 'training-gc' });
  const any = { host: '127.0.0.1', port: 0 };
  const key = randomBytes(32).toString('hex');
  const rx = new SluiceNode({
    config: parseConfig({
      node: { name: 'rx' },
      listeners: { training: any },
      segments: { training: { transport: 'tcp', key, listen: any } },
      training: { spoolDir: path.join(dir, 'rx'), threadPriority: 'normal' },
      log: { level: 'silent' },
    }),
    logger: logging.component('rx'),
    transports: defaultTransports,
  });
  await rx.start();
  const [host, port] = rx.endpoints.training!.split(':') as [string, string];
  const tx = new SluiceNode({
    config: parseConfig({
      node: { name: 'tx' },
      listeners: { training: any },
      segments: { training: { transport: 'tcp', key } },
      peers: [{ name: 'rx', segment: 'training', host, port: Number(port) }],
      training: { spoolDir: path.join(dir, 'tx'), threadPriority: 'normal' },
      log: { level: 'silent' },
    }),
    logger: logging.component('tx'),
    transports: defaultTransports,
  });
  await tx.start();
  console.log('GC-MARK start');
  (globalThis as { gc?: () => void }).gc?.();
  const t0 = performance.now();
  const job = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'training-gc-job.ts'), tx.endpoints.trainingService!, 'rx', String(TENSORS), String(TENSOR_MIB)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => job.on('exit', resolve));
  const s = (performance.now() - t0) / 1000;
  console.log('GC-MARK end');
  console.log(`pushed ${TENSORS} x ${TENSOR_MIB} MiB in ${s.toFixed(1)} s, ${((TENSORS * TENSOR_MIB * 1024 * 1024) / 1e6 / s).toFixed(1)} MB/s (job exit ${code})`);
  await tx.stop(0);
  await rx.stop(0);
  await rm(dir, { recursive: true, force: true });
}

if (process.argv[2] === '--count') count(process.argv[3]!);
else if (process.argv.includes('--run')) await run();
else traced();
