// The mixed scenario at the link level, on RDMA and on TCP in the same place: an inference link
// and a training link to one peer process (bench/mixed-link-peer.ts), tuned as a sluice node
// tunes them (fair scheduler, chunking, one BulkGovernor fed with every inference round trip).
// Phases per round: inference alone (open loop at a fixed rate, latency from each call's
// scheduled start), bulk alone (1 MiB messages, a window of them in flight, counted when the
// peer acknowledges them), both at once. Prints per transport the inference p50/p99 with and
// without bulk and the bulk throughput with and without inference, and the ratios. Runs in
// the soft-RoCE guest (bench/mixed-rdma.ts boots it: `npm run bench -- mixed-rdma`); the
// emulated guest is slow, so the ratios are the result, not the milliseconds.
// Knobs: MIXED_LINK_KINDS (default "tcp,rdma"), MIXED_LINK_HOST (default 10.0.2.15, rxe0's
// address), MIXED_LINK_DEVICE (default rxe0), SLUICE_BENCH_RATE (req/s, default 40; the governor wants 20 round trips a second to trust a p99),
// SLUICE_BENCH_SECONDS (per phase, default 8), SLUICE_BENCH_ROUNDS (default 2),
// MIXED_LINK_REQUEST_BYTES (default 2048), MIXED_LINK_PEER_NODE_ARGS (node flags for the peer). Prints one line "RESULT {json}" at the end.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { BulkGovernor } from '../src/scheduler/bulk-governor.ts';
import { RdmaTransport } from '../src/transport/rdma-transport.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, SegmentName, Transport } from '../src/transport/types.ts';
import { BULK_ACK_KIND, linkTuningFor, newGovernor, SCHEDULING } from './mixed-link-tuning.ts';
import { formatTable, median } from './report.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const KINDS = (process.env.MIXED_LINK_KINDS ?? 'tcp,rdma').split(',') as ('tcp' | 'rdma')[];
const HOST = process.env.MIXED_LINK_HOST ?? '10.0.2.15';
const DEVICE = process.env.MIXED_LINK_DEVICE ?? 'rxe0';
const RATE = Number(process.env.SLUICE_BENCH_RATE ?? 40);
const SECONDS = Number(process.env.SLUICE_BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.SLUICE_BENCH_ROUNDS ?? 2);
const REQUEST_BYTES = Number(process.env.MIXED_LINK_REQUEST_BYTES ?? 2048);
/** Node flags for the peer process (diagnosis, e.g. --trace-gc). */
const PEER_NODE_ARGS = (process.env.MIXED_LINK_PEER_NODE_ARGS ?? '').split(' ').filter(Boolean);
const BULK_BYTES = 1024 * 1024;
/** Bulk messages in flight: enough to keep the link busy, bounded so a phase ends promptly. */
const BULK_WINDOW = 8;
/** A call unanswered this long after its phase ended counts as an error. */
const LATE_MS = 5000;

interface Phase {
  latencies: number[];
  errors: number;
  bulkMBps: number | undefined;
}

interface Peer {
  child: ChildProcess;
  inference: Link;
  training: Link;
  governor: BulkGovernor;
}

async function openPeer(kind: 'tcp' | 'rdma'): Promise<Peer> {
  const infKey = randomBytes(32);
  const trainKey = randomBytes(32);
  const device = kind === 'rdma' ? [DEVICE] : [];
  const child = spawn(process.execPath, [...PEER_NODE_ARGS, '--import', 'tsx', path.join(here, 'mixed-link-peer.ts'), kind, HOST, infKey.toString('hex'), trainKey.toString('hex'), ...device], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // The ports line; anything else the peer prints (e.g. --trace-gc) is passed through.
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const ports = await new Promise<{ inference: number; training: number }>((resolve, reject) => {
    let found = false;
    child.once('exit', (code) => reject(new Error(`the peer exited with ${code} before listening`)));
    lines.on('line', (line) => {
      if (!found && line.startsWith('{"inference"')) {
        found = true;
        resolve(JSON.parse(line) as { inference: number; training: number });
      } else process.stdout.write(`peer: ${line}\n`);
    });
  });
  const governor = newGovernor();
  const transportFor = (segment: SegmentName): Transport =>
    kind === 'rdma' ? new RdmaTransport({ link: linkTuningFor(governor, segment) }) : new TcpTransport({ link: linkTuningFor(governor, segment) });
  const dev = kind === 'rdma' ? { device: DEVICE } : {};
  const inference = await transportFor('inference').connect({ segment: 'inference', host: HOST, port: ports.inference, segmentKey: infKey, timeoutMs: 120_000, ...dev });
  const training = await transportFor('training').connect({ segment: 'training', host: HOST, port: ports.training, segmentKey: trainKey, timeoutMs: 120_000, ...dev });
  return { child, inference, training, governor };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Open-loop inference calls at RATE for `ms`; latency from each call's scheduled start. */
async function inferenceLoad(peer: Peer, ms: number, phase: Phase): Promise<void> {
  const link = peer.inference;
  const body = randomBytes(REQUEST_BYTES);
  const started = new Map<number, number>();
  const onReply = (m: InboundMessage): void => {
    const t = started.get(m.streamId);
    if (t === undefined) return;
    started.delete(m.streamId);
    const now = performance.now();
    phase.latencies.push(now - t);
    peer.governor.recordInference(now - t, now);
  };
  link.on('message', onReply);
  const period = 1000 / RATE;
  const t0 = performance.now();
  const calls = Math.floor(ms / period);
  // Every call whose time has come goes out at each wake-up: a late timer (a long turn of the
  // event loop) must not slow the offered load down, or the load would adapt to the system.
  for (let i = 0; i < calls; ) {
    const now = performance.now();
    for (; i < calls && t0 + i * period <= now; i++) {
      started.set(i + 1, t0 + i * period);
      link.send({ cls: 'inference', kind: 1, streamId: i + 1, body });
    }
    if (i < calls) await sleep(t0 + i * period - performance.now());
  }
  const deadline = performance.now() + LATE_MS;
  while (started.size > 0 && performance.now() < deadline) await sleep(20);
  phase.errors += started.size;
  link.off('message', onReply);
}

/** 1 MiB messages with BULK_WINDOW in flight until `stop` resolves; MB/s acknowledged by the peer. */
async function bulkLoad(peer: Peer, stop: Promise<unknown>): Promise<number> {
  const link = peer.training;
  const body = randomBytes(BULK_BYTES);
  let inflight = 0;
  let acked = 0;
  let running = true;
  let wake: (() => void) | undefined;
  const onAck = (m: InboundMessage): void => {
    if (m.cls !== 'control' || m.kind !== BULK_ACK_KIND) return;
    inflight -= 1;
    acked += 1;
    wake?.();
  };
  link.on('message', onAck);
  void stop.then(() => {
    running = false;
    wake?.();
  });
  const t0 = performance.now();
  let ackedAtStop = 0;
  let tStop = t0;
  let seq = 0;
  while (running) {
    while (running && inflight < BULK_WINDOW) {
      inflight += 1;
      link.send({ cls: 'training', kind: 1, streamId: (seq++ % 1000) + 1, body });
    }
    await new Promise<void>((r) => {
      wake = r;
    });
    wake = undefined;
  }
  ackedAtStop = acked;
  tStop = performance.now();
  // Let what is in flight land before the next phase (bounded).
  const deadline = performance.now() + LATE_MS * 4;
  while (inflight > 0 && performance.now() < deadline) await sleep(20);
  link.off('message', onAck);
  return (ackedAtStop * BULK_BYTES) / 1e6 / ((tStop - t0) / 1000);
}

function newPhase(): Phase {
  return { latencies: [], errors: 0, bulkMBps: undefined };
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

interface KindResult {
  alone: { p50: number; p99: number; calls: number; errors: number };
  mixed: { p50: number; p99: number; calls: number; errors: number };
  bulkAloneMBps: number;
  bulkMixedMBps: number;
  bulkKept: number;
  p99Ratio: number;
  minBulkShare: number;
}

const results: Record<string, KindResult> = {};
const peers: Peer[] = [];
try {
  for (const kind of KINDS) {
    console.log(`${kind}: connecting (inference and training links on ${kind === 'rdma' ? DEVICE : HOST})`);
    const peer = await openPeer(kind);
    peers.push(peer);
    const alone = newPhase();
    const mixed = newPhase();
    const bulkAlone: number[] = [];
    const bulkMixed: number[] = [];
    let minShare = 1;
    const ms = SECONDS * 1000;
    await inferenceLoad(peer, 2000, newPhase()); // warm-up
    for (let round = 1; round <= ROUNDS; round++) {
      await inferenceLoad(peer, ms, alone);
      bulkAlone.push(await bulkLoad(peer, sleep(ms)));
      const shareProbe = setInterval(() => {
        minShare = Math.min(minShare, peer.governor.share(performance.now()));
      }, 100);
      const load = inferenceLoad(peer, ms, mixed);
      bulkMixed.push(await bulkLoad(peer, load));
      clearInterval(shareProbe);
      console.log(
        `  round ${round}: alone p99 ${pct(alone.latencies, 99).toFixed(1)} ms, with bulk p99 ${pct(mixed.latencies, 99).toFixed(1)} ms; ` +
          `bulk ${bulkAlone.at(-1)?.toFixed(2)} MB/s alone, ${bulkMixed.at(-1)?.toFixed(2)} with inference`,
      );
    }
    const a = { p50: pct(alone.latencies, 50), p99: pct(alone.latencies, 99), calls: alone.latencies.length, errors: alone.errors };
    const m = { p50: pct(mixed.latencies, 50), p99: pct(mixed.latencies, 99), calls: mixed.latencies.length, errors: mixed.errors };
    const bA = median(bulkAlone);
    const bM = median(bulkMixed);
    results[kind] = { alone: a, mixed: m, bulkAloneMBps: bA, bulkMixedMBps: bM, bulkKept: bM / bA, p99Ratio: m.p99 / a.p99, minBulkShare: minShare };
  }
} finally {
  for (const p of peers) {
    await p.inference.close('bench done').catch(() => undefined);
    await p.training.close('bench done').catch(() => undefined);
    p.child.kill('SIGTERM');
  }
}

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
console.log(
  `\nlink-level mixed: ${RATE} req/s of ${REQUEST_BYTES} B inference round trips, with and without 1 MiB bulk messages (${BULK_WINDOW} in flight), ` +
    `${SECONDS} s phases, ${ROUNDS} rounds; fair scheduler + bulk governor with the config defaults (target p99 ${SCHEDULING.latencyTargetMs} ms)`,
);
console.log(
  formatTable(
    ['transport', 'p50 alone', 'p99 alone', 'p50 +bulk', 'p99 +bulk', 'p99 ratio', 'bulk MB/s alone', 'bulk MB/s +inf', 'bulk kept', 'min share', 'errors'],
    Object.entries(results).map(([k, r]) => [
      k,
      f(r.alone.p50),
      f(r.alone.p99),
      f(r.mixed.p50),
      f(r.mixed.p99),
      f(r.p99Ratio),
      f(r.bulkAloneMBps),
      f(r.bulkMixedMBps),
      f(r.bulkKept),
      f(r.minBulkShare),
      String(r.alone.errors + r.mixed.errors),
    ]),
  ),
);
console.log(`RESULT ${JSON.stringify({ rate: RATE, requestBytes: REQUEST_BYTES, seconds: SECONDS, rounds: ROUNDS, results })}`);
