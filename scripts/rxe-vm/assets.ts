// Decides whether the harness can run here, and prepares what it needs on first use:
// the Debian packages (scripts/install-deps.sh --rdma-vm, as root), the kernel, the initramfs.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { debInstalled, HarnessError, isRoot, which } from './exec.ts';
import { buildInitramfs } from './initramfs.ts';
import { cachedKernel, prepareKernel } from './kernel.ts';
import { cacheDir, REPO_ROOT } from './paths.ts';

/** Debian packages the harness (host side and guest userspace) needs; kept in step with install-deps.sh --rdma-vm. */
export const HARNESS_PACKAGES: readonly string[] = [
  'qemu-system-x86',
  'busybox-static',
  'kmod',
  'xz-utils',
  'iproute2',
  'ibverbs-providers',
  'ibverbs-utils',
  'perftest',
];

export interface Assets {
  kernelVersion: string;
  vmlinux: string;
  initramfs: string;
}

export type Probe =
  | { status: 'ready' }
  | { status: 'preparable'; todo: string[] }
  | { status: 'unavailable'; reason: string };

function missingPackages(): string[] {
  if (which('dpkg-query') === undefined) return [...HARNESS_PACKAGES];
  return HARNESS_PACKAGES.filter((p) => !debInstalled(p));
}

/** Cheap check (no downloads): can the harness boot a guest now, after preparing, or not at all? */
export function probe(): Probe {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return { status: 'unavailable', reason: `the soft-RoCE VM harness needs linux/x64 (this is ${process.platform}/${process.arch})` };
  }
  const todo: string[] = [];
  const missing = missingPackages();
  if (missing.length > 0) todo.push(`install ${missing.join(' ')}`);
  if (cachedKernel(cacheDir(false)) === undefined) todo.push('download and unpack the guest kernel');
  if (todo.length === 0) return { status: 'ready' };
  const aptOk = which('apt-get') !== undefined && which('dpkg') !== undefined;
  if (!isRoot() || !aptOk) {
    return {
      status: 'unavailable',
      reason: `needs to ${todo.join(' and ')}, which takes root and apt (run: sudo bash scripts/install-deps.sh --rdma-vm && sudo scripts/rxe-vm.sh prepare)`,
    };
  }
  return { status: 'preparable', todo };
}

/** Installs packages and builds the kernel and initramfs when missing; returns the boot assets. */
export function prepare(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Assets {
  const p = probe();
  if (p.status === 'unavailable') throw new HarnessError(`soft-RoCE VM harness unavailable: ${p.reason}`);
  if (missingPackages().length > 0) {
    log(`rxe-vm: installing ${missingPackages().join(' ')}`);
    const r = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'install-deps.sh'), '--rdma-vm'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 900_000,
    });
    if (r.status !== 0) throw new HarnessError('scripts/install-deps.sh --rdma-vm failed');
  }
  const cache = cacheDir();
  const kernel = cachedKernel(cache) ?? prepareKernel(cache, log);
  if (!existsSync(kernel.vmlinux)) throw new HarnessError(`${kernel.vmlinux} is missing: remove ${kernel.dir} and retry`);
  const initramfs = buildInitramfs(kernel, log);
  return { kernelVersion: kernel.version, vmlinux: kernel.vmlinux, initramfs };
}

/** Accelerator: KVM only when the CPU really has vmx/svm (a software /dev/kvm cannot boot this kernel). */
export function pickAccel(): 'kvm' | 'tcg' {
  const forced = process.env.SLUICE_RXE_VM_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return forced;
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8');
    if (/^flags\s*:.*\b(vmx|svm)\b/m.test(flags) && existsSync('/dev/kvm')) return 'kvm';
  } catch {
    // no cpuinfo: be safe
  }
  return 'tcg';
}
