// Whole-file verification of an audit log and its anchor, as `sluice audit verify` reports it.
import { anchorPathFor, readAnchor } from './anchor.ts';
import { scanAuditFile, type AuditAnchor, type AuditScan } from './scan.ts';

export interface AuditVerification extends AuditScan {
  file: string;
  ok: boolean;
  /** The anchor used for the truncation check (null when none was found or it was disabled). */
  anchor: AuditAnchor | null;
}

export interface VerifyOptions {
  /** Anchor file to check against; default FILE.anchor when it exists. `false` skips the check. */
  anchorFile?: string | false;
}

export async function verifyAuditFile(file: string, opts: VerifyOptions = {}): Promise<AuditVerification> {
  const anchor = opts.anchorFile === false ? null : await readAnchor(opts.anchorFile ?? anchorPathFor(file));
  const scan = await scanAuditFile(file, { anchor });
  return { ...scan, file, ok: scan.problem === null, anchor };
}

export function describeVerification(v: AuditVerification): string {
  if (v.problem !== null) return `${v.file}: FAILED at ${v.problem.message}`;
  const anchored = v.anchor === null ? 'no anchor' : `anchor seq ${v.anchor.seq} present`;
  return `${v.file}: ok, ${v.entries} entries (${v.checkpoints} checkpoints), head seq ${v.lastSeq} ${v.lastHash.slice(0, 16)}..., ${anchored}`;
}
