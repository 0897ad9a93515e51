// A writer lock beside the log (FILE.lock holding the owner's pid): two writers would fork the
// chain. A lock left by a dead process (crash, SIGKILL) is taken over.
import { open, readFile, unlink } from 'node:fs/promises';
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

export async function acquireLock(path: string): Promise<FileLock> {
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
      throw new AuditLockedError(`${path}: the audit log is held by live process ${owner}`);
    }
    if (owner === process.pid) throw new AuditLockedError(`${path}: this process already has the audit log open`);
    await unlink(path).catch(() => undefined);
  }
  throw new AuditLockedError(`${path}: could not take the audit log lock`);
}
