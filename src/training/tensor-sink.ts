// Where a received tensor goes: a spool file, or a live subscriber stream. Writes are issued in
// offset order without waiting for the previous one; a chunk is acknowledged to the sender only
// once its write and all before it resolved, so the sender's window is what bounds memory on
// this side too.
import type { FileHandle } from 'node:fs/promises';
import { TransferError } from './errors.ts';
import type { Subscriber } from './receive-events.ts';
import { MAX_SEALED_RECORD_BYTES, RECORD_HEAD_BYTES, TAG_BYTES } from '../security/at-rest/sealed-spool-format.ts';
import { writeFully } from './sealed-spool-file.ts';
import type { SealedAppend, Spool } from './spool.ts';

export interface TensorSink {
  write(offset: number, data: Buffer): Promise<void>;
  /** The SHA-256 matched: make the tensor visible to readers. */
  complete(sha256: Buffer): Promise<void>;
  /**
   * The transfer ended without a tensor: 'discard' drops what was received, 'keep' leaves a
   * spool partial for a later resume, 'quarantine' moves it aside for inspection (DATA_LOSS).
   * Resolves with the quarantined file's path, if any.
   */
  abort(reason: string, disposition: PartialDisposition): Promise<string | undefined>;
}

const RECORD_OVERHEAD = RECORD_HEAD_BYTES + TAG_BYTES;

export type PartialDisposition = 'discard' | 'keep' | 'quarantine';

/**
 * A spool partial file. Its writes run one after another, in offset order: the file must always
 * be the received prefix, because a restarted receiver resumes from the file's size and hashes
 * the bytes below it (Spool.reopen). Overlapping pwrites finish out of order, and a SIGKILL
 * between them left a hole of zeros below the size, which the resume then hashed: DATA_LOSS at
 * the end (issue 14). Queued writes still keep the file busy without a network round trip.
 */
export class SpoolSink implements TensorSink {
  /** The last write issued; the next one starts when it settles (and not at all if it failed). */
  private lastWrite: Promise<void> = Promise.resolve();
  /** Sealed records are built here, one at a time (writes run one after another). */
  private scratch: Buffer | undefined;

  constructor(
    private readonly spool: Spool,
    private readonly id: string,
    private readonly handle: FileHandle,
    private readonly notify: (sha256: Buffer) => void,
    /** The partial is sealed at rest: each chunk becomes one record appended at `filePos`. */
    private readonly sealed?: SealedAppend,
  ) {}

  write(offset: number, data: Buffer): Promise<void> {
    // A failed write rejects every later one too: writing past it would leave a hole.
    const next = this.lastWrite.then(() => this.writeAt(offset, data));
    this.lastWrite = next;
    return next;
  }

  private async writeAt(offset: number, data: Buffer): Promise<void> {
    let done = 0;
    try {
      // Sealed on this (the training) thread, synchronously; the ciphertext is the only copy.
      for (const s = this.sealed; s !== undefined && done < data.length; ) {
        const n = Math.min(data.length - done, MAX_SEALED_RECORD_BYTES);
        if (this.scratch === undefined || this.scratch.length < n + RECORD_OVERHEAD) this.scratch = Buffer.allocUnsafe(n + RECORD_OVERHEAD);
        s.filePos += await writeFully(this.handle, [s.sealer.seal(offset + done, data.subarray(done, done + n), this.scratch)], s.filePos);
        done += n;
      }
      while (done < data.length) {
        const { bytesWritten } = await this.handle.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
    } catch (err) {
      // A full disk or quota is the receiver's resource, not a fault to retry: the sender gets
      // RESOURCE_EXHAUSTED at once instead of resuming into the same wall.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new TransferError('RESOURCE_EXHAUSTED', `the spool on the receiving node is full (${code}) at offset ${offset + done}; free space there and push again`);
      throw err;
    }
  }

  async complete(sha256: Buffer): Promise<void> {
    await this.lastWrite;
    // The data reaches the disk before the tensor is announced as complete.
    await this.handle.sync();
    await this.handle.close();
    await this.spool.complete(this.id, sha256);
    this.notify(sha256);
  }

  async abort(reason: string, disposition: PartialDisposition): Promise<string | undefined> {
    await this.lastWrite.catch(() => {});
    await this.handle.close().catch(() => {});
    if (disposition === 'quarantine') return this.spool.quarantine(this.id, reason);
    if (disposition === 'discard') await this.spool.discard(this.id);
    return undefined;
  }
}

export class StreamSink implements TensorSink {
  constructor(
    private readonly subscriber: Subscriber,
    private readonly id: string,
    private readonly total: number,
  ) {}

  async write(offset: number, data: Buffer): Promise<void> {
    if (this.subscriber.closed) throw new TransferError('ABORTED', `the subscriber receiving ${this.id} went away`);
    await this.subscriber.send({ data: { transferId: this.id, offset, data } });
  }

  async complete(sha256: Buffer): Promise<void> {
    if (this.subscriber.closed) throw new TransferError('ABORTED', `the subscriber receiving ${this.id} went away`);
    await this.subscriber.send({ end: { transferId: this.id, totalBytes: this.total, sha256 } });
  }

  async abort(reason: string): Promise<undefined> {
    if (!this.subscriber.closed) await this.subscriber.send({ aborted: { transferId: this.id, reason } }).catch(() => {});
    return undefined;
  }
}
