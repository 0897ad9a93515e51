// The TypeScript client of sluice.v1.TensorTransfer for training jobs in Node:
//   import { connect } from 'sluice';
//   const sluice = connect('127.0.0.1:8003');
//   await sluice.push('node-b', 'step-10/grads', buffer);
// Buffers and files are resumable: when the call fails with a status that allows it (the link
// to the sidecar broke, the peer was unreachable for a while), push() continues the same
// transfer from the offset the sidecar reports, and the SHA-256 is still the whole tensor's.
import * as grpc from '@grpc/grpc-js';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TRANSFER_STATUSES, TransferError, type TransferStatusCode } from './errors.ts';
import { tensorTransferClientConstructor, type PushRequestMsg, type TensorMetaMsg, type PushResponseMsg, type ReceiveEventMsg, type TransferStatusMsg } from './proto.ts';
import type { ReceiveEvent } from './receive-events.ts';
import type { Sink, TensorMeta } from './tensor-meta.ts';

export interface ClientOptions {
  /** Channel credentials (TLS / mTLS); insecure when omitted. */
  credentials?: grpc.ChannelCredentials;
  /** Metadata sent with every call (e.g. `authorization: Bearer ...`, `x-api-key`). */
  metadata?: Record<string, string>;
  channelOptions?: grpc.ChannelOptions;
}

/** Where a tensor's bytes come from. Buffers and files can be re-read, so they resume. */
export type PushSource = Uint8Array | { path: string } | AsyncIterable<Uint8Array>;

export interface PushOptions {
  /** Id of the transfer (1-64 of [A-Za-z0-9_-]); generated when omitted. */
  transferId?: string;
  sink?: Sink;
  datatype?: string;
  shape?: number[];
  attributes?: Record<string, string>;
  /** Required for async-iterable sources. */
  totalBytes?: number;
  /** Bytes per chunk message (capped by the server's max_chunk_bytes). */
  chunkBytes?: number;
  /** Attempts in total for resumable sources (1 = never resume). */
  maxAttempts?: number;
  /** Continue a transfer an earlier process started (same transferId). */
  resume?: boolean;
  onProgress?: (ackedBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
  /** Deadline of each Push call in milliseconds. */
  timeoutMs?: number;
}

export interface PushResult {
  transferId: string;
  totalBytes: number;
  sha256: Buffer;
  seconds: number;
  resumes: number;
  resentChunks: number;
  /** Push calls it took (1 when nothing broke between the job and its sidecar). */
  attempts: number;
}

export interface TransferStatus {
  transferId: string;
  direction: 'outbound' | 'inbound';
  peer: string;
  tensor: TensorMeta;
  totalBytes: number;
  ackedBytes: number;
  state: string;
  sink: Sink;
  sha256?: Buffer;
  error?: string;
}

export interface Subscription extends AsyncIterable<ReceiveEvent> {
  /** Resolves once the server registered the subscription. */
  readonly ready: Promise<void>;
  close(): void;
}

/** Statuses after which the same transfer may continue with resume. */
const RESUMABLE: ReadonlySet<TransferStatusCode> = new Set(['UNAVAILABLE', 'ABORTED', 'INTERNAL', 'CANCELLED']);

function statusName(code: number): TransferStatusCode {
  const name = grpc.status[code] as string | undefined;
  if ((TRANSFER_STATUSES as readonly string[]).includes(name ?? '')) return name as TransferStatusCode;
  if (code === grpc.status.DEADLINE_EXCEEDED) return 'UNAVAILABLE';
  // The address serves no TensorTransfer (listeners.grpc says which port does): retrying cannot help.
  if (code === grpc.status.UNIMPLEMENTED) return 'FAILED_PRECONDITION';
  return 'INTERNAL';
}

function fromGrpcError(err: unknown): TransferError {
  if (err instanceof TransferError) return err;
  const e = err as grpc.ServiceError;
  if (typeof e?.code === 'number') return new TransferError(statusName(e.code), e.details || e.message, { cause: err });
  return new TransferError('INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
}

function sinkOf(name: string): Sink {
  return name === 'SINK_STREAM' ? 'stream' : 'spool';
}

function tensorIn(t: TensorMetaMsg | undefined): TensorMeta {
  return { name: t?.name ?? '', datatype: t?.datatype ?? '', shape: (t?.shape ?? []).map(Number), attributes: { ...(t?.attributes ?? {}) } };
}

function eventIn(m: ReceiveEventMsg): ReceiveEvent | undefined {
  const tensorOf = tensorIn;
  switch (m.event) {
    case 'begin':
      return m.begin ? { begin: { transferId: m.begin.transferId, from: m.begin.from, tensor: tensorOf(m.begin.tensor), totalBytes: Number(m.begin.totalBytes), sink: sinkOf(m.begin.sink), offset: Number(m.begin.offset) } } : undefined;
    case 'data':
      return m.data ? { data: { transferId: m.data.transferId, offset: Number(m.data.offset), data: m.data.data } } : undefined;
    case 'end':
      return m.end ? { end: { transferId: m.end.transferId, totalBytes: Number(m.end.totalBytes), sha256: m.end.sha256 } } : undefined;
    case 'aborted':
      return m.aborted ? { aborted: { transferId: m.aborted.transferId, reason: m.aborted.reason } } : undefined;
    default:
      return undefined;
  }
}

function statusIn(m: TransferStatusMsg): TransferStatus {
  return {
    transferId: m.transferId,
    direction: m.direction === 'INBOUND' ? 'inbound' : 'outbound',
    peer: m.peer,
    tensor: tensorIn(m.tensor),
    totalBytes: Number(m.totalBytes),
    ackedBytes: Number(m.ackedBytes),
    state: m.state.toLowerCase(),
    sink: sinkOf(m.sink),
    ...(m.sha256.length ? { sha256: m.sha256 } : {}),
    ...(m.error ? { error: m.error } : {}),
  };
}

/** Reads a source from `from` in chunks of at most `size` bytes (bounded memory for files). */
async function* readFrom(source: Uint8Array | { path: string }, from: number, size: number): AsyncGenerator<Buffer> {
  if (source instanceof Uint8Array) {
    const buf = Buffer.from(source.buffer, source.byteOffset, source.byteLength);
    for (let off = from; off < buf.length; off += size) yield buf.subarray(off, Math.min(buf.length, off + size));
    return;
  }
  const fh = await open(source.path, 'r');
  try {
    const total = (await fh.stat()).size;
    for (let off = from; off < total; ) {
      const b = Buffer.allocUnsafe(Math.min(size, total - off));
      const { bytesRead } = await fh.read(b, 0, b.length, off);
      if (bytesRead === 0) throw new TransferError('INVALID_ARGUMENT', `${source.path} shrank while being pushed`);
      off += bytesRead;
      yield bytesRead === b.length ? b : b.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

async function hashPrefix(source: Uint8Array | { path: string }, upTo: number): Promise<ReturnType<typeof createHash>> {
  const h = createHash('sha256');
  if (upTo === 0) return h;
  if (source instanceof Uint8Array) {
    h.update(source.subarray(0, upTo));
    return h;
  }
  for await (const b of createReadStream(source.path, { start: 0, end: upTo - 1, highWaterMark: 1 << 20 })) h.update(b as Buffer);
  return h;
}

/** HTTP/2 receive window of the client's channel (stream and connection). */
const RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024;

export class SluiceClient {
  private readonly client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  private readonly metadata: Record<string, string>;

  constructor(address: string, opts: ClientOptions = {}) {
    const Ctor = tensorTransferClientConstructor();
    this.client = new Ctor(address, opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // The HTTP/2 receive window (64 KiB by default) bounds what the node can send per round
      // trip: with it, a Subscribe or Pull stream of 1 MiB chunks crawls at ~40 MB/s.
      'grpc-node.flow_control_window': RECEIVE_WINDOW_BYTES,
      ...opts.channelOptions,
    }) as SluiceClient['client'];
    this.metadata = opts.metadata ?? {};
  }

  /** Pushes one tensor to `peer` and resolves once the peer verified its SHA-256. */
  async push(peer: string, name: string, source: PushSource, opts: PushOptions = {}): Promise<PushResult> {
    const rereadable = source instanceof Uint8Array || (typeof source === 'object' && source !== null && 'path' in source);
    let total: number;
    if (source instanceof Uint8Array) total = source.byteLength;
    else if (rereadable) total = (await stat((source as { path: string }).path)).size;
    else if (opts.totalBytes !== undefined) total = opts.totalBytes;
    else throw new TransferError('INVALID_ARGUMENT', 'totalBytes is required when pushing from an async iterable');
    const transferId = opts.transferId ?? `j${Date.now().toString(36)}-${randomBytes(9).toString('base64url')}`;
    const maxAttempts = rereadable ? (opts.maxAttempts ?? 5) : 1;
    let lastError: TransferError | undefined;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      opts.signal?.throwIfAborted();
      try {
        const r = await this.pushOnce(peer, name, source, total, transferId, opts, opts.resume === true || attempt > 1);
        return { ...r, attempts: attempt };
      } catch (err) {
        lastError = fromGrpcError(err);
        if (!RESUMABLE.has(lastError.status) || attempt === maxAttempts || opts.signal?.aborted) break;
        await sleep(Math.min(5000, 200 * 2 ** (attempt - 1)), undefined, opts.signal ? { signal: opts.signal } : undefined);
      }
    }
    throw lastError ?? new TransferError('INTERNAL', 'push failed');
  }

  private pushOnce(peer: string, name: string, source: PushSource, total: number, transferId: string, opts: PushOptions, resume: boolean): Promise<Omit<PushResult, 'attempts'>> {
    const md = this.callMetadata();
    const callOpts: grpc.CallOptions = opts.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    const call = (this.client.Push as (md: grpc.Metadata, o: grpc.CallOptions) => grpc.ClientDuplexStream<PushRequestMsg, PushResponseMsg>)(md, callOpts);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (err: unknown, value?: Omit<PushResult, 'attempts'>) => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) {
          call.cancel();
          reject(err);
        } else resolve(value as Omit<PushResult, 'attempts'>);
      };
      const onAbort = () => settle(new TransferError('CANCELLED', 'push aborted by the caller'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      call.on('error', (err) => settle(err));
      call.on('data', (m: PushResponseMsg) => {
        if (m.msg === 'accepted' && m.accepted) {
          const a = m.accepted;
          const chunk = Math.max(1, Math.min(opts.chunkBytes ?? 256 * 1024, a.maxChunkBytes || 1024 * 1024));
          this.sendBody(call, source, Number(a.offset), total, chunk).catch((err) => settle(err));
        } else if (m.msg === 'ack' && m.ack) {
          opts.onProgress?.(Number(m.ack.ackedBytes), total);
        } else if (m.msg === 'result' && m.result) {
          const r = m.result;
          settle(undefined, { transferId: r.transferId, totalBytes: Number(r.totalBytes), sha256: r.sha256, seconds: r.seconds, resumes: r.resumes, resentChunks: r.resentChunks });
        }
      });
      call.on('end', () => settle(new TransferError('INTERNAL', 'the server ended the Push call without a result')));
      call.write({
        start: {
          peer,
          tensor: { name, datatype: opts.datatype ?? 'UINT8', shape: opts.shape ?? [total], attributes: opts.attributes ?? {} },
          totalBytes: total,
          transferId,
          resume,
          sink: opts.sink === 'stream' ? 'SINK_STREAM' : 'SINK_SPOOL',
        },
      });
    });
  }

  /** Streams the source from `offset`, hashing everything, then sends finish. */
  private async sendBody(call: grpc.ClientDuplexStream<PushRequestMsg, PushResponseMsg>, source: PushSource, offset: number, total: number, chunk: number): Promise<void> {
    let ended = false;
    call.once('status', () => {
      ended = true;
    });
    // Waits for room in the stream, or gives up when the call ends (so a file source is closed).
    const write = (m: PushRequestMsg) => {
      if (ended) return Promise.reject(new TransferError('UNAVAILABLE', 'the Push call ended'));
      if (call.write(m)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          call.off('status', onEnd);
          resolve();
        };
        const onEnd = () => {
          call.off('drain', onDrain);
          reject(new TransferError('UNAVAILABLE', 'the Push call ended'));
        };
        call.once('drain', onDrain);
        call.once('status', onEnd);
      });
    };
    let hash: ReturnType<typeof createHash>;
    let parts: AsyncIterable<Uint8Array>;
    if (source instanceof Uint8Array || 'path' in source) {
      hash = await hashPrefix(source, offset);
      parts = readFrom(source, offset, chunk);
    } else {
      if (offset !== 0) throw new TransferError('FAILED_PRECONDITION', `the sidecar asks to continue at offset ${offset}, but an async-iterable source cannot rewind`);
      hash = createHash('sha256');
      parts = source;
    }
    let off = offset;
    for await (const part of parts) {
      const buf = Buffer.isBuffer(part) ? part : Buffer.from(part.buffer, part.byteOffset, part.byteLength);
      for (let i = 0; i < buf.length; i += chunk) {
        const piece = buf.subarray(i, Math.min(buf.length, i + chunk));
        hash.update(piece);
        await write({ chunk: { offset: off, data: piece } });
        off += piece.length;
      }
    }
    if (off !== total) throw new TransferError('INVALID_ARGUMENT', `the source produced ${off} bytes, expected ${total}`);
    await write({ finish: { sha256: hash.digest() } });
    call.end();
  }

  async status(transferId: string): Promise<TransferStatus> {
    return statusIn(await this.unary<TransferStatusMsg>('GetStatus', { transferId }));
  }

  async cancel(transferId: string, reason = ''): Promise<TransferStatus> {
    return statusIn(await this.unary<TransferStatusMsg>('Cancel', { transferId, reason }));
  }

  async list(): Promise<TransferStatus[]> {
    return (await this.unary<{ transfers: TransferStatusMsg[] }>('List', {})).transfers.map(statusIn);
  }

  /** Tensors arriving at the node this client talks to (STREAM sink data, SPOOL announcements). */
  subscribe(opts: { namePrefix?: string; includeSpooled?: boolean } = {}): Subscription {
    const call = (this.client.Subscribe as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<ReceiveEventMsg>)(
      { namePrefix: opts.namePrefix ?? '', includeSpooled: opts.includeSpooled ?? false },
      this.callMetadata(),
    );
    const ready = new Promise<void>((resolve, reject) => {
      call.once('metadata', () => resolve());
      call.once('error', reject);
    });
    ready.catch(() => {});
    return {
      ready,
      close: () => call.cancel(),
      [Symbol.asyncIterator]: () => mapEvents(call),
    };
  }

  /** Reads a received spooled tensor (begin, data..., end). */
  pull(ref: { transferId?: string; name?: string }, offset = 0): AsyncIterable<ReceiveEvent> {
    const call = (this.client.Pull as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<ReceiveEventMsg>)(
      { transferId: ref.transferId ?? '', name: ref.name ?? '', offset },
      this.callMetadata(),
    );
    return { [Symbol.asyncIterator]: () => mapEvents(call) };
  }

  /** Pulls a spooled tensor into a file, checking its SHA-256; resolves with the digest. */
  async pullToFile(ref: { transferId?: string; name?: string }, path: string): Promise<Buffer> {
    const fh = await open(path, 'w');
    const hash = createHash('sha256');
    try {
      for await (const e of this.pull(ref)) {
        if ('data' in e) {
          hash.update(e.data.data);
          await fh.write(e.data.data, 0, e.data.data.length, e.data.offset);
        } else if ('end' in e) {
          const got = hash.digest();
          if (!got.equals(e.end.sha256)) throw new TransferError('DATA_LOSS', `pulled ${got.toString('hex')}, the node says ${e.end.sha256.toString('hex')}`);
          return got;
        }
      }
      throw new TransferError('INTERNAL', 'Pull ended without the end event');
    } finally {
      await fh.close();
    }
  }

  close(): void {
    this.client.close();
  }

  private callMetadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.metadata)) md.set(k, v);
    return md;
  }

  private unary<T>(method: string, req: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client[method] as (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: T) => void) => void)(req, this.callMetadata(), (err, res) =>
        err ? reject(fromGrpcError(err)) : resolve(res),
      );
    });
  }
}

async function* mapEvents(call: grpc.ClientReadableStream<ReceiveEventMsg>): AsyncGenerator<ReceiveEvent> {
  try {
    for await (const m of call as AsyncIterable<ReceiveEventMsg>) {
      const e = eventIn(m);
      if (e !== undefined) yield e;
    }
  } catch (err) {
    const e = fromGrpcError(err);
    if (e.status !== 'CANCELLED') throw e;
  } finally {
    call.cancel();
  }
}

/** Connects to a sluice node's training service (listeners.training; default 127.0.0.1:8003). */
export function connect(address = '127.0.0.1:8003', opts: ClientOptions = {}): SluiceClient {
  return new SluiceClient(address, opts);
}
