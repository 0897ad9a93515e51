// Runs a bench script inside one boot of the soft-RoCE guest (scripts/rxe-vm.sh) and records
// what it reports: the script prints progress and one line "RESULT {json}", which is written to
// bench/results/<suite>.json with the guest's kernel, accelerator and run time.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { probe } from '../scripts/rxe-vm/assets.ts';
import { runInVm } from '../scripts/rxe-vm/boot.ts';
import { writeResults } from './report.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `script` is relative to the repository; `env` is passed to it in the guest. */
export async function runGuestBench(suite: string, script: string, env: Record<string, string>): Promise<void> {
  const p = probe();
  if (p.status === 'unavailable') {
    console.log(`${suite}: skipped: the soft-RoCE VM harness cannot run here: ${p.reason}`);
    return;
  }
  const r = await runInVm({
    argv: [process.execPath, '--import', 'tsx', script],
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
  const file = writeResults(suite, { ...result, guest: { kernel: r.kernelVersion, accel: r.accel, seconds: r.durationMs / 1000 } });
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}
