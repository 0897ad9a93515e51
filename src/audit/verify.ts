// Whole-file verification of an audit log and its anchor, as `sluice audit verify` reports it.
import { anchorPathFor, readAnchor } from './anchor.ts';
import type { AuditAnchor, AuditScan } from './scan.ts';
import { scanAuditSegments, type SegmentSummary } from './segments.ts';

export interface AuditVerification extends AuditScan {
  file: string;
  ok: boolean;
  /** The anchor used for the truncation check (null when none was found or it was disabled). */
  anchor: AuditAnchor | null;
  /** The files read, oldest first (closed segments, then the active file). */
  segments: SegmentSummary[];
}

export interface VerifyOptions {
  /**
   * Anchor file to check against; default FILE.anchor. A missing anchor fails verification
   * (without it a cut or rewritten tail cannot be seen); `false` skips the check on purpose.
   */
  anchorFile?: string | false;
}

export async function verifyAuditFile(file: string, opts: VerifyOptions = {}): Promise<AuditVerification> {
  const anchorFile = opts.anchorFile === false ? null : (opts.anchorFile ?? anchorPathFor(file));
  const anchor = anchorFile === null ? null : await readAnchor(anchorFile);
  const scan = await scanAuditSegments(file, { anchor });
  if (scan.problem === null && anchorFile !== null && anchor === null) {
    scan.problem = {
      kind: 'anchor',
      line: scan.entries,
      offset: scan.validBytes,
      seq: scan.lastSeq,
      message: `anchor ${anchorFile} is missing: entries cut from the end or a rewritten tail cannot be detected (--no-anchor checks the chain alone)`,
    };
  }
  return { ...scan, file, ok: scan.problem === null, anchor };
}

export function describeVerification(v: AuditVerification): string {
  if (v.problem?.kind === 'anchor') return `${v.file}: FAILED: ${v.problem.message}`;
  if (v.problem !== null) return `${v.file}: FAILED at ${v.problem.message}`;
  const anchored = v.anchor === null ? 'anchor not checked (--no-anchor)' : `anchor seq ${v.anchor.seq} matches`;
  const segs = v.segments.length > 1 ? ` in ${v.segments.length} segments` : '';
  return `${v.file}: ok, ${v.entries} entries${segs} (${v.checkpoints} checkpoints), head seq ${v.lastSeq} ${v.lastHash.slice(0, 16)}..., ${anchored}`;
}
