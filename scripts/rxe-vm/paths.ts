// Where the soft-RoCE VM harness keeps its assets. One cache per machine when we may write
// /var/cache (root), so worktrees and CI runs share one kernel download; else per checkout.
import { accessSync, constants, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HARNESS_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HARNESS_DIR, '..', '..');

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The cache directory (created on demand): $SLUICE_RXE_VM_CACHE, /var/cache/sluice-rxe-vm, or .cache/rxe-vm. */
export function cacheDir(create = true): string {
  const fromEnv = process.env.SLUICE_RXE_VM_CACHE;
  let dir: string;
  if (fromEnv !== undefined && fromEnv !== '') dir = path.resolve(fromEnv);
  else if (writable('/var/cache')) dir = '/var/cache/sluice-rxe-vm';
  else dir = path.join(REPO_ROOT, '.cache', 'rxe-vm');
  if (create) mkdirSync(dir, { recursive: true });
  return dir;
}
