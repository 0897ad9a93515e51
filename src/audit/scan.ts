// Reads an audit log from start to end and checks every line: its own hash, the sequence,
// the link to the previous entry, and each checkpoint's Merkle root. Stops at the first bad
// entry and says what is wrong with it. Used by `sluice audit verify` and when reopening a log.
import { open } from 'node:fs/promises';
import { AUDIT_OUTCOMES, GENESIS_HASH, lineHashes, type AuditEntry } from './entry.ts';
import { merkleRoot } from './merkle.ts';

export type AuditProblemKind =
  | 'malformed' // not a JSON entry of the expected shape
  | 'edited' // the line's content does not match its own hash
  | 'missing' // a sequence number was skipped: entries deleted (or moved later)
  | 'reordered' // a sequence number went backwards or repeated
  | 'chain' // prev does not name the previous entry's hash (rewritten entry)
  | 'checkpoint' // a checkpoint's range or Merkle root does not match the entries before it
  | 'truncated' // the file ends inside a line, or before the entry its anchor names
  | 'anchor'; // the anchor file is missing, so the tail cannot be checked (verify.ts)

export interface AuditProblem {
  kind: AuditProblemKind;
  /** 1-based line number of the first bad entry (or of the torn tail). */
  line: number;
  /** Byte offset where that line starts. */
  offset: number;
  /** Sequence number the line claims, when it has one. */
  seq: number | null;
  message: string;
}

/** A witness of the durable log head kept beside it (FILE.anchor; see anchor.ts). */
export interface AuditAnchor {
  /** Seq of the head entry; seqs run 1..n, so this is also the entry count. */
  seq: number;
  hash: string;
  /** Merkle root of the newest checkpoint at or before `seq` (64 zeros: none yet). */
  root: string;
  /** The head entry's time. */
  time: string;
}

export interface AuditScan {
  entries: number;
  checkpoints: number;
  lastSeq: number;
  lastHash: string;
  lastCheckpointSeq: number;
  lastCheckpointRoot: string;
  /** Hashes of the entries after the last checkpoint (the next checkpoint's leaves). */
  sinceCheckpoint: string[];
  /** Whether the entry the anchor names was seen (and matched). */
  anchorSeen: boolean;
  /** Byte length of the valid prefix (everything before the first bad or torn line). */
  validBytes: number;
  /** Bytes after the last newline (a torn final write), when the file does not end with '\n'. */
  tornTailBytes: number;
  problem: AuditProblem | null;
}

const READ_CHUNK = 1 << 20;

function shapeError(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not a JSON object';
  const e = v as Record<string, unknown>;
  if (!Number.isSafeInteger(e.seq) || (e.seq as number) < 1) return 'seq is not a positive integer';
  if (typeof e.time !== 'string' || Number.isNaN(Date.parse(e.time))) return 'time is not a timestamp';
  if (e.kind !== 'event' && e.kind !== 'checkpoint') return 'kind is not "event" or "checkpoint"';
  if (e.tenant !== null && typeof e.tenant !== 'string') return 'tenant is not a string or null';
  if (e.request_id !== null && typeof e.request_id !== 'string') return 'request_id is not a string or null';
  for (const k of ['actor', 'action', 'policy_version'] as const) {
    if (typeof e[k] !== 'string') return `${k} is not a string`;
  }
  if (!AUDIT_OUTCOMES.includes(e.outcome as never)) return 'outcome is not success | denied | failure';
  if (typeof e.prev !== 'string' || !/^[0-9a-f]{64}$/.test(e.prev)) return 'prev is not a SHA-256 hex digest';
  if (e.kind === 'checkpoint') {
    const c = e.checkpoint as Record<string, unknown> | undefined;
    if (typeof c !== 'object' || c === null) return 'checkpoint body missing';
    for (const k of ['from_seq', 'to_seq', 'count'] as const) {
      if (!Number.isSafeInteger(c[k])) return `checkpoint.${k} is not an integer`;
    }
    for (const k of ['root', 'prev_root'] as const) {
      if (typeof c[k] !== 'string' || !/^[0-9a-f]{64}$/.test(c[k] as string)) return `checkpoint.${k} is not a digest`;
    }
  }
  return null;
}

/** Where a segment's chain picks up: the state after the previous segment (segments.ts). */
export type ScanStart = Pick<AuditScan, 'lastSeq' | 'lastHash' | 'lastCheckpointSeq' | 'lastCheckpointRoot' | 'sinceCheckpoint'>;

export interface ScanOptions {
  /** Require the entry at anchor.seq to exist with anchor.hash (detects truncation of whole lines). */
  anchor?: AuditAnchor | null;
  /** Continue the chain from here instead of genesis (a later segment of a rotated log). */
  start?: ScanStart;
  /** Whether the anchor's entry must be in this file (false: the caller checks `anchorSeen` across segments). */
  anchorInThisFile?: boolean;
  /** Called with each valid entry and its line (without '\n'), in order. */
  onEntry?: (entry: AuditEntry, line: string) => void;
}

export async function scanAuditFile(file: string, opts: ScanOptions = {}): Promise<AuditScan> {
  const st: AuditScan = {
    entries: 0,
    checkpoints: 0,
    lastSeq: 0,
    lastHash: GENESIS_HASH,
    lastCheckpointSeq: 0,
    lastCheckpointRoot: GENESIS_HASH,
    sinceCheckpoint: [],
    anchorSeen: false,
    validBytes: 0,
    tornTailBytes: 0,
    problem: null,
    ...(opts.start === undefined ? {} : { ...opts.start, sinceCheckpoint: [...opts.start.sinceCheckpoint] }),
  };
  const anchor = opts.anchor ?? null;
  let lineNo = 0;
  let offset = 0;

  const fail = (kind: AuditProblemKind, seq: number | null, message: string): void => {
    st.problem = { kind, line: lineNo, offset, seq, message: `line ${lineNo}${seq === null ? '' : ` (seq ${seq})`}: ${message}` };
  };

  const checkLine = (text: string): void => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      fail('malformed', null, 'not valid JSON');
      return;
    }
    const bad = shapeError(parsed);
    const seqClaim = Number.isSafeInteger((parsed as { seq?: unknown })?.seq) ? (parsed as { seq: number }).seq : null;
    if (bad !== null) {
      fail('malformed', seqClaim, bad);
      return;
    }
    const e = parsed as AuditEntry;
    const hashes = lineHashes(text);
    if (hashes === null || hashes.claimed !== e.hash) {
      fail('malformed', e.seq, 'the line does not end with its own "hash" member');
      return;
    }
    if (hashes.actual !== hashes.claimed) {
      fail('edited', e.seq, 'content does not match its hash (entry was modified)');
      return;
    }
    const expected = st.lastSeq + 1;
    if (e.seq > expected) {
      fail('missing', e.seq, `expected seq ${expected}: entries ${expected}..${e.seq - 1} are missing (deleted or reordered)`);
      return;
    }
    if (e.seq < expected) {
      fail('reordered', e.seq, `expected seq ${expected}: sequence went backwards (reordered or duplicated)`);
      return;
    }
    if (e.prev !== st.lastHash) {
      fail('chain', e.seq, 'prev does not match the hash of the entry before it (chain broken)');
      return;
    }
    if (e.kind === 'checkpoint') {
      const c = e.checkpoint as NonNullable<AuditEntry['checkpoint']>;
      const from = st.lastCheckpointSeq + 1;
      if (c.from_seq !== from || c.to_seq !== e.seq - 1 || c.count !== st.sinceCheckpoint.length) {
        fail('checkpoint', e.seq, `checkpoint covers ${c.from_seq}..${c.to_seq} (${c.count}) but entries ${from}..${e.seq - 1} precede it`);
        return;
      }
      if (c.prev_root !== st.lastCheckpointRoot) {
        fail('checkpoint', e.seq, 'prev_root does not match the previous checkpoint');
        return;
      }
      if (merkleRoot(st.sinceCheckpoint) !== c.root) {
        fail('checkpoint', e.seq, 'Merkle root does not match the entries it covers');
        return;
      }
      st.checkpoints++;
      st.lastCheckpointSeq = e.seq;
      st.lastCheckpointRoot = c.root;
      st.sinceCheckpoint = [];
    } else {
      st.sinceCheckpoint.push(e.hash);
    }
    if (anchor !== null && e.seq === anchor.seq) {
      if (e.hash !== anchor.hash) {
        fail('chain', e.seq, `hash differs from the anchor's (${anchor.hash.slice(0, 16)}...): log was rewritten`);
        return;
      }
      st.anchorSeen = true;
    }
    st.entries++;
    opts.onEntry?.(e, text);
    st.lastSeq = e.seq;
    st.lastHash = e.hash;
  };

  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    let carry: Buffer = Buffer.alloc(0);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      let data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let start = 0;
      for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
        lineNo++;
        checkLine(data.toString('utf8', start, nl));
        if (st.problem !== null) return st;
        offset += nl - start + 1;
        st.validBytes = offset;
        start = nl + 1;
      }
      // Keep the partial line; copy because `buf` is reused by the next read.
      data = data.subarray(start);
      carry = Buffer.from(data);
    }
    if (carry.length > 0) {
      lineNo++;
      st.tornTailBytes = carry.length;
      fail('truncated', null, `file ends inside a line (${carry.length} bytes after the last complete entry, seq ${st.lastSeq})`);
      return st;
    }
  } finally {
    await fh.close();
  }
  if (anchor !== null && !st.anchorSeen && opts.anchorInThisFile !== false) {
    lineNo++;
    fail('truncated', null, `log ends at seq ${st.lastSeq} but its anchor names seq ${anchor.seq}: entries were removed from the end`);
  }
  return st;
}
