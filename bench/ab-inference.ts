// A/B of two sluice pairs behind one reference model server, for changes smaller than the
// run-to-run spread of the shared machine: A runs the checkout in SLUICE_AB_A (another clone or
// an exported tree with node_modules and build/ linked; default: this one), B this checkout.
// One call at a time to A, B and the model server directly, in rotation, so background load
// falls on all three alike; per round, the p50s and each process's CPU per request (schedstat).
// Warm-up is in rotation too: a pair warmed first and then left idle measured ~10% slower for a
// while. Run it both ways round (A and B swapped): a small bias of the slots remains.
//   node --import tsx bench/ab-inference.ts [simple|identity-16k|identity-1m] [rounds] [calls per round]
// Knobs: SLUICE_AB_A (path), SLUICE_AB_ARGS_A / SLUICE_AB_ARGS_B (more node flags for that
// pair's ingress and egress), SLUICE_AB_WARM (calls per path before measuring; default 3000,
// 200 for identity-1m).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { METHODS } from '../src/kserve/grpc-service.ts';
import { type SluiceProcess, startSluice } from '../scripts/sluice-child.ts';
import { pairedLoop, RawGrpcClient, summarize } from './grpc-load.ts';
import { inferRequest } from './infer-request.ts';
import { cpuUs } from './process-cpu.ts';

type Start = typeof startSluice;

const flags = (v: string | undefined): string[] => (v ?? '').split(' ').filter(Boolean);

async function main(): Promise<void> {
  const kind = process.argv[2] ?? 'simple';
  const rounds = Number(process.argv[3] ?? 4);
  const perRound = Number(process.argv[4] ?? (kind === 'identity-1m' ? 60 : 800));
  const warm = Number(process.env.SLUICE_AB_WARM ?? (kind === 'identity-1m' ? 200 : 3000));
  const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const startA = ((await import(path.join(process.env.SLUICE_AB_A ?? here, 'scripts', 'sluice-child.ts'))) as { startSluice: Start }).startSluice;
  const body = inferRequest(kind);
  const procs: SluiceProcess[] = [];
  const clients: RawGrpcClient[] = [];
  try {
    const models = await startSluice({ node: { name: 'ab-models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, { name: 'models' });
    procs.push(models);
    const pair = async (start: Start, tag: string, nodeArgs: string[]): Promise<{ client: RawGrpcClient; pids: number[] }> => {
      const key = randomBytes(32).toString('hex');
      const egress = await start(
        {
          node: { name: `ab-egress-${tag}` },
          segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
          routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
          log: { level: 'warn' },
        },
        { name: `egress-${tag}`, nodeArgs },
      );
      procs.push(egress);
      const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
      const ingress = await start(
        {
          node: { name: `ab-ingress-${tag}` },
          listeners: { grpc: { host: '127.0.0.1', port: 0 } },
          segments: { inference: { transport: 'tcp', key } },
          peers: [{ name: 'egress', segment: 'inference', host, port: Number(port) }],
          routes: [{ model: '*', peers: ['egress'] }],
        },
        { name: `ingress-${tag}`, nodeArgs },
      );
      procs.push(ingress);
      const client = new RawGrpcClient(ingress.endpoints.grpc!);
      clients.push(client);
      return { client, pids: [ingress.child.pid!, egress.child.pid!] };
    };
    const a = await pair(startA, 'a', flags(process.env.SLUICE_AB_ARGS_A));
    const b = await pair(startSluice, 'b', flags(process.env.SLUICE_AB_ARGS_B));
    const direct = new RawGrpcClient(models.endpoints.models!);
    clients.push(direct);
    await pairedLoop([a.client, b.client, direct], METHODS.ModelInfer.path, body, warm);
    const pids = [...a.pids, ...b.pids];
    for (let r = 0; r < rounds; r++) {
      const before = pids.map(cpuUs);
      const res = await pairedLoop([a.client, b.client, direct], METHODS.ModelInfer.path, body, perRound);
      const cpu = pids.map((pid, i) => ((cpuUs(pid) - before[i]!) / perRound).toFixed(0));
      const [pa, pb, pd] = res.latencies.map((l) => summarize(l, 0, 0).p50) as [number, number, number];
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      console.log(
        `${kind} round ${r} (load ${load}): p50 direct ${pd.toFixed(3)} ms, added A ${(pa - pd).toFixed(3)} B ${(pb - pd).toFixed(3)}; ` +
          `CPU/request A ingress ${cpu[0]} egress ${cpu[1]} us, B ingress ${cpu[2]} egress ${cpu[3]} us` +
          (res.errors.some((e) => e > 0) ? `; errors ${res.errors.join('/')}` : ''),
      );
    }
  } finally {
    for (const c of clients) c.close();
    for (const p of procs.reverse()) await p.stop();
  }
}

await main();
