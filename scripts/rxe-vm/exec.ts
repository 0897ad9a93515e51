// Small synchronous process helpers for asset preparation (one-off, not on any hot path).
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export class HarnessError extends Error {
  readonly code = 'SLUICE_ERR_RXE_VM';
}

/** Runs a program; throws HarnessError with its stderr when it fails. Returns stdout. */
export function run(cmd: string, args: readonly string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 300_000, ...opts });
  if (r.error !== undefined) throw new HarnessError(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const err = String(r.stderr ?? '').trim().split('\n').slice(-5).join('\n');
    throw new HarnessError(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}: ${err}`);
  }
  return String(r.stdout ?? '');
}

/** Finds an executable on PATH (plus the sbin directories, which a non-root PATH may lack). */
export function which(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const d of dirs) {
    if (d === '') continue;
    const p = path.join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** True when the Debian package is installed. */
export function debInstalled(pkg: string): boolean {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}
