// Open-loop gRPC unary load from h2load (C, nghttp2): a client sluice did not write, costing
// little CPU. The request is a file holding the gRPC frame (5-byte prefix + message); `--rps`
// paces it; `--log-file` gives each call's start time and duration. h2load counts HTTP 200,
// not grpc-status, so a call counts as good only with status 200 and the run's response bytes
// are checked against the number of answers.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const H2LOAD = '/usr/bin/h2load';

export function h2loadAvailable(): boolean {
  return existsSync(H2LOAD);
}

export interface H2loadRun {
  /** Latency of each answered call, ms (from when h2load sent it). */
  latencies: number[];
  /** Send time of each call, ms after the first one. */
  startedAtMs: number[];
  errors: number;
}

/** Runs `rate` calls a second for `seconds` against http://address/method with body `message`. */
export async function h2loadOpenLoop(address: string, method: string, message: Buffer, rate: number, seconds: number): Promise<H2loadRun> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-h2load-'));
  try {
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    const body = path.join(dir, 'body');
    const log = path.join(dir, 'log');
    writeFileSync(body, frame);
    const n = Math.max(1, Math.round(rate * seconds));
    // One connection, up to 64 calls in flight: the pace holds while calls are slow (open loop).
    const args = ['-n', String(n), '-c', '1', '-m', '64', '--rps', String(rate), '-d', body, '-H', 'content-type: application/grpc', '-H', 'te: trailers', '--log-file', log, `http://${address}${method}`];
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(H2LOAD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', reject);
      child.once('exit', (c) => (c === 0 ? resolve(0) : reject(new Error(`h2load exited with ${c}: ${err.slice(0, 300)}`))));
    });
    void code;
    const rows = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split('\t').map(Number) as [number, number, number]);
    rows.sort((a, b) => a[0] - b[0]);
    const t0 = rows[0]?.[0] ?? 0;
    const out: H2loadRun = { latencies: [], startedAtMs: [], errors: n - rows.length };
    for (const [start, status, micros] of rows) {
      if (status !== 200) {
        out.errors++;
        continue;
      }
      out.latencies.push(micros / 1000);
      out.startedAtMs.push((start - t0) / 1000);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
