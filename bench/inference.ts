// Inference path benchmark against its topology twin, h2load (C, nghttp2) as the client, every
// server in its own process, every path measured in the same run on the same upstream:
//   direct:          h2load -> reference model server
//   nginx one hop:   h2load -> nginx grpc_pass -> model server
//   nginx TLS pair:  h2load -> nginx ==grpcs, TLS 1.3 AES-256-GCM==> nginx -> model server
//   sluice pair:     h2load -> sluice ingress ==inference segment (TCP, AES-256-GCM)==> sluice egress -> model server
// Measures (issue 13's table): `simple` added p50 at concurrency 1; proxy CPU per call (all
// threads of the proxy processes, from schedstat) in that phase; 1 MiB `identity` added p50 at
// concurrency 1; throughput with 64 in flight; `simple` open loop at 500 req/s, p99; and V8
// scavenges per 1000 calls of 1 MiB in the sluice processes (--trace-gc).
// Paths take turns inside every round (the order rotates), so background load falls on all of
// them alike; the medians over rounds are reported with their ratios to the nginx TLS pair.
// `--quick`: one short round (a smoke test, not a measurement).
// Writes bench/results/inference.json and a dated copy under bench/results/history/.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { encodeMessage } from '../src/kserve/proto.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { h2loadAvailable, percentile, runH2load, type H2loadRun } from './h2load.ts';
import { startSluicePair } from './sluice-pair.ts';
import { nginxAvailable, type NginxProxy, startNginxGrpcProxy, startNginxTlsPair } from './nginx-grpc-proxy.ts';
import { cpuUs } from './process-cpu.ts';
import { median, writeResults } from './report.ts';

const INFER = METHODS.ModelInfer.path;

interface BenchPath {
  name: string;
  address: string;
  /** Processes that make up the proxy (none for direct). */
  proxyPids: number[];
}

interface Plan {
  rounds: number;
  simpleCalls: number;
  bigCalls: number;
  throughputCalls: number;
  openLoopSeconds: number;
  warmupSimple: number;
  warmupBig: number;
}

const FULL: Plan = { rounds: 3, simpleCalls: 3000, bigCalls: 150, throughputCalls: 20_000, openLoopSeconds: 10, warmupSimple: 3000, warmupBig: 100 };
const QUICK: Plan = { rounds: 1, simpleCalls: 400, bigCalls: 20, throughputCalls: 2000, openLoopSeconds: 2, warmupSimple: 500, warmupBig: 10 };

function simpleRequest(): Buffer {
  const int32 = (n: number): Buffer => Buffer.from(new Int32Array(Array.from({ length: n }, (_, i) => i)).buffer);
  return encodeMessage('ModelInferRequest', {
    modelName: 'simple',
    inputs: [
      { name: 'INPUT0', datatype: 'INT32', shape: [1, 16] },
      { name: 'INPUT1', datatype: 'INT32', shape: [1, 16] },
    ],
    rawInputContents: [int32(16), int32(16)],
  });
}

function identityRequest(bytes: number): Buffer {
  return encodeMessage('ModelInferRequest', {
    modelName: 'identity',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, bytes / 4] }],
    rawInputContents: [randomBytes(bytes)],
  });
}

/** Per path and measure, one value per round. */
type Samples = Record<string, Record<string, number[]>>;

function record(samples: Samples, path: string, measure: string, value: number): void {
  ((samples[path] ??= {})[measure] ??= []).push(value);
}

/** Response bytes of one good call on `path` (h2load's "data"): the check for later runs. */
async function goodAnswerBytes(address: string, request: Buffer): Promise<number> {
  const r = await runH2load({ address, method: INFER, request, calls: 1 });
  if (r.ok !== 1 || r.dataBytes <= 5) throw new Error(`no good answer from ${address} (ok ${r.ok}, ${r.dataBytes} bytes)`);
  return r.dataBytes;
}

export async function run(args: readonly string[] = []): Promise<void> {
  const quick = args.includes('--quick');
  const plan = quick ? QUICK : FULL;
  if (!h2loadAvailable() || !nginxAvailable()) {
    console.log('h2load or nginx missing (run scripts/install-deps.sh): the inference bench needs both; skipped');
    return;
  }
  const startLoad = loadavg();
  console.log(`load average at start: ${startLoad.map((l) => l.toFixed(2)).join(' ')}${startLoad[0]! > 1.5 ? '  (above 1.5: rerun on a quieter machine before quoting)' : ''}`);
  const key = randomBytes(32).toString('hex');
  const procs: SluiceProcess[] = [];
  const proxies: NginxProxy[] = [];
  // V8 scavenges of the sluice processes, counted from --trace-gc lines.
  const scavenges = { ingress: 0, egress: 0 };
  try {
    const models = await startSluice({ node: { name: 'bench-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models' });
    procs.push(models);
    const { egress, ingress } = await startSluicePair(models.endpoints.models!, key, 'bench', procs, (role) => ({ nodeArgs: ['--trace-gc'], onOtherLine: (l) => void (l.includes('Scavenge') && scavenges[role]++) }));
    const oneHop = await startNginxGrpcProxy(models.endpoints.models!, 64 << 20);
    proxies.push(oneHop);
    const pair = await startNginxTlsPair(models.endpoints.models!, 64 << 20);
    proxies.push(pair);
    const paths: BenchPath[] = [
      { name: 'direct', address: models.endpoints.models!, proxyPids: [] },
      { name: 'nginx one hop', address: oneHop.address, proxyPids: [oneHop.pid] },
      { name: 'nginx TLS pair', address: pair.address, proxyPids: pair.pids },
      { name: 'sluice pair', address: ingress.endpoints.grpc!, proxyPids: [ingress.child.pid!, egress.child.pid!] },
    ];
    const simple = simpleRequest();
    const big = identityRequest(1 << 20);
    const goodSimple = await goodAnswerBytes(models.endpoints.models!, simple);
    const goodBig = await goodAnswerBytes(models.endpoints.models!, big);
    const errors: string[] = [];
    /** Runs h2load and checks every call got a full answer (HTTP 2xx is not grpc-status OK). */
    const checked = async (p: BenchPath, what: string, good: number, o: Parameters<typeof runH2load>[0]): Promise<H2loadRun> => {
      const r = await runH2load(o);
      if (r.failed > 0 || r.dataBytes !== r.ok * good) errors.push(`${p.name} ${what}: ${r.failed} failed, ${r.dataBytes} response bytes for ${r.ok} calls (want ${r.ok * good})`);
      return r;
    };

    // Warm-up by call count: connections, links, and the JIT's tier-up of the TypeScript paths.
    for (const p of paths) {
      await checked(p, 'warm-up simple', goodSimple, { address: p.address, method: INFER, request: simple, calls: plan.warmupSimple, streams: 4 });
      await checked(p, 'warm-up 1 MiB', goodBig, { address: p.address, method: INFER, request: big, calls: plan.warmupBig });
    }

    const samples: Samples = {};
    let bigCallsMeasured = 0;
    for (let round = 0; round < plan.rounds; round++) {
      const order = paths.map((_, i) => paths[(i + round) % paths.length]!);
      for (const p of order) {
        // simple, one call at a time: latency and CPU per call
        const cpu0 = p.proxyPids.map(cpuUs);
        const s = await checked(p, 'simple c=1', goodSimple, { address: p.address, method: INFER, request: simple, calls: plan.simpleCalls });
        const cpuPerCall = p.proxyPids.reduce((sum, pid, k) => sum + (cpuUs(pid) - cpu0[k]!), 0) / Math.max(1, s.ok);
        const sorted = [...s.latenciesMs].sort((a, b) => a - b);
        record(samples, p.name, 'simpleP50', percentile(sorted, 50));
        record(samples, p.name, 'simpleP99', percentile(sorted, 99));
        record(samples, p.name, 'cpuUsPerCall', cpuPerCall);
        // 1 MiB identity, one at a time
        const gc0 = scavenges.ingress + scavenges.egress;
        const b = await checked(p, '1 MiB c=1', goodBig, { address: p.address, method: INFER, request: big, calls: plan.bigCalls });
        if (p.name === 'sluice pair') {
          record(samples, p.name, 'scavengesPer1000', ((scavenges.ingress + scavenges.egress - gc0) * 1000) / Math.max(1, b.ok));
          bigCallsMeasured += b.ok;
        }
        record(samples, p.name, 'bigP50', percentile([...b.latenciesMs].sort((x, y) => x - y), 50));
        // throughput: 4 connections x 16 streams = 64 in flight
        const t = await checked(p, 'simple 64 in flight', goodSimple, { address: p.address, method: INFER, request: simple, calls: plan.throughputCalls, clients: 4, streams: 16 });
        record(samples, p.name, 'throughput', t.reqPerSec);
        // open loop: 4 clients x 125 req/s = 500 req/s
        const o = await checked(p, 'simple 500/s open loop', goodSimple, {
          address: p.address, method: INFER, request: simple, calls: 500 * plan.openLoopSeconds, clients: 4, streams: 8, rpsPerClient: 125,
        });
        record(samples, p.name, 'openLoopP99', percentile([...o.latenciesMs].sort((x, y) => x - y), 99));
      }
    }

    const med = (path: string, m: string): number => median(samples[path]?.[m] ?? []);
    const added = (path: string, m: string): number => med(path, m) - med('direct', m);
    const rows: { measure: string; unit: string; values: Record<string, number>; better: 'lower' | 'higher'; target: string }[] = [
      { measure: '`simple` added p50, c=1', unit: 'ms', values: Object.fromEntries(paths.slice(1).map((p) => [p.name, added(p.name, 'simpleP50')])), better: 'lower', target: '<= 1.0x (moonshot 0.7x)' },
      { measure: 'proxy CPU per call, `simple` c=1', unit: 'us', values: Object.fromEntries(paths.slice(1).map((p) => [p.name, med(p.name, 'cpuUsPerCall')])), better: 'lower', target: '<= 1.0x' },
      { measure: '1 MiB `identity` added p50, c=1', unit: 'ms', values: Object.fromEntries(paths.slice(1).map((p) => [p.name, added(p.name, 'bigP50')])), better: 'lower', target: '<= 1.0x' },
      { measure: 'throughput, 64 in flight, `simple`', unit: 'req/s', values: Object.fromEntries(paths.map((p) => [p.name, med(p.name, 'throughput')])), better: 'higher', target: '>= 1.0x' },
      { measure: '`simple` open loop 500 req/s, p99', unit: 'ms', values: Object.fromEntries(paths.map((p) => [p.name, med(p.name, 'openLoopP99')])), better: 'lower', target: '<= 1.0x (5 ms promise)' },
    ];
    const cols = paths.map((p) => p.name);
    console.log(`\nKServe v2 ModelInfer over gRPC, h2load as client, medians of ${plan.rounds} interleaved round(s)${quick ? ' (--quick: a smoke test, not a measurement)' : ''}`);
    console.log(`${'measure'.padEnd(38)} ${cols.map((c) => c.padStart(15)).join(' ')} ${'sluice/pair'.padStart(12)}  target`);
    const verdicts: Record<string, number> = {};
    for (const r of rows) {
      const ratio = r.values['sluice pair']! / r.values['nginx TLS pair']!;
      verdicts[r.measure] = ratio;
      const fmt = (v: number | undefined): string => (v === undefined ? '' : r.unit === 'req/s' ? v.toFixed(0) : r.unit === 'us' ? v.toFixed(0) : v.toFixed(3));
      console.log(`${`${r.measure} (${r.unit})`.padEnd(38)} ${cols.map((c) => fmt(r.values[c]).padStart(15)).join(' ')} ${`${ratio.toFixed(2)}x`.padStart(12)}  ${r.target}`);
    }
    const gc = med('sluice pair', 'scavengesPer1000');
    console.log(`V8 scavenges per 1000 calls of 1 MiB, both sluice processes: ${gc.toFixed(1)} (target <= 1; ${bigCallsMeasured} calls measured)`);
    console.log(`direct: simple p50 ${med('direct', 'simpleP50').toFixed(3)} ms, 1 MiB p50 ${med('direct', 'bigP50').toFixed(3)} ms`);
    if (errors.length > 0) console.log(`ERRORS (calls without a full answer):\n  ${errors.join('\n  ')}`);
    const endLoad = loadavg();
    writeResults('inference', {
      quick,
      plan,
      loadavg: { start: startLoad, end: endLoad },
      samples,
      table: rows,
      ratiosToNginxTlsPair: verdicts,
      scavengesPer1000: gc,
      errors,
    });
  } finally {
    for (const p of proxies.reverse()) await p.stop();
    for (const p of procs.reverse()) await p.stop();
  }
}
