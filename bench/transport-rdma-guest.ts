// Runs inside the soft-RoCE guest (bench/rdma.ts boots it: npm run bench -- rdma): the RDMA
// transport's throughput for 1 MiB messages, with and without encryption, as a ratio to
// perftest's ib_write_bw on the same rxe device in the same boot (ib_send_bw too: sluice moves
// frames with SEND), and the TCP transport in the same guest. Emulated (TCG) figures on a shared
// machine: the load changes under us, so the measurements are interleaved in rounds (each round
// runs every path once, links stay open between rounds) and each path's median is compared.
// Prints progress and a table, then one line "RESULT {json}" for the host side.
// Knobs: SLUICE_BENCH_MESSAGES (1 MiB messages per measurement, default 32),
// SLUICE_BENCH_ROUNDS (default 3).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { listRdmaDevices } from '../src/transport/rdma/devices.ts';
import { RdmaTransport } from '../src/transport/rdma-transport.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { Link, TransportOptions } from '../src/transport/types.ts';
import { benchOnlyNullAeadFactory } from './null-aead.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const MESSAGE_BYTES = 1024 * 1024;
const MESSAGES = Number(process.env.SLUICE_BENCH_MESSAGES ?? 32);
const ROUNDS = Number(process.env.SLUICE_BENCH_ROUNDS ?? 3);
const HOST = '10.0.2.15'; // eth0, where rxe0 sits
const DEVICE = 'rxe0';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The GID sluice's queue pairs use on rxe0 (RoCE v2, IPv4-mapped HOST), so perftest runs over the same one. */
function gidIndex(): number {
  const dev = listRdmaDevices().devices.find((d) => d.name === DEVICE);
  const gid = dev?.ports[0]?.gids.find((g) => g.gid === `::ffff:${HOST}` && g.type === 'RoCE v2');
  if (gid === undefined) throw new Error(`${DEVICE} has no RoCE v2 GID for ${HOST}: ${JSON.stringify(dev)}`);
  return gid.index;
}

/** BW average [Gb/s] of perftest's result row for 1 MiB messages, as MB/s (10^6), or undefined. */
function perftestMbps(out: string): number | undefined {
  const row = out.split('\n').find((l) => /^\s*1048576\s+\d+/.test(l));
  if (row === undefined) return undefined;
  const gbits = Number(row.trim().split(/\s+/)[3]);
  return Number.isFinite(gbits) && gbits > 0 ? (gbits * 1e9) / 8 / 1e6 : undefined;
}

/**
 * perftest (ib_write_bw / ib_send_bw) on rxe0 against itself, MESSAGES x 1 MiB. For WRITE the
 * initiator's figure counts; for SEND the receiver's (the sender's ends before the data lands).
 */
async function perftest(tool: 'ib_write_bw' | 'ib_send_bw', gid: number): Promise<number> {
  const args = ['-d', DEVICE, '-x', String(gid), '-s', String(MESSAGE_BYTES), '-n', String(MESSAGES), '-F', '--report_gbits'];
  const server = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let serverOut = '';
  server.stdout.on('data', (d: Buffer) => {
    serverOut += d.toString();
  });
  server.stderr.resume();
  const serverDone = once(server, 'exit');
  try {
    // The server listens on TCP 18515 for the exchange; retry the client until it is up.
    for (let attempt = 0; attempt < 50; attempt += 1) {
      await new Promise((r) => setTimeout(r, 300));
      const c = spawnSync(tool, [...args, HOST], { encoding: 'utf8', timeout: 300_000 });
      if (c.status === 0) {
        if (tool === 'ib_write_bw') {
          const mbps = perftestMbps(c.stdout);
          if (mbps !== undefined) return mbps;
          throw new Error(`${tool}: no result row in:\n${c.stdout}`);
        }
        await Promise.race([serverDone, new Promise((r) => setTimeout(r, 60_000))]);
        const mbps = perftestMbps(serverOut);
        if (mbps !== undefined) return mbps;
        throw new Error(`${tool}: no result row from the server in:\n${serverOut}`);
      }
      if (!/Couldn't connect|Unable to/.test(c.stderr + c.stdout)) throw new Error(`${tool} failed: ${c.stderr || c.stdout}`);
    }
    throw new Error(`${tool}: could not reach its server`);
  } finally {
    server.kill('SIGKILL');
  }
}

async function startPeer(kind: 'rdma' | 'tcp', mode: 'null' | 'aes', key: Buffer): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(here, 'transport-rdma-peer.ts'), kind, mode, HOST, key.toString('hex'), String(MESSAGES), String(MESSAGE_BYTES)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

/** MESSAGES x 1 MiB over the link until the peer acknowledges all of them: MB/s. */
async function timedRun(link: Link, body: Buffer): Promise<number> {
  const ack = once(link, 'message');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < MESSAGES; i++) {
    if (!link.send({ cls: 'training', kind: 1, streamId: 1, body })) await once(link, 'drain');
  }
  await ack;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return (MESSAGES * MESSAGE_BYTES) / seconds / 1e6;
}

interface SluicePath {
  name: string;
  link: Link;
  child: ChildProcess;
}

async function openPath(name: string, kind: 'rdma' | 'tcp', mode: 'null' | 'aes'): Promise<SluicePath> {
  const key = randomBytes(32);
  const { child, port } = await startPeer(kind, mode, key);
  const opts: TransportOptions = mode === 'null' ? { aeadFactory: benchOnlyNullAeadFactory } : {};
  const transport = kind === 'rdma' ? new RdmaTransport(opts) : new TcpTransport(opts);
  const link = await transport.connect({ segment: 'training', host: HOST, port, segmentKey: key, timeoutMs: 120_000 });
  return { name, link, child };
}

const body = randomBytes(MESSAGE_BYTES);
const gid = gidIndex();
const paths: SluicePath[] = [];
const samples = new Map<string, number[]>();
const record = (name: string, mbps: number): void => {
  samples.set(name, [...(samples.get(name) ?? []), mbps]);
  console.log(`  ${name}: ${mbps.toFixed(2)} MB/s`);
};
try {
  paths.push(await openPath('rdmaNull', 'rdma', 'null'));
  paths.push(await openPath('rdmaAes', 'rdma', 'aes'));
  paths.push(await openPath('tcpNull', 'tcp', 'null'));
  paths.push(await openPath('tcpAes', 'tcp', 'aes'));
  for (const p of paths) await timedRun(p.link, body); // warm-up
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`round ${round} of ${ROUNDS}`);
    record('ibWriteBw', await perftest('ib_write_bw', gid));
    record('ibSendBw', await perftest('ib_send_bw', gid));
    for (const p of paths) record(p.name, await timedRun(p.link, body));
  }
} finally {
  for (const p of paths) {
    await p.link.close('bench done').catch(() => undefined);
    p.child.kill('SIGTERM');
  }
}

const mbps = Object.fromEntries([...samples].map(([k, v]) => [k, median(v)])) as Record<
  'ibWriteBw' | 'ibSendBw' | 'rdmaNull' | 'rdmaAes' | 'tcpNull' | 'tcpAes',
  number
>;
const rows: [string, number][] = [
  ['ib_write_bw (perftest, RDMA WRITE)', mbps.ibWriteBw],
  ['ib_send_bw (perftest, SEND)', mbps.ibSendBw],
  ['sluice rdma, no encryption (bench-only null AEAD)', mbps.rdmaNull],
  ['sluice rdma, AES-256-GCM', mbps.rdmaAes],
  ['sluice tcp, no encryption (same guest)', mbps.tcpNull],
  ['sluice tcp, AES-256-GCM (same guest)', mbps.tcpAes],
];
console.log(
  `\nRDMA transport on ${DEVICE} (soft-RoCE, emulated guest), 1 MiB messages, ${MESSAGES} per measurement, median of ${ROUNDS} interleaved rounds, receiver in its own process`,
);
console.log(`${'path'.padEnd(52)} ${'MB/s'.padStart(8)} ${'vs ib_write_bw'.padStart(15)}`);
for (const [name, v] of rows) console.log(`${name.padEnd(52)} ${v.toFixed(2).padStart(8)} ${(v / mbps.ibWriteBw).toFixed(2).padStart(15)}`);
const ratio = mbps.rdmaNull / mbps.ibWriteBw;
console.log(`target: sluice rdma without encryption >= 0.80 of ib_write_bw: ${ratio >= 0.8 ? 'met' : 'NOT met'} (${ratio.toFixed(2)})`);
const result = {
  suite: 'transport-rdma',
  date: new Date().toISOString(),
  node: process.version,
  device: DEVICE,
  messageBytes: MESSAGE_BYTES,
  messages: MESSAGES,
  rounds: ROUNDS,
  samples: Object.fromEntries(samples),
  mbps,
  ratios: {
    rdmaNullVsWriteBw: ratio,
    rdmaAesVsWriteBw: mbps.rdmaAes / mbps.ibWriteBw,
    rdmaNullVsSendBw: mbps.rdmaNull / mbps.ibSendBw,
    tcpNullVsWriteBw: mbps.tcpNull / mbps.ibWriteBw,
    tcpAesVsWriteBw: mbps.tcpAes / mbps.ibWriteBw,
  },
};
console.log(`RESULT ${JSON.stringify(result)}`);
