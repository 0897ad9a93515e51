// One line of the audit log. Every line is a JSON object whose last member is its own hash:
//   {"seq":1,...,"prev":"<hex>","hash":"<hex>"}
// `hash` is SHA-256 over the exact bytes of the line with the `,"hash":"..."` member removed
// (i.e. the JSON text of the body), so verification never depends on re-serialising JSON.
import { createHash } from 'node:crypto';

export const HASH_HEX_LENGTH = 64;
/** `prev` of the first entry in a file. */
export const GENESIS_HASH = '0'.repeat(HASH_HEX_LENGTH);
const HASH_SUFFIX_HEAD = ',"hash":"';
const HASH_SUFFIX_TAIL = '"}';
/** Bytes the `,"hash":"<64 hex>"}` tail adds to the body's closing brace. */
export const HASH_SUFFIX_LENGTH = HASH_SUFFIX_HEAD.length + HASH_HEX_LENGTH + HASH_SUFFIX_TAIL.length;

export type AuditOutcome = 'success' | 'denied' | 'failure';
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['success', 'denied', 'failure'];

/** What a caller records; the log adds seq, time, policy version and the chain. */
export interface AuditRecord {
  /** Tenant name the action concerns (null for node-level events). */
  tenant: string | null;
  requestId: string | null;
  /** Who acted: a key id, a JWT subject, a certificate fingerprint, or a component name. */
  actor: string;
  /** Dotted action name, e.g. `infer.request`, `keys.rotate`, `tls.client_refused`. */
  action: string;
  outcome: AuditOutcome;
  /** Why (required for break-glass admin actions). */
  reason?: string;
  /** Overrides the log's policy version for this entry. */
  policyVersion?: string;
  /** Small structured context; must be JSON-serialisable. */
  detail?: Record<string, unknown>;
}

export interface CheckpointBody {
  /** First and last seq the Merkle root covers (the entries since the previous checkpoint). */
  from_seq: number;
  to_seq: number;
  count: number;
  /** RFC 6962 Merkle tree head over those entries' hashes. */
  root: string;
  /** Root of the previous checkpoint (GENESIS_HASH for the first), chaining checkpoints. */
  prev_root: string;
}

/** A parsed line, as written. Member order here is the order on disk. */
export interface AuditEntry {
  seq: number;
  time: string;
  kind: 'event' | 'checkpoint';
  tenant: string | null;
  request_id: string | null;
  actor: string;
  action: string;
  outcome: AuditOutcome;
  policy_version: string;
  reason?: string;
  detail?: Record<string, unknown>;
  checkpoint?: CheckpointBody;
  prev: string;
  hash: string;
}

export type AuditEntryBody = Omit<AuditEntry, 'hash'>;

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Serialises a body and seals it with its hash. Returns the entry and its line (with '\n'). */
export function sealEntry(body: AuditEntryBody): { entry: AuditEntry; line: string } {
  const json = JSON.stringify(body);
  const hash = sha256Hex(json);
  const line = `${json.slice(0, -1)}${HASH_SUFFIX_HEAD}${hash}${HASH_SUFFIX_TAIL}\n`;
  return { entry: { ...body, hash }, line };
}

/**
 * Recomputes the hash of one line (without its newline). Returns the hash the line claims and
 * the hash of its body, or null when the line does not end in a well-formed hash member.
 */
export function lineHashes(line: string): { claimed: string; actual: string } | null {
  if (line.length < HASH_SUFFIX_LENGTH + 2) return null;
  const suffixStart = line.length - HASH_SUFFIX_LENGTH;
  if (!line.startsWith(HASH_SUFFIX_HEAD, suffixStart) || !line.endsWith(HASH_SUFFIX_TAIL)) return null;
  const claimed = line.slice(suffixStart + HASH_SUFFIX_HEAD.length, line.length - HASH_SUFFIX_TAIL.length);
  if (!/^[0-9a-f]{64}$/.test(claimed)) return null;
  const actual = sha256Hex(`${line.slice(0, suffixStart)}}`);
  return { claimed, actual };
}
