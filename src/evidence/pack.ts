// `sluice evidence export` and POST /v2/sluice/evidence: one signed tar holding the audit
// entries of a time range (filtered by a framework's controls), an RFC 6962 inclusion proof of
// each against its checkpoint's Merkle root, those checkpoints, the policy in force (config
// with secrets removed, policy versions seen), the key inventory (never secrets or hashes), a
// metrics snapshot, and manifest.json (SHA-256 of every part) signed by manifest.jws.
//
// Only entries already under a checkpoint can be proven; later ones are left out and counted
// (`unsealed_excluded`). The node's endpoint seals a checkpoint first, so it leaves none out.
import type { KeyObject } from 'node:crypto';
import path from 'node:path';
import { anchorPathFor, readAnchor } from '../audit/anchor.ts';
import type { AuditEntry } from '../audit/entry.ts';
import { sha256Hex } from '../audit/entry.ts';
import { inclusionProof } from '../audit/merkle-proof.ts';
import { scanAuditSegments } from '../audit/segments.ts';
import type { SluiceConfig } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';
import { readKeyStore } from '../security/api-key-store.ts';
import { redactConfig } from './config-snapshot.ts';
import { CONTROLS, controlsFor, FRAMEWORKS, type Framework } from './frameworks.ts';
import { signDetached } from './jws.ts';
import { writeTar, type TarEntry } from './tar.ts';

export const PACK_FORMAT = 'sluice-evidence/1';

export class EvidenceError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_EVIDENCE', message);
  }
}

export interface EvidenceExportOptions {
  config: SluiceConfig;
  from: Date;
  to: Date;
  framework: Framework | null;
  /** Only this tenant's entries (a pack for one tenant, sealed under its key when kept at rest). */
  tenant?: string;
  signingKey: KeyObject;
  /** Prometheus text exposition of the node's metrics (or a note why there is none). */
  metricsText: string;
  now?: Date;
}

export interface EntryProof {
  seq: number;
  hash: string;
  checkpoint_seq: number;
  leaf_index: number;
  tree_size: number;
  path: string[];
}

export interface PackManifest {
  format: typeof PACK_FORMAT;
  node: string;
  created_at: string;
  range: { from: string; to: string };
  framework: Framework | null;
  /** Set when the pack holds one tenant's entries only. */
  tenant?: string;
  log: { file: string; segments: { file: string; first_seq: number; last_seq: number }[]; head_seq: number; anchor: { seq: number; hash: string } | null };
  entries: { count: number; seqs: number[]; unsealed_excluded: number };
  checkpoints: number[];
  controls: Record<string, { title: string; entries: number }>;
  parts: Record<string, { sha256: string; bytes: number }>;
}

interface Collected {
  entry: AuditEntry;
  line: string;
}

function keyState(r: { expires_at?: string; revoked_reason?: string }, now: number): string {
  if (r.revoked_reason !== undefined) return 'revoked';
  if (r.expires_at === undefined) return 'active';
  return Date.parse(r.expires_at) <= now ? 'expired' : 'retiring';
}

async function keyInventory(config: SluiceConfig, now: number): Promise<unknown[]> {
  if (!config.security.apiKeys.enabled) return [];
  const records = await readKeyStore(config.security.apiKeys.store).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
  return records.map((r) => ({
    id: r.id,
    tenant: r.tenant,
    caps: r.caps,
    state: keyState(r, now),
    created_at: r.created_at,
    ...(r.expires_at !== undefined ? { expires_at: r.expires_at } : {}),
    ...(r.rotated_from !== undefined ? { rotated_from: r.rotated_from } : {}),
    ...(r.label !== undefined ? { label: r.label } : {}),
  }));
}

export async function buildEvidencePack(opts: EvidenceExportOptions): Promise<{ tar: Buffer; manifest: PackManifest }> {
  const now = opts.now ?? new Date();
  const logPath = path.resolve(opts.config.security.audit.path);
  const anchor = await readAnchor(anchorPathFor(logPath));
  const all: Collected[] = [];
  let scan;
  try {
    scan = await scanAuditSegments(logPath, { anchor, onEntry: (entry, line) => all.push({ entry, line }) });
  } catch (err) {
    throw new EvidenceError(`${logPath}: cannot read the audit log (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (scan.problem !== null) throw new EvidenceError(`${logPath}: the audit log does not verify (${scan.problem.message}); no pack was written`);
  const bySeq = new Map<number, Collected>();
  for (const c of all) bySeq.set(c.entry.seq, c);
  const from = opts.from.getTime();
  const to = opts.to.getTime();
  const selected: Collected[] = [];
  let unsealed = 0;
  const controls = new Map<string, number>();
  for (const c of all) {
    const e = c.entry;
    if (e.kind !== 'event') continue;
    if (opts.tenant !== undefined && e.tenant !== opts.tenant) continue;
    const t = Date.parse(e.time);
    if (t < from || t > to) continue;
    const ctl = controlsFor(e.action, opts.framework);
    if (opts.framework !== null && ctl.length === 0) continue;
    if (e.seq > scan.lastCheckpointSeq) {
      unsealed++;
      continue;
    }
    selected.push(c);
    for (const id of ctl) controls.set(id, (controls.get(id) ?? 0) + 1);
  }
  // Each selected entry's checkpoint: the first checkpoint after it (its range covers it).
  const checkpointSeqs = all.filter((c) => c.entry.kind === 'checkpoint').map((c) => c.entry.seq);
  const proofs: EntryProof[] = [];
  const usedCheckpoints = new Set<number>();
  const leavesCache = new Map<number, string[]>();
  let ci = 0;
  for (const c of selected) {
    while ((checkpointSeqs[ci] as number) < c.entry.seq) ci++;
    const cpSeq = checkpointSeqs[ci] as number;
    const cp = (bySeq.get(cpSeq) as Collected).entry.checkpoint!;
    let leaves = leavesCache.get(cpSeq);
    if (leaves === undefined) {
      leaves = [];
      for (let s = cp.from_seq; s <= cp.to_seq; s++) leaves.push((bySeq.get(s) as Collected).entry.hash);
      leavesCache.set(cpSeq, leaves);
    }
    const index = c.entry.seq - cp.from_seq;
    proofs.push({ seq: c.entry.seq, hash: c.entry.hash, checkpoint_seq: cpSeq, leaf_index: index, tree_size: leaves.length, path: inclusionProof(leaves, index) });
    usedCheckpoints.add(cpSeq);
  }
  const checkpoints = [...usedCheckpoints].sort((a, b) => a - b).map((s) => ({ seq: s, line: (bySeq.get(s) as Collected).line }));
  const versions = new Map<string, { first_seq: number; last_seq: number; first_time: string; last_time: string }>();
  for (const c of selected) {
    const v = versions.get(c.entry.policy_version);
    if (v === undefined) versions.set(c.entry.policy_version, { first_seq: c.entry.seq, last_seq: c.entry.seq, first_time: c.entry.time, last_time: c.entry.time });
    else Object.assign(v, { last_seq: c.entry.seq, last_time: c.entry.time });
  }
  const json = (v: unknown): Buffer => Buffer.from(`${JSON.stringify(v, null, 2)}\n`);
  const parts: TarEntry[] = [
    { name: 'audit/entries.jsonl', data: Buffer.from(selected.map((c) => `${c.line}\n`).join('')) },
    { name: 'audit/proofs.json', data: json(proofs) },
    { name: 'checkpoints.json', data: json(checkpoints) },
    { name: 'policy/config.json', data: json(redactConfig(opts.config)) },
    { name: 'policy/versions.json', data: json({ current: opts.config.security.policyVersion, in_range: Object.fromEntries(versions) }) },
    { name: 'keys.json', data: json(await keyInventory(opts.config, now.getTime())) },
    { name: 'metrics.txt', data: Buffer.from(opts.metricsText) },
  ];
  const titles = new Map<string, string>();
  for (const fw of FRAMEWORKS) for (const c of CONTROLS[fw]) titles.set(opts.framework === null ? `${fw}:${c.id}` : c.id, c.title);
  const manifest: PackManifest = {
    format: PACK_FORMAT,
    node: opts.config.node.name,
    created_at: now.toISOString(),
    range: { from: opts.from.toISOString(), to: opts.to.toISOString() },
    framework: opts.framework,
    ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
    log: {
      file: path.basename(logPath),
      segments: scan.segments.map((s) => ({ file: path.basename(s.file), first_seq: s.firstSeq, last_seq: s.lastSeq })),
      head_seq: scan.lastSeq,
      anchor: anchor === null ? null : { seq: anchor.seq, hash: anchor.hash },
    },
    entries: { count: selected.length, seqs: selected.map((c) => c.entry.seq), unsealed_excluded: unsealed },
    checkpoints: checkpoints.map((c) => c.seq),
    controls: Object.fromEntries([...controls].sort().map(([id, n]) => [id, { title: titles.get(id) ?? id, entries: n }])),
    parts: Object.fromEntries(parts.map((p) => [p.name, { sha256: sha256Hex(p.data), bytes: p.data.length }])),
  };
  const manifestBytes = json(manifest);
  const jws = await signDetached(manifestBytes, opts.signingKey, Math.floor(now.getTime() / 1000));
  const tar = writeTar([{ name: 'manifest.json', data: manifestBytes }, { name: 'manifest.jws', data: Buffer.from(`${jws}\n`) }, ...parts], now.getTime() / 1000);
  return { tar, manifest };
}
