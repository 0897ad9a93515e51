// `npm run bench -- mixed-rdma`: boots the soft-RoCE guest once (scripts/rxe-vm.sh) and runs
// bench/mixed-link-guest.ts in it: the mixed scenario (inference round trips at a fixed rate,
// with and without bulk) on an inference link and a training link tuned as a sluice node tunes
// them, over RDMA (rxe0) and over TCP in the same guest. The guest is emulated (TCG): compare
// the ratios (p99 with bulk / without, bulk kept), not the milliseconds.
// Writes bench/results/mixed-rdma.json. Options: --quick (one shorter round).
import path from 'node:path';
import { runGuestBench } from './guest-bench.ts';

export async function run(args: readonly string[]): Promise<void> {
  const env: Record<string, string> = args.includes('--quick') ? { SLUICE_BENCH_ROUNDS: '1', SLUICE_BENCH_SECONDS: '5' } : {};
  await runGuestBench('mixed-rdma', path.join('bench', 'mixed-link-guest.ts'), env);
}
