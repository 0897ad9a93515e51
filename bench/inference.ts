// Inference path benchmark, every server in its own process, all paths in one run:
//   (a) client -> reference model server (direct)
//   (b) client -> nginx grpc_pass -> model server (Debian's nginx, the baseline proxy)
//   (c) client -> sluice ingress ==inference segment (TCP, AES-256-GCM)==> sluice egress -> model server
// for `simple` (INT32 [1,16] x 2) and `identity` with 16 KiB and 1 MiB FP32 tensors: requests/s
// with a fixed number in flight, and p50/p99 under an open-loop fixed-rate load. Reports what
// each proxy adds to the direct p50 and the sluice pair's added p50 as a multiple of nginx's
// (target: at most 2x). Writes bench/results/inference.json.
// Knobs: SLUICE_BENCH_SECONDS (open-loop seconds per path and case, default 6, split over
// SLUICE_BENCH_ROUNDS rounds, default 3), SLUICE_BENCH_CONCURRENCY (default 4),
// SLUICE_BENCH_RATES (open-loop rates, default "simple=50,identity-16k=50,identity-1m=5": light
// load, well under every path's capacity, so the percentiles show latency rather than queueing),
// SLUICE_BENCH_PAIRED (scales the paired phase: one call at a time to each path in turn, 400
// calls per path for the small cases and 40 for 1 MiB; its medians are the fairest comparison
// on a busy machine), SLUICE_BENCH_WARMUP (calls per path before measuring, default 2000 for
// the small cases and 100 for 1 MiB: V8 tiers the proxies' hot paths up over the first
// thousands of calls; measured earlier, their CPU per request is about twice the steady one).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { encodeMessage } from '../src/kserve/proto.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { closedLoop, type LatencyResult, median, openLoop, pairedLoop, RawGrpcClient, summarize } from './grpc-load.ts';
import { nginxAvailable, type NginxProxy, startNginxGrpcProxy } from './nginx-grpc-proxy.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const SECONDS = Number(process.env.SLUICE_BENCH_SECONDS ?? 6);
const CONCURRENCY = Number(process.env.SLUICE_BENCH_CONCURRENCY ?? 4);
const ROUNDS = Number(process.env.SLUICE_BENCH_ROUNDS ?? 3);
const INFER = METHODS.ModelInfer.path;
/** Calls per path in the paired phase (SLUICE_BENCH_PAIRED scales them). */
const PAIRED_SCALE = Number(process.env.SLUICE_BENCH_PAIRED ?? 1);
/** Calls per path before measuring (connections, links, and the JIT's tier-up). */
const WARMUP_CALLS: Record<string, number> = process.env.SLUICE_BENCH_WARMUP !== undefined
  ? { simple: Number(process.env.SLUICE_BENCH_WARMUP), 'identity-16k': Number(process.env.SLUICE_BENCH_WARMUP), 'identity-1m': Number(process.env.SLUICE_BENCH_WARMUP) }
  : { simple: 2000, 'identity-16k': 2000, 'identity-1m': 100 };
const PAIRED_ITERATIONS: Record<string, number> = { simple: 400 * PAIRED_SCALE, 'identity-16k': 400 * PAIRED_SCALE, 'identity-1m': 40 * PAIRED_SCALE };

interface Case {
  name: string;
  request: Buffer;
  rate: number;
}

function rates(): Record<string, number> {
  const out: Record<string, number> = { simple: 50, 'identity-16k': 50, 'identity-1m': 5 };
  for (const kv of (process.env.SLUICE_BENCH_RATES ?? '').split(',').filter(Boolean)) {
    const [k, v] = kv.split('=') as [string, string];
    out[k] = Number(v);
  }
  return out;
}

function cases(): Case[] {
  const r = rates();
  const int32 = (n: number): Buffer => Buffer.from(new Int32Array(Array.from({ length: n }, (_, i) => i)).buffer);
  const fp32 = (bytes: number): Buffer => randomBytes(bytes);
  const identity = (bytes: number): Buffer =>
    encodeMessage('ModelInferRequest', {
      modelName: 'identity',
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, bytes / 4] }],
      rawInputContents: [fp32(bytes)],
    });
  return [
    {
      name: 'simple',
      rate: r.simple!,
      request: encodeMessage('ModelInferRequest', {
        modelName: 'simple',
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
        ],
        rawInputContents: [int32(16), int32(16)],
      }),
    },
    { name: 'identity-16k', rate: r['identity-16k']!, request: identity(16 * 1024) },
    { name: 'identity-1m', rate: r['identity-1m']!, request: identity(1024 * 1024) },
  ];
}

interface PathResult {
  /** Median over rounds of the closed-loop rate. */
  reqPerSec: number;
  /** CPU time of the path's proxy processes per request (closed-loop phase), microseconds. */
  proxyCpuUs: number;
  /** The same, per proxy process (sluice pair: ingress, egress). */
  perProcessCpuUs: number[];
  /** CPU time of the model server per request, microseconds. */
  modelCpuUs: number;
  /** Percentiles over the latencies of every round. */
  latency: LatencyResult;
  /** Median of one-at-a-time calls taking turns with the other paths (pairedLoop), ms. */
  pairedP50: number;
}

/** Open clients for every path; warm them (connections, JIT, links) once. */
interface BenchPath {
  name: string;
  address: string;
  /** Processes that make up the proxy (none for direct). */
  proxyPids: number[];
}

/** utime + stime of a process in microseconds (Linux /proc; clock ticks of 10 ms). */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function openClients(paths: readonly BenchPath[], c: Case): Promise<RawGrpcClient[]> {
  const clients = paths.map((p) => new RawGrpcClient(p.address));
  const calls = WARMUP_CALLS[c.name] ?? 2000;
  for (const client of clients) {
    const until = performance.now() + 700;
    for (let done = 0; done < calls || performance.now() < until; ) done += (await closedLoop(client, INFER, c.request, CONCURRENCY, 300)).calls;
  }
  return clients;
}

/**
 * Paths take turns, round after round (a, b, c, a, b, c, ...), so a noisy neighbour on the
 * shared machine slows all of them alike instead of whichever happened to run at the time.
 */
async function measureCase(paths: readonly BenchPath[], c: Case, modelPid: number): Promise<PathResult[]> {
  const clients = await openClients(paths, c);
  const rates: number[][] = paths.map(() => []);
  const cpu = paths.map((p) => ({ proxy: 0, perProcess: p.proxyPids.map(() => 0), model: 0, calls: 0 }));
  const lat: number[][] = paths.map(() => []);
  const errors = paths.map(() => 0);
  const perRoundMs = (SECONDS * 1000) / ROUNDS;
  let paired: { latencies: number[][]; errors: number[] } = { latencies: paths.map(() => []), errors: paths.map(() => 0) };
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < paths.length; i++) {
        const proxy0 = paths[i]!.proxyPids.map(cpuUs);
        const model0 = cpuUs(modelPid);
        const loop = await closedLoop(clients[i]!, INFER, c.request, CONCURRENCY, 1000);
        rates[i]!.push(loop.perSecond);
        paths[i]!.proxyPids.forEach((pid, k) => {
          const used = cpuUs(pid) - proxy0[k]!;
          cpu[i]!.proxy += used;
          cpu[i]!.perProcess[k]! += used;
        });
        cpu[i]!.model += cpuUs(modelPid) - model0;
        cpu[i]!.calls += loop.calls;
        await new Promise((res) => setTimeout(res, 100));
        const l = await openLoop(clients[i]!, INFER, c.request, c.rate, perRoundMs);
        lat[i]!.push(...l.latencies);
        errors[i]! += l.errors;
      }
    }
    // One call at a time to each path in turn: background load falls on every path alike,
    // so the medians compare fairly even on a busy shared machine.
    paired = await pairedLoop(clients, INFER, c.request, PAIRED_ITERATIONS[c.name] ?? 300);
  } finally {
    for (const cl of clients) cl.close();
  }
  const pairedLatencies = paired.latencies;
  return paths.map((_, i) => ({
    pairedP50: summarize(pairedLatencies[i]!, 0, 0).p50,
    reqPerSec: median(rates[i]!),
    proxyCpuUs: cpu[i]!.proxy / cpu[i]!.calls,
    perProcessCpuUs: cpu[i]!.perProcess.map((us) => us / cpu[i]!.calls),
    modelCpuUs: cpu[i]!.model / cpu[i]!.calls,
    latency: summarize(lat[i]!, c.rate, errors[i]!),
  }));
}

export async function run(): Promise<void> {
  const key = randomBytes(32).toString('hex');
  const procs: SluiceProcess[] = [];
  let nginx: NginxProxy | undefined;
  try {
    const models = await startSluice({ node: { name: 'bench-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models' });
    procs.push(models);
    const egress = await startSluice(
      {
        node: { name: 'bench-egress' },
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
        log: { level: 'warn' },
      },
      { name: 'egress' },
    );
    procs.push(egress);
    const [segHost, segPort] = egress.endpoints.segment!.split(':') as [string, string];
    const ingress = await startSluice(
      {
        node: { name: 'bench-ingress' },
        listeners: { grpc: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress', segment: 'inference', host: segHost, port: Number(segPort) }],
        routes: [{ model: '*', peers: ['egress'] }],
      },
      { name: 'ingress' },
    );
    procs.push(ingress);
    if (nginxAvailable()) nginx = await startNginxGrpcProxy(models.endpoints.models!, 64 << 20);
    else console.log('nginx not found (run scripts/install-deps.sh): the grpc_pass column is skipped');

    const paths: BenchPath[] = [
      { name: 'direct', address: models.endpoints.models!, proxyPids: [] },
      ...(nginx ? [{ name: 'nginx grpc_pass', address: nginx.address, proxyPids: [nginx.pid] }] : []),
      { name: 'sluice pair', address: ingress.endpoints.grpc!, proxyPids: [ingress.child.pid!, egress.child.pid!] },
    ];
    const results: Record<string, Record<string, PathResult>> = {};
    console.log(
      `\nKServe v2 ModelInfer over gRPC, servers in their own processes; req/s with ${CONCURRENCY} in flight; ` +
        `latency under an open-loop fixed rate, ${SECONDS} s per path in ${ROUNDS} interleaved rounds (ms, from each call's scheduled start)`,
    );
    console.log(
      `${'case'.padEnd(13)} ${'path'.padEnd(16)} ${'req/s'.padStart(7)} ${'rate/s'.padStart(7)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'added p50'.padStart(10)} ${'added p99'.padStart(10)} ${'proxy CPU/req'.padStart(14)}`,
    );
    const verdicts: string[] = [];
    for (const c of cases()) {
      const measured = await measureCase(paths, c, models.child.pid!);
      results[c.name] = {};
      paths.forEach(({ name }, i) => {
        const r = measured[i]!;
        results[c.name]![name] = r;
        const direct = results[c.name]!.direct!;
        const added = name === 'direct' ? '' : `+${(r.latency.p50 - direct.latency.p50).toFixed(3)}`;
        const added99 = name === 'direct' ? '' : `+${(r.latency.p99 - direct.latency.p99).toFixed(3)}`;
        console.log(
          `${c.name.padEnd(13)} ${name.padEnd(16)} ${r.reqPerSec.toFixed(0).padStart(7)} ${String(c.rate).padStart(7)} ${r.latency.p50.toFixed(3).padStart(7)} ${r.latency.p99.toFixed(3).padStart(7)} ${added.padStart(10)} ${added99.padStart(10)} ${(name === 'direct' ? '' : `${r.proxyCpuUs.toFixed(0)} us`).padStart(14)}${r.latency.errors > 0 ? `  (${r.latency.errors} errors)` : ''}`,
        );
      });
      const rs = results[c.name]!;
      if (rs['nginx grpc_pass'] !== undefined) {
        const sluiceAdded = rs['sluice pair']!.latency.p50 - rs.direct!.latency.p50;
        const nginxAdded = rs['nginx grpc_pass'].latency.p50 - rs.direct!.latency.p50;
        const ratio = sluiceAdded / nginxAdded;
        // nginx's added p50 is a fraction of a millisecond: on a busy machine it can measure <= 0.
        const verdict = nginxAdded > 0 ? `${ratio.toFixed(2)}x (target <= 2x: ${ratio <= 2 ? 'met' : 'NOT met'})` : 'no ratio (nginx added <= 0: noise, run again on a quieter machine)';
        const pairedSluice = rs['sluice pair']!.pairedP50 - rs.direct!.pairedP50;
        const pairedNginx = rs['nginx grpc_pass'].pairedP50 - rs.direct!.pairedP50;
        const pairedVerdict = pairedNginx > 0 ? `${(pairedSluice / pairedNginx).toFixed(2)}x` : 'no ratio (nginx added <= 0)';
        verdicts.push(
          `${c.name}: sluice pair adds ${sluiceAdded.toFixed(3)} ms p50, nginx ${nginxAdded.toFixed(3)} ms -> ${verdict}; ` +
            `paired one-at-a-time p50s (direct ${rs.direct!.pairedP50.toFixed(3)} ms): sluice +${pairedSluice.toFixed(3)}, nginx +${pairedNginx.toFixed(3)} -> ${pairedVerdict}; ` +
            `proxy CPU per request ${rs['sluice pair']!.proxyCpuUs.toFixed(0)} us (ingress ${rs['sluice pair']!.perProcessCpuUs[0]!.toFixed(0)} + egress ${rs['sluice pair']!.perProcessCpuUs[1]!.toFixed(0)}) ` +
            `vs ${rs['nginx grpc_pass'].proxyCpuUs.toFixed(0)} us; model server ${rs['sluice pair']!.modelCpuUs.toFixed(0)} us`,
        );
      }
    }
    for (const v of verdicts) console.log(v);
    mkdirSync(path.join(here, 'results'), { recursive: true });
    writeFileSync(
      path.join(here, 'results', 'inference.json'),
      `${JSON.stringify({ suite: 'inference', date: new Date().toISOString(), node: process.version, concurrency: CONCURRENCY, seconds: SECONDS, rounds: ROUNDS, loadavg: loadavg(), results, verdicts }, null, 2)}\n`,
    );
  } finally {
    await nginx?.stop();
    for (const p of procs.reverse()) await p.stop();
  }
}
