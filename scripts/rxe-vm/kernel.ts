// The guest kernel: Debian's current linux-image-6.1 amd64 package (the one linux-image-amd64
// depends on; the archive keeps only the current one, so the version is resolved, never pinned),
// unpacked with dpkg -x (never installed on the host), depmod'ed, and its bzImage decompressed
// once into an ELF vmlinux for PVH direct boot (about 3 s faster per boot under TCG).
import { closeSync, existsSync, openSync, readSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HarnessError, run } from './exec.ts';

export interface KernelAssets {
  version: string;
  dir: string;
  vmlinux: string;
  modulesDir: string;
}

const READY = 'ready.json';
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** The newest prepared kernel in the cache, if any. */
export function cachedKernel(cache: string): KernelAssets | undefined {
  if (!existsSync(cache)) return undefined;
  const found: KernelAssets[] = [];
  for (const name of readdirSync(cache)) {
    if (!name.startsWith('kernel-')) continue;
    const dir = path.join(cache, name);
    const ready = path.join(dir, READY);
    if (!existsSync(ready)) continue;
    const { version } = JSON.parse(readFileSync(ready, 'utf8')) as { version: string };
    found.push({ version, dir, vmlinux: path.join(dir, 'vmlinux'), modulesDir: path.join(dir, 'lib', 'modules', version) });
  }
  found.sort((a, b) => b.version.localeCompare(a.version, 'en', { numeric: true }));
  return found[0];
}

/** Name of the image package linux-image-amd64 currently depends on, e.g. linux-image-6.1.0-56-amd64. */
export function currentKernelPackage(): string {
  const out = run('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-(6\.1\.\d+-\d+-amd64))\b/.exec(out);
  if (m === null) {
    throw new HarnessError(
      `apt-cache depends linux-image-amd64 names no linux-image-6.1.*-amd64 package (run apt-get update?): ${out.trim()}`,
    );
  }
  return m[1] as string;
}

function startsWith(file: string, magic: Buffer): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(magic.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(magic);
  } finally {
    closeSync(fd);
  }
}

/** Decompresses the XZ payload of an x86 bzImage into an ELF vmlinux. */
export function extractVmlinux(bzImage: string, out: string): void {
  const img = readFileSync(bzImage);
  let at = img.indexOf(XZ_MAGIC);
  while (at >= 0) {
    const tmp = `${out}.tmp`;
    try {
      run('sh', ['-c', 'tail -c +"$1" "$2" | xz -dc --single-stream > "$3"', 'sh', String(at + 1), bzImage, tmp]);
      if (startsWith(tmp, ELF_MAGIC)) {
        renameSync(tmp, out);
        return;
      }
    } catch {
      // not the payload stream; try the next magic
    }
    rmSync(tmp, { force: true });
    at = img.indexOf(XZ_MAGIC, at + 1);
  }
  throw new HarnessError(`${bzImage}: no XZ stream holding an ELF vmlinux (kernel not XZ-compressed?)`);
}

/** Downloads, unpacks and prepares the current kernel package into the cache. */
export function prepareKernel(cache: string, log: (line: string) => void): KernelAssets {
  const pkg = currentKernelPackage();
  const version = pkg.replace(/^linux-image-/, '');
  const dir = path.join(cache, `kernel-${version}`);
  if (existsSync(path.join(dir, READY))) return cachedKernel(cache) as KernelAssets;
  const work = path.join(cache, `.tmp-kernel-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    log(`rxe-vm: downloading ${pkg}`);
    // Downloading as root into a directory _apt cannot write only warns; run apt unsandboxed.
    run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', pkg], { cwd: work, timeout: 600_000 });
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (deb === undefined) throw new HarnessError(`apt-get download ${pkg} produced no .deb`);
    const root = path.join(work, 'root');
    run('dpkg', ['-x', path.join(work, deb), root], { timeout: 600_000 });
    rmSync(path.join(work, deb));
    // The .deb ships no modules.dep: build it for the unpacked tree.
    run('depmod', ['-b', root, version]);
    log(`rxe-vm: decompressing the kernel image`);
    extractVmlinux(path.join(root, 'boot', `vmlinuz-${version}`), path.join(work, 'vmlinux'));
    // Keep only what booting needs: the vmlinux and the module tree.
    mkdirSync(path.join(work, 'lib'), { recursive: true });
    const modSrc = existsSync(path.join(root, 'lib', 'modules')) ? path.join(root, 'lib', 'modules') : path.join(root, 'usr', 'lib', 'modules');
    renameSync(modSrc, path.join(work, 'lib', 'modules'));
    rmSync(root, { recursive: true, force: true });
    writeFileSync(path.join(work, READY), `${JSON.stringify({ version, package: pkg })}\n`);
    try {
      renameSync(work, dir);
    } catch (err) {
      // Another run prepared the same version meanwhile: keep theirs.
      if (!existsSync(path.join(dir, READY))) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { version, dir, vmlinux: path.join(dir, 'vmlinux'), modulesDir: path.join(dir, 'lib', 'modules', version) };
}
