// TCP transport throughput for 1 MiB messages: encrypted (AES-256-GCM), framing only (a
// bench-only null AEAD), and a plain node:net socket pair moving the same bytes, in the same
// run. The receiver runs in its own process. Prints a table with ratios to the plain pair and
// writes bench/results/transport-tcp.json.
// Knobs: SLUICE_BENCH_MESSAGES (default 512), SLUICE_BENCH_RUNS (default 5).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { Link } from '../src/transport/types.ts';
import { benchOnlyNullAeadFactory } from './null-aead.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const MESSAGE_BYTES = 1024 * 1024;
const MESSAGES = Number(process.env.SLUICE_BENCH_MESSAGES ?? 512);
const RUNS = Number(process.env.SLUICE_BENCH_RUNS ?? 5);

type Mode = 'plain' | 'null' | 'aes';

async function startPeer(mode: Mode, key: Buffer): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...(process.env.SLUICE_BENCH_PEER_FLAGS ?? '').split(' ').filter(Boolean), '--import', 'tsx', path.join(here, 'transport-tcp-peer.ts'), mode, key.toString('hex'), String(MESSAGES), String(MESSAGE_BYTES)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function runPlain(port: number, body: Buffer): Promise<number[]> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  const times: number[] = [];
  for (let r = 0; r <= RUNS; r++) {
    const ack = once(socket, 'data');
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < MESSAGES; i++) {
      if (!socket.write(body)) await once(socket, 'drain');
    }
    await ack;
    if (r > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e9); // run 0 warms up
  }
  socket.destroy();
  return times;
}

async function runLink(link: Link, body: Buffer): Promise<number[]> {
  const times: number[] = [];
  for (let r = 0; r <= RUNS; r++) {
    const ack = once(link, 'message');
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < MESSAGES; i++) {
      if (!link.send({ cls: 'training', kind: 1, streamId: 1, body })) await once(link, 'drain');
    }
    await ack;
    if (r > 0) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  await link.close('bench done');
  return times;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export async function run(): Promise<void> {
  const key = randomBytes(32);
  const body = randomBytes(MESSAGE_BYTES);
  const bytes = MESSAGES * MESSAGE_BYTES;
  const results: Record<Mode, { seconds: number[]; mbps: number }> = {} as never;
  const modes = (process.env.SLUICE_BENCH_MODES ?? 'plain,null,aes').split(',') as Mode[];
  for (const mode of modes) {
    const { child, port } = await startPeer(mode, key);
    try {
      let seconds: number[];
      if (mode === 'plain') seconds = await runPlain(port, body);
      else {
        const transport = new TcpTransport(mode === 'null' ? { aeadFactory: benchOnlyNullAeadFactory } : {});
        seconds = await runLink(await transport.connect({ segment: 'training', host: '127.0.0.1', port, segmentKey: key }), body);
      }
      results[mode] = { seconds, mbps: bytes / median(seconds) / 1e6 };
    } finally {
      child.kill('SIGTERM');
    }
  }
  if (modes.length < 3) {
    console.log(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.mbps.toFixed(0)])));
    return;
  }
  const plain = results.plain.mbps;
  const rows = [
    ['node:net socket pair (plain)', results.plain.mbps, 1],
    ['sluice tcp, no encryption (bench-only null AEAD)', results.null.mbps, results.null.mbps / plain],
    ['sluice tcp, AES-256-GCM', results.aes.mbps, results.aes.mbps / plain],
  ] as const;
  console.log(`\nTCP transport, ${MESSAGES} x 1 MiB messages per run, median of ${RUNS} runs, receiver in its own process`);
  console.log(`${'path'.padEnd(50)} ${'MB/s'.padStart(8)} ${'vs plain'.padStart(9)}`);
  for (const [name, mbps, ratio] of rows) console.log(`${name.padEnd(50)} ${mbps.toFixed(0).padStart(8)} ${ratio.toFixed(2).padStart(9)}`);
  const target = results.aes.mbps / plain;
  console.log(`target: encrypted >= 0.60 of plain: ${target >= 0.6 ? 'met' : 'NOT met'} (${target.toFixed(2)})`);
  mkdirSync(path.join(here, 'results'), { recursive: true });
  writeFileSync(
    path.join(here, 'results', 'transport-tcp.json'),
    `${JSON.stringify({ suite: 'transport-tcp', date: new Date().toISOString(), node: process.version, messageBytes: MESSAGE_BYTES, messages: MESSAGES, runs: RUNS, results, ratios: { null: results.null.mbps / plain, aes: target } }, null, 2)}\n`,
  );
}
