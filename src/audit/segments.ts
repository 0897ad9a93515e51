// A rotated audit log: closed segments FILE.000001, FILE.000002, ... (oldest first, read-only,
// never rewritten) and the active file FILE. The hash chain, the sequence and the checkpoint
// chain run on across segments: a segment's first entry's `prev` is the previous segment's
// last hash, and every closed segment ends with a checkpoint covering its entries, so an
// entry's checkpoint is always in its own segment. FILE.anchor names the durable head, which
// is in the newest segment (or, just after a rotation, the one before it).
//
// Each segment after the first opens with an `audit.segment` event carrying the previous
// checkpoint root, so a log whose older segments were deleted by retention still checks.
// Retention deletes whole closed segments older than `retentionDays` (by the time of their
// last write), never the active file: it first records an `audit.retention` event naming the
// seq the retained log will start at, then deletes. Verification accepts a log whose oldest
// segment starts after seq 1 only if it starts no later than the newest retention event says.
import { chmod, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fsyncDir } from './atomic-file.ts';
import type { AuditEntry } from './entry.ts';
import { scanAuditFile, type AuditAnchor, type AuditScan, type ScanStart } from './scan.ts';

const SEGMENT_DIGITS = 6;

export interface SegmentFile {
  file: string;
  /** 1, 2, ... for closed segments; Infinity for the active file. */
  index: number;
}

export function segmentPath(logPath: string, index: number): string {
  return `${logPath}.${String(index).padStart(SEGMENT_DIGITS, '0')}`;
}

/** Closed segments in order, then the active file if it exists. */
export async function listSegments(logPath: string): Promise<SegmentFile[]> {
  const dir = path.dirname(logPath);
  const base = path.basename(logPath);
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d{${SEGMENT_DIGITS},})$`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const closed = names
    .map((n) => re.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ file: path.join(dir, m[0]), index: Number(m[1]) }))
    .sort((a, b) => a.index - b.index);
  const active = names.includes(base) ? [{ file: logPath, index: Number.POSITIVE_INFINITY }] : [];
  return [...closed, ...active];
}

export interface SegmentSummary {
  file: string;
  firstSeq: number;
  lastSeq: number;
  entries: number;
}

export interface SegmentedScan extends AuditScan {
  segments: SegmentSummary[];
  /** Where the retained log starts (a retention event's `retained_from_seq`; 1 when nothing was deleted). */
  retainedFromSeq: number;
}

/** The first line of a file, parsed (null: empty or unreadable). */
export async function firstEntryOf(file: string): Promise<AuditEntry | null> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const nl = buf.subarray(0, bytesRead).indexOf(0x0a);
    if (nl === -1) return null;
    return JSON.parse(buf.toString('utf8', 0, nl)) as AuditEntry;
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/**
 * Scans every segment in order as one chain. A log whose oldest segment does not start at
 * seq 1 must carry a retention event naming that start (entries deleted otherwise).
 */
export async function scanAuditSegments(logPath: string, opts: { anchor?: AuditAnchor | null; onEntry?: (e: AuditEntry, line: string, file: string) => void } = {}): Promise<SegmentedScan> {
  const files = await listSegments(logPath);
  if (files.length === 0) throw Object.assign(new Error(`${logPath}: no such audit log`), { code: 'ENOENT' });
  const anchor = opts.anchor ?? null;
  const segments: SegmentSummary[] = [];
  let start: ScanStart | undefined;
  let total: AuditScan | null = null;
  let entries = 0;
  let checkpoints = 0;
  let anchorSeen = false;
  let retainedFromSeq = 1;
  let claimedStart: number | null = null;
  const first = files.length === 0 ? null : await firstEntryOf((files[0] as SegmentFile).file);
  if (first !== null && Number.isSafeInteger(first.seq) && first.seq > 1) {
    // A retained log: pick the chain up from the first entry's own claims (its segment event
    // names the previous checkpoint root); the retention event bounds where it may start.
    const root = first.action === 'audit.segment' ? first.detail?.prev_checkpoint_root : undefined;
    start = { lastSeq: first.seq - 1, lastHash: first.prev, lastCheckpointSeq: first.seq - 1, lastCheckpointRoot: typeof root === 'string' ? root : '', sinceCheckpoint: [] };
    claimedStart = first.seq;
  }
  for (const seg of files) {
    const segFirst = { seq: 0 };
    const scan = await scanAuditFile(seg.file, {
      anchor,
      anchorInThisFile: false,
      ...(start === undefined ? {} : { start }),
      onEntry: (e, line) => {
        if (segFirst.seq === 0) segFirst.seq = e.seq;
        if (e.action === 'audit.retention' && typeof e.detail?.retained_from_seq === 'number') retainedFromSeq = e.detail.retained_from_seq;
        opts.onEntry?.(e, line, seg.file);
      },
    });
    entries += scan.entries;
    checkpoints += scan.checkpoints;
    anchorSeen ||= scan.anchorSeen;
    segments.push({ file: seg.file, firstSeq: segFirst.seq, lastSeq: scan.lastSeq, entries: scan.entries });
    total = scan;
    if (scan.problem !== null) {
      if (files.length > 1) scan.problem.message = `${path.basename(seg.file)}: ${scan.problem.message}`;
      break;
    }
    start = { lastSeq: scan.lastSeq, lastHash: scan.lastHash, lastCheckpointSeq: scan.lastCheckpointSeq, lastCheckpointRoot: scan.lastCheckpointRoot, sinceCheckpoint: scan.sinceCheckpoint };
  }
  const result: SegmentedScan = {
    ...(total ?? (await emptyScan())),
    entries,
    checkpoints,
    anchorSeen,
    segments,
    retainedFromSeq,
  };
  if (result.problem === null && claimedStart !== null && claimedStart > retainedFromSeq) {
    result.problem = {
      kind: 'missing',
      line: 1,
      offset: 0,
      seq: claimedStart,
      message: `the log starts at seq ${claimedStart} but no retention event says entries before it were deleted (retained from seq ${retainedFromSeq}): segments were removed`,
    };
  }
  if (result.problem === null && anchor !== null && !anchorSeen) {
    result.problem = { kind: 'truncated', line: entries + 1, offset: result.validBytes, seq: null, message: `log ends at seq ${result.lastSeq} but its anchor names seq ${anchor.seq}: entries were removed from the end` };
  }
  return result;
}

async function emptyScan(): Promise<AuditScan> {
  return { entries: 0, checkpoints: 0, lastSeq: 0, lastHash: '0'.repeat(64), lastCheckpointSeq: 0, lastCheckpointRoot: '0'.repeat(64), sinceCheckpoint: [], anchorSeen: false, validBytes: 0, tornTailBytes: 0, problem: null };
}

/** Renames the active file to the next closed segment (read-only from then on). Returns its path. */
export async function closeActiveSegment(logPath: string): Promise<string> {
  const closed = (await listSegments(logPath)).filter((s) => Number.isFinite(s.index));
  const next = segmentPath(logPath, (closed.at(-1)?.index ?? 0) + 1);
  await rename(logPath, next);
  await chmod(next, 0o400).catch(() => undefined);
  await fsyncDir(path.dirname(logPath));
  return next;
}

/**
 * Which closed segments are older than `retentionDays` (a prefix: a newer segment is never
 * deleted before an older one), and the first seq of the oldest segment that stays. Null
 * when nothing is due. The caller records the plan in the log, then calls `deleteSegments`.
 */
export async function planRetention(logPath: string, retentionDays: number, now = Date.now()): Promise<{ files: string[]; retainedFromSeq: number } | null> {
  const segs = await listSegments(logPath);
  const cutoff = now - retentionDays * 86_400_000;
  const files: string[] = [];
  for (const seg of segs) {
    if (!Number.isFinite(seg.index)) break;
    if ((await stat(seg.file)).mtimeMs >= cutoff) break;
    files.push(seg.file);
  }
  if (files.length === 0) return null;
  const keep = segs[files.length];
  const firstKept = keep === undefined ? null : await firstEntryOf(keep.file);
  if (firstKept === null) return null; // nothing left to start from: keep everything
  return { files, retainedFromSeq: firstKept.seq };
}

export async function deleteSegments(files: readonly string[]): Promise<void> {
  for (const f of files) await unlink(f).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (files.length > 0) await fsyncDir(path.dirname(files[0] as string));
}
