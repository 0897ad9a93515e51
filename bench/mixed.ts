// Mixed benchmark: inference latency while a training job pushes bulk tensors, through the
// sluice pair, through its topology twin (two nginx with TLS 1.3 between them) and direct, in
// one run. Every server and job in its own process:
//   sluice: h2load --gRPC--> front (ingress) ==inference segment==> back (egress) --> model server
//           training job --TensorTransfer (8003)--> front ==training segment==> back --Subscribe--> receiving job
//           (both segments join the same two processes over loopback; the training plane of
//           each runs on its low-priority thread, paced by the inference latency front measures)
//   nginx pair: h2load --gRPC--> nginx A --grpcs (TLS 1.3, AES-256-GCM)--> nginx B --> model server
//           training job --one client-streaming call of 1 MiB messages--> A --> B --> receiving job
//   direct: h2load --> model server; training job --> receiving job
// The training jobs run at nice 19: they stand for other machines, whose CPU is not this
// node's. The run takes /tmp/sluice-bench.lock (flock) and records the load average at start.
// Phases per path: inference alone, bulk alone, both at once; paths and phases take turns
// round after round so a noisy neighbour slows all alike. Inference is an open-loop load at a
// fixed rate (latency from each call's scheduled start); bulk pushes TENSOR-byte tensors back
// to back, throughput counted where the receiving job gets the bytes (each tensor's SHA-256
// checked there). Writes bench/results/mixed.json and mixed-cdf.svg (mixed-<rate>rps.* at other
// rates), and every run dated under bench/results/history/.
// Flags: --quick (a smoke test: one round of 3 s phases). Knobs: SLUICE_BENCH_SECONDS (per phase,
// default 20, at least 20 for a judged run; quick 3), SLUICE_BENCH_ROUNDS (default 3; quick 1),
// SLUICE_BENCH_RATE (inference req/s, default 200), SLUICE_BENCH_TENSOR_MIB (default 512; quick
// 64), SLUICE_BENCH_WARMUP (inference calls per path before measuring, default 2000, at most 20 s).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { GovernorProbe, medianWindowP99, type GovernorPhase } from './governor-probe.ts';
import { h2loadAvailable, runH2load } from './h2load.ts';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { encodeMessage } from '../src/kserve/proto.ts';
import { startSluice, type SluiceProcess } from '../scripts/sluice-child.ts';
import { closedLoop, type LatencyResult, median, openLoop, RawGrpcClient, summarize } from './grpc-load.ts';
import { nginxAvailable, type NginxProxy, startNginxTlsPair } from './nginx-grpc-proxy.ts';
import { cdfSvg } from './svg-cdf.ts';
import { LoopDelayProbe, type LoopDelay } from './loop-delay-probe.ts';
import { Job, startMixedSluicePair } from './mixed-pair.ts';

const WARMUP_CALLS = Number(process.env.SLUICE_BENCH_WARMUP ?? 2000);
const WARMUP_MAX_MS = 20_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const INFER = METHODS.ModelInfer.path;
const MiB = 1024 * 1024;
const TARGET_P99_MS = 5;
const DEFAULT_RATE = 200;
const BENCH_LOCK = '/tmp/sluice-bench.lock';
/** A judged run: phases of at least this long, at least this many rounds. */
const JUDGED_MIN_SECONDS = 20;
const JUDGED_MIN_ROUNDS = 3;
const TARGET_BULK_KEEP = 0.7;
/** An inference call slower than this counts as an error (DEADLINE_EXCEEDED), which bounds the run. */
const CALL_TIMEOUT_MS = 2000;
/** Start-up of a `sluice serve` child (tsx compiles on start; slow when the machine is busy). */
const START_TIMEOUT_MS = 120_000;

interface Settings {
  seconds: number;
  rounds: number;
  rate: number;
  tensorBytes: number;
  quick: boolean;
  /** Inference load generator: h2load when installed, else the bench's own open-loop client. */
  client: 'h2load' | 'node';
}

function settings(args: readonly string[]): Settings {
  const quick = args.includes('--quick');
  const s = {
    seconds: Number(process.env.SLUICE_BENCH_SECONDS ?? (quick ? 3 : JUDGED_MIN_SECONDS)),
    rounds: Number(process.env.SLUICE_BENCH_ROUNDS ?? (quick ? 1 : JUDGED_MIN_ROUNDS)),
    rate: Number(process.env.SLUICE_BENCH_RATE ?? DEFAULT_RATE),
    tensorBytes: Number(process.env.SLUICE_BENCH_TENSOR_MIB ?? (quick ? 64 : 512)) * MiB,
    quick,
    client: h2loadAvailable() ? ('h2load' as const) : ('node' as const),
  };
  if (!quick && (s.seconds < JUDGED_MIN_SECONDS || s.rounds < JUDGED_MIN_ROUNDS)) {
    throw new Error(`a judged run needs phases of at least ${JUDGED_MIN_SECONDS} s and at least ${JUDGED_MIN_ROUNDS} rounds (use --quick for a smoke test)`);
  }
  return s;
}

/** Runs the bench again under the exclusive bench lock (flock), unless it already holds it. */
async function underBenchLock(args: readonly string[]): Promise<boolean> {
  if (process.env.SLUICE_BENCH_LOCKED === '1') return false;
  const child = spawn('flock', [BENCH_LOCK, process.execPath, ...process.execArgv, path.join(here, 'main.ts'), 'mixed', ...args], {
    stdio: 'inherit',
    env: { ...process.env, SLUICE_BENCH_LOCKED: '1' },
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the locked run exited with ${code}`);
  return true;
}

interface Path {
  name: string;
  /** host:port the inference load goes to. */
  address: string;
  infer: RawGrpcClient;
  sender: Job;
  receiver: Job;
  /** Event-loop delay of the proxy processes (sluice: front and back), per phase. */
  loopProbes: Record<string, LoopDelayProbe>;
  /** The sluice front's bulk governor, read while inference and bulk run together. */
  governor?: GovernorProbe;
}

type Phase = 'off' | 'alone' | 'on';

/** Runs `phase` with every probe of `p` scraped around it; the delays land in `into[phase][proc]`. */
async function probed<T>(p: Path, phase: Phase, into: PathResult['loopDelay'], run: () => Promise<T>): Promise<T> {
  const probes = Object.entries(p.loopProbes);
  await Promise.all(probes.map(([, probe]) => probe.start()));
  const out = await run();
  const delays = await Promise.all(probes.map(([, probe]) => probe.stop()));
  probes.forEach(([proc], i) => ((into[phase][proc] ??= []).push(delays[i]!)));
  return out;
}

interface PathResult {
  alone: number[];
  mixed: number[];
  errorsAlone: number;
  errorsMixed: number;
  errorCodes: Record<string, number>;
  errorExamples: Record<string, string>;
  bulkAloneMBps: number[];
  bulkMixedMBps: number[];
  tensors: number;
  badTensors: number;
  loopDelay: Record<Phase, Record<string, LoopDelay[]>>;
  /** Latencies of the mixed phase's calls due in its first ONSET_MS, and after. */
  mixedOnset: number[];
  mixedSteady: number[];
  /** Per round: what the governor saw and did, beside the client's p99 over the same 1 s windows. */
  governor: (GovernorPhase & { clientP99MsMedian: number })[];
}

const ONSET_MS = 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bulk running for `ms` (after a ramp-up), while `during` runs; returns MB/s at the receiver. */
async function withBulk(p: Path, ms: number, during: () => Promise<unknown>, res: PathResult, phase: Phase): Promise<number> {
  p.sender.startBulk();
  await sleep(1000); // connection, first window, the governor's first reading
  const a = await p.receiver.sample();
  const t0 = performance.now();
  await probed(p, phase, res.loopDelay, () => Promise.all([during(), sleep(ms)]));
  const b = await p.receiver.sample();
  const secs = (performance.now() - t0) / 1000;
  await p.sender.stopBulk();
  res.tensors += b.tensors - a.tensors;
  res.badTensors += b.bad - a.bad;
  return (b.bytes - a.bytes) / 1e6 / secs;
}

function requestOf(bytes: number): Buffer {
  return encodeMessage('ModelInferRequest', {
    modelName: 'identity',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [1, bytes / 4] }],
    rawInputContents: [randomBytes(bytes)],
  });
}

function addCodes(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Per phase and process: medians over rounds of p50 and p99, the highest max bucket. */
function loopDelaySummary(d: PathResult['loopDelay']): Record<Phase, Record<string, LoopDelay>> {
  const out = { off: {}, alone: {}, on: {} } as Record<Phase, Record<string, LoopDelay>>;
  for (const phase of ['off', 'alone', 'on'] as const) {
    for (const [proc, xs] of Object.entries(d[phase])) {
      out[phase][proc] = {
        p50: median(xs.map((x) => x.p50)),
        p99: median(xs.map((x) => x.p99)),
        maxBucket: Math.max(...xs.map((x) => x.maxBucket)),
        samples: xs.reduce((a, x) => a + x.samples, 0),
      };
    }
  }
  return out;
}

/** The governor over all rounds: medians of the rounds' medians, cuts summed. */
interface GovernorSummary {
  p99MsMedian: number;
  clientP99MsMedian: number;
  shareP50: number;
  shareMin: number;
  cuts: number;
  futileCuts: number;
}

const finiteMedian = (xs: number[]): number => {
  const f = xs.filter(Number.isFinite);
  return f.length > 0 ? median(f) : Number.NaN;
};

function governorSummary(xs: PathResult['governor']): GovernorSummary {
  return {
    p99MsMedian: finiteMedian(xs.map((x) => x.p99MsMedian)),
    clientP99MsMedian: finiteMedian(xs.map((x) => x.clientP99MsMedian)),
    shareP50: finiteMedian(xs.map((x) => x.shareP50)),
    shareMin: Math.min(...xs.map((x) => x.shareMin)),
    cuts: xs.reduce((a, x) => a + x.cuts, 0),
    futileCuts: xs.reduce((a, x) => a + x.futileCuts, 0),
  };
}

const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

type OpenLoopResult = Awaited<ReturnType<typeof openLoop>>;

/** One open-loop inference phase on a path, from h2load when it is installed. */
async function inferenceLoad(s: Settings, p: Path, request: Buffer, ms: number): Promise<OpenLoopResult> {
  if (s.client === 'node') return openLoop(p.infer, INFER, request, s.rate, ms, CALL_TIMEOUT_MS);
  // One connection, up to 64 calls in flight: the pace holds while calls are slow (open loop).
  const r = await runH2load({ address: p.address, method: INFER, request, calls: Math.max(1, Math.round((s.rate * ms) / 1000)), clients: 1, streams: 64, rpsPerClient: s.rate, timeoutMs: ms + 60_000 });
  return { latencies: r.latenciesMs, scheduledAtMs: r.startedAtMs, errors: r.failed, errorCodes: r.failed > 0 ? { 'not HTTP 200': r.failed } : {}, errorExamples: {} };
}

export async function run(args: readonly string[] = []): Promise<void> {
  const s = settings(args);
  if (await underBenchLock(args)) return;
  const loadAtStart = loadavg();
  const procs: SluiceProcess[] = [];
  const jobs: Job[] = [];
  const clients: RawGrpcClient[] = [];
  let nginx: NginxProxy | undefined;
  const spool = mkdtempSync(path.join(tmpdir(), 'sluice-bench-mixed-'));
  try {
    const infKey = randomBytes(32).toString('hex');
    const trainKey = randomBytes(32).toString('hex');
    const any = { host: '127.0.0.1', port: 0 };
    const models = await startSluice({ node: { name: 'bench-models' }, listeners: { metrics: any }, models: { listen: any }, log: { level: 'warn' } }, { name: 'models', timeoutMs: START_TIMEOUT_MS });
    procs.push(models);
    const { back, front } = await startMixedSluicePair(models.endpoints.models!, infKey, trainKey, spool, procs, START_TIMEOUT_MS);
    // Which gRPC ingress the front runs: the node logs the TypeScript path (and why) at warn.
    const tsPathLog = front.logs.find((r) => r.listener === 'grpc' && r.path === 'typescript');
    const frontIngress = tsPathLog === undefined ? 'engine' : 'typescript';

    const paths: Path[] = [];
    const directRecv = await Job.start('recv-grpc', [], s.tensorBytes, START_TIMEOUT_MS);
    jobs.push(directRecv);
    const directSend = await Job.start('send-grpc', [directRecv.address!], s.tensorBytes, START_TIMEOUT_MS);
    jobs.push(directSend);
    paths.push({ name: 'direct', address: models.endpoints.models!, infer: new RawGrpcClient(models.endpoints.models!), sender: directSend, receiver: directRecv, loopProbes: { models: new LoopDelayProbe(models.endpoints.metrics!) } });
    const sluiceRecv = await Job.start('recv-sluice', [back.endpoints.trainingService!], s.tensorBytes, START_TIMEOUT_MS);
    jobs.push(sluiceRecv);
    const sluiceSend = await Job.start('send-sluice', [front.endpoints.trainingService!, 'back-training'], s.tensorBytes, START_TIMEOUT_MS);
    jobs.push(sluiceSend);
    paths.push({
      name: 'sluice pair',
      address: front.endpoints.grpc!,
      infer: new RawGrpcClient(front.endpoints.grpc!),
      sender: sluiceSend,
      receiver: sluiceRecv,
      // The model server is on both paths; its delay is what any process here gets from CPU
      // contention alone (it does no bulk work).
      loopProbes: { front: new LoopDelayProbe(front.endpoints.metrics!), back: new LoopDelayProbe(back.endpoints.metrics!), models: new LoopDelayProbe(models.endpoints.metrics!) },
      governor: new GovernorProbe(front.endpoints.metrics!),
    });
    if (nginxAvailable()) {
      const grpcRecv = await Job.start('recv-grpc', [], s.tensorBytes, START_TIMEOUT_MS);
      jobs.push(grpcRecv);
      nginx = await startNginxTlsPair(models.endpoints.models!, 64 * MiB, { routes: { '/bench.TensorSink/': grpcRecv.address! } });
      const grpcSend = await Job.start('send-grpc', [nginx.address], s.tensorBytes, START_TIMEOUT_MS);
      jobs.push(grpcSend);
      paths.push({ name: 'nginx pair', address: nginx.address, infer: new RawGrpcClient(nginx.address), sender: grpcSend, receiver: grpcRecv, loopProbes: { models: new LoopDelayProbe(models.endpoints.metrics!) } });
    } else {
      console.log('nginx not found (run scripts/install-deps.sh): the nginx pair rows are skipped');
    }
    clients.push(...paths.map((p) => p.infer));

    console.log(`load average at start: ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}${loadAtStart[0]! > 1.5 ? ' (above 1.5: rerun on a quieter machine before reading the ratios)' : ''}`);
    console.log(`inference load: ${s.client === 'h2load' ? 'h2load --rps (open loop, one connection, up to 64 calls in flight)' : 'the bench\'s own open-loop client (h2load not installed)'}`);
    console.log('training jobs: separate processes at nice 19, standing for other machines (sender and receiver)');
    console.log(`sluice pair: the front's gRPC ingress runs on the ${frontIngress === 'engine' ? 'native engine' : `TypeScript path: ${String(tsPathLog?.reason)}`}`);
    const request = requestOf(16 * 1024);
    // Connections, links, and V8's JIT: the proxies' CPU per request halves over the first
    // thousands of calls, so warm each path by call count (bounded in time) before measuring.
    for (const p of paths) {
      const started = performance.now();
      let calls = 0;
      while (calls < WARMUP_CALLS && performance.now() - started < WARMUP_MAX_MS) calls += (await closedLoop(p.infer, INFER, request, 4, 500)).calls;
    }
    const results: Record<string, PathResult> = Object.fromEntries(
      paths.map((p) => [p.name, { alone: [], mixed: [], errorsAlone: 0, errorsMixed: 0, errorCodes: {}, errorExamples: {}, bulkAloneMBps: [], bulkMixedMBps: [], tensors: 0, badTensors: 0, loopDelay: { off: {}, alone: {}, on: {} }, mixedOnset: [], mixedSteady: [], governor: [] }]),
    );
    const ms = s.seconds * 1000;
    console.log(
      `\nidentity 16 KiB over gRPC, open loop at ${s.rate} req/s, while a job pushes ${s.tensorBytes / MiB} MiB tensors back to back; ` +
        `${s.rounds} round(s) of ${s.seconds} s per phase and path (latency in ms from each call's scheduled start)`,
    );
    for (let r = 0; r < s.rounds; r++) {
      for (const p of paths) {
        const res = results[p.name]!;
        const alone = await probed(p, 'off', res.loopDelay, () => inferenceLoad(s, p, request, ms));
        res.alone.push(...alone.latencies);
        res.errorsAlone += alone.errors;
        addCodes(res.errorCodes, alone.errorCodes);
        res.errorExamples = { ...alone.errorExamples, ...res.errorExamples };
        res.bulkAloneMBps.push(await withBulk(p, ms, async () => {}, res, 'alone'));
        await sleep(300);
        let mixed: OpenLoopResult = { latencies: [], scheduledAtMs: [], errors: 0, errorCodes: {}, errorExamples: {} };
        res.bulkMixedMBps.push(
          await withBulk(p, ms, async () => {
            await p.governor?.start();
            mixed = await inferenceLoad(s, p, request, ms);
            const g = await p.governor?.stop();
            if (g !== undefined) res.governor.push({ ...g, clientP99MsMedian: medianWindowP99(mixed.latencies, mixed.scheduledAtMs) });
          }, res, 'on'),
        );
        res.mixed.push(...mixed.latencies);
        // Inference starts while bulk runs at full rate: the governor needs its samples and a
        // few cuts before bulk yields, so the first second is told apart from the rest.
        mixed.latencies.forEach((l, i) => (mixed.scheduledAtMs[i]! < ONSET_MS ? res.mixedOnset : res.mixedSteady).push(l));
        res.errorsMixed += mixed.errors;
        addCodes(res.errorCodes, mixed.errorCodes);
        res.errorExamples = { ...mixed.errorExamples, ...res.errorExamples };
        await sleep(300);
        const q99 = (xs: number[]) => summarize(xs, s.rate, 0).p99;
        console.log(
          `  round ${r + 1} ${p.name}: bulk alone ${fmt(res.bulkAloneMBps.at(-1)!, 0)} MB/s, with inference ${fmt(res.bulkMixedMBps.at(-1)!, 0)} MB/s; ` +
            `inference p99 with bulk so far: first ${ONSET_MS / 1000} s ${fmt(q99(res.mixedOnset))} ms, after ${fmt(q99(res.mixedSteady))} ms`,
        );
        const g = res.governor.at(-1);
        if (g !== undefined) {
          console.log(
            `    governor (front): p99 it saw, median of 1 s windows ${fmt(g.p99MsMedian)} ms (client's ${fmt(g.clientP99MsMedian)} ms); ` +
              `bulk share p50 ${fmt(g.shareP50)}, min ${fmt(g.shareMin)}; cuts ${g.cuts}, undone as futile ${g.futileCuts}`,
          );
        }
        for (const proc of Object.keys(p.loopProbes)) {
          const d = (ph: Phase) => {
            const x = res.loopDelay[ph][proc]!.at(-1)!;
            return `${ph} ${fmt(x.p50)}/${fmt(x.p99)}/${Number.isFinite(x.maxBucket) ? `<=${x.maxBucket}` : '>1000'}`;
          };
          console.log(`    ${proc} event-loop delay p50/p99/max ms (bulk ${d('off')}, ${d('alone')}, ${d('on')})`);
        }
      }
    }

    const summary: Record<string, { alone: LatencyResult; mixed: LatencyResult; bulkAloneMBps: number; bulkMixedMBps: number; p99Ratio: number; bulkKept: number; tensors: number; badTensors: number; errorCodes: Record<string, number>; errorExamples: Record<string, string>; loopDelayMs: Record<Phase, Record<string, LoopDelay>>; mixedOnset: LatencyResult; mixedSteady: LatencyResult; governor?: GovernorSummary }> = {};
    console.log(
      `\n${'path'.padEnd(16)} ${'bulk'.padEnd(5)} ${'p50'.padStart(7)} ${'p99'.padStart(7)} ${'p99.9'.padStart(7)} ${'errors'.padStart(7)}   ${'bulk MB/s'.padStart(10)}`,
    );
    for (const p of paths) {
      const res = results[p.name]!;
      const alone = summarize(res.alone, s.rate, res.errorsAlone);
      const mixed = summarize(res.mixed, s.rate, res.errorsMixed);
      const bulkAlone = median(res.bulkAloneMBps);
      const bulkMixed = median(res.bulkMixedMBps);
      summary[p.name] = { alone, mixed, bulkAloneMBps: bulkAlone, bulkMixedMBps: bulkMixed, p99Ratio: mixed.p99 / alone.p99, bulkKept: bulkAlone > 0 ? bulkMixed / bulkAlone : Number.NaN, tensors: res.tensors, badTensors: res.badTensors, errorCodes: res.errorCodes, errorExamples: res.errorExamples, loopDelayMs: loopDelaySummary(res.loopDelay), mixedOnset: summarize(res.mixedOnset, s.rate, 0), mixedSteady: summarize(res.mixedSteady, s.rate, 0), ...(res.governor.length > 0 ? { governor: governorSummary(res.governor) } : {}) };
      const row = (label: string, l: LatencyResult | undefined, mbps: number | undefined) =>
        console.log(
          `${p.name.padEnd(16)} ${label.padEnd(5)} ${(l ? fmt(l.p50) : '').padStart(7)} ${(l ? fmt(l.p99) : '').padStart(7)} ${(l ? fmt(l.p999) : '').padStart(7)} ${(l ? String(l.errors) : '').padStart(7)}   ${(mbps !== undefined ? fmt(mbps, 0) : '').padStart(10)}`,
        );
      row('off', alone, undefined);
      row('alone', undefined, bulkAlone);
      row('on', mixed, bulkMixed);
    }
    const verdicts: string[] = [];
    for (const [name, r] of Object.entries(summary)) {
      verdicts.push(
        `${name}: inference p99 with bulk ${fmt(r.mixed.p99)} ms (${fmt(r.p99Ratio)}x of ${fmt(r.alone.p99)} without; target <= ${TARGET_P99_MS} ms: ${r.mixed.p99 <= TARGET_P99_MS ? 'met' : 'NOT met'}); ` +
          `bulk keeps ${fmt(100 * r.bulkKept, 0)}% of its solo throughput (target >= ${100 * TARGET_BULK_KEEP}%: ${r.bulkKept >= TARGET_BULK_KEEP ? 'met' : 'NOT met'}); ` +
          `${r.tensors} tensors verified${r.badTensors > 0 ? `, ${r.badTensors} BAD` : ''}; ` +
          `p99 with bulk in the first ${ONSET_MS / 1000} s of inference ${fmt(r.mixedOnset.p99)} ms, after it ${fmt(r.mixedSteady.p99)} ms` +
          (r.governor === undefined
            ? ''
            : `; the governor saw a 1 s p99 of ${fmt(r.governor.p99MsMedian)} ms (client ${fmt(r.governor.clientP99MsMedian)} ms, medians), held bulk at a share of ${fmt(r.governor.shareP50)} (p50), cut ${r.governor.cuts} times and undid ${r.governor.futileCuts} as futile`) +
          `${Object.keys(r.errorCodes).length > 0 ? `; inference errors ${JSON.stringify(r.errorCodes)}` : ''}`,
      );
    }
    const sl = summary['sluice pair'];
    const ng = summary['nginx pair'];
    if (sl !== undefined && ng !== undefined) {
      verdicts.push(
        `with bulk running: sluice p99 ${fmt(sl.mixed.p99)} ms vs nginx ${fmt(ng.mixed.p99)} ms (${fmt(sl.mixed.p99 / ng.mixed.p99)}x); p99.9 ${fmt(sl.mixed.p999)} vs ${fmt(ng.mixed.p999)} ms; ` +
          `bulk ${fmt(sl.bulkMixedMBps, 0)} vs ${fmt(ng.bulkMixedMBps, 0)} MB/s; ` +
          `bulk alone ${fmt(sl.bulkAloneMBps, 0)} vs ${fmt(ng.bulkAloneMBps, 0)} MB/s (${fmt(sl.bulkAloneMBps / ng.bulkAloneMBps)}x of the nginx pair, target >= 1.0: ${sl.bulkAloneMBps >= ng.bulkAloneMBps ? 'met' : 'NOT met'}); ` +
          `p99 ratio with/without bulk ${fmt(sl.p99Ratio)}x (target <= 1.25: ${sl.p99Ratio <= 1.25 ? 'met' : 'NOT met'}), and ${sl.mixed.p99 <= ng.mixed.p99 ? 'no worse' : 'WORSE'} than the nginx pair's p99 with bulk`,
      );
    }
    console.log('');
    for (const v of verdicts) console.log(v);

    const out = path.join(here, 'results');
    // A run at another rate than the issue's 200 req/s keeps its own files.
    const suffix = s.rate === DEFAULT_RATE ? '' : `-${s.rate}rps`;
    mkdirSync(path.join(out, 'history'), { recursive: true });
    const date = new Date().toISOString();
    const doc = `${JSON.stringify(
      {
        suite: 'mixed',
        date,
        kind: s.quick ? 'quick (smoke test)' : 'judged',
        node: process.version,
        settings: s,
        loadavgAtStart: loadAtStart,
        loadavgAtEnd: loadavg(),
        trainingJobs: 'separate processes at nice 19, standing for other machines',
        sluiceIngress: frontIngress,
        targets: { p99Ms: TARGET_P99_MS, bulkKeep: TARGET_BULK_KEEP },
        results: summary,
        verdicts,
      },
      null,
      2,
    )}\n`;
    writeFileSync(path.join(out, `mixed${suffix}.json`), doc);
    writeFileSync(path.join(out, 'history', `mixed${suffix}-${date.replace(/[:.]/g, '-')}${s.quick ? '-quick' : ''}.json`), doc);
    const colors: Record<string, string> = { 'sluice pair': '#1f5fbf', 'nginx pair': '#d9730d', direct: '#555555' };
    writeFileSync(
      path.join(out, `mixed${suffix}-cdf.svg`),
      cdfSvg({
        title: `identity 16 KiB at ${s.rate} req/s, with and without a bulk tensor push (${new Date().toISOString().slice(0, 10)})`,
        marker: { atMs: TARGET_P99_MS, label: `p99 target ${TARGET_P99_MS} ms` },
        series: paths.flatMap((p) => [
          { label: `${p.name}, no bulk`, values: results[p.name]!.alone, color: colors[p.name] ?? '#333' },
          { label: `${p.name}, bulk running`, values: results[p.name]!.mixed, color: colors[p.name] ?? '#333', dashed: true },
        ]),
      }),
    );
    console.log(`wrote ${path.relative(process.cwd(), path.join(out, `mixed${suffix}.json`))} and mixed${suffix}-cdf.svg`);
  } finally {
    for (const c of clients) c.close();
    await Promise.all(jobs.map((j) => j.stop()));
    await nginx?.stop();
    for (const p of procs.reverse()) await p.stop();
    rmSync(spool, { recursive: true, force: true });
  }
}
