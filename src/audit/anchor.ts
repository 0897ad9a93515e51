// The anchor file (FILE.anchor) witnesses the durable head of the log: the seq (which is also
// the entry count: seqs run 1..n without gaps), hash and latest checkpoint root of the last
// entry known to be on disk. `verify` and reopening require the entry at anchor.seq to exist
// with anchor.hash, so cutting entries from the end, or rewriting the tail with recomputed
// hashes, is detected for everything up to the anchor.
//
// How far the anchor may lag (AnchorKeeper): after a group commit, the anchor is rewritten at
// once when the one on disk is older than `intervalMs` (security.audit.anchorSeconds, default
// 1 s); otherwise a timer rewrites it when it comes due. So an undetectable cut is limited to
// the entries made durable in the last `intervalMs` (plus one anchor write), not to the last
// checkpoint interval. A checkpoint always rewrites it at once. At most one write is in flight;
// heads that arrive meanwhile collapse into the next write (the newest wins).
//
// The file is replaced atomically (atomic-file.ts writes `FILE.anchor.<pid>.<rand>.tmp`, then
// renames). A crash between the two leaves the temp file behind: `removeStaleAnchorTemps`
// deletes those when the log is opened (the opener holds the writer lock, so no live writer
// owns them). A log split into segments would keep one anchor per log naming the head of the
// newest segment (the seq is global), so this logic does not change with rotation.
import { readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';
import { AuditCorruptError } from './errors.ts';
import type { AuditAnchor } from './scan.ts';

export function anchorPathFor(logPath: string): string {
  return `${logPath}.anchor`;
}

export async function readAnchor(file: string): Promise<AuditAnchor | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new AuditCorruptError(`${file}: anchor is not valid JSON`);
  }
  const a = v as Partial<AuditAnchor>;
  if (
    !Number.isSafeInteger(a.seq) ||
    typeof a.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(a.hash) ||
    typeof a.root !== 'string' ||
    typeof a.time !== 'string'
  ) {
    throw new AuditCorruptError(`${file}: anchor lacks seq, hash, root or time`);
  }
  return a as AuditAnchor;
}

export async function writeAnchor(file: string, anchor: AuditAnchor): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(anchor)}\n`);
}

/** Deletes `FILE.anchor.*.tmp` left by a crash mid-replace. Returns the names removed. */
export async function removeStaleAnchorTemps(logPath: string): Promise<string[]> {
  const dir = path.dirname(logPath);
  const prefix = `${path.basename(anchorPathFor(logPath))}.`;
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    try {
      await unlink(path.join(dir, name));
      removed.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

export interface AnchorKeeperOptions {
  file: string;
  /** The anchor may be at most this old relative to the durable head (0: after every commit). */
  intervalMs: number;
  /** After each successful write. */
  onWritten?: (anchor: AuditAnchor) => void;
  /** A failed write (the log poisons itself: an anchor it cannot keep is a log it cannot trust). */
  onError: (err: unknown) => void;
}

/** Keeps FILE.anchor within `intervalMs` of the durable head (see the header comment). */
export class AnchorKeeper {
  private readonly opts: AnchorKeeperOptions;
  /** Newest durable head not yet written. */
  private pending: AuditAnchor | null = null;
  private writtenSeq = 0;
  /** When the anchor on disk was last replaced (ms, monotonic); -Infinity: never by us. */
  private writtenAt = Number.NEGATIVE_INFINITY;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private forceNext = false;
  private stopped = false;
  private writes = 0;

  constructor(opts: AnchorKeeperOptions) {
    this.opts = opts;
  }

  /** Anchor files written so far. */
  get written(): number {
    return this.writes;
  }

  /** Called after a group commit with the newest durable entry; `now` forces a write (checkpoints). */
  durable(head: AuditAnchor, now = false): void {
    if (this.stopped || head.seq <= this.writtenSeq) return;
    if (this.pending === null || head.seq > this.pending.seq) this.pending = head;
    if (now) {
      this.forceNext = true;
      this.kick();
      return;
    }
    const due = this.writtenAt + this.opts.intervalMs - performance.now();
    if (due <= 0) this.kick();
    else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, due);
      this.timer.unref();
    }
  }

  /** Writes the pending head (if any) and waits for every write; used on close. */
  async flush(): Promise<void> {
    while (this.inFlight !== null || (this.pending !== null && !this.stopped)) {
      this.kick();
      if (this.inFlight !== null) await this.inFlight;
    }
  }

  /** No more writes (after a failure). */
  stop(): void {
    this.stopped = true;
    this.pending = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private kick(): void {
    if (this.inFlight !== null || this.pending === null || this.stopped) return;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const anchor = this.pending;
    this.pending = null;
    this.forceNext = false;
    this.inFlight = writeAnchor(this.opts.file, anchor).then(
      () => {
        this.inFlight = null;
        this.writes++;
        this.writtenSeq = anchor.seq;
        this.writtenAt = performance.now();
        this.opts.onWritten?.(anchor);
        // Heads that arrived during the write: schedule them by the same rule.
        const next = this.pending as AuditAnchor | null;
        if (next !== null) {
          this.pending = null;
          this.durable(next, this.forceNext);
        }
      },
      (err: unknown) => {
        this.inFlight = null;
        this.stop();
        this.opts.onError(err);
      },
    );
  }
}
