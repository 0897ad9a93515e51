// `npm run bench -- rdma`: boots the soft-RoCE guest once (scripts/rxe-vm.sh) and runs
// bench/transport-rdma-guest.ts in it: ib_write_bw on rxe0, the sluice RDMA transport for 1 MiB
// messages with and without encryption, and the TCP transport in the same guest. Emulated (TCG)
// figures: the ratios are the result. Writes bench/results/transport-rdma.json.
// Options: --quick (fewer messages per run).
import path from 'node:path';
import { runGuestBench } from './guest-bench.ts';

export async function run(args: readonly string[]): Promise<void> {
  const env: Record<string, string> = args.includes('--quick') ? { SLUICE_BENCH_MESSAGES: '16', SLUICE_BENCH_ROUNDS: '2' } : {};
  await runGuestBench('transport-rdma', path.join('bench', 'transport-rdma-guest.ts'), env);
}
