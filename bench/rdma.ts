// `npm run bench -- rdma`: boots the soft-RoCE guest once (scripts/rxe-vm.sh) and runs
// bench/transport-rdma-guest.ts in it: ib_write_bw and ib_send_bw on rxe0, the sluice RDMA
// transport for 1 MiB messages with and without encryption, and the TCP transport in the same
// guest. Emulated (TCG) figures: the ratios are the result. Writes bench/results/transport-rdma.json.
// Options: --quick (fewer messages per run).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { probe } from '../scripts/rxe-vm/assets.ts';
import { runInVm } from '../scripts/rxe-vm/boot.ts';
import { writeResults } from './report.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function run(args: readonly string[]): Promise<void> {
  const p = probe();
  if (p.status === 'unavailable') {
    console.log(`rdma: skipped: the soft-RoCE VM harness cannot run here: ${p.reason}`);
    return;
  }
  const env: Record<string, string> = {};
  if (args.includes('--quick')) {
    env.SLUICE_BENCH_MESSAGES = '16';
    env.SLUICE_BENCH_ROUNDS = '2';
  }
  const r = await runInVm({
    argv: [process.execPath, '--import', 'tsx', path.join('bench', 'transport-rdma-guest.ts')],
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
  const file = writeResults('transport-rdma', { ...result, guest: { kernel: r.kernelVersion, accel: r.accel, seconds: r.durationMs / 1000 } });
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}
