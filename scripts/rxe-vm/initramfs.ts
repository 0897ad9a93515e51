// The guest's initramfs: busybox-static, guest-init.sh as /init, and the kernel modules in
// load order. Cached per kernel under a hash of everything that goes in.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { debInstalled, HarnessError, run } from './exec.ts';
import type { KernelAssets } from './kernel.ts';
import { GUEST_MODULES, parseBuiltin, parseModulesDep, resolveLoadOrder } from './modules.ts';
import { HARNESS_DIR } from './paths.ts';

const BUSYBOX = '/bin/busybox';

export function buildInitramfs(kernel: KernelAssets, log: (line: string) => void): string {
  if (!debInstalled('busybox-static')) {
    throw new HarnessError('busybox-static is not installed (a dynamic busybox cannot run in the initramfs)');
  }
  const init = readFileSync(path.join(HARNESS_DIR, 'guest-init.sh'));
  const dep = parseModulesDep(readFileSync(path.join(kernel.modulesDir, 'modules.dep'), 'utf8'));
  const builtinFile = path.join(kernel.modulesDir, 'modules.builtin');
  const builtin = existsSync(builtinFile) ? parseBuiltin(readFileSync(builtinFile, 'utf8')) : new Set<string>();
  const order = resolveLoadOrder(GUEST_MODULES, dep, builtin);
  const bb = statSync(BUSYBOX);
  const key = createHash('sha256')
    .update(init)
    .update(order.join('\n'))
    .update(`${kernel.version} ${bb.size} ${bb.mtimeMs}`)
    .digest('hex')
    .slice(0, 16);
  const out = path.join(kernel.dir, `initramfs-${key}.cpio`);
  if (existsSync(out)) return out;

  log(`rxe-vm: building the initramfs (${order.length} modules)`);
  const stage = path.join(kernel.dir, `.tmp-initramfs-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  try {
    for (const d of ['bin', 'dev', 'proc', 'sys', 'modules', 'job', 'host', 'rw', 'newroot', 'tmp']) {
      mkdirSync(path.join(stage, d), { recursive: true });
    }
    copyFileSync(BUSYBOX, path.join(stage, 'bin', 'busybox'));
    writeFileSync(path.join(stage, 'init'), init, { mode: 0o755 });
    const names: string[] = [];
    order.forEach((rel, i) => {
      const src = path.join(kernel.modulesDir, rel);
      let name = `${String(i).padStart(2, '0')}-${path.basename(rel)}`;
      if (rel.endsWith('.ko.xz')) {
        // busybox insmod loads plain .ko files only.
        name = name.replace(/\.xz$/, '');
        run('sh', ['-c', 'xz -dc "$1" > "$2"', 'sh', src, path.join(stage, 'modules', name)]);
      } else if (rel.endsWith('.ko')) {
        copyFileSync(src, path.join(stage, 'modules', name));
      } else {
        throw new HarnessError(`unsupported module compression: ${rel}`);
      }
      names.push(name);
    });
    writeFileSync(path.join(stage, 'modules', 'order'), `${names.join('\n')}\n`);
    const tmp = `${out}.tmp-${process.pid}`;
    run('sh', ['-c', 'find . | sort | busybox cpio -o -H newc -R 0:0 > "$1"', 'sh', tmp], { cwd: stage });
    renameSync(tmp, out);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return out;
}
