// Boots one soft-RoCE guest, runs one command in it and returns its output and exit status.
// Output travels over a virtio-serial port into a file (QEMU's stdio chardev closes the port when
// stdin is /dev/null and guest writes then block forever); the status through the job share.
import { spawn } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pickAccel, prepare, type Assets } from './assets.ts';
import { HarnessError, which } from './exec.ts';
import { cacheDir, HARNESS_DIR } from './paths.ts';

export interface RunOptions {
  /** The command and its arguments, run from `workDir` inside the guest. */
  argv: readonly string[];
  /** Shared read-write at the same path in the guest (default: the current directory). */
  workDir?: string;
  /** Extra environment for the command (SLUICE_* variables of this process are passed on too). */
  env?: Readonly<Record<string, string>>;
  /** Kill the guest after this long (default 10 minutes). */
  timeoutMs?: number;
  memMb?: number;
  cpus?: number;
  /** Called with output as it arrives. */
  onOutput?: (chunk: Buffer) => void;
  log?: (line: string) => void;
  assets?: Assets;
}

export interface RunResult {
  /** The command's exit status. */
  status: number;
  output: string;
  durationMs: number;
  kernelVersion: string;
  accel: 'kvm' | 'tcg';
}

export const GUEST_ETH0_ADDR = '10.0.2.15';
export const GUEST_DUMMY0_ADDR = '10.0.3.15';

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

export async function runInVm(opts: RunOptions): Promise<RunResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (opts.argv.length === 0) throw new HarnessError('no command given');
  const assets = opts.assets ?? prepare(log);
  const qemu = which('qemu-system-x86_64');
  if (qemu === undefined) throw new HarnessError('qemu-system-x86_64 not found (Debian: qemu-system-x86)');
  const workDir = path.resolve(opts.workDir ?? process.cwd());
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const accel = pickAccel();

  const jobsDir = path.join(cacheDir(), 'jobs');
  mkdirSync(jobsDir, { recursive: true });
  const job = mkdtempSync(path.join(jobsDir, 'job-'));
  const env: Record<string, string> = { RXEVM_GUEST: '1' };
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('SLUICE_') && v !== undefined) env[k] = v;
  Object.assign(env, opts.env ?? {});
  writeFileSync(
    path.join(job, 'guest.conf'),
    [`RXEVM_WORKDIR=${shq(workDir)}`, `RXEVM_ETH0_ADDR=${GUEST_ETH0_ADDR}/24`, `RXEVM_DUMMY0_ADDR=${GUEST_DUMMY0_ADDR}/24`, ''].join('\n'),
  );
  writeFileSync(
    path.join(job, 'cmd.sh'),
    [...Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`), `exec ${opts.argv.map(shq).join(' ')}`, ''].join('\n'),
  );
  copyFileSync(path.join(HARNESS_DIR, 'guest-stage2.sh'), path.join(job, 'stage2.sh'));
  const outFile = path.join(job, 'output');
  const consoleFile = path.join(job, 'console.log');
  writeFileSync(outFile, '');

  const share = (id: string, dir: string, extra: string) => [
    '-fsdev',
    `local,id=${id},path=${dir},security_model=none,multidevs=remap${extra}`,
    '-device',
    `virtio-9p-pci,fsdev=${id},mount_tag=${id}`,
  ];
  const args = [
    '-accel', accel === 'kvm' ? 'kvm' : 'tcg,thread=multi',
    '-cpu', accel === 'kvm' ? 'host' : 'max',
    '-smp', String(opts.cpus ?? 2),
    '-m', String(opts.memMb ?? 3072),
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none', '-no-reboot',
    '-kernel', assets.vmlinux,
    '-initrd', assets.initramfs,
    '-append', 'console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init',
    '-serial', `file:${consoleFile}`,
    ...share('hostroot', '/', ',readonly=on'),
    ...share('work', workDir, ''),
    ...share('job', job, ''),
    '-netdev', 'user,id=n0,restrict=on',
    '-device', 'virtio-net-pci,netdev=n0',
    '-device', 'virtio-rng-pci',
    '-chardev', `file,id=out,path=${outFile}`,
    '-device', 'virtio-serial-pci,id=vser',
    '-device', 'virtserialport,bus=vser.0,chardev=out,name=rxevm.out',
  ];

  const started = Date.now();
  const child = spawn(qemu, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let qemuErr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (qemuErr.length < 16_384) qemuErr += d.toString();
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const chunks: Buffer[] = [];
  let offset = 0;
  const buf = Buffer.alloc(256 * 1024);
  const drain = () => {
    const fd = openSync(outFile, 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, offset);
        if (n <= 0) break;
        offset += n;
        const chunk = Buffer.from(buf.subarray(0, n));
        chunks.push(chunk);
        opts.onOutput?.(chunk);
      }
    } finally {
      closeSync(fd);
    }
  };
  const poll = setInterval(drain, 200);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  }).finally(() => {
    clearInterval(poll);
    clearTimeout(timer);
    process.removeListener('exit', killOnExit);
  });
  drain();
  const durationMs = Date.now() - started;
  const output = Buffer.concat(chunks).toString('utf8');
  const statusFile = path.join(job, 'status');
  const initError = tail(path.join(job, "init-error"), 12);
  const consoleTail = tail(consoleFile, 15);
  const keep = process.env.SLUICE_RXE_VM_KEEP === '1';
  try {
    if (timedOut) {
      throw new HarnessError(
        `guest timed out after ${Math.round(timeoutMs / 1000)} s${initError ? `: ${initError}` : ''}\n--- output tail ---\n${output.trimEnd().split('\n').slice(-15).join('\n')}\n--- console tail ---\n${consoleTail}`,
      );
    }
    if (!existsSync(statusFile)) {
      throw new HarnessError(
        `guest ended without an exit status (qemu ${exit.code ?? exit.signal})${initError ? `: ${initError}` : ''}${qemuErr ? `\n--- qemu ---\n${qemuErr.trim()}` : ''}\n--- console tail ---\n${consoleTail}`,
      );
    }
    const status = Number.parseInt(readFileSync(statusFile, 'utf8').trim(), 10);
    return { status: Number.isNaN(status) ? 255 : status, output, durationMs, kernelVersion: assets.kernelVersion, accel };
  } finally {
    if (keep) log(`rxe-vm: job directory kept at ${job}`);
    else rmSync(job, { recursive: true, force: true });
  }
}
