// Command-line entry of the soft-RoCE VM harness (scripts/rxe-vm.sh):
//   rxe-vm.sh probe                      say whether a guest can boot here (exit 0) or why not (exit 1)
//   rxe-vm.sh prepare                    install packages, fetch the kernel, build the initramfs
//   rxe-vm.sh run [opts] -- CMD [ARG...]  boot a guest with rxe0/rxe1 up, run CMD, exit with its status
// run options: --timeout SECONDS, --mem MB, --cpus N, --env K=V (repeatable), --workdir DIR
import { parseArgs } from 'node:util';
import { prepare, probe } from './assets.ts';
import { runInVm } from './boot.ts';

const USAGE = 'usage: rxe-vm.sh probe | prepare | run [--timeout S] [--mem MB] [--cpus N] [--env K=V]... [--workdir DIR] -- CMD [ARG...]';

async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'probe') {
    const p = probe();
    process.stdout.write(p.status === 'unavailable' ? `unavailable: ${p.reason}\n` : p.status === 'ready' ? 'ready\n' : `preparable: will ${p.todo.join(', ')}\n`);
    return p.status === 'unavailable' ? 1 : 0;
  }
  if (sub === 'prepare') {
    const a = prepare();
    process.stdout.write(`kernel ${a.kernelVersion}\nvmlinux ${a.vmlinux}\ninitramfs ${a.initramfs}\n`);
    return 0;
  }
  if (sub === 'run') {
    const dash = rest.indexOf('--');
    if (dash < 0 || dash === rest.length - 1) throw new Error(`missing -- CMD\n${USAGE}`);
    const { values } = parseArgs({
      args: rest.slice(0, dash),
      options: {
        timeout: { type: 'string' },
        mem: { type: 'string' },
        cpus: { type: 'string' },
        env: { type: 'string', multiple: true },
        workdir: { type: 'string' },
      },
    });
    const env: Record<string, string> = {};
    for (const kv of values.env ?? []) {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--env expects K=V, got ${kv}`);
      env[kv.slice(0, eq)] = kv.slice(eq + 1);
    }
    const r = await runInVm({
      argv: rest.slice(dash + 1),
      env,
      ...(values.workdir !== undefined && { workDir: values.workdir }),
      ...(values.timeout !== undefined && { timeoutMs: Number(values.timeout) * 1000 }),
      ...(values.mem !== undefined && { memMb: Number(values.mem) }),
      ...(values.cpus !== undefined && { cpus: Number(values.cpus) }),
      onOutput: (c) => process.stdout.write(c),
    });
    process.stderr.write(`rxe-vm: exit ${r.status} after ${(r.durationMs / 1000).toFixed(1)} s (kernel ${r.kernelVersion}, ${r.accel})\n`);
    return r.status;
  }
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`rxe-vm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
