// TCP transport throughput for 1 MiB messages: encrypted (AES-256-GCM), framing only (a
// bench-only null AEAD), and a plain node:net socket pair moving the same bytes, in the same
// run. Each receiver runs in its own process. The modes take turns run by run, so a change
// in machine load hits them alike; medians are reported, with the CPU time each end spent
// per GiB (a figure that load on a shared machine disturbs much less than MB/s). Each round
// also times AES-256-GCM alone (seal, then open, of the same bytes in training-sized frames,
// in this process): the CPU the cipher needs per GiB on each end, whatever the framing costs,
// which, added to the plain pair's own CPU, shows what the cipher alone leaves of the ratio.
// Prints a table with ratios to the plain pair and writes bench/results/transport-tcp.json.
// Knobs: SLUICE_BENCH_MESSAGES (per run, default 512), SLUICE_BENCH_RUNS (default 7),
// SLUICE_BENCH_FRAME_BYTES, SLUICE_BENCH_SEAL_AHEAD, SLUICE_BENCH_RECEIVE_BUFFER
// (bench/link-tuning-env.ts);
// --quick: 128 messages, 3 runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { defaultAeadFactory, defaultAeadName } from '../src/crypto/aead-factory.ts';
import { TAG_BYTES } from '../src/crypto/aead.ts';
import { DEFAULT_FRAME_BYTES } from '../src/transport/link-tuning.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link } from '../src/transport/types.ts';
import { benchLinkTuning } from './link-tuning-env.ts';
import { benchOnlyNullAeadFactory } from './null-aead.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const MESSAGE_BYTES = 1024 * 1024;
let MESSAGES = Number(process.env.SLUICE_BENCH_MESSAGES ?? 512);
let RUNS = Number(process.env.SLUICE_BENCH_RUNS ?? 7);
const GiB = 1024 ** 3;

type Mode = 'plain' | 'null' | 'aes';
const MODES: readonly Mode[] = ['plain', 'null', 'aes'];
const LABELS: Record<Mode, string> = {
  plain: 'node:net socket pair (plain)',
  null: 'sluice tcp, no encryption (bench-only null AEAD)',
  aes: `sluice tcp, AES-256-GCM (${defaultAeadName()})`,
};

interface Sample {
  seconds: number;
  senderCpu: number;
  receiverCpu: number;
}

/** One run: sends MESSAGES x 1 MiB, resolves when the receiver has them all. */
type RunOnce = () => Promise<Sample>;

interface Driver {
  run: RunOnce;
  stop(): Promise<void>;
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function startPeer(mode: Mode, key: Buffer): Promise<{ child: ChildProcess; port: number }> {
  const flags = (process.env.SLUICE_BENCH_PEER_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', path.join(here, 'transport-tcp-peer.ts'), mode, key.toString('hex'), String(MESSAGES * MESSAGE_BYTES)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  lines.close();
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function plainDriver(port: number, body: Buffer): Promise<Driver> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const acks = createInterface({ input: socket });
  const next = (): Promise<number> => once(acks, 'line').then(([l]) => (JSON.parse(l as string) as { cpu: number }).cpu / 1e6);
  let lastPeerCpu = 0;
  return {
    async run() {
      const ack = next();
      const cpu0 = cpuSeconds();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < MESSAGES; i++) {
        if (!socket.write(body)) await once(socket, 'drain');
      }
      const peerCpu = await ack;
      const sample = { seconds: Number(process.hrtime.bigint() - t0) / 1e9, senderCpu: cpuSeconds() - cpu0, receiverCpu: peerCpu - lastPeerCpu };
      lastPeerCpu = peerCpu;
      return sample;
    },
    async stop() {
      socket.destroy();
    },
  };
}

async function linkDriver(link: Link, body: Buffer): Promise<Driver> {
  let lastPeerCpu = 0;
  return {
    async run() {
      const ack = once(link, 'message').then(([m]) => (JSON.parse((m as InboundMessage).body.toString()) as { cpu: number }).cpu / 1e6);
      const cpu0 = cpuSeconds();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < MESSAGES; i++) {
        if (!link.send({ cls: 'training', kind: 1, streamId: 1, body })) await once(link, 'drain');
      }
      const peerCpu = await ack;
      const sample = { seconds: Number(process.hrtime.bigint() - t0) / 1e9, senderCpu: cpuSeconds() - cpu0, receiverCpu: peerCpu - lastPeerCpu };
      lastPeerCpu = peerCpu;
      return sample;
    },
    async stop() {
      await link.close('bench done');
    },
  };
}

interface CipherSample {
  sealCpu: number;
  openCpu: number;
}

/** CPU seconds to seal, then open, `body` MESSAGES times in frames of `frameBytes` (the cipher alone). */
function cipherOnly(body: Buffer, frameBytes: number): CipherSample {
  const aead = defaultAeadFactory()(randomBytes(32));
  const nonce = Buffer.alloc(12);
  const aad = randomBytes(52);
  const frames = Math.ceil(body.byteLength / frameBytes);
  const sealed = Array.from({ length: frames }, (_, i) => Buffer.allocUnsafe(Math.min(frameBytes, body.byteLength - i * frameBytes) + TAG_BYTES));
  const opened = Buffer.allocUnsafe(body.byteLength);
  try {
    const t0 = cpuSeconds();
    for (let m = 0; m < MESSAGES; m++) {
      for (let i = 0; i < frames; i++) {
        nonce.writeUInt32BE(m * frames + i, 8); // distinct nonces, as on a link
        aead.seal(nonce, aad, body.subarray(i * frameBytes, (i + 1) * frameBytes), sealed[i] as Buffer);
      }
    }
    const t1 = cpuSeconds();
    for (let m = 0; m < MESSAGES; m++) {
      for (let i = 0; i < frames; i++) {
        nonce.writeUInt32BE((MESSAGES - 1) * frames + i, 8);
        if (!aead.open(nonce, aad, sealed[i] as Buffer, opened.subarray(i * frameBytes, (i + 1) * frameBytes))) throw new Error('cipher-only round did not authenticate');
      }
    }
    return { sealCpu: t1 - t0, openCpu: cpuSeconds() - t1 };
  } finally {
    aead.destroy();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export async function run(args: readonly string[] = []): Promise<void> {
  if (args.includes('--quick')) {
    MESSAGES = 128;
    RUNS = 3;
  }
  const key = randomBytes(32);
  const body = randomBytes(MESSAGE_BYTES);
  const bytes = MESSAGES * MESSAGE_BYTES;
  const children: ChildProcess[] = [];
  const drivers = {} as Record<Mode, Driver>;
  const samples = { plain: [], null: [], aes: [] } as Record<Mode, Sample[]>;
  const cipherSamples: CipherSample[] = [];
  const frameBytes = benchLinkTuning().frameBytes?.training ?? DEFAULT_FRAME_BYTES.training;
  try {
    for (const mode of MODES) {
      const { child, port } = await startPeer(mode, key);
      children.push(child);
      if (mode === 'plain') drivers[mode] = await plainDriver(port, body);
      else {
        const transport = new TcpTransport({ ...(mode === 'null' ? { aeadFactory: benchOnlyNullAeadFactory } : {}), link: benchLinkTuning() });
        drivers[mode] = await linkDriver(await transport.connect({ segment: 'training', host: '127.0.0.1', port, segmentKey: key }), body);
      }
    }
    for (let r = 0; r <= RUNS; r++) {
      for (const mode of MODES) {
        const sample = await drivers[mode].run();
        if (r > 0) samples[mode].push(sample); // run 0 warms up
      }
      const cipher = cipherOnly(body, frameBytes);
      if (r > 0) cipherSamples.push(cipher);
    }
    for (const mode of MODES) await drivers[mode].stop();
  } finally {
    for (const c of children) c.kill('SIGTERM');
  }

  const summary = Object.fromEntries(
    MODES.map((mode) => {
      const s = samples[mode];
      return [
        mode,
        {
          mbps: bytes / median(s.map((x) => x.seconds)) / 1e6,
          senderCpuSecondsPerGiB: (median(s.map((x) => x.senderCpu)) * GiB) / bytes,
          receiverCpuSecondsPerGiB: (median(s.map((x) => x.receiverCpu)) * GiB) / bytes,
          samples: s,
        },
      ];
    }),
  ) as Record<Mode, { mbps: number; senderCpuSecondsPerGiB: number; receiverCpuSecondsPerGiB: number; samples: Sample[] }>;
  const plain = summary.plain.mbps;
  console.log(`\nTCP transport: ${MESSAGES} x 1 MiB messages per run, median of ${RUNS} runs per mode (modes interleaved), receivers in their own processes`);
  console.log(`load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} CPUs (a busy machine lowers every figure)`);
  // With each end on its own idle core, the busier end sets the pace: 1 / max(CPU s/GiB).
  // Unlike MB/s, this hardly moves with the load other processes put on a shared machine.
  const ceiling = (mode: Mode): number => GiB / Math.max(summary[mode].senderCpuSecondsPerGiB, summary[mode].receiverCpuSecondsPerGiB) / 1e6;
  console.log(
    `${'path'.padEnd(58)} ${'MB/s'.padStart(7)} ${'vs plain'.padStart(9)} ${'send CPU s/GiB'.padStart(15)} ${'recv CPU s/GiB'.padStart(15)} ${'CPU-bound MB/s'.padStart(15)} ${'vs plain'.padStart(9)}`,
  );
  for (const mode of MODES) {
    const m = summary[mode];
    console.log(
      `${LABELS[mode].padEnd(58)} ${m.mbps.toFixed(0).padStart(7)} ${(m.mbps / plain).toFixed(2).padStart(9)} ${m.senderCpuSecondsPerGiB.toFixed(2).padStart(15)} ${m.receiverCpuSecondsPerGiB.toFixed(2).padStart(15)} ${ceiling(mode).toFixed(0).padStart(15)} ${(ceiling(mode) / ceiling('plain')).toFixed(2).padStart(9)}`,
    );
  }
  // The cipher alone, per GiB: what AES-256-GCM adds to each end. Added to the plain pair's own
  // CPU it gives the ratio an encrypted path would reach if its framing and I/O cost no more
  // than the plain pair's (an end can do better only by doing its I/O more cheaply than node:net).
  const sealPerGiB = (median(cipherSamples.map((c) => c.sealCpu)) * GiB) / bytes;
  const openPerGiB = (median(cipherSamples.map((c) => c.openCpu)) * GiB) / bytes;
  const p = summary.plain;
  // Busy machine (CPU shared with other work): throughput follows the total CPU per GiB.
  const boundShared = (p.senderCpuSecondsPerGiB + p.receiverCpuSecondsPerGiB) / (p.senderCpuSecondsPerGiB + p.receiverCpuSecondsPerGiB + sealPerGiB + openPerGiB);
  // Each end on its own idle core: the busier end sets the pace.
  const boundOwnCores = Math.max(p.senderCpuSecondsPerGiB, p.receiverCpuSecondsPerGiB) / Math.max(p.senderCpuSecondsPerGiB + sealPerGiB, p.receiverCpuSecondsPerGiB + openPerGiB);
  console.log(
    `AES-256-GCM alone, ${frameBytes / 1024} KiB frames: seal ${sealPerGiB.toFixed(2)} + open ${openPerGiB.toFixed(2)} CPU s/GiB (${(GiB / sealPerGiB / 1e9).toFixed(2)} / ${(GiB / openPerGiB / 1e9).toFixed(2)} GB/s per core)`,
  );
  console.log(
    `plain pair's CPU + the cipher's, framing free: ${boundShared.toFixed(2)} x plain on a busy machine (total CPU decides), ${boundOwnCores.toFixed(2)} x with each end on its own idle core (busier end decides)`,
  );
  const ratio = summary.aes.mbps / plain;
  const ceilingRatio = ceiling('aes') / ceiling('plain');
  console.log(
    `target: encrypted >= 0.60 x plain (measured MB/s): ${ratio.toFixed(2)}, ${ratio >= 0.6 ? 'met' : 'NOT met'} (estimate from CPU per GiB with each end on its own idle core: ${ceilingRatio.toFixed(2)})`,
  );
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(
    path.join(here, 'results', 'transport-tcp.json'),
    `${JSON.stringify(
      {
        suite: 'transport-tcp',
        date: new Date().toISOString(),
        node: process.version,
        aead: defaultAeadName(),
        loadavg: os.loadavg(),
        messageBytes: MESSAGE_BYTES,
        messagesPerRun: MESSAGES,
        runs: RUNS,
        results: summary,
        ratios: { null: summary.null.mbps / plain, aes: ratio },
        cpuBoundMbps: { plain: ceiling('plain'), null: ceiling('null'), aes: ceiling('aes') },
        cpuBoundRatios: { null: ceiling('null') / ceiling('plain'), aes: ceilingRatio },
        cipherOnly: { frameBytes, sealCpuSecondsPerGiB: sealPerGiB, openCpuSecondsPerGiB: openPerGiB, samples: cipherSamples },
        aesCeilingRatios: { busyMachine: boundShared, ownCores: boundOwnCores },
      },
      null,
      2,
    )}\n`,
  );
}
