// The receiving side of one tensor transfer. Chunks are taken strictly in offset order: a chunk
// whose CRC-32 does not match is refused with a NACK (the sender re-sends from there), a chunk
// past a gap is dropped with one NACK per gap, a duplicate is ignored. Each accepted chunk is
// hashed and written to the sink, and acknowledged once written. The SHA-256 of everything
// written is compared with the sender's digest before the tensor is announced.
// A chunk may lie in a pooled receive buffer (its `release`): it is hashed there and written
// from there, and the buffer goes back when the write settled, or at once when the chunk is
// dropped; no copy is made.
import type { Hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { sendQuietly } from '../transport/send-quietly.ts';
import type { Link } from '../transport/types.ts';
import { TransferError, type TransferStatusCode } from './errors.ts';
import { NackReason, TrainingKind, encodeAck, encodeError, encodeNack, encodeOpened, encodeResult } from './peer-messages.ts';
import type { Sink, TensorMeta } from './tensor-meta.ts';
import type { TensorSink } from './tensor-sink.ts';
import type { TransferEvent, TransferEventLog, TransferState, TransferSummary } from './transfer-state.ts';

export interface InboundTransferOptions {
  id: string;
  from: string;
  tensor: TensorMeta;
  total: number;
  sinkKind: Sink;
  sink: TensorSink;
  /** Bytes already in the sink (a resumed spool partial). */
  offset: number;
  hash: Hash;
  /** Bytes accepted but not yet written before the sender is considered broken. */
  maxPendingBytes: number;
  maxCorruptChunks: number;
  onEnd: (t: InboundTransfer) => void;
  /** Resume, completion, failure and quarantine, for the node's log. */
  onEvent?: TransferEventLog;
}

export class InboundTransfer {
  readonly id: string;
  private link: Link | undefined;
  private streamId = 0;
  private received: number;
  private written: number;
  private expectedSha: Buffer | undefined;
  private lastGapNack = -1;
  private corrupt = 0;
  private tail: Promise<void> = Promise.resolve();
  private stateValue: TransferState = 'receiving';
  private resultSha: Buffer | undefined;
  private error: string | undefined;
  private errorStatus: TransferStatusCode | undefined;
  private verifying = false;
  private attaches = 0;
  lastActivity = Date.now();

  constructor(readonly opts: InboundTransferOptions) {
    this.id = opts.id;
    this.received = opts.offset;
    this.written = opts.offset;
  }

  get state(): TransferState {
    return this.stateValue;
  }

  get sha256(): Buffer | undefined {
    return this.resultSha;
  }

  get finished(): boolean {
    return this.stateValue !== 'receiving';
  }

  /** Binds the transfer to the link the sender (re)opened it on; resolves with the resume offset. */
  async attach(link: Link, streamId: number): Promise<number> {
    this.link = link;
    this.streamId = streamId;
    this.lastActivity = Date.now();
    // Chunks from the old link may still be on their way to the sink: report what is written.
    await this.tail;
    this.received = this.written;
    this.lastGapNack = -1;
    // A second OPEN of a live transfer, or the first one of a partial reopened from the spool.
    if (++this.attaches > 1 || this.opts.offset > 0) this.log({ event: 'resumed', offset: this.written });
    return this.written;
  }

  /** Sends OPENED on the attached link (and RESULT right after when already complete). */
  sendOpened(offset: number): void {
    this.reply(TrainingKind.OPENED, encodeOpened(this.id, offset, this.stateValue === 'completed'));
    if (this.stateValue === 'completed' && this.resultSha) this.reply(TrainingKind.RESULT, encodeResult(this.id, this.resultSha));
  }

  onChunk(link: Link, offset: number, crc: number, data: Buffer, release?: () => void): void {
    if (!this.accept(link, offset, crc, data)) {
      release?.();
      return;
    }
    this.opts.hash.update(data);
    this.received += data.length;
    this.lastGapNack = -1;
    // The write is issued now, queued behind the ones still in progress (the sink runs them in
    // offset order), so the sink is not idle for a round trip per chunk; acknowledgements go
    // out in order, each once its write and every write before it resolved. What is in
    // progress is bounded by maxPendingBytes.
    const write = this.opts.sink.write(offset, data);
    if (release !== undefined) write.then(release, release);
    else write.catch(() => {}); // observed in order below
    this.tail = this.tail.then(async () => {
      if (this.finished) return;
      try {
        await write;
      } catch (err) {
        this.fail(err instanceof TransferError ? err.status : 'INTERNAL', `writing to the ${this.opts.sinkKind} sink failed: ${(err as Error).message}`);
        return;
      }
      this.written = offset + data.length;
      this.reply(TrainingKind.ACK, encodeAck(this.id, this.written));
      this.maybeVerify();
    });
  }

  /** True when the chunk is the next one, intact and within the window; else answers it (NACK, failure) or ignores it. */
  private accept(link: Link, offset: number, crc: number, data: Buffer): boolean {
    if (link !== this.link || this.finished) return false;
    this.lastActivity = Date.now();
    if (offset < this.received) return false; // a duplicate after a rewind
    if (offset > this.received) {
      if (this.lastGapNack !== this.received) {
        this.lastGapNack = this.received;
        this.reply(TrainingKind.NACK, encodeNack(this.id, this.received, NackReason.GAP));
      }
      return false;
    }
    if (data.length === 0 || offset + data.length > this.opts.total) {
      this.fail('INVALID_ARGUMENT', `chunk at ${offset} of ${data.length} bytes does not fit a ${this.opts.total}-byte tensor`);
      return false;
    }
    if (crc32(data) !== crc) {
      this.corrupt++;
      if (this.corrupt > this.opts.maxCorruptChunks) {
        this.fail('DATA_LOSS', `${this.corrupt} chunks arrived corrupted (CRC-32 mismatch)`);
        return false;
      }
      // The resent chunk starts exactly here; anything already in flight behind it is a gap.
      this.lastGapNack = this.received;
      this.reply(TrainingKind.NACK, encodeNack(this.id, this.received, NackReason.BAD_CRC));
      return false;
    }
    if (this.received - this.written + data.length > this.opts.maxPendingBytes) {
      this.fail('RESOURCE_EXHAUSTED', `sender exceeded the receive window (${this.opts.maxPendingBytes} bytes pending)`);
      return false;
    }
    return true;
  }

  onFinish(link: Link, total: number, sha256: Buffer): void {
    if (link !== this.link || this.finished) return;
    this.lastActivity = Date.now();
    if (total !== this.opts.total) {
      this.fail('INVALID_ARGUMENT', `FINISH says ${total} bytes, OPEN said ${this.opts.total}`);
      return;
    }
    this.expectedSha = sha256;
    this.tail = this.tail.then(() => this.maybeVerify());
  }

  /** The sender cancelled: drop everything received. */
  onCancel(reason: string): void {
    if (this.finished) return;
    this.stateValue = 'cancelled';
    this.error = `cancelled by the sender: ${reason}`;
    this.errorStatus = 'CANCELLED';
    this.tail = this.tail.then(() => this.opts.sink.abort(this.error as string, 'discard')).then(() => {}, () => {});
    this.log({ event: 'cancelled', error: this.error });
    this.opts.onEnd(this);
  }

  /** Ends the transfer on this side without telling the sender (node shutdown, expiry). */
  async drop(reason: string, keepPartial: boolean): Promise<void> {
    if (this.finished) return;
    this.stateValue = 'failed';
    this.error = reason;
    this.errorStatus = 'ABORTED';
    await this.tail;
    await this.opts.sink.abort(reason, keepPartial ? 'keep' : 'discard').catch(() => {});
    this.log({ event: 'failed', offset: this.written, error: reason });
    this.opts.onEnd(this);
  }

  summary(): TransferSummary {
    return {
      id: this.id,
      direction: 'inbound',
      peer: this.opts.from,
      tensor: this.opts.tensor,
      total: this.opts.total,
      acked: this.written,
      state: this.stateValue,
      sink: this.opts.sinkKind,
      ...(this.resultSha ? { sha256: this.resultSha } : {}),
      ...(this.error !== undefined ? { error: this.error } : {}),
      ...(this.errorStatus !== undefined ? { errorStatus: this.errorStatus } : {}),
    };
  }

  private maybeVerify(): void | Promise<void> {
    if (this.verifying || this.finished || this.expectedSha === undefined || this.written !== this.opts.total) return;
    this.verifying = true;
    const digest = this.opts.hash.digest();
    if (!digest.equals(this.expectedSha)) {
      this.fail('DATA_LOSS', `sha256 mismatch: received ${digest.toString('hex')}, sender says ${this.expectedSha.toString('hex')}`);
      return;
    }
    return this.opts.sink.complete(digest).then(
      () => {
        this.stateValue = 'completed';
        this.resultSha = digest;
        this.reply(TrainingKind.RESULT, encodeResult(this.id, digest));
        this.log({ event: 'completed', sha256: digest.toString('hex') });
        this.opts.onEnd(this);
      },
      (err: unknown) => this.fail(err instanceof TransferError ? err.status : 'INTERNAL', `completing the ${this.opts.sinkKind} sink failed: ${(err as Error).message}`),
    );
  }

  private fail(status: TransferStatusCode, message: string): void {
    if (this.finished) return;
    this.stateValue = 'failed';
    this.error = message;
    this.errorStatus = status;
    this.reply(TrainingKind.ERROR, encodeError(this.id, status, message));
    this.log({ event: 'failed', offset: this.written, status, error: message });
    // A failed tensor is dropped: the sender must push it again (a resume would repeat the
    // failure). A digest mismatch keeps the bytes aside for inspection.
    const disposition = status === 'DATA_LOSS' ? 'quarantine' : 'discard';
    void this.opts.sink.abort(message, disposition).then(
      (where) => {
        if (where !== undefined) this.log({ event: 'quarantined', path: where, status, error: message });
      },
      (err: unknown) => {
        if (disposition === 'quarantine') this.log({ event: 'quarantined', status, error: `quarantining the partial failed: ${(err as Error).message}` });
      },
    );
    this.opts.onEnd(this);
  }

  private log(e: Omit<TransferEvent, 'direction' | 'id' | 'peer' | 'total'>): void {
    this.opts.onEvent?.({ direction: 'inbound', id: this.id, peer: this.opts.from, total: this.opts.total, name: this.opts.tensor.name, ...e });
  }

  private reply(kind: number, body: Buffer): void {
    if (this.link !== undefined) sendQuietly(this.link, { cls: 'control', kind, streamId: this.streamId, body });
  }
}
