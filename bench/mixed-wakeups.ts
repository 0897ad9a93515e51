// Where the sluice pair's inference p99 goes when bulk runs: the mixed bench's pair and jobs
// (bench/mixed-pair.ts), 16 KiB identity at a fixed open-loop rate (h2load), once without bulk
// and once while the nice-19 jobs push tensors through the training segment, and per call for
// every thread of front, back and the model server: run-queue wait (schedstat's run delay),
// CPU (schedstat) and context switches. These counts do not move with the machine's load the
// way latencies do, and the with/without difference shows which thread bulk delays. It also
// prints each thread's scheduling policy and nice (from /proc/<pid>/task/<tid>/stat) and the
// front's bulk share (the governor) sampled every 100 ms while both run.
//   node --import tsx bench/mixed-wakeups.ts [--rate 200] [--seconds 8] [--rounds 1] [--mib 512]
//     [--strace-training <s>] [--perf-sched <dir>]
// --perf-sched: `perf sched record -a` for 3 s in each phase (<dir>/off-N.data, <dir>/on-N.data),
// then, for every wake-up of an inference thread (front's and back's sluice-infer, the model
// server's main thread), the thread that was running on the CPU it then ran on, at the moment
// of the wake-up: per such occupant, the wake-ups, their delay p50/p90/max and how many waited
// over 0.5 ms. A nice-19 or SCHED_IDLE occupant should be preempted at once (p50 ~10 us); a
// long delay behind one means it was in the kernel (this kernel: PREEMPT_NONE) or in softirq.
// --strace-training: first, with bulk alone, strace -T on each process's sluice-training thread
// for that many seconds: bytes and time per read/write system call (under PREEMPT_NONE, which
// this machine runs, a woken inference thread waits for a long system call of the training
// thread to end whatever the priorities; strace slows the thread, so read the sizes).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { encodeMessage } from '../src/kserve/proto.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { percentile, runH2load, type H2loadRun } from './h2load.ts';
import { Job, startMixedSluicePair } from './mixed-pair.ts';
import { threadCounters, type ThreadCounters } from './process-cpu.ts';
import { formatTable } from './report.ts';

const INFER = METHODS.ModelInfer.path;
const POLICY = ['NORMAL', 'FIFO', 'RR', 'BATCH', 'ISO', 'IDLE', 'DEADLINE'];

type Snapshot = Map<string, Map<string, ThreadCounters>>;
const snapshot = (pids: Record<string, number>): Snapshot => new Map(Object.entries(pids).map(([n, pid]) => [n, threadCounters(pid)]));

/** Thread name -> "policy/nice" of every thread of `pid` (distinct values joined). */
function priorities(pid: number): Map<string, string> {
  const out = new Map<string, Set<string>>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' '); // f[0] is field 3
    const v = `${POLICY[Number(f[38])] ?? f[38]}/${f[16]}`; // field 41 policy, field 19 nice
    out.set(name, (out.get(name) ?? new Set()).add(v));
  }
  return new Map([...out].map(([k, v]) => [k, [...v].join(',')]));
}

interface Row {
  key: string;
  waitUs: number;
  cpuUs: number;
  switches: number;
  invol: number;
}

function perCall(a: Snapshot, b: Snapshot, calls: number): Map<string, Row> {
  const out = new Map<string, Row>();
  for (const [proc, after] of b) {
    for (const [thread, t] of after) {
      const s = a.get(proc)?.get(thread) ?? { threads: 0, statUs: 0, schedUs: 0, waitUs: 0, voluntary: 0, nonvoluntary: 0 };
      const key = `${proc} / ${thread}`;
      out.set(key, {
        key,
        waitUs: (t.waitUs - s.waitUs) / calls,
        cpuUs: (t.schedUs - s.schedUs) / calls,
        switches: (t.voluntary + t.nonvoluntary - s.voluntary - s.nonvoluntary) / calls,
        invol: (t.nonvoluntary - s.nonvoluntary) / calls,
      });
    }
  }
  return out;
}

async function bulkShare(metrics: string): Promise<number> {
  const text = await (await fetch(`http://${metrics}/metrics`)).text();
  const m = /^sluice_bulk_share_ratio(?:\{[^}]*\})? ([\d.e+-]+)$/m.exec(text);
  return m === null ? Number.NaN : Number(m[1]);
}

function tidOf(pid: number, thread: string): number | undefined {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === thread) return Number(tid);
    } catch {
      // ended
    }
  }
  return undefined;
}

/** strace -T on one thread for `seconds`: per system call, count, bytes p50/max, time p50/p99/max. */
async function straceThread(pid: number, thread: string, seconds: number): Promise<string> {
  const tid = tidOf(pid, thread);
  if (tid === undefined) return 'no such thread';
  const st = spawn('strace', ['-T', '-qq', '-e', 'trace=read,readv,recvfrom,recvmsg,write,writev,sendto,sendmsg,pwrite64,pwritev,fsync,fdatasync', '-p', String(tid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let text = '';
  st.stderr.on('data', (d: Buffer) => (text += d.toString()));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const done = new Promise((r) => st.once('close', r));
  st.kill('SIGINT');
  await done;
  const by = new Map<string, { bytes: number[]; us: number[] }>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)\(.*\)\s+=\s+(-?\d+).*<([\d.]+)>$/.exec(line);
    if (m === null) continue;
    const e = by.get(m[1]!) ?? { bytes: [], us: [] };
    e.bytes.push(Math.max(0, Number(m[2])));
    e.us.push(Number(m[3]) * 1e6);
    by.set(m[1]!, e);
  }
  const q = (xs: number[], p: number) => percentile([...xs].sort((a, b) => a - b), p);
  return [...by]
    .map(([k, e]) => `${k} x${e.bytes.length} bytes p50 ${(q(e.bytes, 50) / 1024).toFixed(0)} KiB max ${(Math.max(...e.bytes) / 1024).toFixed(0)} KiB, time p50 ${q(e.us, 50).toFixed(0)} p99 ${q(e.us, 99).toFixed(0)} max ${Math.max(...e.us).toFixed(0)} us`)
    .join('; ');
}

/** The analysis --perf-sched prints (see the header). */
function wakeupOccupants(file: string, pids: Record<string, number>, inference: Set<number>): string {
  const out = spawnSync('perf', ['script', '-i', file, '-F', 'pid,tid,cpu,time,event,trace'], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout;
  const label = new Map(Object.entries(pids).map(([k, v]) => [v, k]));
  const pidOf = new Map<number, number>();
  const comm = new Map<number, string>();
  const running = new Map<number, { tid: number; prio: number }>();
  const woken = new Map<number, { at: number; occupants: Map<number, { tid: number; prio: number }> }>();
  const by = new Map<string, number[]>();
  const all: number[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$/.exec(line);
    if (m === null) continue;
    const [, pid, tid, cpu, t, ev, tr] = m;
    if (tid !== '0') pidOf.set(Number(tid), Number(pid));
    const ms = Number(t) * 1000;
    if (ev === 'sched_waking') {
      const w = /pid=(\d+) prio=/.exec(tr!);
      if (w !== null && inference.has(Number(w[1]))) woken.set(Number(w[1]), { at: ms, occupants: new Map(running) });
    } else if (ev === 'sched_switch') {
      const s = /next_comm=(.*) next_pid=(\d+) next_prio=(\d+)/.exec(tr!);
      if (s === null) continue;
      const next = Number(s[2]);
      comm.set(next, s[1]!);
      running.set(Number(cpu), { tid: next, prio: Number(s[3]) });
      const w = woken.get(next);
      if (w === undefined) continue;
      woken.delete(next);
      const delay = ms - w.at;
      all.push(delay);
      const occ = w.occupants.get(Number(cpu));
      if (occ === undefined || occ.tid === 0) continue;
      const p = pidOf.get(occ.tid);
      const l = p === undefined ? undefined : label.get(p);
      const name = `${l ?? 'other'}/${l !== undefined && p === occ.tid ? 'main' : (comm.get(occ.tid) ?? '?')} (prio ${occ.prio})`;
      by.set(name, [...(by.get(name) ?? []), delay]);
    }
  }
  const q = (xs: number[], p: number) => percentile([...xs].sort((a, b) => a - b), p);
  const rows = [...by]
    .filter(([, d]) => d.some((x) => x > 0.5))
    .sort((a, b) => b[1].filter((x) => x > 0.5).length - a[1].filter((x) => x > 0.5).length)
    .map(([k, d]) => [k, String(d.length), q(d, 50).toFixed(3), q(d, 90).toFixed(3), Math.max(...d).toFixed(2), String(d.filter((x) => x > 0.5).length)]);
  return (
    `${all.length} inference-thread wake-ups, delay p50 ${q(all, 50).toFixed(3)} p99 ${q(all, 99).toFixed(3)} ms; by what ran on their CPU when woken:\n` +
    formatTable(['occupant', 'wake-ups', 'delay p50 ms', 'p90', 'max', '> 0.5 ms'], rows)
  );
}

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      rate: { type: 'string', default: '200' },
      seconds: { type: 'string', default: '8' },
      rounds: { type: 'string', default: '1' },
      mib: { type: 'string', default: '512' },
      'strace-training': { type: 'string', default: '0' },
      'perf-sched': { type: 'string' },
    },
  });
  const rate = Number(o.rate);
  const seconds = Number(o.seconds);
  const tensorBytes = Number(o.mib) * (1 << 20);
  const request = encodeMessage('ModelInferRequest', {
    modelName: 'identity',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, 4096] }],
    rawInputContents: [randomBytes(16 * 1024)],
  });
  const procs: SluiceProcess[] = [];
  const jobs: Job[] = [];
  const spool = mkdtempSync(path.join(tmpdir(), 'sluice-mixed-wakeups-'));
  try {
    console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine: read the with/without differences, not the ms)`);
    const any = { host: '127.0.0.1', port: 0 };
    const models = await startSluice({ node: { name: 'mw-models' }, models: { listen: any }, log: { level: 'warn' } }, { name: 'models', timeoutMs: 120_000 });
    procs.push(models);
    const { back, front } = await startMixedSluicePair(models.endpoints.models!, randomBytes(32).toString('hex'), randomBytes(32).toString('hex'), spool, procs, 120_000);
    const recv = await Job.start('recv-sluice', [back.endpoints.trainingService!], tensorBytes);
    jobs.push(recv);
    const send = await Job.start('send-sluice', [front.endpoints.trainingService!, 'back-training'], tensorBytes);
    jobs.push(send);
    const pids = { front: front.child.pid!, back: back.child.pid!, models: models.child.pid! };
    console.log(`pids: ${JSON.stringify({ ...pids, sendJob: send.child.pid, recvJob: recv.child.pid })}`);
    for (const [name, pid] of Object.entries(pids)) {
      console.log(`${name} priorities: ${[...priorities(pid)].filter(([t]) => /^(main|sluice|libuv|uv)/.test(t)).map(([t, v]) => `${t}=${v}`).join(' ')}`);
    }
    const infer = (ms: number): Promise<H2loadRun> =>
      runH2load({ address: front.endpoints.grpc!, method: INFER, request, calls: Math.round((rate * ms) / 1000), clients: 1, streams: 64, rpsPerClient: rate, timeoutMs: ms + 60_000 });
    await infer(3000); // warm links and JIT
    const straceS = Number(o['strace-training']);
    if (straceS > 0) {
      send.startBulk();
      await new Promise((r) => setTimeout(r, 1000));
      for (const [name, pid] of Object.entries({ front: pids.front, back: pids.back })) console.log(`${name} sluice-training system calls during bulk alone: ${await straceThread(pid, 'sluice-training', straceS)}`);
      const load = infer((2 * straceS + 2) * 1000);
      await new Promise((r) => setTimeout(r, 1000));
      for (const [name, pid] of Object.entries({ front: pids.front, back: pids.back })) console.log(`${name} sluice-training system calls during bulk with inference: ${await straceThread(pid, 'sluice-training', straceS)}`);
      await load;
      await send.stopBulk();
    }
    const phase = async (bulk: boolean, round: number) => {
      if (bulk) {
        send.startBulk();
        await new Promise((r) => setTimeout(r, 1000)); // past the onset
      }
      const shares: number[] = [];
      const timer = setInterval(() => void bulkShare(front.endpoints.metrics!).then((v) => shares.push(v), () => {}), 100);
      const a = snapshot(pids);
      const bytesA = bulk ? (await recv.sample()).bytes : 0;
      const t0 = performance.now();
      const perf =
        o['perf-sched'] === undefined
          ? undefined
          : spawn('perf', ['sched', 'record', '-a', '-o', path.join(o['perf-sched'], `${bulk ? 'on' : 'off'}-${round}.data`), '--', 'sleep', '3'], { stdio: 'ignore' });
      const perfDone = perf === undefined ? Promise.resolve() : new Promise((r) => perf.once('close', r));
      const r = await infer(seconds * 1000);
      await perfDone;
      const secs = (performance.now() - t0) / 1000;
      const bytesB = bulk ? (await recv.sample()).bytes : 0;
      const b = snapshot(pids);
      clearInterval(timer);
      if (bulk) await send.stopBulk();
      const lat = [...r.latenciesMs].sort((x, y) => x - y);
      if (perf !== undefined) {
        const inference = new Set([pids.models, tidOf(pids.front, 'sluice-infer'), tidOf(pids.back, 'sluice-infer')].filter((x): x is number => x !== undefined));
        console.log(`\nperf sched, ${bulk ? 'with' : 'without'} bulk: ${wakeupOccupants(path.join(o['perf-sched']!, `${bulk ? 'on' : 'off'}-${round}.data`), { ...pids, sendJob: send.child.pid!, recvJob: recv.child.pid! }, inference)}`);
      }
      return { rows: perCall(a, b, r.ok), p50: percentile(lat, 50), p99: percentile(lat, 99), mbps: (bytesB - bytesA) / 1e6 / secs, shares, failed: r.failed };
    };
    for (let round = 0; round < Number(o.rounds); round++) {
      const off = await phase(false, round);
      await new Promise((r) => setTimeout(r, 500));
      const on = await phase(true, round);
      await new Promise((r) => setTimeout(r, 500));
      console.log(
        `\nround ${round + 1}: p50 ${off.p50.toFixed(2)} -> ${on.p50.toFixed(2)} ms, p99 ${off.p99.toFixed(2)} -> ${on.p99.toFixed(2)} ms (${(on.p99 / off.p99).toFixed(2)}x), ` +
          `bulk ${on.mbps.toFixed(0)} MB/s while inference runs; failed ${off.failed}/${on.failed}; load ${loadavg()[0]!.toFixed(2)}`,
      );
      const s = on.shares.filter(Number.isFinite);
      if (s.length > 0) {
        const sorted = [...s].sort((x, y) => x - y);
        console.log(`front bulk share (every 100 ms): min ${sorted[0]!.toFixed(3)} p50 ${percentile(sorted, 50).toFixed(3)} max ${sorted.at(-1)!.toFixed(3)}; changes ${s.filter((v, i) => i > 0 && v !== s[i - 1]).length} of ${s.length}`);
      }
      const keys = [...new Set([...off.rows.keys(), ...on.rows.keys()])].filter((k) => {
        const x = off.rows.get(k);
        const y = on.rows.get(k);
        return (x?.cpuUs ?? 0) + (y?.cpuUs ?? 0) >= 1 || (x?.waitUs ?? 0) + (y?.waitUs ?? 0) >= 1;
      });
      keys.sort((p, q) => (on.rows.get(q)?.waitUs ?? 0) - (off.rows.get(q)?.waitUs ?? 0) - ((on.rows.get(p)?.waitUs ?? 0) - (off.rows.get(p)?.waitUs ?? 0)));
      const f = (v: number | undefined, d = 1): string => (v === undefined ? '-' : v.toFixed(d));
      console.log(
        formatTable(
          ['process / thread', 'run-queue wait us/call off', 'on', 'CPU us/call off', 'on', 'switches/call off', 'on', 'invol/call on'],
          keys.map((k) => [k, f(off.rows.get(k)?.waitUs), f(on.rows.get(k)?.waitUs), f(off.rows.get(k)?.cpuUs), f(on.rows.get(k)?.cpuUs), f(off.rows.get(k)?.switches, 2), f(on.rows.get(k)?.switches, 2), f(on.rows.get(k)?.invol, 2)]),
        ),
      );
    }
  } finally {
    for (const j of jobs.reverse()) await j.stop();
    for (const p of procs.reverse()) await p.stop();
    rmSync(spool, { recursive: true, force: true });
  }
}

await main();
