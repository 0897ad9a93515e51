// `npm run bench -- mixed-rdma`: boots the soft-RoCE guest once (scripts/rxe-vm.sh) and runs
// bench/mixed-link-guest.ts in it: the mixed scenario (inference round trips at a fixed rate,
// with and without bulk) on an inference link and a training link tuned as a sluice node tunes
// them, over RDMA (rxe0) and over TCP in the same guest. The guest is emulated (TCG): compare
// the ratios (p99 with bulk / without, bulk kept), not the milliseconds.
// Writes bench/results/mixed-rdma.json. Options: --quick (one shorter round).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { probe } from '../scripts/rxe-vm/assets.ts';
import { runInVm } from '../scripts/rxe-vm/boot.ts';
import { writeResults } from './report.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function run(args: readonly string[]): Promise<void> {
  const p = probe();
  if (p.status === 'unavailable') {
    console.log(`mixed-rdma: skipped: the soft-RoCE VM harness cannot run here: ${p.reason}`);
    return;
  }
  const env: Record<string, string> = {};
  if (args.includes('--quick')) {
    env.SLUICE_BENCH_ROUNDS = '1';
    env.SLUICE_BENCH_SECONDS = '5';
  }
  const r = await runInVm({
    argv: [process.execPath, '--import', 'tsx', path.join('bench', 'mixed-link-guest.ts')],
    workDir: root,
    env,
    timeoutMs: 1_500_000,
    onOutput: (chunk) => process.stdout.write(chunk.toString().replace(/^RESULT .*\n?/m, '')),
  });
  console.log(`(guest: kernel ${r.kernelVersion}, ${r.accel}, boot and bench ${(r.durationMs / 1000).toFixed(0)} s)`);
  if (r.status !== 0) throw new Error(`the guest bench failed with exit ${r.status}`);
  const line = r.output.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error('the guest bench printed no RESULT line');
  const result = JSON.parse(line.slice('RESULT '.length)) as Record<string, unknown>;
  const file = writeResults('mixed-rdma', { ...result, guest: { kernel: r.kernelVersion, accel: r.accel, seconds: r.durationMs / 1000 } });
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}
