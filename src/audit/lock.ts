// A writer lock beside a file (FILE.lock holding the owner's pid): two audit writers would fork
// the chain, two key-store writers would lose an update. A lock left by a dead process (crash,
// SIGKILL) is taken over.
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { AuditLockedError } from './errors.ts';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface FileLock {
  readonly path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** Keep retrying this long while a live process holds the lock (default 0: fail at once). */
  waitMs?: number;
}

export async function acquireLock(path: string, opts: LockOptions = {}): Promise<FileLock> {
  const deadline = Date.now() + (opts.waitMs ?? 0);
  for (;;) {
    try {
      return await tryAcquire(path);
    } catch (err) {
      if (!(err instanceof AuditLockedError) || Date.now() >= deadline) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function tryAcquire(path: string): Promise<FileLock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return {
        path,
        async release() {
          await unlink(path).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
      throw new AuditLockedError(`${path}: held by live process ${owner}`);
    }
    if (owner === process.pid) throw new AuditLockedError(`${path}: already held by this process`);
    // An empty lock may be one being written right now; it is stale only once it is old.
    if (!Number.isSafeInteger(owner)) {
      const age = Date.now() - ((await stat(path).catch(() => null))?.mtimeMs ?? 0);
      if (age < 2000) throw new AuditLockedError(`${path}: being taken by another process`);
    }
    await unlink(path).catch(() => undefined);
  }
  throw new AuditLockedError(`${path}: could not take the audit log lock`);
}
