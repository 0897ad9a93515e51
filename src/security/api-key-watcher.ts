// Keeps the serving process's view of the key store current without a restart: the store's
// directory is watched (rename-replace changes the inode, so the file itself cannot be) and
// its stat is polled as a fallback. A store that fails to load keeps the last good set and
// reports the error; new keys, rotations and revocations apply within one reload interval.
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { readKeyStore } from './api-key-store.ts';
import { ApiKeySet } from './api-keys.ts';

export interface ApiKeyWatcherOptions {
  file: string;
  /** Stat poll interval (default 2 s). */
  reloadSeconds?: number;
}

/** Events: 'reload' ({ keys: number }), 'error' (Error) — an 'error' listener is required. */
export class ApiKeyWatcher extends EventEmitter {
  readonly file: string;
  private current: ApiKeySet = new ApiKeySet([]);
  private signature = '';
  private timer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private reloading: Promise<void> | null = null;
  private again = false;

  private constructor(opts: ApiKeyWatcherOptions) {
    super();
    this.file = path.resolve(opts.file);
  }

  /** Loads the store (throws if it is invalid) and starts watching it. */
  static async start(opts: ApiKeyWatcherOptions): Promise<ApiKeyWatcher> {
    const w = new ApiKeyWatcher(opts);
    w.signature = await w.statSignature();
    w.current = new ApiKeySet(await readKeyStore(w.file));
    const ms = (opts.reloadSeconds ?? 2) * 1000;
    w.timer = setInterval(() => w.poll(), ms);
    w.timer.unref();
    try {
      const base = path.basename(w.file);
      w.watcher = watch(path.dirname(w.file), { persistent: false }, (_event, name) => {
        if (name === null || name === base) w.poll();
      });
      w.watcher.on('error', () => undefined);
    } catch {
      // Polling alone still works (e.g. on file systems without inotify).
    }
    return w;
  }

  get keys(): ApiKeySet {
    return this.current;
  }

  /** Re-reads the store if it changed; resolves once the check is done. */
  poll(): Promise<void> {
    if (this.reloading !== null) {
      this.again = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.again = false;
        try {
          const sig = await this.statSignature();
          if (sig === this.signature) continue;
          const records = await readKeyStore(this.file);
          this.signature = sig;
          this.current = new ApiKeySet(records);
          this.emit('reload', { keys: records.length });
        } catch (err) {
          this.emit('error', err);
        }
      } while (this.again);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.watcher?.close();
    this.timer = null;
    this.watcher = null;
  }

  private async statSignature(): Promise<string> {
    const s = await stat(this.file).catch(() => null);
    return s === null ? 'absent' : `${s.ino}:${s.size}:${s.mtimeMs}`;
  }
}
