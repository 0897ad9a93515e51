// CPU seconds per GiB of training bulk through the sluice pair (front + back, per thread) and
// through the nginx TLS pair, measured the same way in the same run: the mixed bench's pair
// and jobs (bench/mixed-pair.ts), no inference, bulk alone. CPU is each proxy process's
// schedstat run time over a phase, divided by the bytes the receiving job got (SHA-256 checked
// per tensor): on a shared machine this ratio moves much less than MB/s does. The jobs (at
// nice 19) stand for other machines and are not counted.
//   node --import tsx bench/training-cpu.ts [seconds per phase, default 8] [rounds, default 2]
// Knobs: SLUICE_TRAIN_CPU_TENSOR_MIB (default 256), SLUICE_TRAIN_CPU_NODE_ARGS (more node flags
// for front and back, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": the training thread writes a
// profile of its own), SLUICE_TRAIN_CPU_PERF=<dir> (perf record -g of the sluice processes over
// each sluice phase, into <dir>/<proc>.data; add --perf-basic-prof to the node args for JS
// names), SLUICE_TRAIN_CPU_TRACE_GC=1 (scavenges and mark-compacts per GiB, with the reasons
// of the latter, from --trace-gc), SLUICE_TRAIN_CPU_SKIP_NGINX=1.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { Job, startMixedSluicePair } from './mixed-pair.ts';
import { nginxAvailable, type NginxPair, startNginxTlsPair } from './nginx-grpc-proxy.ts';
import { threadCpuUs } from './process-cpu.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const START_TIMEOUT_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** --trace-gc lines of front and back: per process, 'scavenge' and 'mark-compact (<reason>)' counts. */
const gcCounts: Record<string, Record<string, number>> = { front: {}, back: {} };

function countGc(proc: string, line: string): void {
  // "... Mark-Compact 30.1 (40.2) -> 25.3 (41.0) MB, 12.3 / 0.0 ms  (...) (average mu = ..., current mu = ...) <reason>"
  const reason = (): string => line.slice(line.lastIndexOf(')') + 1).trim().replace(/[\d.]+ ms/g, '').trim();
  const kind = line.includes('Scavenge') ? 'scavenge' : line.includes('Mark-Compact') || line.includes('Mark-sweep') ? `mark-compact: ${reason()}` : undefined;
  if (kind !== undefined) gcCounts[proc]![kind] = (gcCounts[proc]![kind] ?? 0) + 1;
}

const snapshotGc = (): Record<string, Record<string, number>> => JSON.parse(JSON.stringify(gcCounts)) as Record<string, Record<string, number>>;

interface BulkPath {
  name: string;
  /** Proxy processes by name (their CPU is what is measured). */
  pids: Record<string, number>;
  sender: Job;
  receiver: Job;
}

/** Per process and thread: CPU seconds per GiB delivered; total over all. */
async function phase(p: BulkPath, ms: number): Promise<{ mbps: number; cpuSPerGiB: number; byThread: Record<string, Record<string, number>>; bad: number }> {
  p.sender.startBulk();
  await sleep(1500); // connection, first window, JIT
  const before = Object.fromEntries(Object.entries(p.pids).map(([n, pid]) => [n, threadCpuUs(pid)]));
  const perfDir = process.env.SLUICE_TRAIN_CPU_PERF;
  const perf = perfDir !== undefined && perfDir !== '' && p.name === 'sluice pair'
    ? Object.entries(p.pids).map(([n, pid]) => spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', path.join(perfDir, `${n}.data`)], { stdio: 'ignore' }))
    : [];
  const gc0 = snapshotGc();
  const a = await p.receiver.sample();
  const t0 = performance.now();
  await sleep(ms);
  const b = await p.receiver.sample();
  await Promise.all(perf.map((c) => new Promise((r) => (c.once('close', r), c.kill('SIGINT')))));
  const after = Object.fromEntries(Object.entries(p.pids).map(([n, pid]) => [n, threadCpuUs(pid)]));
  const secs = (performance.now() - t0) / 1000;
  await p.sender.stopBulk();
  const gib = (b.bytes - a.bytes) / GiB;
  const byThread: Record<string, Record<string, number>> = {};
  let totalUs = 0;
  for (const [proc, t1] of Object.entries(after)) {
    const rows: Record<string, number> = {};
    for (const [thread, us] of t1) {
      const d = us - (before[proc]!.get(thread) ?? 0);
      totalUs += d;
      if (d / 1e6 / gib >= 0.005) rows[thread] = Math.round((d / 1e6 / gib) * 1000) / 1000;
    }
    byThread[proc] = rows;
  }
  if (p.name === 'sluice pair') {
    for (const [proc, kinds] of Object.entries(gcCounts)) {
      for (const [k, v] of Object.entries(kinds)) {
        const d = v - (gc0[proc]![k] ?? 0);
        if (d > 0) (byThread[proc] ??= {})[`gc/GiB ${k}`] = Math.round((d / gib) * 10) / 10;
      }
    }
  }
  return { mbps: (b.bytes - a.bytes) / 1e6 / secs, cpuSPerGiB: totalUs / 1e6 / gib, byThread, bad: b.bad - a.bad };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 8);
  const rounds = Number(process.argv[3] ?? 2);
  const tensorBytes = Number(process.env.SLUICE_TRAIN_CPU_TENSOR_MIB ?? 256) * MiB;
  const traceGc = process.env.SLUICE_TRAIN_CPU_TRACE_GC === '1';
  const nodeArgs = [...(traceGc ? ['--trace-gc'] : []), ...(process.env.SLUICE_TRAIN_CPU_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')];
  const child = (role: 'front' | 'back') => ({ nodeArgs, ...(traceGc ? { onOtherLine: (l: string) => countGc(role, l) } : {}) });
  const procs: SluiceProcess[] = [];
  const jobs: Job[] = [];
  let nginx: NginxPair | undefined;
  const spool = mkdtempSync(path.join(tmpdir(), 'sluice-training-cpu-'));
  try {
    const any = { host: '127.0.0.1', port: 0 };
    const models = await startSluice({ node: { name: 'cpu-models' }, models: { listen: any }, log: { level: 'warn' } }, { name: 'models', timeoutMs: START_TIMEOUT_MS });
    procs.push(models);
    const { back, front } = await startMixedSluicePair(models.endpoints.models!, randomBytes(32).toString('hex'), randomBytes(32).toString('hex'), spool, procs, START_TIMEOUT_MS, child);
    const paths: BulkPath[] = [];
    const recv = await Job.start('recv-sluice', [back.endpoints.trainingService!], tensorBytes, START_TIMEOUT_MS);
    jobs.push(recv);
    const send = await Job.start('send-sluice', [front.endpoints.trainingService!, 'back-training'], tensorBytes, START_TIMEOUT_MS);
    jobs.push(send);
    paths.push({ name: 'sluice pair', pids: { front: front.child.pid!, back: back.child.pid! }, sender: send, receiver: recv });
    if (nginxAvailable() && process.env.SLUICE_TRAIN_CPU_SKIP_NGINX !== '1') {
      const grpcRecv = await Job.start('recv-grpc', [], tensorBytes, START_TIMEOUT_MS);
      jobs.push(grpcRecv);
      nginx = await startNginxTlsPair(models.endpoints.models!, 64 * MiB, { routes: { '/bench.TensorSink/': grpcRecv.address! } });
      const grpcSend = await Job.start('send-grpc', [nginx.address], tensorBytes, START_TIMEOUT_MS);
      jobs.push(grpcSend);
      paths.push({ name: 'nginx pair', pids: { 'nginx A': nginx.pids[0]!, 'nginx B': nginx.pids[1]! }, sender: grpcSend, receiver: grpcRecv });
    }
    console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${tensorBytes / MiB} MiB tensors, ${rounds} round(s) of ${seconds} s per path`);
    const totals: Record<string, number[]> = {};
    for (let r = 0; r < rounds; r++) {
      for (const p of paths) {
        const res = await phase(p, seconds * 1000);
        (totals[p.name] ??= []).push(res.cpuSPerGiB);
        console.log(`round ${r + 1} ${p.name}: ${res.mbps.toFixed(0)} MB/s, ${res.cpuSPerGiB.toFixed(2)} CPU s/GiB (load ${loadavg()[0]!.toFixed(2)})${res.bad > 0 ? `, ${res.bad} BAD tensors` : ''}`);
        for (const [proc, rows] of Object.entries(res.byThread)) console.log(`    ${proc}: ${JSON.stringify(rows)}`);
      }
    }
    const med = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
    };
    const sl = totals['sluice pair'];
    const ng = totals['nginx pair'];
    console.log(`\nmedian CPU s/GiB: sluice pair ${med(sl!).toFixed(2)}${ng ? `, nginx pair ${med(ng).toFixed(2)} (sluice/nginx ${(med(sl!) / med(ng)).toFixed(2)}x)` : ''}`);
  } finally {
    await Promise.all(jobs.map((j) => j.stop()));
    await nginx?.stop();
    for (const p of procs.reverse()) await p.stop();
    rmSync(spool, { recursive: true, force: true });
  }
}

await main();
