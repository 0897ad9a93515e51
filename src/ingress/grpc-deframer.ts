// Splits the DATA of a gRPC request stream (untrusted bytes) into messages: each is a 1-byte
// compressed flag, a 4-byte big-endian length and that many bytes. The limit is checked on the
// prefix, before any byte of the message is buffered; a message that arrives in one chunk is
// handed out as a view of that chunk (no copy), one split across chunks is gathered once into
// a buffer of its exact size.
import { GrpcStatus, type GrpcStatusCode } from '../kserve/status.ts';

export const GRPC_PREFIX_BYTES = 5;

/** Why a request stream's bytes were refused; becomes the call's gRPC status. */
export class GrpcFramingError extends Error {
  readonly status: GrpcStatusCode;
  constructor(status: GrpcStatusCode, message: string) {
    super(message);
    this.name = 'GrpcFramingError';
    this.status = status;
  }
}

export class GrpcDeframer {
  private readonly maxMessageBytes: number;
  private readonly compressedAllowed: boolean;
  private compressed = false;
  private readonly prefix = Buffer.alloc(GRPC_PREFIX_BYTES);
  private prefixHave = 0;
  /** The message being gathered (null while reading a prefix). */
  private body: Buffer | null = null;
  private bodyHave = 0;
  private readonly allocBody: (length: number) => Buffer;

  /**
   * `compressedAllowed`: the call named a grpc-encoding, so messages may carry the compressed
   * flag. `allocBody`: where a message split across chunks is gathered (a buffer of exactly
   * `length` bytes; default a fresh one), e.g. a pooled buffer the consumer gives back.
   */
  constructor(maxMessageBytes: number, compressedAllowed = false, allocBody: (length: number) => Buffer = (n) => Buffer.allocUnsafe(n)) {
    this.maxMessageBytes = maxMessageBytes;
    this.compressedAllowed = compressedAllowed;
    this.allocBody = allocBody;
  }

  /** True between messages: the stream may end here. */
  get atBoundary(): boolean {
    return this.prefixHave === 0 && this.body === null;
  }

  /**
   * Feeds a chunk; calls `onMessage` for each message it completes, in order, with its
   * compressed flag. Throws GrpcFramingError for a compressed message on a call without
   * grpc-encoding, or one over the limit (compressed size; the inflater bounds the rest).
   */
  push(chunk: Buffer, onMessage: (msg: Buffer, compressed: boolean) => void): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.body === null) {
        if (this.prefixHave === 0 && n - pos >= GRPC_PREFIX_BYTES) {
          // Fast path: the whole prefix is in this chunk.
          const len = this.checkPrefix(chunk[pos]!, chunk.readUInt32BE(pos + 1));
          pos += GRPC_PREFIX_BYTES;
          if (n - pos >= len) {
            onMessage(chunk.subarray(pos, pos + len), this.compressed);
            pos += len;
            continue;
          }
          this.startBody(len);
          continue;
        }
        const take = Math.min(GRPC_PREFIX_BYTES - this.prefixHave, n - pos);
        chunk.copy(this.prefix, this.prefixHave, pos, pos + take);
        this.prefixHave += take;
        pos += take;
        if (this.prefixHave < GRPC_PREFIX_BYTES) return;
        this.prefixHave = 0;
        const len = this.checkPrefix(this.prefix[0]!, this.prefix.readUInt32BE(1));
        if (len === 0) {
          onMessage(Buffer.alloc(0), this.compressed);
          continue;
        }
        this.startBody(len);
        continue;
      }
      const body = this.body;
      const take = Math.min(body.length - this.bodyHave, n - pos);
      chunk.copy(body, this.bodyHave, pos, pos + take);
      this.bodyHave += take;
      pos += take;
      if (this.bodyHave === body.length) {
        this.body = null;
        this.bodyHave = 0;
        onMessage(body, this.compressed);
      }
    }
  }

  private startBody(len: number): void {
    this.body = this.allocBody(len);
    this.bodyHave = 0;
  }

  private checkPrefix(flag: number, len: number): number {
    if (flag === 1 && !this.compressedAllowed) throw new GrpcFramingError(GrpcStatus.INTERNAL, 'a message is flagged compressed but the call has no grpc-encoding');
    if (flag > 1) throw new GrpcFramingError(GrpcStatus.INTERNAL, `invalid gRPC message flag ${flag}`);
    if (len > this.maxMessageBytes) {
      throw new GrpcFramingError(GrpcStatus.RESOURCE_EXHAUSTED, `request message larger than max (${len} vs ${this.maxMessageBytes} bytes)`);
    }
    this.compressed = flag === 1;
    return len;
  }
}

/** The 5-byte prefix of a message of `len` bytes. */
export function grpcMessagePrefix(len: number, compressed = false): Buffer {
  const p = Buffer.allocUnsafe(GRPC_PREFIX_BYTES);
  p[0] = compressed ? 1 : 0;
  p.writeUInt32BE(len, 1);
  return p;
}

/** Small messages are sent as one buffer (one DATA frame); larger ones are not copied. */
export const COALESCE_MESSAGE_BYTES = 64 * 1024;

/** The message behind its prefix, as one buffer. */
export function framedMessage(msg: Buffer, compressed = false): Buffer {
  const out = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + msg.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, GRPC_PREFIX_BYTES);
  return out;
}
