// The receiver's spool directory: one `<id>.part` file per tensor being received, renamed to
// `<id>.tensor` once its SHA-256 is verified, with `<id>.json` describing it. Files survive a
// restart of the node, which is what lets a transfer resume from the bytes already on disk:
// the partial is always the received prefix (SpoolSink writes in order), so its size is the
// resume offset and its bytes seed the running hash. A partial whose final digest did not
// match (DATA_LOSS) is moved to `quarantine/<id>.<time>.part` with a `.json` saying why.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { TensorMeta } from './tensor-meta.ts';

const metaSchema = z.object({
  id: z.string(),
  from: z.string(),
  tensor: z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number()), attributes: z.record(z.string(), z.string()) }),
  total: z.number().int().nonnegative(),
  state: z.enum(['receiving', 'completed']),
  sha256: z.string().optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type SpoolRecord = z.infer<typeof metaSchema>;

export interface PartialFile {
  handle: FileHandle;
  /** Bytes already on disk (where the transfer resumes). */
  offset: number;
  /** SHA-256 state over those bytes. */
  hash: Hash;
}

/** Subdirectory of the spool for partials that failed their SHA-256 check. */
export const QUARANTINE_DIR = 'quarantine';

export class Spool {
  private readonly completed = new Map<string, SpoolRecord>();

  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    for (const rec of await this.records()) if (rec.state === 'completed') this.completed.set(rec.id, rec);
  }

  /** Every record in the spool (corrupt or foreign JSON files are skipped). */
  async records(): Promise<SpoolRecord[]> {
    const out: SpoolRecord[] = [];
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const rec = await this.readRecord(name.slice(0, -5));
      if (rec !== undefined) out.push(rec);
    }
    return out;
  }

  async readRecord(id: string): Promise<SpoolRecord | undefined> {
    try {
      const parsed = metaSchema.safeParse(JSON.parse(await readFile(this.file(id, 'json'), 'utf8')));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  completedRecord(id: string): SpoolRecord | undefined {
    return this.completed.get(id);
  }

  /**
   * Withholds a completed tensor from its readers (threat detection's quarantine): a marker
   * `<id>.withheld.json` saying why, until released (`sluice training release`). Survives restarts.
   */
  async withhold(id: string, why: Record<string, unknown>): Promise<void> {
    await writeFile(this.file(id, 'withheld.json'), `${JSON.stringify({ id, at: new Date().toISOString(), ...why })}\n`, { mode: 0o640 });
  }

  /** Why a tensor is withheld, or undefined when it is not. */
  async withheld(id: string): Promise<Record<string, unknown> | undefined> {
    try {
      return JSON.parse(await readFile(this.file(id, 'withheld.json'), 'utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }

  /** Ends a withholding; false when the tensor was not withheld. */
  async release(id: string): Promise<boolean> {
    try {
      await rm(this.file(id, 'withheld.json'));
      return true;
    } catch {
      return false;
    }
  }

  /** The most recently completed tensor with this name. */
  latestByName(name: string): SpoolRecord | undefined {
    let best: SpoolRecord | undefined;
    for (const r of this.completed.values()) if (r.tensor.name === name && (best === undefined || r.updatedAt > best.updatedAt)) best = r;
    return best;
  }

  completedRecords(): SpoolRecord[] {
    return [...this.completed.values()];
  }

  /** Creates a new partial file (truncating leftovers) and its record. */
  async create(id: string, from: string, tensor: TensorMeta, total: number): Promise<PartialFile> {
    const now = new Date().toISOString();
    await this.writeRecord({ id, from, tensor, total, state: 'receiving', createdAt: now, updatedAt: now });
    const handle = await open(this.file(id, 'part'), 'w', 0o640);
    return { handle, offset: 0, hash: createHash('sha256') };
  }

  /**
   * Reopens a partial file to continue it, re-hashing the bytes on disk (streamed, bounded
   * memory). Returns undefined when there is nothing to resume.
   */
  async reopen(id: string): Promise<PartialFile | undefined> {
    const file = this.file(id, 'part');
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      return undefined;
    }
    const hash = createHash('sha256');
    if (size > 0) {
      await new Promise<void>((resolve, reject) => {
        const rs = createReadStream(file, { start: 0, end: size - 1, highWaterMark: 1 << 20 });
        rs.on('data', (b) => hash.update(b as Buffer));
        rs.on('end', resolve);
        rs.on('error', reject);
      });
    }
    const handle = await open(file, 'r+');
    return { handle, offset: size, hash };
  }

  /** Marks a partial file complete: renames it to `<id>.tensor` and records its digest. */
  async complete(id: string, sha256: Buffer): Promise<SpoolRecord> {
    const rec = await this.readRecord(id);
    if (rec === undefined) throw new Error(`spool record of ${id} is missing`);
    await rename(this.file(id, 'part'), this.file(id, 'tensor'));
    const done: SpoolRecord = { ...rec, state: 'completed', sha256: sha256.toString('hex'), updatedAt: new Date().toISOString() };
    await this.writeRecord(done);
    this.completed.set(id, done);
    return done;
  }

  /** Moves a partial (and its record, with the reason) into `quarantine/`; returns the file's path. */
  async quarantine(id: string, reason: string): Promise<string> {
    const qdir = path.join(this.dir, QUARANTINE_DIR);
    await mkdir(qdir, { recursive: true, mode: 0o750 });
    const base = path.join(qdir, `${id}.${new Date().toISOString().replace(/[:.]/g, '-')}`);
    const rec = await this.readRecord(id);
    await writeFile(`${base}.json`, JSON.stringify({ ...(rec ?? { id }), reason, quarantinedAt: new Date().toISOString() }), { mode: 0o640 });
    await rename(this.file(id, 'part'), `${base}.part`);
    await this.discard(id);
    return `${base}.part`;
  }

  async discard(id: string): Promise<void> {
    this.completed.delete(id);
    await Promise.all(['part', 'tensor', 'json'].map((ext) => rm(this.file(id, ext), { force: true })));
  }

  /** Partial transfers whose record was not touched for `maxAgeMs` (abandoned senders). */
  async stalePartials(maxAgeMs: number, active: ReadonlySet<string>): Promise<string[]> {
    const cutoff = Date.now() - maxAgeMs;
    const out: string[] = [];
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith('.part')) continue;
      const id = name.slice(0, -5);
      if (active.has(id)) continue;
      try {
        if ((await stat(path.join(this.dir, name))).mtimeMs < cutoff) out.push(id);
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  tensorPath(id: string): string {
    return this.file(id, 'tensor');
  }

  private async writeRecord(rec: SpoolRecord): Promise<void> {
    // Write then rename, so a crash never leaves a half-written record.
    const tmp = `${this.file(rec.id, 'json')}.tmp`;
    await writeFile(tmp, JSON.stringify(rec), { mode: 0o640 });
    await rename(tmp, this.file(rec.id, 'json'));
  }

  private file(id: string, ext: string): string {
    return path.join(this.dir, `${id}.${ext}`);
  }
}
