// The sending side of one tensor transfer. The producer (a gRPC Push stream or an in-process
// caller) writes chunks in order; they wait in a bounded window until the peer acknowledges them
// (written to its sink), so a broken link resumes from the last acknowledged offset without
// asking the producer for anything again. The peer checks a CRC-32 per chunk (NACK -> resend)
// and the SHA-256 of the whole tensor at the end. The window holds the producer's own buffers
// (a chunk goes to the link as a reference in a gather list; sealing is its one copy) and is
// bounded both in bytes and in buffers: many tiny chunks cannot pile up either. A chunk that came
// with a release function (a pooled buffer, push-buffers.ts) is released once it left the window
// (acknowledged, or the transfer ended) and no link still holds a copy of it queued.
import { EventEmitter } from 'node:events';
import { crc32 } from 'node:zlib';
import { RingQueue } from '../scheduler/ring-queue.ts';
import { sendQuietly } from '../transport/send-quietly.ts';
import type { Link } from '../transport/types.ts';
import { TransferError } from './errors.ts';
import {
  NackReason,
  TrainingKind,
  encodeCancel,
  encodeChunkHeader,
  encodeFinish,
  encodeOpen,
  type PeerMessage,
} from './peer-messages.ts';
import type { Sink, TensorMeta } from './tensor-meta.ts';
import type { TransferEvent, TransferEventLog, TransferState, TransferSummary } from './transfer-state.ts';

export interface LinkSource {
  get(deadline: number, signal?: AbortSignal): Promise<Link>;
}

export interface OutboundTransferOptions {
  id: string;
  peer: string;
  fromNode: string;
  tensor: TensorMeta;
  total: number;
  sink: Sink;
  /** Continue a transfer the peer already knows (offset comes from the peer). */
  resume: boolean;
  /** Fair-sharing flow of this transfer on the link (DRR inside the training class). */
  flow: number;
  streamId: number;
  tenant?: number;
  windowBytes: number;
  maxChunkBytes: number;
  /** How long to keep redialing a lost peer before failing with UNAVAILABLE. */
  resumeTimeoutMs: number;
  /** Corrupted chunks tolerated before the transfer fails with DATA_LOSS. */
  maxCorruptChunks: number;
  links: LinkSource;
  /**
   * Fault injection for tests and drills: when it returns true for a chunk, a copy of the chunk
   * with one byte flipped is sent (after its CRC was computed), as memory or a buggy NIC would.
   */
  corruptChunk?: (id: string, offset: number) => boolean;
  /** Resume, completion and failure, for the node's log. */
  onEvent?: TransferEventLog;
}

/**
 * Chunks a window holds at most, whatever their size (a window of 8 MiB in 4 KiB chunks would
 * otherwise be 2048 buffers and link messages in flight).
 */
export const MAX_WINDOW_CHUNKS = 256;
/** Chunks a producer may send past a full window before it counts as ignoring flow control (HTTP/2 delivers what it already read). */
const FLOW_CONTROL_SLACK_CHUNKS = 64;

export interface OutboundResult {
  id: string;
  total: number;
  sha256: Buffer;
  seconds: number;
  resumes: number;
  resentChunks: number;
}

interface WindowChunk {
  offset: number;
  data: Buffer;
  crc: number;
  /** Gives the producer's pooled buffer back (once); undefined: the buffer is the GC's. */
  release: (() => void) | undefined;
  /** Link messages carrying this chunk not yet sealed or dropped by their link. */
  queued: number;
  /** Out of the window: released as soon as `queued` is 0. */
  dropped: boolean;
  /** The link's bodyReleased callback for this chunk (one per chunk, not per send). */
  onSent: () => void;
}

/**
 * Events: 'ack' (acked bytes), 'space' (), 'state' (TransferState), 'superseded' () when a
 * resumed producer takes over from the current one.
 */
export class OutboundTransfer extends EventEmitter {
  readonly id: string;
  readonly accepted: Promise<number>;
  readonly done: Promise<OutboundResult>;
  private resolveAccepted!: (offset: number) => void;
  private rejectAccepted!: (err: Error) => void;
  private resolveDone!: (r: OutboundResult) => void;
  private rejectDone!: (err: Error) => void;

  private readonly window = new RingQueue<WindowChunk>(64);
  private windowBytes = 0;
  private producedUpTo = 0;
  private acked = 0;
  private sendPos = 0;
  private finishSha: Buffer | undefined;
  private finishSent = false;
  private offsetKnown: boolean;
  private link: Link | undefined;
  private linkReady = false;
  private stateValue: TransferState = 'connecting';
  private failure: Error | undefined;
  private resultSha: Buffer | undefined;
  private readonly startedAt = Date.now();
  private downSince = Date.now();
  private everOpened = false;
  private resumes = 0;
  private resentChunks = 0;
  private corruptChunks = 0;
  /** The peer answered the first OPEN with "already completed": this id was pushed before. */
  private completedBefore = false;
  private readonly abort = new AbortController();
  /** Date.now() of the last message from the peer about this transfer (stall detection). */
  lastPeerActivity = Date.now();

  constructor(readonly opts: OutboundTransferOptions) {
    super();
    this.id = opts.id;
    this.offsetKnown = !opts.resume;
    this.accepted = new Promise((res, rej) => {
      this.resolveAccepted = res;
      this.rejectAccepted = rej;
    });
    this.done = new Promise((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    // Callers may observe only one of the two; neither rejection is allowed to go unhandled.
    this.accepted.catch(() => {});
    this.done.catch(() => {});
  }

  get state(): TransferState {
    return this.stateValue;
  }

  get ackedBytes(): number {
    return this.acked;
  }

  /** Bytes the producer has handed over so far (where its next chunk starts). */
  get producedBytes(): number {
    return this.producedUpTo;
  }

  get finished(): boolean {
    return this.stateValue === 'completed' || this.stateValue === 'failed' || this.stateValue === 'cancelled';
  }

  get currentLink(): Link | undefined {
    return this.link;
  }

  /** Whether a producer (a Push stream) is feeding this transfer; a resume may attach a new one. */
  producerAttached = false;

  /** True while the window has room for another chunk. */
  get hasSpace(): boolean {
    return this.windowBytes < this.opts.windowBytes && this.window.length < MAX_WINDOW_CHUNKS;
  }

  /** Chunks (the producer's buffers) held in the window. */
  get windowChunks(): number {
    return this.window.length;
  }

  /** Starts connecting to the peer; the transfer then runs on its own. */
  start(): void {
    void this.connect();
  }

  waitForSpace(): Promise<void> {
    if (this.hasSpace || this.finished) return this.failure ? Promise.reject(this.failure) : Promise.resolve();
    return new Promise((resolve, reject) => {
      const onSpace = () => {
        this.off('state', onState);
        resolve();
      };
      const onState = () => {
        if (!this.finished) return;
        this.off('space', onSpace);
        this.off('state', onState);
        if (this.failure) reject(this.failure);
        else resolve();
      };
      this.once('space', onSpace);
      this.on('state', onState);
    });
  }

  /**
   * Hands the next chunk over. `release`, when given, is called exactly once when the transfer
   * no longer reads `data` (also when write throws). Throws TransferError on a protocol
   * violation by the producer.
   */
  write(offset: number, data: Buffer, release?: () => void): void {
    try {
      this.take(offset, data, release);
    } catch (err) {
      release?.();
      throw err;
    }
    this.pump();
  }

  private take(offset: number, data: Buffer, release: (() => void) | undefined): void {
    if (this.failure) throw this.failure;
    if (this.finished) throw new TransferError('FAILED_PRECONDITION', `transfer ${this.id} is already ${this.stateValue}`);
    if (!this.offsetKnown) throw new TransferError('FAILED_PRECONDITION', `transfer ${this.id}: wait for the accepted offset before sending chunks of a resumed transfer`);
    if (offset !== this.producedUpTo) throw new TransferError('INVALID_ARGUMENT', `transfer ${this.id}: chunk at offset ${offset}, expected ${this.producedUpTo}`);
    if (data.length === 0 || data.length > this.opts.maxChunkBytes) {
      throw new TransferError('INVALID_ARGUMENT', `transfer ${this.id}: chunk of ${data.length} bytes; chunks carry 1 to ${this.opts.maxChunkBytes} bytes`);
    }
    if (offset + data.length > this.opts.total) {
      throw new TransferError('INVALID_ARGUMENT', `transfer ${this.id}: chunk ends at ${offset + data.length}, past total_bytes ${this.opts.total}`);
    }
    if (this.windowBytes >= this.opts.windowBytes + 4 * this.opts.maxChunkBytes || this.window.length >= MAX_WINDOW_CHUNKS + FLOW_CONTROL_SLACK_CHUNKS) {
      throw new TransferError('RESOURCE_EXHAUSTED', `transfer ${this.id}: the producer ignored flow control (${this.windowBytes} unacknowledged bytes in ${this.window.length} chunks)`);
    }
    const chunk: WindowChunk = {
      offset,
      data,
      crc: crc32(data),
      release,
      queued: 0,
      dropped: false,
      onSent: () => {
        chunk.queued -= 1;
        if (chunk.dropped && chunk.queued === 0) releaseChunk(chunk);
      },
    };
    this.window.push(chunk);
    this.windowBytes += data.length;
    this.producedUpTo += data.length;
  }

  /** The producer is done: `sha256` is the digest of the whole tensor, checked by the peer. */
  finish(sha256: Buffer): void {
    if (this.failure) throw this.failure;
    if (sha256.length !== 32) throw new TransferError('INVALID_ARGUMENT', `transfer ${this.id}: sha256 must be 32 bytes, got ${sha256.length}`);
    if (this.producedUpTo !== this.opts.total) {
      throw new TransferError('INVALID_ARGUMENT', `transfer ${this.id}: finish after ${this.producedUpTo} of ${this.opts.total} bytes`);
    }
    if (this.finishSha !== undefined && !this.finishSha.equals(sha256)) {
      throw new TransferError('INVALID_ARGUMENT', `transfer ${this.id}: finish with a different sha256 than before`);
    }
    this.finishSha = Buffer.from(sha256);
    this.pump();
  }

  cancel(reason: string): void {
    if (this.finished) return;
    if (this.link !== undefined) sendQuietly(this.link, { cls: 'training', kind: TrainingKind.CANCEL, streamId: this.opts.streamId, flow: this.opts.flow, tenant: this.opts.tenant ?? 0, body: encodeCancel(this.id, reason) });
    this.end('cancelled', new TransferError('CANCELLED', `transfer ${this.id} cancelled: ${reason}`));
  }

  /** Fails the transfer from outside (node shutdown, stall). */
  fail(err: TransferError): void {
    this.end('failed', err);
  }

  /** The link carrying this transfer went down: resume on a new one. */
  onLinkDown(link: Link): void {
    if (link !== this.link || this.finished) return;
    // The resume deadline runs from the last time the peer accepted the transfer, so a peer
    // that keeps dropping the link before OPENED cannot keep the transfer alive forever.
    if (this.linkReady || !this.everOpened) this.downSince = Date.now();
    this.link = undefined;
    this.linkReady = false;
    this.resumes++;
    this.setState('resuming');
    void this.connect();
  }

  /** The link accepts more bytes again. */
  onLinkDrain(link: Link): void {
    if (link === this.link) this.pump();
  }

  onPeerMessage(msg: PeerMessage, link: Link): void {
    if (this.finished || link !== this.link) return;
    this.lastPeerActivity = Date.now();
    switch (msg.kind) {
      case TrainingKind.OPENED:
        this.onOpened(msg.offset, msg.completed);
        break;
      case TrainingKind.ACK:
        this.onAck(msg.acked);
        break;
      case TrainingKind.NACK:
        this.onNack(msg.expected, msg.reason);
        break;
      case TrainingKind.RESULT:
        this.onResult(msg.sha256);
        break;
      case TrainingKind.ERROR:
        this.end('failed', new TransferError(msg.status, `peer "${this.opts.peer}": ${msg.message}`));
        break;
      default:
        break;
    }
  }

  summary(): TransferSummary {
    return {
      id: this.id,
      direction: 'outbound',
      peer: this.opts.peer,
      tensor: this.opts.tensor,
      total: this.opts.total,
      acked: this.acked,
      state: this.stateValue,
      sink: this.opts.sink,
      ...(this.resultSha ? { sha256: this.resultSha } : {}),
      ...(this.failure ? { error: this.failure.message, errorStatus: this.failure instanceof TransferError ? this.failure.status : 'INTERNAL' } : {}),
    };
  }

  /** Dials (or redials) the peer and sends OPEN; OPENED continues in onOpened. */
  private async connect(): Promise<void> {
    const deadline = this.downSince + this.opts.resumeTimeoutMs;
    let link: Link;
    for (;;) {
      try {
        link = await this.opts.links.get(deadline, this.abort.signal);
      } catch (err) {
        if (!this.finished) {
          this.end('failed', err instanceof TransferError ? err : new TransferError('UNAVAILABLE', `peer "${this.opts.peer}": ${(err as Error).message}`, { cause: err }));
        }
        return;
      }
      if (this.finished) return;
      // A link that closed before we could watch it would never report 'close' to us.
      if (!link.closed) break;
    }
    this.link = link;
    this.linkReady = false;
    this.lastPeerActivity = Date.now();
    // After the first OPENED the peer knows the transfer: every reopen is a resume.
    const resume = this.opts.resume || this.resumes > 0 || this.producedUpTo > 0;
    const body = encodeOpen({ id: this.id, total: this.opts.total, sink: this.opts.sink, resume, from: this.opts.fromNode, tensor: this.opts.tensor });
    sendQuietly(link, { cls: 'control', kind: TrainingKind.OPEN, streamId: this.opts.streamId, tenant: this.opts.tenant ?? 0, body });
  }

  private onOpened(offset: number, completed: boolean): void {
    if (completed) {
      // The peer already verified the whole tensor; it sends RESULT right after OPENED. Either
      // our RESULT was lost with the old link, or (nothing produced, never opened) the id names
      // a transfer completed earlier: onResult answers that one with ALREADY_EXISTS, or with
      // the completed result when the push asked to resume.
      if (!this.everOpened && this.producedUpTo === 0 && this.finishSha === undefined) this.completedBefore = true;
      this.acked = this.opts.total;
      this.setState('verifying');
      return;
    }
    if (!this.offsetKnown) {
      // A resumed transfer this node did not hold: the peer's offset is where the producer starts.
      this.offsetKnown = true;
      this.producedUpTo = offset;
      this.acked = offset;
    }
    if (offset < this.acked) {
      this.end('failed', new TransferError('ABORTED', `peer "${this.opts.peer}" has ${offset} of the ${this.acked} acknowledged bytes of transfer ${this.id} (its copy was lost); push again with resume to continue from its offset`));
      return;
    }
    if (offset > this.producedUpTo) {
      this.end('failed', new TransferError('INTERNAL', `peer "${this.opts.peer}" claims ${offset} bytes of transfer ${this.id}, more than the ${this.producedUpTo} sent`));
      return;
    }
    if (this.resumes > 0 || this.opts.resume) this.log({ event: 'resumed', offset });
    this.dropAcked(offset);
    this.acked = offset;
    this.sendPos = offset;
    this.finishSent = false;
    this.linkReady = true;
    this.everOpened = true;
    this.setState('sending');
    this.resolveAccepted(offset);
    this.pump();
    this.emit('ack', this.acked);
    if (this.hasSpace) this.emit('space');
  }

  private onAck(acked: number): void {
    if (acked <= this.acked) return;
    if (acked > this.sendPos) {
      this.end('failed', new TransferError('INTERNAL', `peer "${this.opts.peer}" acknowledged ${acked} bytes of transfer ${this.id}, more than the ${this.sendPos} sent`));
      return;
    }
    this.dropAcked(acked);
    this.acked = acked;
    if (acked === this.opts.total && this.finishSent) this.setState('verifying');
    this.emit('ack', acked);
    if (this.hasSpace) this.emit('space');
  }

  private onNack(expected: number, reason: number): void {
    if (expected < this.acked) {
      this.end('failed', new TransferError('ABORTED', `peer "${this.opts.peer}" asks for offset ${expected} of transfer ${this.id}, below the ${this.acked} bytes it acknowledged`));
      return;
    }
    if (expected >= this.sendPos) return; // stale: already re-sent from there
    if (reason === NackReason.BAD_CRC) {
      this.corruptChunks++;
      if (this.corruptChunks > this.opts.maxCorruptChunks) {
        this.end('failed', new TransferError('DATA_LOSS', `transfer ${this.id}: ${this.corruptChunks} chunks arrived corrupted at peer "${this.opts.peer}"; giving up`));
        return;
      }
    }
    this.resentChunks++;
    this.sendPos = expected;
    this.pump();
  }

  private onResult(sha256: Buffer): void {
    if (this.completedBefore) {
      this.adoptCompleted(sha256);
      return;
    }
    if (this.finishSha === undefined) {
      this.end('failed', new TransferError('INTERNAL', `peer "${this.opts.peer}" reported transfer ${this.id} complete before it was finished`));
      return;
    }
    if (!sha256.equals(this.finishSha)) {
      this.end('failed', new TransferError('DATA_LOSS', `transfer ${this.id}: peer computed sha256 ${sha256.toString('hex')}, expected ${this.finishSha.toString('hex')}`));
      return;
    }
    this.acked = this.opts.total;
    this.resultSha = sha256;
    this.clearWindow();
    this.setState('completed');
    this.abort.abort();
    this.log({ event: 'completed', sha256: sha256.toString('hex') });
    this.resolveDone({
      id: this.id,
      total: this.opts.total,
      sha256,
      seconds: (Date.now() - this.startedAt) / 1000,
      resumes: this.resumes,
      resentChunks: this.resentChunks,
    });
  }

  /**
   * The peer holds this id complete from an earlier push. The record stays COMPLETED with the
   * peer's digest either way; a push without resume is told ALREADY_EXISTS, a resume gets the
   * result (its producer sends nothing: the accepted offset is the total).
   */
  private adoptCompleted(sha256: Buffer): void {
    this.acked = this.opts.total;
    this.producedUpTo = this.opts.total;
    this.offsetKnown = true;
    this.resultSha = sha256;
    this.clearWindow();
    this.abort.abort();
    this.setState('completed');
    const result = { id: this.id, total: this.opts.total, sha256, seconds: (Date.now() - this.startedAt) / 1000, resumes: this.resumes, resentChunks: 0 };
    if (this.opts.resume) {
      this.resolveAccepted(this.opts.total);
      this.log({ event: 'completed', sha256: sha256.toString('hex') });
    } else {
      // The push is refused (its producer hears it through `accepted`); the transfer itself is
      // complete, so `done` holds its result for a later push with resume.
      const err = new TransferError('ALREADY_EXISTS', `transfer ${this.id} already completed on peer "${this.opts.peer}" (sha256 ${sha256.toString('hex')}); set resume to get its result, or use another id`);
      this.rejectAccepted(err);
      this.log({ event: 'failed', status: 'ALREADY_EXISTS', error: err.message });
    }
    this.resolveDone(result);
  }

  /** Sends window chunks from sendPos while the link takes them, then FINISH once all went. */
  private pump(): void {
    const link = this.link;
    if (!this.linkReady || link === undefined || link.closed) return;
    let i = this.indexOf(this.sendPos);
    while (this.sendPos < this.producedUpTo) {
      const chunk = this.window.at(i);
      if (chunk === undefined) break;
      const skip = this.sendPos - chunk.offset;
      const data = skip === 0 ? chunk.data : chunk.data.subarray(skip);
      const crc = skip === 0 ? chunk.crc : crc32(data);
      const wire = this.opts.corruptChunk?.(this.id, this.sendPos) ? flipOneByte(data) : data;
      let ok: boolean;
      try {
        ok = link.send({
          cls: 'training',
          kind: TrainingKind.CHUNK,
          streamId: this.opts.streamId,
          flow: this.opts.flow,
          tenant: this.opts.tenant ?? 0,
          body: [encodeChunkHeader(this.id, this.sendPos, crc), wire],
          bodyReleased: chunk.onSent,
        });
      } catch {
        return; // the link just closed: its 'close' starts the resume
      }
      chunk.queued += 1;
      this.sendPos += data.length;
      i++;
      if (!ok) return; // the link queue is full: resume on its 'drain'
    }
    if (this.sendPos === this.opts.total && this.finishSha !== undefined && !this.finishSent) {
      this.finishSent = true;
      sendQuietly(link, { cls: 'training', kind: TrainingKind.FINISH, streamId: this.opts.streamId, flow: this.opts.flow, tenant: this.opts.tenant ?? 0, body: encodeFinish(this.id, this.opts.total, this.finishSha) });
      if (this.acked === this.opts.total) this.setState('verifying');
    }
  }

  /** Index in the window of the chunk holding byte `offset`. */
  private indexOf(offset: number): number {
    for (let i = 0; i < this.window.length; i++) {
      const c = this.window.at(i) as WindowChunk;
      if (offset < c.offset + c.data.length) return i;
    }
    return this.window.length;
  }

  private dropAcked(upTo: number): void {
    for (let c = this.window.peek(); c !== undefined && c.offset + c.data.length <= upTo; c = this.window.peek()) {
      this.window.shift();
      this.windowBytes -= c.data.length;
      dropChunk(c);
    }
  }

  private clearWindow(): void {
    for (let c = this.window.shift(); c !== undefined; c = this.window.shift()) dropChunk(c);
    this.windowBytes = 0;
  }

  private setState(s: TransferState): void {
    if (this.stateValue === s) return;
    this.stateValue = s;
    this.emit('state', s);
  }

  private end(state: 'failed' | 'cancelled', err: Error): void {
    if (this.finished) return;
    this.failure = err;
    this.clearWindow();
    this.linkReady = false;
    this.abort.abort();
    this.rejectAccepted(err);
    this.rejectDone(err);
    this.setState(state);
    this.log({ event: state, offset: this.acked, ...(err instanceof TransferError ? { status: err.status } : {}), error: err.message });
  }

  private log(e: Omit<TransferEvent, 'direction' | 'id' | 'peer' | 'total'>): void {
    this.opts.onEvent?.({ direction: 'outbound', id: this.id, peer: this.opts.peer, total: this.opts.total, ...e });
  }
}

/** The chunk left the window: its buffer goes back once no link holds it queued. */
function dropChunk(c: WindowChunk): void {
  c.dropped = true;
  if (c.queued === 0) releaseChunk(c);
}

function releaseChunk(c: WindowChunk): void {
  const release = c.release;
  c.release = undefined;
  release?.();
}

function flipOneByte(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  const at = copy.length >> 1;
  copy[at] = (copy[at] as number) ^ 0x5a;
  return copy;
}
