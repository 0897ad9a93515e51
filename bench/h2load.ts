// h2load (nghttp2's load generator, a C client sluice did not write) driving gRPC unary calls:
// one body file holding the 5-byte gRPC prefix and the serialized request, posted with the gRPC
// headers. h2load counts HTTP statuses, not grpc-status, so every run is also checked by the
// bytes it received: calls x the size of a good answer (checked once beforehand).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const H2LOAD = '/usr/bin/h2load';

export function h2loadAvailable(): boolean {
  return spawnSync(H2LOAD, ['--version']).status === 0;
}

export interface H2loadRun {
  /** Calls h2load reports done with HTTP 2xx. */
  ok: number;
  /** Calls failed or answered with another status. */
  failed: number;
  /** Requests per second h2load measured over the run. */
  reqPerSec: number;
  /** Per-call durations (ms) from --log-file, in completion order. */
  latenciesMs: number[];
  /** When each of those calls was sent, ms after the run's first call (same order). */
  startedAtMs: number[];
  /** Response body bytes received ("data" in h2load's traffic line). */
  dataBytes: number;
  /** Wall time of the run (ms). */
  wallMs: number;
}

export interface H2loadOptions {
  /** host:port of an h2c gRPC endpoint. */
  address: string;
  /** gRPC method path, e.g. /inference.GRPCInferenceService/ModelInfer. */
  method: string;
  /** Serialized request message (without the gRPC prefix). */
  request: Buffer;
  calls: number;
  clients?: number;
  /** Streams in flight per client. */
  streams?: number;
  /** Open loop: requests per second per client (h2load --rps). */
  rpsPerClient?: number;
  /** Extra request headers, "name: value". */
  headers?: readonly string[];
  timeoutMs?: number;
}

/** A body file for h2load: gRPC length prefix + message. Caller removes `dir`. */
function writeBody(request: Buffer): { dir: string; file: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-h2load-'));
  const file = path.join(dir, 'body.bin');
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(request.length, 1);
  writeFileSync(file, Buffer.concat([prefix, request]));
  return { dir, file };
}

const SIZE_UNITS: Record<string, number> = { '': 1, B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };

/** "data 12.34MB" style sizes from h2load's traffic line. */
function parseSize(s: string): number {
  const m = /^([\d.]+)([KMG]?B?)$/.exec(s);
  if (m === null) return Number.NaN;
  return Number(m[1]) * (SIZE_UNITS[m[2]!] ?? Number.NaN);
}

export function parseH2loadOutput(out: string): Omit<H2loadRun, 'latenciesMs' | 'startedAtMs' | 'wallMs'> {
  const reqs = /finished in [^,]+, ([\d.]+) req\/s/.exec(out);
  const st = /requests: (\d+) total, /.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  // traffic: 1.23MB (1289741) total, 12.34KB (12634) headers (space savings 90.00%), 1.20MB (1258000) data
  const data = /headers \(space savings [^)]*\), [\d.]+[KMG]?B \((\d+)\) data/.exec(out) ?? /, ([\d.]+[KMG]?B) data/.exec(out);
  if (reqs === null || st === null || codes === null || data === null) throw new Error(`unexpected h2load output:\n${out}`);
  const ok = Number(codes[1]);
  // Every request not answered with HTTP 2xx: not done, failed, errored or another status.
  const failed = Number(st[1]) - ok;
  const dataBytes = /^\d+$/.test(data[1]!) ? Number(data[1]) : parseSize(data[1]!);
  return { ok, failed, reqPerSec: Number(reqs[1]), dataBytes };
}

/** Runs h2load once; rejects when h2load fails to run, resolves with what it measured. */
export async function runH2load(o: H2loadOptions): Promise<H2loadRun> {
  const { dir, file } = writeBody(o.request);
  const log = path.join(dir, 'log.tsv');
  const clients = o.clients ?? 1;
  const args = [
    `http://${o.address}${o.method}`,
    '-n', String(o.calls), '-c', String(clients), '-m', String(o.streams ?? 1),
    '-d', file, '--log-file', log,
    '-H', 'content-type: application/grpc', '-H', 'te: trailers',
    // Windows big enough for 1 MiB messages both ways without stalls.
    '-w', '30', '-W', '30',
    ...(o.rpsPerClient !== undefined ? ['--rps', String(o.rpsPerClient)] : []),
    ...(o.headers ?? []).flatMap((h) => ['-H', h]),
  ];
  const started = performance.now();
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(H2LOAD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 300_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(text);
        else reject(new Error(`h2load exited ${code}: ${text.slice(-2000)}`));
      });
    });
    const wallMs = performance.now() - started;
    const parsed = parseH2loadOutput(out);
    // log columns: start (us since epoch), HTTP status, duration (us)
    const latenciesMs: number[] = [];
    const startsUs: number[] = [];
    for (const line of readFileSync(log, 'utf8').split('\n')) {
      const cols = line.split('\t');
      if (cols.length < 3) continue;
      if (cols[1] !== '200') continue;
      latenciesMs.push(Number(cols[2]) / 1000);
      startsUs.push(Number(cols[0]));
    }
    const firstUs = startsUs.reduce((a, b) => Math.min(a, b), Infinity);
    return { ...parsed, latenciesMs, startedAtMs: startsUs.map((t) => (t - firstUs) / 1000), wallMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
