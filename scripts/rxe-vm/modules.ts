// Resolves the guest's kernel modules and their dependencies from modules.dep, in load order.

/** The modules the guest needs (dependencies are added from modules.dep). */
export const GUEST_MODULES: readonly string[] = [
  'virtio_pci',
  'virtio_console',
  'virtio_rng',
  '9pnet_virtio',
  '9p',
  'overlay',
  'virtio_net',
  'dummy',
  'veth',
  'ib_core',
  'ib_uverbs',
  'rdma_ucm',
  'rdma_rxe',
  // rxe computes the RoCE ICRC through the crypto API's "crc32" and fails to add a device without it
  // (the kernel would request_module it, but the guest has no modprobe tree).
  'crc32_generic',
];

/** Module name as the kernel spells it: file base name without .ko[.xz|.zst|.gz], dashes as underscores. */
export function moduleName(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** Parses modules.dep ("path: dep dep ...") into name -> { path, deps }. */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const out = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const file = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter((d) => d !== '')
      .map(moduleName);
    out.set(moduleName(file), { path: file, deps });
  }
  return out;
}

/**
 * Returns the module files to load, dependencies first. Names listed in `builtin` (compiled into
 * the kernel) are skipped; any other unknown name is an error.
 */
export function resolveLoadOrder(
  wanted: readonly string[],
  dep: Map<string, { path: string; deps: string[] }>,
  builtin: ReadonlySet<string>,
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, from: string | undefined): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') throw new Error(`modules.dep has a dependency cycle through ${name}`);
    const entry = dep.get(name);
    if (entry === undefined) {
      if (builtin.has(name)) return;
      throw new Error(`kernel module ${name}${from === undefined ? '' : ` (needed by ${from})`} is not in modules.dep`);
    }
    state.set(name, 'visiting');
    for (const d of entry.deps) visit(d, name);
    state.set(name, 'done');
    order.push(entry.path);
  };
  for (const w of wanted) visit(w.replace(/-/g, '_'), undefined);
  return order;
}

export function parseBuiltin(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(moduleName),
  );
}
