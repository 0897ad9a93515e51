// The anchor file (FILE.anchor) witnesses the latest durable checkpoint, so removing whole
// lines from the end of the log (which leaves a valid-looking prefix) is detected.
// It is replaced atomically (see atomic-file.ts).
import { readFile } from 'node:fs/promises';
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
