// The receiver's spool directory: one `<id>.part` file per tensor being received, renamed to
// `<id>.tensor` once its SHA-256 is verified, with `<id>.json` describing it. Files survive a
// restart of the node, which is what lets a transfer resume from the bytes already on disk:
// the partial is always the received prefix (SpoolSink writes in order), so its size is the
// resume offset and its bytes seed the running hash. A partial whose final digest did not
// match (DATA_LOSS) is moved to `quarantine/<id>.<time>.part` with a `.json` saying why.
// With security.atRest on (`keys` given), the files are sealed under the owning tenant's data
// key instead (sealed-spool-file.ts): the resume offset and hash come from the decrypted
// records, and readers get plaintext through reader()/openTensor(), never from the file.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { AtRestError, AtRestErrorCode } from '../security/at-rest/at-rest-error.ts';
import path from 'node:path';
import { z } from 'zod';
import { SpoolRecordSealer } from '../security/at-rest/sealed-spool-format.ts';
import { TransferError } from './errors.ts';
import { asTransferError, SealedSpoolFile, startSealedFile, writeFully, type SpoolKeys } from './sealed-spool-file.ts';
import type { TensorMeta } from './tensor-meta.ts';

const metaSchema = z.object({
  id: z.string(),
  from: z.string(),
  tensor: z.object({ name: z.string(), datatype: z.string(), shape: z.array(z.number()), attributes: z.record(z.string(), z.string()) }),
  total: z.number().int().nonnegative(),
  state: z.enum(['receiving', 'completed']),
  sha256: z.string().optional(),
  /** The owning tenant, and whether the file is sealed under its data key (security.atRest). */
  tenant: z.string().optional(),
  sealed: z.boolean().optional(),
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
  /** Set when the file is sealed at rest: where the next record goes, and what seals it. */
  sealed?: SealedAppend;
}

export interface SealedAppend {
  sealer: SpoolRecordSealer;
  /** File bytes so far (the next record's position). */
  filePos: number;
}

/** Random access to a spooled tensor's plaintext (the poisoning check's samples). */
export interface TensorFile {
  read(buf: Buffer, bufOffset: number, length: number, position: number): Promise<void>;
  close(): Promise<void>;
}

/** Subdirectory of the spool for partials that failed their SHA-256 check. */
export const QUARANTINE_DIR = 'quarantine';

export class Spool {
  private readonly completed = new Map<string, SpoolRecord>();
  private readonly resealing = new Set<string>();

  /** `keys`: seal new files under their tenant's data key (security.atRest). */
  constructor(
    readonly dir: string,
    private readonly keys?: SpoolKeys,
  ) {}

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

  /** Creates a new partial file (truncating leftovers) and its record; sealed for `tenant` when at-rest keys are set. */
  async create(id: string, from: string, tensor: TensorMeta, total: number, tenant?: string): Promise<PartialFile> {
    const now = new Date().toISOString();
    const sealed = this.keys !== undefined && tenant !== undefined;
    await this.writeRecord({ id, from, tensor, total, state: 'receiving', ...(tenant !== undefined ? { tenant } : {}), ...(sealed ? { sealed } : {}), createdAt: now, updatedAt: now });
    const handle = await open(this.file(id, 'part'), 'w', 0o640);
    if (!sealed) return { handle, offset: 0, hash: createHash('sha256') };
    try {
      return { handle, offset: 0, hash: createHash('sha256'), sealed: await startSealedFile(handle, this.keys!, { tenant: tenant!, transferId: id }) };
    } catch (err) {
      await handle.close();
      throw asTransferError(err, `cannot seal transfer ${id} for tenant ${tenant}`);
    }
  }

  /**
   * Reopens a partial file to continue it, re-hashing the bytes on disk (streamed, bounded
   * memory). Returns undefined when there is nothing to resume.
   */
  async reopen(id: string): Promise<PartialFile | undefined> {
    const rec = await this.readRecord(id);
    if (this.keys !== undefined || rec?.sealed === true) return rec === undefined ? undefined : this.reopenSealed(id, rec);
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

  /**
   * A sealed partial: the records on disk are decrypted to re-hash them (their versions' keys,
   * so a rotation since is fine), a torn last record is cut off, and appends continue under the
   * tenant's key active now, with fresh random nonces. A partial that was not sealed (atRest
   * turned on since) or cannot be opened any more is not resumed: undefined, and the transfer
   * starts over. A record that fails authentication is an AtRestError (the caller quarantines).
   */
  private async reopenSealed(id: string, rec: SpoolRecord): Promise<PartialFile | undefined> {
    if (this.keys === undefined || rec.sealed !== true || rec.tenant === undefined) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(this.file(id, 'part'), 'r+');
    } catch {
      return undefined;
    }
    try {
      const file = await SealedSpoolFile.open(handle, this.keys, id);
      if (file.header.tenant !== rec.tenant) throw new AtRestError(AtRestErrorCode.AUTH, `the spool file of ${id} is sealed for tenant ${file.header.tenant}, its record says ${rec.tenant}`);
      const hash = createHash('sha256');
      for await (const plain of file.chunks()) hash.update(plain);
      await handle.truncate(file.validLength);
      const active = await this.keys.activeKey(rec.tenant);
      const sealer = new SpoolRecordSealer(file.headerBytes, active.key, active.version);
      return { handle, offset: file.plaintextBytes, hash, sealed: { sealer, filePos: file.validLength } };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /**
   * The plaintext of a completed tensor from `offset`, in chunks of at most `chunkBytes`.
   * Sealed ones are decrypted record by record; a fault of the data is a TransferError.
   */
  async *reader(rec: SpoolRecord, offset: number, chunkBytes: number): AsyncGenerator<Buffer> {
    if (offset >= rec.total) return;
    if (rec.sealed !== true) {
      yield* createReadStream(this.tensorPath(rec.id), { start: offset, end: rec.total - 1, highWaterMark: chunkBytes }) as AsyncIterable<Buffer>;
      return;
    }
    const file = await this.openSealed(rec);
    try {
      for await (const plain of file.chunks(offset, rec.total)) {
        for (let p = 0; p < plain.length; p += chunkBytes) yield plain.length <= chunkBytes ? plain : plain.subarray(p, p + chunkBytes);
      }
    } catch (err) {
      throw asTransferError(err, `spooled tensor ${rec.id}`);
    } finally {
      await file.handle.close();
    }
  }

  /** Random access to a completed tensor's plaintext. */
  async openTensor(rec: SpoolRecord): Promise<TensorFile> {
    if (rec.sealed === true) {
      const file = await this.openSealed(rec);
      return { read: (b, o, l, p) => file.read(b, o, l, p).catch((err: unknown) => Promise.reject(asTransferError(err, `spooled tensor ${rec.id}`))), close: () => file.handle.close() };
    }
    const fh = await open(this.tensorPath(rec.id), 'r');
    return { read: async (b, o, l, p) => void (await fh.read(b, o, l, p)), close: () => fh.close() };
  }

  /**
   * Lazy re-encryption after `sluice tenant-key rotate --new-key`: a completed tensor with
   * records under a retired key version is rewritten under the active one (same records, fresh
   * nonces) next to it, synced, and renamed over it; readers that have it open keep the old
   * inode. Resolves true when it rewrote the file. One rewrite per tensor at a time.
   */
  async reseal(rec: SpoolRecord): Promise<boolean> {
    if (rec.sealed !== true || rec.tenant === undefined || this.keys === undefined || this.resealing.has(rec.id)) return false;
    this.resealing.add(rec.id);
    const tmp = `${this.tensorPath(rec.id)}.reseal`;
    let file: SealedSpoolFile | undefined;
    let out: FileHandle | undefined;
    try {
      file = await this.openSealed(rec);
      const active = await this.keys.activeKey(rec.tenant);
      const versions = file.versions();
      if (versions.size === 1 && versions.has(active.version)) return false;
      out = await open(tmp, 'w', 0o640);
      const sealer = new SpoolRecordSealer(file.headerBytes, active.key, active.version);
      let pos = await writeFully(out, [file.headerBytes], 0);
      let offset = 0;
      let scratch: Buffer | undefined;
      for await (const plain of file.chunks()) {
        scratch ??= Buffer.allocUnsafe(plain.length + 64);
        pos += await writeFully(out, [sealer.seal(offset, plain, scratch)], pos);
        offset += plain.length;
      }
      await out.sync();
      await out.close();
      out = undefined;
      await rename(tmp, this.tensorPath(rec.id));
      return true;
    } catch (err) {
      await out?.close().catch(() => {});
      await rm(tmp, { force: true });
      throw err;
    } finally {
      await file?.handle.close();
      this.resealing.delete(rec.id);
    }
  }

  private async openSealed(rec: SpoolRecord): Promise<SealedSpoolFile> {
    if (this.keys === undefined) throw new TransferError('FAILED_PRECONDITION', `spooled tensor ${rec.id} is encrypted at rest; this node runs without security.atRest`);
    const handle = await open(this.tensorPath(rec.id), 'r');
    try {
      const file = await SealedSpoolFile.open(handle, this.keys, rec.id);
      if (file.header.tenant !== rec.tenant || file.plaintextBytes !== rec.total) {
        throw new AtRestError(AtRestErrorCode.FORMAT, `the file holds ${file.plaintextBytes} bytes of tenant ${file.header.tenant}; its record says ${rec.total} of ${rec.tenant ?? '?'}`);
      }
      return file;
    } catch (err) {
      await handle.close();
      throw asTransferError(err, `spooled tensor ${rec.id}`);
    }
  }

  /** Marks a partial file complete: renames it to `<id>.tensor` and records its digest. */
  async complete(id: string, sha256: Buffer): Promise<SpoolRecord> {
    const rec = await this.readRecord(id);
    if (rec === undefined) throw new Error(`spool record of ${id} is missing`);
    // A tenant destroyed while its tensor arrived: what was sealed is unreadable, do not announce it.
    if (rec.sealed === true && rec.tenant !== undefined && this.keys !== undefined) await this.keys.activeKey(rec.tenant).catch((err: unknown) => Promise.reject(asTransferError(err, `transfer ${id}`)));
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
