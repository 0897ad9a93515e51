// Pooled buffers for the chunks a training job pushes (TensorTransfer Push on the training
// listener). grpc-js gathers every request message into a fresh buffer (its StreamDecoder
// Buffer.concat()s the HTTP/2 DATA pieces): a 1 MiB allocation and copy per chunk that the
// training thread's GC then has to collect. For Push calls, a server interceptor (the first in
// the chain, so it sees grpc-js's own call object) swaps that decoder for one that gathers each
// message of at least POOLED_MIN_BYTES straight into a slab of a ReceivePool. The protobuf
// `bytes` field of a chunk decodes as a view of that slab; the Push handler hands the slab to
// the transfer's window together with the chunk (adopt()), and the window gives it back once the
// peer acknowledged the chunk and no link still holds it queued (outbound-transfer.ts). Slabs of
// messages nobody adopted (the call ended first, or grpc-js still held them) go back when the
// call's HTTP/2 stream closes. When every slab is out, a message gets a buffer of its own
// (counted): a pushing job is never stalled by the pool, the transfer window bounds it.
//
// The swap reaches into grpc-js (the call's private `decoder` and `stream`; @grpc/grpc-js is
// pinned). When they are not there, Push keeps grpc-js's decoder (`swapFailures` counts it,
// and test/training/push-buffers.test.ts fails), which costs garbage, not correctness.
import type * as grpc from '@grpc/grpc-js';
import { GRPC_PREFIX_BYTES, GrpcDeframer } from '../ingress/grpc-deframer.ts';
import { ReceivePool, type PooledBody } from '../wire/receive-pool.ts';

export const PUSH_PATH = '/sluice.v1.TensorTransfer/Push';
/** Messages smaller than this are gathered into buffers of their own (cheap, and a slab would idle). */
export const POOLED_MIN_BYTES = 64 * 1024;
/** A PushRequest's bytes around a chunk's data: tags and varint lengths of chunk, offset, data. */
const CHUNK_MESSAGE_OVERHEAD = 32;

/** The decoder contract of grpc-js's server call (1.14: StreamDecoder.write). */
interface GrpcMessageDecoder {
  write(data: Buffer): Buffer[];
}

/** What the interceptor needs of grpc-js's BaseServerInterceptingCall (private members). */
interface GrpcBaseCall {
  decoder: GrpcMessageDecoder;
  stream: { once(event: 'close', fn: () => void): unknown };
}

function isGrpcBaseCall(call: unknown): call is GrpcBaseCall {
  const c = call as Partial<GrpcBaseCall> | null;
  return typeof c?.decoder?.write === 'function' && typeof c.stream?.once === 'function';
}

interface Held {
  readonly lease: PooledBody;
  readonly slab: ArrayBufferLike;
  readonly decoder: PooledPushDecoder;
}

export interface PushBufferOptions {
  /** The largest chunk a job may push (training.maxChunkBytes). */
  maxChunkBytes: number;
  /** Slabs at most (training.pushBuffers). */
  slabs: number;
}

export class PushBuffers {
  readonly pool: ReceivePool;
  /** Push calls whose decoder could not be swapped (grpc-js changed): they allocate per chunk. */
  swapFailures = 0;
  /** Messages of at least POOLED_MIN_BYTES that found every slab out (or did not fit one). */
  get oneOffAllocations(): number {
    return this.pool.oneOffAllocations;
  }

  /** Slabs lent to a message (held by a call, or by a transfer's window) by their ArrayBuffer. */
  readonly #bySlab = new Map<ArrayBufferLike, Held>();

  constructor(opts: PushBufferOptions) {
    this.pool = new ReceivePool({ slabBytes: GRPC_PREFIX_BYTES + opts.maxChunkBytes + CHUNK_MESSAGE_OVERHEAD, slabs: opts.slabs });
  }

  /** The server interceptor that gives Push calls a pooled decoder; put it first in the chain. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    if (method.path === PUSH_PATH) {
      if (isGrpcBaseCall(call)) {
        const decoder = new PooledPushDecoder(this, (call.decoder as { maxReadMessageLength?: number }).maxReadMessageLength ?? -1);
        call.decoder = decoder;
        call.stream.once('close', () => decoder.close());
      } else {
        this.swapFailures += 1;
      }
    }
    // grpc-js uses what an interceptor returns only through ServerInterceptingCallInterface,
    // which its own call implements: no wrapper (and no per-message hop) is needed.
    return call as grpc.ServerInterceptingCall;
  };

  /**
   * Takes over the pooled slab `data` lies in (a chunk's bytes as decoded from a Push message):
   * the returned function gives it back, exactly once, when the caller is done with `data`.
   * Undefined when `data` is not in a held slab (a small message, a one-off buffer): it is
   * then the caller's own, and the GC's.
   */
  adopt(data: Uint8Array): (() => void) | undefined {
    const held = this.#bySlab.get(data.buffer);
    if (held === undefined) return undefined;
    this.#bySlab.delete(held.slab);
    held.decoder.forget(held);
    let lease: PooledBody | undefined = held.lease;
    return () => {
      lease?.release();
      lease = undefined;
    };
  }

  /** @internal PooledPushDecoder: a slab for a message of `framedLength` bytes, or undefined (counted). */
  take(decoder: PooledPushDecoder, framedLength: number): Held | undefined {
    const lease = this.pool.fits(framedLength) ? this.pool.take(framedLength) : undefined;
    if (lease === undefined) return undefined;
    const held: Held = { lease, slab: lease.body.buffer, decoder };
    this.#bySlab.set(held.slab, held);
    return held;
  }

  /** @internal PooledPushDecoder.close(): a slab nobody adopted goes back. */
  giveBack(held: Held): void {
    this.#bySlab.delete(held.slab);
    held.lease.release();
  }
}

/**
 * grpc-js's StreamDecoder for one Push call, on GrpcDeframer: a message that arrives in one DATA
 * piece is handed on as a view of it; one split across pieces is gathered once, into a slab when
 * it is large. Either way grpc-js gets the message behind its 5-byte prefix, as it expects.
 */
export class PooledPushDecoder implements GrpcMessageDecoder {
  readonly #buffers: PushBuffers;
  readonly #deframer: GrpcDeframer;
  /** Slabs this call filled that nobody has adopted yet. */
  readonly #held = new Set<Held>();
  #closed = false;

  constructor(buffers: PushBuffers, maxMessageBytes: number) {
    this.#buffers = buffers;
    // grpc-js decides about compression from the call's grpc-encoding; the flag passes through.
    this.#deframer = new GrpcDeframer(maxMessageBytes < 0 ? Number.MAX_SAFE_INTEGER : maxMessageBytes, true, (length) => this.#alloc(length));
  }

  /** Slabs held for messages not yet adopted (tests). */
  get heldSlabs(): number {
    return this.#held.size;
  }

  write(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    this.#deframer.push(data, (body, compressed) => out.push(framed(body, compressed)));
    return out;
  }

  /** The call's stream closed: messages not adopted by now never will be. */
  close(): void {
    this.#closed = true;
    for (const h of this.#held) this.#buffers.giveBack(h);
    this.#held.clear();
  }

  /** @internal PushBuffers.adopt(): the slab has a new owner. */
  forget(held: Held): void {
    this.#held.delete(held);
  }

  /** Room for a gathered message: GRPC_PREFIX_BYTES in front of it stay free for framed(). */
  #alloc(length: number): Buffer {
    const framedLength = GRPC_PREFIX_BYTES + length;
    if (length >= POOLED_MIN_BYTES && !this.#closed) {
      const held = this.#buffers.take(this, framedLength);
      if (held !== undefined) {
        this.#held.add(held);
        return held.lease.body.subarray(GRPC_PREFIX_BYTES);
      }
      return this.#buffers.pool.oneOff(framedLength).subarray(GRPC_PREFIX_BYTES);
    }
    return Buffer.allocUnsafe(framedLength).subarray(GRPC_PREFIX_BYTES);
  }
}

/**
 * The message with its prefix in front, without a copy: both a view of a DATA piece (where the
 * prefix was read) and a gathered body (#alloc) have the prefix's 5 bytes right before them.
 */
function framed(body: Buffer, compressed: boolean): Buffer {
  if (body.length === 0 || body.byteOffset < GRPC_PREFIX_BYTES) {
    const out = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + body.length);
    body.copy(out, GRPC_PREFIX_BYTES);
    return writePrefix(out, body.length, compressed);
  }
  return writePrefix(Buffer.from(body.buffer, body.byteOffset - GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + body.length), body.length, compressed);
}

function writePrefix(out: Buffer, length: number, compressed: boolean): Buffer {
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(length, 1);
  return out;
}
