// The append-only audit log writer.
//  - Each append is sealed at once (seq, prev, hash), so the chain order is the call order.
//  - Group commit: lines queued while a write+fsync is in flight go out together in the next
//    write+fsync. A promise resolves only after the fsync that made its line durable. The file
//    is opened O_DSYNC where the platform has it, so a write returns only once its data (and
//    the size that covers it) is on disk: one thread-pool trip per batch instead of a write
//    and then an fdatasync, which matters when requests wait for their entry.
//  - A Merkle checkpoint entry is added every `checkpointEntries` entries or
//    `checkpointSeconds` seconds (whichever first), and on close.
//  - FILE.anchor witnesses the durable head and lags it by at most `anchorSeconds`
//    (anchor.ts: AnchorKeeper); a checkpoint rewrites it at once.
//  - Reopening scans the file, resumes the chain, and refuses a broken log. A torn final line
//    (a write that never completed, so was never acknowledged) is cut off and the cut recorded.
//  - A failed write or fsync poisons the log: every later append rejects (callers fail closed).
//  - Rotation (segments.ts): when the active file reaches `rotate.maxBytes` or
//    `rotate.maxAgeMs`, a checkpoint closes it, it is renamed to the next read-only segment,
//    and the new file opens with an `audit.segment` event; the chain runs on. Closed segments
//    older than `retentionDays` are deleted after an `audit.retention` event records it.
import { EventEmitter } from 'node:events';
import { constants } from 'node:fs';
import { open, stat, truncate, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AnchorKeeper, anchorPathFor, readAnchor, removeStaleAnchorTemps } from './anchor.ts';
import { fsyncDir } from './atomic-file.ts';
import { GENESIS_HASH, sealEntry, sha256Hex, type AuditEntry, type AuditEntryBody, type AuditRecord } from './entry.ts';
import { AuditClosedError, AuditCorruptError, AuditWriteError } from './errors.ts';
import { acquireLock, type FileLock } from './lock.ts';
import { merkleRoot } from './merkle.ts';
import { closeActiveSegment, deleteSegments, firstEntryOf, listSegments, planRetention, scanAuditSegments } from './segments.ts';

/** Append with synchronous data integrity where available (Linux, macOS); else write + fdatasync. */
const DSYNC: number | undefined = constants.O_DSYNC;
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | (DSYNC ?? 0);

export interface AuditLogOptions {
  path: string;
  /** Written into every entry; bump it when the security policy changes. */
  policyVersion?: string;
  /** Checkpoint after this many entries since the last one (default 1000). */
  checkpointEntries?: number;
  /** Checkpoint when entries have waited this long since the last one (default 300 s). */
  checkpointSeconds?: number;
  /** FILE.anchor lags the durable head by at most this long (default 1 s; 0: every commit). */
  anchorSeconds?: number;
  /** What to do with a torn final line when reopening: cut it off and record that, or refuse. */
  onTornTail?: 'repair' | 'refuse';
  /** Actor name for the log's own entries. */
  actor?: string;
  /** Wait this long for another live writer to release the log (default 0: fail at once). */
  lockWaitMs?: number;
  /** Start a new segment when the active file reaches either limit (absent: never). */
  rotate?: { maxBytes?: number | undefined; maxAgeMs?: number | undefined };
  /** Delete closed segments older than this many days (absent: keep all). */
  retentionDays?: number;
}

interface Pending {
  /** The file is rotated once this entry (a checkpoint) is durable. */
  rotateAfter?: boolean;
  line: string;
  entry: AuditEntry;
  resolve: (e: AuditEntry) => void;
  reject: (err: Error) => void;
}

export interface AuditLogStats {
  appended: number;
  batches: number;
  lastSeq: number;
}

/**
 * Events: 'checkpoint' (AuditEntry, once durable), 'failure' (AuditWriteError, once, when the
 * log stops accepting entries).
 */
export class AuditLog extends EventEmitter {
  readonly path: string;
  readonly policyVersion: string;
  private readonly checkpointEntries: number;
  private readonly actor: string;
  private fh: FileHandle;
  private lock: FileLock;
  private seq: number;
  private lastHash: string;
  private lastCheckpointSeq: number;
  private lastCheckpointRoot: string;
  private sinceCheckpoint: string[];
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private failure: AuditWriteError | null = null;
  private readonly rotate: { maxBytes: number; maxAgeMs: number };
  private readonly retentionDays: number | undefined;
  /** Bytes and entries sealed into the active file, and when its first entry was made. */
  private activeBytes = 0;
  private activeEntries = 0;
  private activeSince = Date.now();
  private rotateTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private batches = 0;
  private appended = 0;
  private readonly anchor: AnchorKeeper;
  /** Durable checkpoints whose 'checkpoint' event waits for the anchor that covers them. */
  private unanchoredCheckpoints: AuditEntry[] = [];
  /** Root of the newest durable checkpoint (the anchor's `root`). */
  private durableRoot: string;

  private constructor(
    opts: AuditLogOptions,
    fh: FileHandle,
    lock: FileLock,
    state: { seq: number; lastHash: string; lastCheckpointSeq: number; lastCheckpointRoot: string; sinceCheckpoint: string[] },
  ) {
    super();
    this.path = opts.path;
    this.policyVersion = opts.policyVersion ?? '1';
    this.checkpointEntries = opts.checkpointEntries ?? 1000;
    this.actor = opts.actor ?? 'sluice-audit';
    this.fh = fh;
    this.lock = lock;
    this.seq = state.seq;
    this.lastHash = state.lastHash;
    this.lastCheckpointSeq = state.lastCheckpointSeq;
    this.lastCheckpointRoot = state.lastCheckpointRoot;
    this.sinceCheckpoint = state.sinceCheckpoint;
    this.durableRoot = state.lastCheckpointRoot;
    this.rotate = { maxBytes: opts.rotate?.maxBytes ?? 0, maxAgeMs: opts.rotate?.maxAgeMs ?? 0 };
    this.retentionDays = opts.retentionDays;
    if (this.rotate.maxAgeMs > 0) {
      this.rotateTimer = setInterval(() => this.maybeRotate(), Math.min(this.rotate.maxAgeMs, 60_000));
      this.rotateTimer.unref();
    }
    this.anchor = new AnchorKeeper({
      file: anchorPathFor(this.path),
      intervalMs: (opts.anchorSeconds ?? 1) * 1000,
      onWritten: (a) => {
        while (this.unanchoredCheckpoints.length > 0 && (this.unanchoredCheckpoints[0] as AuditEntry).seq <= a.seq) {
          this.emit('checkpoint', this.unanchoredCheckpoints.shift());
        }
      },
      onError: (err) => this.poison(new AuditWriteError(`${this.path}.anchor: write failed (${String(err)})`, err), []),
    });
    const seconds = opts.checkpointSeconds ?? 300;
    if (seconds > 0) {
      this.timer = setInterval(() => {
        if (this.sinceCheckpoint.length > 0 && !this.closed && this.failure === null) {
          this.enqueue(this.sealCheckpoint()).catch(() => undefined);
        }
      }, seconds * 1000);
      this.timer.unref();
    }
  }

  /** Opens (creating if absent) and takes the writer lock. Throws AuditCorruptError on a broken log. */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    if ((opts.checkpointEntries ?? 1000) < 1) throw new RangeError('checkpointEntries must be >= 1');
    if ((opts.anchorSeconds ?? 1) < 0) throw new RangeError('anchorSeconds must be >= 0');
    const file = path.resolve(opts.path);
    const lock = await acquireLock(`${file}.lock`, { waitMs: opts.lockWaitMs ?? 0 });
    try {
      // We hold the writer lock: any anchor temp file is a dead writer's.
      const staleTemps = await removeStaleAnchorTemps(file);
      let existed = true;
      let activeSize = 0;
      try {
        activeSize = (await stat(file)).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        existed = false;
      }
      // A crash between closing a segment and creating the next leaves segments and no active file.
      const segmented = (await listSegments(file)).length > (existed ? 1 : 0);
      let state = {
        seq: 0,
        lastHash: GENESIS_HASH,
        lastCheckpointSeq: 0,
        lastCheckpointRoot: GENESIS_HASH,
        sinceCheckpoint: [] as string[],
      };
      const anchor = await readAnchor(anchorPathFor(file));
      let repaired: { bytes: number; digest: string } | null = null;
      if (existed || segmented) {
        const scan = await scanAuditSegments(file, { anchor });
        if (scan.problem !== null) {
          const inActive = scan.segments.at(-1)?.file === file;
          const torn = scan.problem.kind === 'truncated' && scan.tornTailBytes > 0 && inActive;
          if (!torn || opts.onTornTail === 'refuse') {
            throw new AuditCorruptError(`${file}: ${scan.problem.message}; run "sluice audit verify ${file}" and restore the log`);
          }
          // The torn bytes were never fsynced-and-acknowledged as a whole line: drop them, but say so.
          const fhr = await open(file, 'r');
          const tail = Buffer.alloc(scan.tornTailBytes);
          await fhr.read(tail, 0, tail.length, scan.validBytes);
          await fhr.close();
          await truncate(file, scan.validBytes);
          activeSize = scan.validBytes;
          repaired = { bytes: tail.length, digest: sha256Hex(tail) };
        }
        state = {
          seq: scan.lastSeq,
          lastHash: scan.lastHash,
          lastCheckpointSeq: scan.lastCheckpointSeq,
          lastCheckpointRoot: scan.lastCheckpointRoot,
          sinceCheckpoint: scan.sinceCheckpoint,
        };
      } else if (anchor !== null) {
        throw new AuditCorruptError(`${file}: the log is missing but its anchor names seq ${anchor.seq}: the log was deleted`);
      }
      const fh = await open(file, APPEND_FLAGS, 0o600);
      if (!existed) await fsyncDir(path.dirname(file));
      const log = new AuditLog({ ...opts, path: file }, fh, lock, state);
      log.activeBytes = activeSize;
      const head = existed ? await firstEntryOf(file) : null;
      if (head !== null && !Number.isNaN(Date.parse(head.time))) log.activeSince = Date.parse(head.time);
      if (!existed && segmented) log.enqueue(log.sealSegmentEvent()).catch(() => undefined);
      await log.append({
        tenant: null,
        requestId: null,
        actor: log.actor,
        action: repaired === null ? 'audit.open' : 'audit.recovered',
        outcome: 'success',
        detail: {
          pid: process.pid,
          resumed_at_seq: state.seq,
          ...(repaired === null ? {} : { dropped_torn_bytes: repaired.bytes, dropped_sha256: repaired.digest }),
          // Say so when an existing log had no anchor (deleted, or a crash before the first one).
          ...(existed && anchor === null && state.seq > 0 ? { anchor_missing: true } : {}),
          ...(staleTemps.length > 0 ? { removed_anchor_temps: staleTemps.length } : {}),
        },
      });
      await log.applyRetention();
      return log;
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  get lastSeq(): number {
    return this.seq;
  }

  get failed(): AuditWriteError | null {
    return this.failure;
  }

  stats(): AuditLogStats {
    return { appended: this.appended, batches: this.batches, lastSeq: this.seq };
  }

  /** Appends one entry; resolves with it once it is on disk (after fsync). */
  append(rec: AuditRecord): Promise<AuditEntry> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new AuditClosedError());
    let sealed: { entry: AuditEntry; line: string };
    try {
      sealed = this.sealEvent(rec);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const done = this.enqueue(sealed);
    if (this.sinceCheckpoint.length >= this.checkpointEntries) {
      this.enqueue(this.sealCheckpoint()).catch(() => undefined);
    }
    this.maybeRotate();
    return done;
  }

  /** Closes the active segment when it has reached its size or age limit (segments.ts). */
  private maybeRotate(): void {
    if (this.closed || this.failure !== null || this.activeEntries <= 1) return;
    const { maxBytes, maxAgeMs } = this.rotate;
    const due = (maxBytes > 0 && this.activeBytes >= maxBytes) || (maxAgeMs > 0 && Date.now() - this.activeSince >= maxAgeMs);
    if (!due) return;
    // A closed segment always ends with a checkpoint covering its entries.
    const cp = this.sealCheckpoint();
    this.queue.push({ ...cp, rotateAfter: true, resolve: () => undefined, reject: () => undefined });
    this.activeBytes = 0;
    this.activeEntries = 0;
    this.activeSince = Date.now();
    this.enqueue(this.sealSegmentEvent()).catch(() => undefined);
  }

  /** First entry of a new segment: it carries the checkpoint root the chain continues from. */
  private sealSegmentEvent(): { entry: AuditEntry; line: string } {
    return this.sealEvent({
      tenant: null,
      requestId: null,
      actor: this.actor,
      action: 'audit.segment',
      outcome: 'success',
      detail: { first_seq: this.seq + 1, prev_checkpoint_root: this.lastCheckpointRoot, prev_checkpoint_seq: this.lastCheckpointSeq },
    });
  }

  /** Deletes closed segments past retention, after recording that in the log. */
  private async applyRetention(): Promise<void> {
    if (this.retentionDays === undefined) return;
    const plan = await planRetention(this.path, this.retentionDays);
    if (plan === null) return;
    await this.append({
      tenant: null,
      requestId: null,
      actor: this.actor,
      action: 'audit.retention',
      outcome: 'success',
      detail: { retention_days: this.retentionDays, deleted_segments: plan.files.map((f) => path.basename(f)), retained_from_seq: plan.retainedFromSeq },
    });
    await deleteSegments(plan.files);
  }

  /** Seals a checkpoint over the entries since the last one now; resolves once it is durable (null: none pending). */
  checkpoint(): Promise<AuditEntry | null> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new AuditClosedError());
    if (this.sinceCheckpoint.length === 0) return Promise.resolve(null);
    return this.enqueue(this.sealCheckpoint());
  }

  /** Writes a final checkpoint, waits for everything queued, releases the file and the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.failure === null && this.sinceCheckpoint.length > 0) {
      this.enqueue(this.sealCheckpoint()).catch(() => undefined);
    }
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.rotateTimer !== null) clearInterval(this.rotateTimer);
    while (this.flushing !== null) await this.flushing;
    await this.anchor.flush();
    await this.fh.close().catch(() => undefined);
    await this.lock.release();
  }

  private sealEvent(rec: AuditRecord): { entry: AuditEntry; line: string } {
    const body: AuditEntryBody = {
      seq: this.seq + 1,
      time: new Date().toISOString(),
      kind: 'event',
      tenant: rec.tenant,
      request_id: rec.requestId,
      actor: rec.actor,
      action: rec.action,
      outcome: rec.outcome,
      policy_version: rec.policyVersion ?? this.policyVersion,
      ...(rec.reason !== undefined ? { reason: rec.reason } : {}),
      ...(rec.detail !== undefined ? { detail: rec.detail } : {}),
      prev: this.lastHash,
    };
    const sealed = sealEntry(body);
    this.countActive(sealed.line);
    this.seq = sealed.entry.seq;
    this.lastHash = sealed.entry.hash;
    this.sinceCheckpoint.push(sealed.entry.hash);
    return sealed;
  }

  private sealCheckpoint(): { entry: AuditEntry; line: string } {
    const root = merkleRoot(this.sinceCheckpoint);
    const sealed = sealEntry({
      seq: this.seq + 1,
      time: new Date().toISOString(),
      kind: 'checkpoint',
      tenant: null,
      request_id: null,
      actor: this.actor,
      action: 'audit.checkpoint',
      outcome: 'success',
      policy_version: this.policyVersion,
      checkpoint: {
        from_seq: this.lastCheckpointSeq + 1,
        to_seq: this.seq,
        count: this.sinceCheckpoint.length,
        root,
        prev_root: this.lastCheckpointRoot,
      },
      prev: this.lastHash,
    });
    this.countActive(sealed.line);
    this.seq = sealed.entry.seq;
    this.lastHash = sealed.entry.hash;
    this.lastCheckpointSeq = sealed.entry.seq;
    this.lastCheckpointRoot = root;
    this.sinceCheckpoint = [];
    return sealed;
  }

  private countActive(line: string): void {
    if (this.activeEntries === 0) this.activeSince = Date.now();
    this.activeEntries++;
    this.activeBytes += Buffer.byteLength(line);
  }

  private enqueue(sealed: { entry: AuditEntry; line: string }): Promise<AuditEntry> {
    return new Promise<AuditEntry>((resolve, reject) => {
      this.queue.push({ line: sealed.line, entry: sealed.entry, resolve, reject });
      if (this.flushing === null) this.flushing = this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0 && this.failure === null) {
        // A batch ends at a rotation point: what follows goes into the next segment.
        const cut = this.queue.findIndex((p) => p.rotateAfter === true);
        const batch = cut === -1 ? this.queue : this.queue.slice(0, cut + 1);
        this.queue = cut === -1 ? [] : this.queue.slice(cut + 1);
        const data = Buffer.from(batch.length === 1 ? (batch[0] as Pending).line : batch.map((p) => p.line).join(''), 'utf8');
        try {
          let off = 0;
          while (off < data.length) {
            const { bytesWritten } = await this.fh.write(data, off, data.length - off);
            off += bytesWritten;
          }
          if (DSYNC === undefined) await this.fh.datasync();
        } catch (err) {
          this.poison(new AuditWriteError(`${this.path}: audit write failed (${(err as NodeJS.ErrnoException).code ?? String(err)}); refusing further entries`, err), batch);
          return;
        }
        this.batches++;
        this.appended += batch.length;
        let checkpoint = false;
        for (const p of batch) {
          if (p.entry.kind === 'checkpoint') {
            checkpoint = true;
            this.durableRoot = p.entry.checkpoint?.root ?? this.durableRoot;
            this.unanchoredCheckpoints.push(p.entry);
          }
        }
        // The anchor names the batch's last entry (now durable) before anyone hears of it.
        const head = (batch[batch.length - 1] as Pending).entry;
        this.anchor.durable({ seq: head.seq, hash: head.hash, root: this.durableRoot, time: head.time }, checkpoint);
        for (const p of batch) p.resolve(p.entry);
        if (cut !== -1 && !(await this.rotateFile())) return;
      }
    } finally {
      this.flushing = null;
    }
  }

  /** Renames the active file to the next closed segment and opens a new one. False: the log is poisoned. */
  private async rotateFile(): Promise<boolean> {
    try {
      await this.fh.close();
      const closed = await closeActiveSegment(this.path);
      this.fh = await open(this.path, APPEND_FLAGS, 0o600);
      await fsyncDir(path.dirname(this.path));
      this.emit('rotated', closed);
    } catch (err) {
      this.poison(new AuditWriteError(`${this.path}: rotation failed (${(err as NodeJS.ErrnoException).code ?? String(err)}); refusing further entries`, err), []);
      return false;
    }
    this.applyRetention().catch(() => undefined);
    return true;
  }

  private poison(err: AuditWriteError, batch: Pending[]): void {
    this.anchor.stop();
    if (this.failure === null) {
      this.failure = err;
      this.emit('failure', err);
    }
    for (const p of batch) p.reject(err);
    for (const p of this.queue) p.reject(err);
    this.queue = [];
  }
}
