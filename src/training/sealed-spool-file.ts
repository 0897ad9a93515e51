// A spool file encrypted at rest (security.atRest; format in
// src/security/at-rest/sealed-spool-format.ts), read record by record with bounded memory:
// the resume path re-hashes its plaintext, Pull streams it decrypted from any offset, and the
// poisoning check reads sampled ranges. Keys come per record version from the tenant key store,
// so records sealed before a rotation stay readable; a destroyed tenant's records are not.
// Errors of the data (tampered, moved, another tenant's key, destroyed keys) become
// TransferErrors with the at-rest error as cause: a typed refusal, never a crash.
import type { FileHandle } from 'node:fs/promises';
import { AtRestError, AtRestErrorCode } from '../security/at-rest/at-rest-error.ts';
import { decodeRecordHead, decodeSpoolHeader, encodeSpoolHeader, RECORD_HEAD_BYTES, SpoolRecordOpener, SpoolRecordSealer, TAG_BYTES, type RecordHead, type SealedSpoolHeader } from '../security/at-rest/sealed-spool-format.ts';
import { TransferError } from './errors.ts';

/** The tenant key store as the spool uses it (TenantKeyStore implements it). */
export interface SpoolKeys {
  activeKey(tenant: string): Promise<{ version: number; key: Buffer }>;
  keyFor(tenant: string, version: number): Promise<Buffer>;
}

interface IndexedRecord {
  /** Where the record's head starts in the file. */
  at: number;
  head: RecordHead;
}

/** The largest header a writer makes (two 1024-byte names). */
const MAX_HEADER_BYTES = 10 + 2 * 1024;

/** An AtRestError as the transfer status a client sees; anything else passes through. */
export function asTransferError(err: unknown, what: string): unknown {
  if (!(err instanceof AtRestError)) return err;
  if (err.code === AtRestErrorCode.KEY) return new TransferError('FAILED_PRECONDITION', `${what}: ${err.message}`, { cause: err });
  return new TransferError('DATA_LOSS', `${what}: ${err.message}`, { cause: err });
}

/** Writes a new sealed file's header; the sealer seals its records under the tenant's active key. */
export async function startSealedFile(handle: FileHandle, keys: SpoolKeys, header: SealedSpoolHeader): Promise<{ sealer: SpoolRecordSealer; filePos: number }> {
  const headerBytes = encodeSpoolHeader(header);
  const active = await keys.activeKey(header.tenant);
  await writeFully(handle, [headerBytes], 0);
  return { sealer: new SpoolRecordSealer(headerBytes, active.key, active.version), filePos: headerBytes.length };
}

/** Writes every buffer at `position` (one gathered write; the rare short write is finished). */
export async function writeFully(handle: FileHandle, parts: Buffer[], position: number): Promise<number> {
  const total = parts.reduce((n, p) => n + p.length, 0);
  let done = (await handle.writev(parts, position)).bytesWritten;
  if (done < total) {
    const all = Buffer.concat(parts);
    while (done < total) done += (await handle.write(all, done, total - done, position + done)).bytesWritten;
  }
  return total;
}

/** One reader at a time per instance (Pull streams, the poisoning check awaits each read): it reuses one read buffer. */
export class SealedSpoolFile {
  private readonly openers = new Map<number, SpoolRecordOpener>();
  /** The last record decrypted (random reads of the poisoning check hit it repeatedly). */
  private cached: { index: number; plain: Buffer } | undefined;
  /** Records are read into this (opened synchronously, so one buffer serves every read). */
  private readBuf: Buffer | undefined;

  private constructor(
    readonly handle: FileHandle,
    readonly header: SealedSpoolHeader,
    readonly headerBytes: Buffer,
    private readonly records: IndexedRecord[],
    /** Plaintext bytes of the complete records. */
    readonly plaintextBytes: number,
    /** File bytes of the header and complete records (a torn record after them is not counted). */
    readonly validLength: number,
    private readonly keyStore: SpoolKeys,
  ) {}

  /**
   * Indexes a sealed file: its header and every complete record's head (offsets must run
   * contiguously from 0). `transferId` must be the one the header names (a file swapped in from
   * another transfer is refused). Nothing is decrypted yet.
   */
  static async open(handle: FileHandle, keys: SpoolKeys, transferId: string): Promise<SealedSpoolFile> {
    const size = (await handle.stat()).size;
    const first = Buffer.alloc(Math.min(size, MAX_HEADER_BYTES));
    await readFully(handle, first, 0);
    const { header, length } = decodeSpoolHeader(first);
    if (header.transferId !== transferId) throw new AtRestError(AtRestErrorCode.AUTH, `the spool file of ${transferId} holds transfer ${header.transferId}`);
    const headerBytes = Buffer.from(first.subarray(0, length));
    const records: IndexedRecord[] = [];
    const headBuf = Buffer.alloc(RECORD_HEAD_BYTES);
    let at = length;
    let plain = 0;
    while (size - at >= RECORD_HEAD_BYTES) {
      await readFully(handle, headBuf, at);
      const head = decodeRecordHead(headBuf);
      if (head.offset !== plain) throw new AtRestError(AtRestErrorCode.FORMAT, `record at file byte ${at} is for offset ${head.offset}, expected ${plain}`);
      const end = at + RECORD_HEAD_BYTES + head.length + TAG_BYTES;
      if (end > size) break; // torn: a crash mid-append
      records.push({ at, head });
      plain += head.length;
      at = end;
    }
    return new SealedSpoolFile(handle, header, headerBytes, records, plain, at, keys);
  }

  private async opener(version: number): Promise<SpoolRecordOpener> {
    let o = this.openers.get(version);
    if (o === undefined) {
      o = new SpoolRecordOpener(this.headerBytes, await this.keyStore.keyFor(this.header.tenant, version));
      this.openers.set(version, o);
    }
    return o;
  }

  /** Record `index`, read and decrypted. */
  private async record(index: number): Promise<Buffer> {
    if (this.cached?.index === index) return this.cached.plain;
    const r = this.records[index]!;
    const size = RECORD_HEAD_BYTES + r.head.length + TAG_BYTES;
    if (this.readBuf === undefined || this.readBuf.length < size) this.readBuf = Buffer.allocUnsafe(size);
    const buf = this.readBuf.subarray(0, size);
    await readFully(this.handle, buf, r.at);
    const plain = (await this.opener(r.head.keyVersion)).open(buf);
    this.cached = { index, plain };
    return plain;
  }

  /** The record holding plaintext offset `offset` (binary search). */
  private indexOf(offset: number): number {
    let lo = 0;
    let hi = this.records.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.records[mid]!.head.offset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Key versions the records use (a rotation leaves old ones until the tensor is re-sealed). */
  versions(): Set<number> {
    return new Set(this.records.map((r) => r.head.keyVersion));
  }

  /** Decrypted plaintext from `from` to `end` (exclusive), record by record. */
  async *chunks(from = 0, end = this.plaintextBytes): AsyncGenerator<Buffer> {
    if (from >= end) return;
    for (let i = this.indexOf(from); i < this.records.length; i++) {
      const r = this.records[i]!;
      if (r.head.offset >= end) return;
      const plain = await this.record(i);
      this.cached = undefined; // sequential: do not hold on to it
      const a = Math.max(0, from - r.head.offset);
      const b = Math.min(plain.length, end - r.head.offset);
      yield a === 0 && b === plain.length ? plain : plain.subarray(a, b);
    }
  }

  /** Fills `buf[bufOffset, bufOffset+length)` with plaintext from `position` (random access). */
  async read(buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
    let done = 0;
    while (done < length && position + done < this.plaintextBytes) {
      const i = this.indexOf(position + done);
      const r = this.records[i]!;
      const plain = await this.record(i);
      const a = position + done - r.head.offset;
      done += plain.copy(buf, bufOffset + done, a, Math.min(plain.length, a + length - done));
    }
  }
}

async function readFully(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await handle.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new AtRestError(AtRestErrorCode.FORMAT, 'the spool file ended inside a record');
    done += bytesRead;
  }
}
