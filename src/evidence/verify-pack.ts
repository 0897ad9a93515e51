// Offline verification of an evidence pack (`sluice evidence verify`): the archive's
// structure, the detached signature over manifest.json, every part's SHA-256, that the entries
// are exactly the ones the manifest lists, every entry's and checkpoint's own hash, every
// inclusion proof against its checkpoint's Merkle root, and (given the live log) that the
// pack's checkpoints are in it. Stops at the first failure and names the part.
import type { KeyObject } from 'node:crypto';
import { lineHashes, sha256Hex, type AuditEntry } from '../audit/entry.ts';
import { verifyInclusion } from '../audit/merkle-proof.ts';
import { scanAuditSegments } from '../audit/segments.ts';
import { verifyDetached } from './jws.ts';
import type { EntryProof, PackManifest } from './pack.ts';
import { PACK_FORMAT } from './pack.ts';
import { readTar, TarFormatError } from './tar.ts';

export interface PackVerification {
  ok: boolean;
  /** The first bad part and what is wrong with it. */
  problem?: { part: string; message: string };
  entries?: number;
  checkpoints?: number;
  signedAt?: number;
}

class Bad extends Error {
  constructor(
    readonly part: string,
    message: string,
  ) {
    super(message);
  }
}

function parseJson<T>(part: string, data: Buffer): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch {
    throw new Bad(part, 'is not valid JSON');
  }
}

function lines(data: Buffer): string[] {
  const text = data.toString('utf8');
  if (text === '') return [];
  if (!text.endsWith('\n')) throw new Bad('audit/entries.jsonl', 'does not end with a newline');
  return text.slice(0, -1).split('\n');
}

/** Which seqs differ between the manifest's list and the entries present (for a precise message). */
function seqDiff(listed: readonly number[], data: Buffer): string {
  const present: number[] = [];
  for (const l of data.toString('utf8').split('\n')) {
    const m = /^\{"seq":(\d+),/.exec(l);
    if (m !== null) present.push(Number(m[1]));
  }
  const want = new Set(listed);
  const have = new Set(present);
  const removed = listed.filter((s) => !have.has(s));
  const added = present.filter((s) => !want.has(s));
  const what = [...(removed.length > 0 ? [`entry seq ${removed.slice(0, 5).join(', ')} removed`] : []), ...(added.length > 0 ? [`entry seq ${added.slice(0, 5).join(', ')} added`] : [])];
  return what.length > 0 ? ` (${what.join('; ')})` : ' (content altered)';
}

export async function verifyEvidencePack(pack: Buffer, key: KeyObject, opts: { auditLog?: string } = {}): Promise<PackVerification> {
  try {
    return await check(pack, key, opts);
  } catch (err) {
    if (err instanceof Bad) return { ok: false, problem: { part: err.part, message: err.message } };
    if (err instanceof TarFormatError) return { ok: false, problem: { part: 'archive', message: err.message } };
    throw err;
  }
}

async function check(pack: Buffer, key: KeyObject, opts: { auditLog?: string }): Promise<PackVerification> {
  const members = new Map(readTar(pack).map((e) => [e.name, e.data]));
  const manifestBytes = members.get('manifest.json');
  if (manifestBytes === undefined) throw new Bad('manifest.json', 'is missing');
  const jws = members.get('manifest.jws');
  if (jws === undefined) throw new Bad('manifest.jws', 'is missing');
  const sig = await verifyDetached(jws.toString('utf8'), manifestBytes, key);
  if (!sig.ok) throw new Bad('manifest.jws', `signature does not verify over manifest.json with this key: the manifest was altered or the pack was signed by another key (${sig.reason})`);
  const manifest = parseJson<PackManifest>('manifest.json', manifestBytes);
  if (manifest.format !== PACK_FORMAT) throw new Bad('manifest.json', `format is ${JSON.stringify(manifest.format)}, expected ${PACK_FORMAT}`);
  for (const name of members.keys()) {
    if (name !== 'manifest.json' && name !== 'manifest.jws' && !Object.hasOwn(manifest.parts, name)) throw new Bad(name, 'is not listed in the manifest (added to the pack)');
  }
  for (const [name, want] of Object.entries(manifest.parts)) {
    const data = members.get(name);
    if (data === undefined) throw new Bad(name, 'is listed in the manifest but missing from the pack (removed)');
    if (sha256Hex(data) !== want.sha256 || data.length !== want.bytes) {
      throw new Bad(name, `SHA-256 does not match the manifest${name === 'audit/entries.jsonl' ? seqDiff(manifest.entries.seqs, data) : ''}`);
    }
  }
  // Hashes match a signed manifest: what follows checks the content is internally true.
  const entryLines = lines(members.get('audit/entries.jsonl') ?? Buffer.alloc(0));
  const entries: AuditEntry[] = entryLines.map((l, i) => {
    const h = lineHashes(l);
    if (h === null || h.claimed !== h.actual) throw new Bad('audit/entries.jsonl', `line ${i + 1}: content does not match its own hash`);
    return parseJson<AuditEntry>('audit/entries.jsonl', Buffer.from(l));
  });
  const seqs = entries.map((e) => e.seq);
  if (JSON.stringify(seqs) !== JSON.stringify(manifest.entries.seqs)) throw new Bad('audit/entries.jsonl', `entries ${seqs.length} do not match the manifest's ${manifest.entries.seqs.length}${seqDiff(manifest.entries.seqs, members.get('audit/entries.jsonl')!)}`);
  const cps = parseJson<{ seq: number; line: string }[]>('checkpoints.json', members.get('checkpoints.json') ?? Buffer.from('[]'));
  const cpBySeq = new Map<number, AuditEntry>();
  for (const c of cps) {
    const h = lineHashes(c.line);
    if (h === null || h.claimed !== h.actual) throw new Bad('checkpoints.json', `checkpoint seq ${c.seq}: content does not match its own hash`);
    const e = parseJson<AuditEntry>('checkpoints.json', Buffer.from(c.line));
    if (e.seq !== c.seq || e.kind !== 'checkpoint' || e.checkpoint === undefined) throw new Bad('checkpoints.json', `seq ${c.seq} is not a checkpoint entry`);
    cpBySeq.set(e.seq, e);
  }
  const proofs = parseJson<EntryProof[]>('audit/proofs.json', members.get('audit/proofs.json') ?? Buffer.from('[]'));
  if (proofs.length !== entries.length) throw new Bad('audit/proofs.json', `${proofs.length} proofs for ${entries.length} entries`);
  entries.forEach((e, i) => {
    const p = proofs[i] as EntryProof;
    if (p.seq !== e.seq || p.hash !== e.hash) throw new Bad('audit/proofs.json', `proof ${i} is for seq ${p.seq}, not entry seq ${e.seq}`);
    const cp = cpBySeq.get(p.checkpoint_seq)?.checkpoint;
    if (cp === undefined) throw new Bad('checkpoints.json', `checkpoint seq ${p.checkpoint_seq} (proving entry seq ${e.seq}) is missing`);
    if (e.seq < cp.from_seq || e.seq > cp.to_seq || p.leaf_index !== e.seq - cp.from_seq || p.tree_size !== cp.count) {
      throw new Bad('audit/proofs.json', `entry seq ${e.seq}: proof position does not match checkpoint ${p.checkpoint_seq} (${cp.from_seq}..${cp.to_seq})`);
    }
    if (!Array.isArray(p.path) || !verifyInclusion(e.hash, p.leaf_index, p.tree_size, p.path, cp.root)) {
      throw new Bad('audit/proofs.json', `entry seq ${e.seq}: inclusion proof does not lead to checkpoint ${p.checkpoint_seq}'s Merkle root`);
    }
  });
  if (opts.auditLog !== undefined) {
    const live = new Map<number, string>();
    let scan;
    try {
      scan = await scanAuditSegments(opts.auditLog, { onEntry: (e) => e.kind === 'checkpoint' && live.set(e.seq, e.hash) });
    } catch (err) {
      throw new Bad('audit log', `${opts.auditLog}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    for (const [seq, e] of cpBySeq) {
      const h = live.get(seq);
      if (h === undefined) {
        throw new Bad('checkpoints.json', `checkpoint seq ${seq} is not in the live log ${opts.auditLog}${scan.problem === null ? '' : ` (the log stops verifying at ${scan.problem.message})`}`);
      }
      if (h !== e.hash) throw new Bad('checkpoints.json', `checkpoint seq ${seq} differs from the live log's (a different or rewritten log)`);
    }
  }
  return { ok: true, entries: entries.length, checkpoints: cpBySeq.size, signedAt: sig.header?.iat as number };
}
