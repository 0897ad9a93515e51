// CPU profile of the sluice pair's hot path: the model server, the egress and the ingress each
// in their own process with --cpu-prof, a closed loop of ModelInfer calls through the pair,
// then a per-process summary (CPU per request from /proc, and the top self-time functions of
// each profile). Where the added latency goes, hop by hop.
//   node --import tsx bench/profile-inference.ts [simple|identity-16k|identity-1m] [calls]
// Knobs: SLUICE_PROFILE_DIR (default: a new temp dir), SLUICE_PROFILE_CONCURRENCY (default 1),
// SLUICE_PROFILE_WARMUP (calls before measuring, default 3000, 200 for identity-1m: V8 tiers the
// hot path up over the first thousands of calls, and until then each process spends
// about twice its steady CPU per request in unoptimized code and TurboFan compiles),
// SLUICE_PROFILE_CPU=0 (no --cpu-prof: CPU per request without the profiler's overhead),
// SLUICE_PROFILE_NODE_ARGS (more node flags for the three servers, e.g. --trace-gc),
// SLUICE_PROFILE_STRACE=1 (also count the proxies' system calls per request with strace -c).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { closedLoop, RawGrpcClient } from './grpc-load.ts';
import { inferRequest } from './infer-request.ts';
import { cpuUs, kernelUsAndSleeps, threadCpuUs } from './process-cpu.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (top n), as a share of the profile's samples. */
function topSelf(file: string, n: number): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    const f = byId.get(id)!.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(src|node_modules)\//, '$1/').replace(/^node:/, '')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  });
  const idle = [...self.entries()].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
  const busy = total - idle;
  return [...self.entries()]
    .filter(([k]) => !k.startsWith('(idle)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
}

async function main(): Promise<void> {
  // Piped into `head`: a closed stdout must not kill us before the servers are stopped.
  process.stdout.on('error', () => undefined);
  const kind = process.argv[2] ?? 'simple';
  const calls = Number(process.argv[3] ?? 3000);
  const dir = process.env.SLUICE_PROFILE_DIR ?? mkdtempSync(path.join(tmpdir(), 'sluice-prof-'));
  const concurrency = Number(process.env.SLUICE_PROFILE_CONCURRENCY ?? 1);
  const key = randomBytes(32).toString('hex');
  const extra = (process.env.SLUICE_PROFILE_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const prof = (name: string): string[] => [...extra, ...(process.env.SLUICE_PROFILE_CPU === '0' ? [] : ['--cpu-prof', '--cpu-prof-dir', path.join(dir, name)])];
  const procs: SluiceProcess[] = [];
  try {
    const models = await startSluice({ node: { name: 'prof-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models', nodeArgs: prof('models') });
    procs.push(models);
    const egress = await startSluice(
      {
        node: { name: 'prof-egress' },
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
        log: { level: 'warn' },
      },
      { name: 'egress', nodeArgs: prof('egress') },
    );
    procs.push(egress);
    const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
    const ingress = await startSluice(
      {
        node: { name: 'prof-ingress' },
        listeners: { grpc: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress', segment: 'inference', host, port: Number(port) }],
        routes: [{ model: '*', peers: ['egress'] }],
      },
      { name: 'ingress', nodeArgs: prof('ingress') },
    );
    procs.push(ingress);
    const body = inferRequest(kind);
    const client = new RawGrpcClient(ingress.endpoints.grpc!);
    const warmup = Number(process.env.SLUICE_PROFILE_WARMUP ?? (kind === 'identity-1m' ? 200 : 3000));
    for (let warmed = 0; warmed < warmup; ) warmed += (await closedLoop(client, METHODS.ModelInfer.path, body, concurrency, 500)).calls;
    const pids = { ingress: ingress.child.pid!, egress: egress.child.pid!, models: models.child.pid! };
    const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuUs(pid)]));
    const beforeT = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, threadCpuUs(pid)]));
    const beforeK = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, kernelUsAndSleeps(pid)]));
    const traces: { name: string; child: ChildProcess; out: string }[] = [];
    if (process.env.SLUICE_PROFILE_STRACE === '1') {
      for (const name of ['ingress', 'egress'] as const) {
        const child = spawn('strace', [...(process.env.SLUICE_PROFILE_STRACE_ARGS ?? '-c').split(' '), '-f', '-p', String(pids[name])], { stdio: ['ignore', 'ignore', 'pipe'] });
        const t = { name, child, out: '' };
        child.stderr!.on('data', (d: Buffer) => (t.out += d.toString()));
        traces.push(t);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const t0 = performance.now();
    let done = 0;
    while (done < calls) {
      const r = await closedLoop(client, METHODS.ModelInfer.path, body, concurrency, 500);
      done += r.calls;
    }
    const secs = (performance.now() - t0) / 1000;
    for (const t of traces) {
      t.child.kill('SIGINT');
      await new Promise((r) => t.child.once('exit', r));
      console.log(`${t.name} system calls during ${done} requests:\n${t.out}`);
    }
    client.close();
    console.log(`${kind}: ${done} calls after ${warmup} warm-up calls, ${concurrency} in flight, ${(done / secs).toFixed(0)} req/s`);
    for (const [k, pid] of Object.entries(pids)) {
      const after = kernelUsAndSleeps(pid);
      const sys = (after.sys - beforeK[k]!.sys) / done;
      const sleeps = (after.sleeps - beforeK[k]!.sleeps) / done;
      const threads = [...threadCpuUs(pid)].map(([name, us]) => [name, (us - (beforeT[k]!.get(name) ?? 0)) / done] as const).filter(([, us]) => us >= 1);
      const perThread = threads.map(([name, us]) => `${name} ${us.toFixed(0)}`).join(', ');
      console.log(`  ${k.padEnd(8)} CPU ${((cpuUs(pid) - before[k]!) / done).toFixed(0).padStart(6)} us/request (kernel ${sys.toFixed(0)} us; ${perThread}), ${sleeps.toFixed(2)} sleeps/request`);
    }
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
  for (const name of ['ingress', 'egress', 'models']) {
    if (process.env.SLUICE_PROFILE_CPU === '0') break;
    const files = readdirSync(path.join(dir, name)).filter((f) => f.endsWith('.cpuprofile'));
    if (files.length === 0) continue;
    console.log(`\n${name} (top self time, start-up included):`);
    for (const line of topSelf(path.join(dir, name, files[0]!), 25)) console.log(`  ${line}`);
  }
}

await main();
