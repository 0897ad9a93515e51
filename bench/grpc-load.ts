// Load for one gRPC unary method with a pre-serialized request (the client does no encoding,
// so every path is charged only for what happens after the bytes leave the client):
//  - closedLoop: `concurrency` calls always in flight for a while -> requests per second
//  - openLoop: calls started at a fixed rate whatever the answers do, latency measured from
//    each call's scheduled start (no coordinated omission) -> p50 / p99
//  - pairedLoop: one call at a time to each of several servers in turn (rotating order), so
//    every server sees the same background load; for comparing p50s on a shared machine
import * as grpc from '@grpc/grpc-js';

const identity = (b: Buffer): Buffer => b;

export interface RawGrpcClientOptions {
  credentials?: grpc.ChannelCredentials;
  /** Sent with every call (e.g. authorization). */
  metadata?: Record<string, string>;
}

export class RawGrpcClient {
  private readonly client: grpc.Client;
  private readonly metadata: grpc.Metadata;

  constructor(address: string, opts: RawGrpcClientOptions = {}) {
    this.client = new grpc.Client(address, opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 256 << 20,
      'grpc.max_send_message_length': 256 << 20,
    });
    this.metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) this.metadata.set(k, v);
  }

  /** `extra`: metadata for this call only (e.g. its own x-request-id). */
  call(path: string, body: Buffer, timeoutMs = 30_000, extra?: Record<string, string>): Promise<Buffer> {
    let md = this.metadata;
    if (extra !== undefined) {
      md = this.metadata.clone();
      for (const [k, v] of Object.entries(extra)) md.set(k, v);
    }
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(path, identity, identity, body, md, { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(err) : resolve(res!),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

export async function closedLoop(
  client: RawGrpcClient,
  path: string,
  body: Buffer,
  concurrency: number,
  durationMs: number,
): Promise<{ perSecond: number; calls: number }> {
  const until = performance.now() + durationMs;
  let calls = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < until) {
      await client.call(path, body);
      calls++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { perSecond: calls / ((performance.now() - t0) / 1000), calls };
}

export interface LatencyResult {
  rate: number;
  sent: number;
  errors: number;
  p50: number;
  p99: number;
  p999: number;
  mean: number;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export function summarize(latencies: readonly number[], rate: number, errors: number): LatencyResult {
  const s = [...latencies].sort((a, b) => a - b);
  return { rate, sent: s.length + errors, errors, p50: percentile(s, 0.5), p99: percentile(s, 0.99), p999: percentile(s, 0.999), mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length) };
}

/** Starts calls at `rate` per second for `durationMs`; latencies are from each scheduled start. */
export async function openLoop(
  client: RawGrpcClient,
  path: string,
  body: Buffer,
  rate: number,
  durationMs: number,
  /** Deadline of each call (an overloaded path then fails calls instead of stretching the run). */
  timeoutMs = 30_000,
): Promise<{ latencies: number[]; scheduledAtMs: number[]; errors: number; errorCodes: Record<string, number>; errorExamples: Record<string, string> }> {
  const n = Math.max(1, Math.round((rate * durationMs) / 1000));
  const interval = 1000 / rate;
  const latencies: number[] = [];
  /** When each answered call was due, ms from the start of the run (same order as latencies). */
  const scheduledAtMs: number[] = [];
  let errors = 0;
  const errorCodes: Record<string, number> = {};
  /** The first message seen per status, to tell a timeout from a bug. */
  const errorExamples: Record<string, string> = {};
  const pending: Promise<void>[] = [];
  const start = performance.now() + 5;
  for (let i = 0; i < n; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait - 0.5));
    pending.push(
      client.call(path, body, timeoutMs).then(
        () => {
          latencies.push(performance.now() - due);
          scheduledAtMs.push(due - start);
        },
        (err: { code?: number; details?: string; message?: string }) => {
          errors++;
          const name = typeof err.code === 'number' ? (grpc.status[err.code] ?? String(err.code)) : 'OTHER';
          errorCodes[name] = (errorCodes[name] ?? 0) + 1;
          errorExamples[name] ??= (err.details ?? err.message ?? '').slice(0, 200);
        },
      ),
    );
  }
  await Promise.all(pending);
  return { latencies, scheduledAtMs, errors, errorCodes, errorExamples };
}

/**
 * One call at a time, to each client in turn, `iterations` times; the starting client rotates
 * so none always follows another. Background load on a shared machine then falls on every
 * client alike, which is what a comparison of their medians needs. Latencies per client.
 */
export async function pairedLoop(clients: readonly RawGrpcClient[], path: string, body: Buffer, iterations: number): Promise<{ latencies: number[][]; errors: number[] }> {
  const latencies = clients.map((): number[] => []);
  const errors = clients.map(() => 0);
  for (let it = 0; it < iterations; it++) {
    for (let k = 0; k < clients.length; k++) {
      const i = (it + k) % clients.length;
      const t0 = performance.now();
      try {
        await clients[i]!.call(path, body);
        latencies[i]!.push(performance.now() - t0);
      } catch {
        errors[i]!++;
      }
    }
  }
  return { latencies, errors };
}
