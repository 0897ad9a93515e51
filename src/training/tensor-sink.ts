// Where a received tensor goes: a spool file, or a live subscriber stream. Writes are issued in
// offset order and may overlap (each at its own offset); a chunk is acknowledged to the sender
// only once its write and all before it resolved, so the sender's window is what bounds memory
// on this side too.
import type { FileHandle } from 'node:fs/promises';
import { TransferError } from './errors.ts';
import type { Subscriber } from './receive-events.ts';
import type { Spool } from './spool.ts';

export interface TensorSink {
  write(offset: number, data: Buffer): Promise<void>;
  /** The SHA-256 matched: make the tensor visible to readers. */
  complete(sha256: Buffer): Promise<void>;
  /** The transfer ended without a tensor: drop what was received (`keep` leaves a spool partial for a later resume). */
  abort(reason: string, keep: boolean): Promise<void>;
}

export class SpoolSink implements TensorSink {
  constructor(
    private readonly spool: Spool,
    private readonly id: string,
    private readonly handle: FileHandle,
    private readonly notify: (sha256: Buffer) => void,
  ) {}

  async write(offset: number, data: Buffer): Promise<void> {
    let done = 0;
    try {
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
    // The data reaches the disk before the tensor is announced as complete.
    await this.handle.sync();
    await this.handle.close();
    await this.spool.complete(this.id, sha256);
    this.notify(sha256);
  }

  async abort(_reason: string, keep: boolean): Promise<void> {
    await this.handle.close().catch(() => {});
    if (!keep) await this.spool.discard(this.id);
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

  async abort(reason: string): Promise<void> {
    if (!this.subscriber.closed) await this.subscriber.send({ aborted: { transferId: this.id, reason } }).catch(() => {});
  }
}
