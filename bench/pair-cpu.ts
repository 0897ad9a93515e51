// Where the engine pair spends CPU per call, by process and thread, with load-robust evidence:
// schedstat run time and context switches (wake-ups) of every thread, per call, while h2load
// drives `calls` ModelInfer calls one at a time; the nginx TLS pair measured the same way in the
// same run as the reference; optionally the system calls per call of each sluice process
// (strace -c -f, attached for one extra run) and the idle wake-ups per second.
//   node --import tsx bench/pair-cpu.ts [simple|identity-1m] [calls]
// Knobs: SLUICE_PAIR_STRACE=1 (syscalls per call), SLUICE_PAIR_IDLE_S (seconds of idle
// wake-up counting, default 3), SLUICE_PAIR_TRACE_GC=1 (count scavenges per 1000 calls),
// SLUICE_PAIR_NODE_ARGS (more node flags for the ingress and egress, e.g. --heap-prof),
// SLUICE_PAIR_PERF=<dir> (perf record -g of both processes over one more run, into <dir>).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { runH2load } from './h2load.ts';
import { inferRequest } from './infer-request.ts';
import { type NginxProxy, startNginxTlsPair } from './nginx-grpc-proxy.ts';
import { threadCounters } from './process-cpu.ts';
import { startSluicePair } from './sluice-pair.ts';
import { straceCounts } from './strace-counts.ts';

const INFER = METHODS.ModelInfer.path;

interface ThreadSample {
  cpuUs: number;
  switches: number;
}

/** Per thread name (main thread 'main'): run time (schedstat) and context switches, summed over same-named threads. */
function threads(pid: number): Map<string, ThreadSample> {
  return new Map([...threadCounters(pid)].map(([name, t]) => [name, { cpuUs: t.schedUs, switches: t.voluntary + t.nonvoluntary }]));
}

function diff(a: Map<string, ThreadSample>, b: Map<string, ThreadSample>, per: number): Record<string, { us: number; wakes: number }> {
  const out: Record<string, { us: number; wakes: number }> = {};
  let us = 0;
  let wakes = 0;
  for (const [name, t] of b) {
    const s = a.get(name) ?? { cpuUs: 0, switches: 0 };
    const d = { us: (t.cpuUs - s.cpuUs) / per, wakes: (t.switches - s.switches) / per };
    us += d.us;
    wakes += d.wakes;
    if (d.us >= 0.5 || d.wakes >= 0.01) out[name] = { us: Math.round(d.us * 10) / 10, wakes: Math.round(d.wakes * 1000) / 1000 };
  }
  out.total = { us: Math.round(us * 10) / 10, wakes: Math.round(wakes * 1000) / 1000 };
  return out;
}

async function main(): Promise<void> {
  const kind = process.argv[2] ?? 'simple';
  const calls = Number(process.argv[3] ?? (kind === 'simple' ? 3000 : 200));
  const key = randomBytes(32).toString('hex');
  const procs: SluiceProcess[] = [];
  const proxies: NginxProxy[] = [];
  const gc = { ingress: 0, egress: 0 };
  const traceGc = process.env.SLUICE_PAIR_TRACE_GC === '1';
  const extraArgs = (process.env.SLUICE_PAIR_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const nodeArgs = (counter: 'ingress' | 'egress'): { nodeArgs: string[]; onOtherLine?: (l: string) => void } =>
    traceGc ? { nodeArgs: ['--trace-gc', ...extraArgs], onOtherLine: (l: string) => void (l.includes('Scavenge') && gc[counter]++) } : { nodeArgs: extraArgs };
  try {
    const models = await startSluice({ node: { name: 'pair-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models' });
    procs.push(models);
    const { egress, ingress } = await startSluicePair(models.endpoints.models!, key, 'pair', procs, nodeArgs);
    const pair = await startNginxTlsPair(models.endpoints.models!, 64 << 20);
    proxies.push(pair);
    const body = inferRequest(kind);
    const sluice = { ingress: ingress.child.pid!, egress: egress.child.pid! };
    const run = async (address: string, n: number): Promise<number> => {
      const r = await runH2load({ address, method: INFER, request: body, calls: n });
      if (r.failed > 0) throw new Error(`${r.failed} of ${n} calls failed on ${address} (${r.ok} ok)`);
      return r.ok;
    };
    console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    // The ingress's link to the egress comes up in the background.
    for (let i = 0; i < 100 && (await runH2load({ address: ingress.endpoints.grpc!, method: INFER, request: body, calls: 1 })).dataBytes <= 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await run(ingress.endpoints.grpc!, kind === 'simple' ? 3000 : 100);
    await run(pair.address, kind === 'simple' ? 3000 : 100);

    // Idle wake-ups per second (nothing calling).
    const idleS = Number(process.env.SLUICE_PAIR_IDLE_S ?? 3);
    if (idleS > 0) {
      const before = { i: threads(sluice.ingress), e: threads(sluice.egress) };
      await new Promise((r) => setTimeout(r, idleS * 1000));
      console.log(`idle, per second: ingress ${JSON.stringify(diff(before.i, threads(sluice.ingress), idleS))}`);
      console.log(`idle, per second: egress  ${JSON.stringify(diff(before.e, threads(sluice.egress), idleS))}`);
    }

    for (let round = 0; round < 2; round++) {
      const i0 = threads(sluice.ingress);
      const e0 = threads(sluice.egress);
      const g0 = gc.ingress + gc.egress;
      const t0 = performance.now();
      const n = await run(ingress.endpoints.grpc!, calls);
      const wall = performance.now() - t0;
      console.log(`sluice ${kind} c=1 round ${round}: ${n} calls, ${((wall * 1000) / n).toFixed(0)} us wall/call, load ${loadavg()[0]!.toFixed(2)}`);
      const di = diff(i0, threads(sluice.ingress), n);
      const de = diff(e0, threads(sluice.egress), n);
      console.log(`  ingress per call: ${JSON.stringify(di)}`);
      console.log(`  egress  per call: ${JSON.stringify(de)}`);
      console.log(`  both: ${(di.total!.us + de.total!.us).toFixed(1)} us/call${traceGc ? `, scavenges per 1000 calls ${(((gc.ingress + gc.egress - g0) * 1000) / n).toFixed(1)}` : ''}`);
      const p0 = pair.pids.map(threads);
      const n2 = await run(pair.address, calls);
      const pd = pair.pids.map((pid, k) => diff(p0[k]!, threads(pid), n2));
      console.log(`  nginx TLS pair per call: ${pd.map((d) => JSON.stringify(d.total)).join(' + ')} = ${pd.reduce((s, d) => s + d.total!.us, 0).toFixed(1)} us`);
    }
    const perfDir = process.env.SLUICE_PAIR_PERF;
    if (perfDir !== undefined && perfDir !== '') {
      const recs = Object.entries(sluice).map(([name, pid]) => spawn('perf', ['record', '-g', '-p', String(pid), '-o', `${perfDir}/${name}.data`], { stdio: 'ignore' }));
      await new Promise((r) => setTimeout(r, 500));
      const n = await run(ingress.endpoints.grpc!, calls);
      await Promise.all(recs.map((p) => new Promise((r) => (p.once('close', r), p.kill('SIGINT')))));
      console.log(`perf: ${n} calls recorded into ${perfDir}/{ingress,egress}.data`);
    }
    if (process.env.SLUICE_PAIR_STRACE === '1') {
      const n = Math.min(calls, 1000);
      for (const [name, pid] of Object.entries(sluice)) {
        const s = await straceCounts(pid, () => run(ingress.endpoints.grpc!, n));
        const per = Object.entries(s.counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / s.calls).toFixed(2)}`);
        const total = Object.values(s.counts).reduce((a, b) => a + b, 0) / s.calls;
        console.log(`syscalls per call, ${name} (strace -c -f, ${s.calls} calls): ${total.toFixed(2)}: ${per.join(', ')}`);
      }
    }
  } finally {
    for (const p of proxies.reverse()) await p.stop();
    for (const p of procs.reverse()) await p.stop();
  }
}

await main();
