// Who wakes per call in the engine sluice pair at a fixed open-loop rate, and what each thread
// costs: context switches (voluntary + nonvoluntary, /proc/<pid>/task/*/status) and CPU time
// (utime+stime from task stat, and the exact schedstat run time) per call, per thread name, for
// the ingress, the egress and the model server, while h2load sends `calls` ModelInfer calls at
// `rate` calls/s (open loop, the inference bench's 4 clients x 8 streams shape). These counts
// do not move with the machine's load the way latencies do: a thread that wakes once per call
// wakes once per call on a busy machine too. Idle wake-ups per second come first (nothing
// calling), so a per-call row can be told apart from timers (idle/s / rate = their share).
//   node --import tsx bench/pair-wakeups.ts [--rate 500] [--calls 5000] [--kind simple|identity-1m]
//     [--warmup 2000] [--idle 3] [--nginx] [--strace] [--access-log] [--egress-access-log] [--json <file>]
// --nginx: the nginx TLS pair measured the same way after the sluice pair (reference);
// --strace: one more run with strace -c -f on each sluice process (system calls per call; strace
// slows the traced process, so wake-ups of that run are not reported).
// --access-log: the ingress writes the access log (telemetry.accessLog: one engine event per call).
// --egress-access-log: the egress writes it (the engine's batched EGRESS_CALL_DONE records).
// SLUICE_PAIR_ENV="K=V K=V": environment for both sluice processes (A/B of a knob);
// SLUICE_PAIR_EGRESS_ENV: more for the egress alone (e.g. SLUICE_ENGINE=0: the TypeScript egress).
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { percentile, runH2load, type H2loadRun } from './h2load.ts';
import { inferRequest } from './infer-request.ts';
import { type NginxProxy, startNginxTlsPair } from './nginx-grpc-proxy.ts';
import { threadCounters, type ThreadCounters } from './process-cpu.ts';
import { formatTable } from './report.ts';
import { startSluicePair } from './sluice-pair.ts';
import { straceCounts } from './strace-counts.ts';

const INFER = METHODS.ModelInfer.path;
const CLIENTS = 4;
const STREAMS = 8;

interface ThreadRow {
  process: string;
  thread: string;
  threads: number;
  voluntary: number;
  nonvoluntary: number;
  switches: number;
  statUs: number;
  schedUs: number;
  waitUs: number;
}

type Snapshot = Map<string, Map<string, ThreadCounters>>;

function snapshot(pids: Record<string, number>): Snapshot {
  return new Map(Object.entries(pids).map(([name, pid]) => [name, threadCounters(pid)]));
}

/** Per-thread differences between two snapshots, divided by `per` (calls, or seconds when idle). */
function rows(a: Snapshot, b: Snapshot, per: number): ThreadRow[] {
  const out: ThreadRow[] = [];
  for (const [proc, after] of b) {
    const before = a.get(proc) ?? new Map<string, ThreadCounters>();
    const total: ThreadRow = { process: proc, thread: 'all threads', threads: 0, voluntary: 0, nonvoluntary: 0, switches: 0, statUs: 0, schedUs: 0, waitUs: 0 };
    for (const [thread, t] of after) {
      const s = before.get(thread) ?? { threads: 0, statUs: 0, schedUs: 0, waitUs: 0, voluntary: 0, nonvoluntary: 0 };
      const r: ThreadRow = {
        process: proc,
        thread,
        threads: t.threads,
        voluntary: (t.voluntary - s.voluntary) / per,
        nonvoluntary: (t.nonvoluntary - s.nonvoluntary) / per,
        switches: (t.voluntary + t.nonvoluntary - s.voluntary - s.nonvoluntary) / per,
        statUs: (t.statUs - s.statUs) / per,
        schedUs: (t.schedUs - s.schedUs) / per,
        waitUs: (t.waitUs - s.waitUs) / per,
      };
      for (const k of ['threads', 'voluntary', 'nonvoluntary', 'switches', 'statUs', 'schedUs', 'waitUs'] as const) total[k] += r[k];
      // Threads that did nothing in the window stay out of the table (V8's idle helpers).
      if (r.switches >= 0.001 || r.schedUs >= 0.05) out.push(r);
    }
    out.push(total);
  }
  return out;
}

function printRows(title: string, rs: readonly ThreadRow[], unit: string): void {
  console.log(`\n${title}`);
  const f = (v: number, d: number): string => v.toFixed(d);
  console.log(
    formatTable(
      ['process / thread', 'n', `vol/${unit}`, `invol/${unit}`, `switches/${unit}`, `CPU us/${unit} (stat)`, `CPU us/${unit} (schedstat)`, `run-queue wait us/${unit}`],
      rs.map((r) => [`${r.process} / ${r.thread}`, String(r.threads), f(r.voluntary, 3), f(r.nonvoluntary, 3), f(r.switches, 3), f(r.statUs, 1), f(r.schedUs, 1), f(r.waitUs, 1)]),
    ),
  );
}

async function main(): Promise<void> {
  const { values: o } = parseArgs({
    options: {
      rate: { type: 'string', default: '500' },
      calls: { type: 'string', default: '5000' },
      kind: { type: 'string', default: 'simple' },
      warmup: { type: 'string', default: '2000' },
      idle: { type: 'string', default: '3' },
      nginx: { type: 'boolean', default: false },
      strace: { type: 'boolean', default: false },
      'access-log': { type: 'boolean', default: false },
      'egress-access-log': { type: 'boolean', default: false },
      json: { type: 'string' },
    },
  });
  const rate = Number(o.rate);
  const calls = Number(o.calls);
  const idleS = Number(o.idle);
  const envOf = (text: string | undefined): Record<string, string> =>
    Object.fromEntries((text ?? '').split(' ').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const env = envOf(process.env.SLUICE_PAIR_ENV);
  const egressEnv = { ...env, ...envOf(process.env.SLUICE_PAIR_EGRESS_ENV) };
  const body = inferRequest(o.kind!);
  const key = randomBytes(32).toString('hex');
  const procs: SluiceProcess[] = [];
  const proxies: NginxProxy[] = [];
  const report: Record<string, unknown> = { rate, calls, kind: o.kind, accessLog: o['access-log'], egressAccessLog: o['egress-access-log'], env, loadStart: loadavg() };
  const openLoop = async (address: string, n: number): Promise<H2loadRun> => {
    const r = await runH2load({ address, method: INFER, request: body, calls: n, clients: CLIENTS, streams: STREAMS, rpsPerClient: rate / CLIENTS });
    if (r.failed > 0) throw new Error(`${r.failed} of ${n} calls failed on ${address} (${r.ok} ok)`);
    return r;
  };
  const latency = (r: H2loadRun): string => {
    const s = [...r.latenciesMs].sort((x, y) => x - y);
    return `p50 ${percentile(s, 50).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms (load-sensitive)`;
  };
  try {
    console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${calls} calls of ${o.kind} at ${rate}/s (${CLIENTS} clients x ${STREAMS} streams)${Object.keys(env).length > 0 ? `; env ${JSON.stringify(env)}` : ''}`);
    const models = await startSluice({ node: { name: 'wakeups-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models' });
    procs.push(models);
    const { egress, ingress } = await startSluicePair(models.endpoints.models!, key, 'wakeups', procs, (role) => ({ env: role === 'egress' ? egressEnv : env }), (role) =>
      (role === 'ingress' ? o['access-log'] : o['egress-access-log']) ? { telemetry: { accessLog: true } } : {},
    );
    const pids = { ingress: ingress.child.pid!, egress: egress.child.pid!, models: models.child.pid! };
    // The ingress's link to the egress comes up in the background.
    for (let i = 0; i < 100 && (await runH2load({ address: ingress.endpoints.grpc!, method: INFER, request: body, calls: 1 })).dataBytes <= 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await openLoop(ingress.endpoints.grpc!, Number(o.warmup));

    if (idleS > 0) {
      const a = snapshot(pids);
      await new Promise((r) => setTimeout(r, idleS * 1000));
      const idle = rows(a, snapshot(pids), idleS);
      printRows(`idle, per second (${idleS} s, nothing calling)`, idle, 's');
      report.idlePerSecond = idle;
    }

    const a = snapshot(pids);
    const r = await openLoop(ingress.endpoints.grpc!, calls);
    const perCall = rows(a, snapshot(pids), r.ok);
    printRows(`sluice pair, per call: ${r.ok} calls at ${rate}/s in ${(r.wallMs / 1000).toFixed(1)} s; ${latency(r)}; load ${loadavg()[0]!.toFixed(2)}`, perCall, 'call');
    report.perCall = perCall;
    report.latency = { p50: percentile([...r.latenciesMs].sort((x, y) => x - y), 50), p99: percentile([...r.latenciesMs].sort((x, y) => x - y), 99) };

    if (o.nginx) {
      const pair = await startNginxTlsPair(models.endpoints.models!, 64 << 20);
      proxies.push(pair);
      const nginxPids = Object.fromEntries(pair.pids.map((pid, i) => [`nginx ${i === 0 ? 'front' : 'back'}`, pid]));
      await openLoop(pair.address, Number(o.warmup));
      const b = snapshot({ ...nginxPids, models: pids.models });
      const n = await openLoop(pair.address, calls);
      const nginxRows = rows(b, snapshot({ ...nginxPids, models: pids.models }), n.ok);
      printRows(`nginx TLS pair, per call: ${n.ok} calls at ${rate}/s; ${latency(n)}`, nginxRows, 'call');
      report.nginxPerCall = nginxRows;
    }

    if (o.strace) {
      const n = Math.min(calls, 2000);
      const sys: Record<string, Record<string, number>> = {};
      for (const [name, pid] of Object.entries({ ingress: pids.ingress, egress: pids.egress })) {
        const s = await straceCounts(pid, async () => (await openLoop(ingress.endpoints.grpc!, n)).ok);
        sys[name] = Object.fromEntries(Object.entries(s.counts).map(([k, v]) => [k, v / s.calls]));
        const list = Object.entries(sys[name]!).sort((x, y) => y[1] - x[1]);
        console.log(`syscalls per call, ${name} (strace -c -f, ${n} calls): ${list.reduce((s, [, v]) => s + v, 0).toFixed(2)}: ${list.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
      }
      report.syscallsPerCall = sys;
    }
    report.loadEnd = loadavg();
    if (o.json !== undefined) writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    for (const p of proxies.reverse()) await p.stop();
    for (const p of procs.reverse()) await p.stop();
  }
}

await main();
