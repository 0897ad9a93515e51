// CPU per call of the egress process alone, TypeScript egress (SLUICE_ENGINE=0) against the
// native engine's egress, in the same run: a model server and a client in this process, the
// egress in its own (`sluice serve`), CALL envelopes sent over a TypeScript link with a fixed
// number in flight. The egress's CPU comes from /proc/<pid>/task/*/schedstat around the
// measured calls (warm-up excluded). Modes alternate round by round.
// Options: --quick (1 round, fewer calls; a smoke run, not a measurement).
// Knobs: SLUICE_BENCH_CALLS (measured calls per round and mode, default 20000; quick 2000),
// SLUICE_BENCH_CONCURRENCY (default 16), SLUICE_BENCH_CASE (simple | identity-16k | identity-1m).
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { ModelServer } from '../src/models/model-server.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { TcpTransport } from '../src/transport/tcp-transport.ts';
import type { InboundMessage, Link } from '../src/transport/types.ts';
import { CallMethod, encodeCallHeader, InferenceKind } from '../src/wire/inference-envelope.ts';
import { startSluice } from '../scripts/sluice-child.ts';
import { inferRequest } from './infer-request.ts';
import { cpuUs } from './process-cpu.ts';

interface Sample {
  mode: 'ts' | 'engine';
  calls: number;
  cpuUsPerCall: number;
  callsPerSecond: number;
}

async function drive(link: Link, calls: number, concurrency: number, request: Buffer, model: string): Promise<void> {
  const header = encodeCallHeader({ method: CallMethod.ModelInfer, timeoutMs: 30_000, requestId: 'bench', model, version: '' });
  let sent = 0;
  let done = 0;
  let stream = 1;
  await new Promise<void>((resolve, reject) => {
    const sendOne = (): void => {
      sent += 1;
      stream = stream >= 0x7fff_ffff ? 1 : stream + 1;
      link.send({ cls: 'inference', kind: InferenceKind.CALL, streamId: stream, body: [header, request] });
    };
    const onMessage = (m: InboundMessage): void => {
      if (m.kind !== InferenceKind.REPLY) return;
      if (m.body[1] !== 0) {
        link.off('message', onMessage);
        reject(new Error(`egress answered status ${m.body[1]}`));
        return;
      }
      done += 1;
      if (done === calls) {
        link.off('message', onMessage);
        resolve();
      } else if (sent < calls) sendOne();
    };
    link.on('message', onMessage);
    for (let i = 0; i < Math.min(concurrency, calls); i++) sendOne();
  });
}

export async function run(args: readonly string[] = []): Promise<void> {
  const quick = args.includes('--quick');
  const calls = Number(process.env.SLUICE_BENCH_CALLS ?? (quick ? 2000 : 20_000));
  const concurrency = Number(process.env.SLUICE_BENCH_CONCURRENCY ?? 16);
  const rounds = quick ? 1 : 3;
  const kind = process.env.SLUICE_BENCH_CASE ?? 'simple';
  const request = inferRequest(kind);
  const model = kind === 'simple' ? 'simple' : 'identity';
  const logger = createLogger('silent', 'bench');
  const server = new ModelServer({ host: '127.0.0.1', port: 0, models: ['simple', 'identity'], dense: { k: 1, n: 1, seed: 1, maxBatch: 1 }, maxMessageBytes: 64 << 20, maxDelayMs: 0, logger });
  const upstream = `127.0.0.1:${await server.start()}`;
  const key = randomBytes(32);
  const load = loadavg()[0]!;
  const samples: Sample[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['ts', 'engine'] as const) {
        const egress = await startSluice(
          { node: { name: `bench-egress-${mode}` }, segments: { inference: { transport: 'tcp', key: key.toString('hex'), listen: { host: '127.0.0.1', port: 0 } } }, routes: [{ model: '*', upstreams: [{ address: upstream }] }] },
          { name: `egress-${mode}`, env: { SLUICE_ENGINE: mode === 'engine' ? '1' : '0' } },
        );
        try {
          const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
          const link = await new TcpTransport().connect({ segment: 'inference', host, port: Number(port), segmentKey: key });
          try {
            await drive(link, Math.max(200, calls / 4), concurrency, request, model); // warm-up
            const pid = egress.child.pid!;
            const cpu0 = cpuUs(pid);
            const t0 = performance.now();
            await drive(link, calls, concurrency, request, model);
            const seconds = (performance.now() - t0) / 1000;
            const cpu = cpuUs(pid) - cpu0;
            samples.push({ mode, calls, cpuUsPerCall: cpu / calls, callsPerSecond: calls / seconds });
            console.log(`round ${r + 1} ${mode.padEnd(6)} ${(cpu / calls).toFixed(1).padStart(7)} us CPU per call, ${(calls / seconds).toFixed(0)} calls/s`);
          } finally {
            await link.close();
          }
        } finally {
          await egress.stop();
        }
      }
    }
  } finally {
    await server.stop(0);
  }
  const med = (mode: string): number => {
    const v = samples.filter((s) => s.mode === mode).map((s) => s.cpuUsPerCall).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)]!;
  };
  console.log(
    `egress CPU per call (${kind}, ${concurrency} in flight, load average ${load.toFixed(1)} at the start${quick ? ', --quick: a smoke run' : ''}): ` +
      `TypeScript ${med('ts').toFixed(1)} us, engine ${med('engine').toFixed(1)} us (${(med('ts') / med('engine')).toFixed(2)}x less)`,
  );
}
