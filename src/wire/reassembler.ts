// Rebuilds messages from their fragments. The first fragment declares the message length,
// so the message buffer is allocated once and every fragment is decrypted straight into its
// place. Messages of different streams may interleave (inference frames between chunks of a
// training message); fragments of one (class, stream) arrive in order. Bounded: messages
// being rebuilt may hold at most maxPendingBytes and maxPendingMessages.
// With a receive pool, messages of the pooled class are rebuilt in the pool's slabs (one
// lent per message, given back by the consumer's release()); a message larger than a slab
// gets a one-off buffer. The caller asks waitsForSlab() before target(): the pool being empty
// means "stop reading", never "allocate".
import type { InboundMessage, TrafficClass } from '../transport/types.ts';
import { WireError, WireErrorCode } from './errors.ts';
import { FrameFlags, type FrameHeader } from './frame-header.ts';
import type { PooledBody, ReceivePool } from './receive-pool.ts';
import { CLASS_CODES } from './traffic-codes.ts';

export interface ReassemblyLimits {
  maxMessageBytes: number;
  /** Total bytes of partly received messages. */
  maxPendingBytes: number;
  /** Partly received messages at once. */
  maxPendingMessages: number;
}

/** Messages of class `cls` are rebuilt in slabs of `pool`. */
export interface PooledReassembly {
  pool: ReceivePool;
  cls: TrafficClass;
}

interface Partial {
  cls: TrafficClass;
  streamId: number;
  kind: number;
  tenant: number;
  body: Buffer;
  filled: number;
  lease: PooledBody | undefined;
}

const EMPTY = Buffer.alloc(0);

export class Reassembler {
  readonly limits: ReassemblyLimits;
  readonly #partials = new Map<number, Partial>();
  #pendingBytes = 0;
  #single: Buffer | undefined;
  #singleLease: PooledBody | undefined;
  readonly #pooled: PooledReassembly | undefined;

  constructor(limits: ReassemblyLimits, pooled?: PooledReassembly) {
    this.limits = limits;
    this.#pooled = pooled;
  }

  /** The pool slabs of this reassembler come from, if any. */
  get pool(): ReceivePool | undefined {
    return this.#pooled?.pool;
  }

  /**
   * True when data frame `h` starts a message that needs a slab and none is free: the caller
   * must not hand the frame to target() yet (it waits for ReceivePool.whenAvailable()).
   */
  waitsForSlab(h: FrameHeader): boolean {
    const p = this.#pooled;
    return p !== undefined && h.cls === p.cls && (h.flags & FrameFlags.FIRST) !== 0 && h.messageLength > 0 && p.pool.fits(h.messageLength) && p.pool.available === 0;
  }

  /** A buffer for a new message: a slab for the pooled class (or a one-off when too big), else fresh. */
  #bodyFor(h: FrameHeader): { body: Buffer; lease: PooledBody | undefined } {
    const p = this.#pooled;
    if (p === undefined || h.cls !== p.cls) return { body: Buffer.allocUnsafe(h.messageLength), lease: undefined };
    if (!p.pool.fits(h.messageLength)) return { body: p.pool.oneOff(h.messageLength), lease: undefined };
    const lease = p.pool.take(h.messageLength);
    if (lease === undefined) throw new Error('target() with the receive pool empty: ask waitsForSlab() first');
    return { body: lease.body, lease };
  }

  get pendingMessages(): number {
    return this.#partials.size;
  }

  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Where the payload of data frame `h` is to be decrypted. Throws WireError on a fragment out of place. */
  target(h: FrameHeader): Uint8Array {
    if (h.messageLength > this.limits.maxMessageBytes) {
      throw new WireError(WireErrorCode.OVERSIZE, `message of ${h.messageLength} bytes exceeds the ${this.limits.maxMessageBytes}-byte limit`);
    }
    const key = h.streamId * 4 + CLASS_CODES[h.cls];
    const first = (h.flags & FrameFlags.FIRST) !== 0;
    const last = (h.flags & FrameFlags.LAST) !== 0;
    let p = this.#partials.get(key);
    if (first) {
      if (p !== undefined) {
        throw new WireError(WireErrorCode.FRAGMENT, `${h.cls} stream ${h.streamId} started a new message before finishing the last (${p.filled} of ${p.body.byteLength} bytes)`);
      }
      if (last) {
        if (h.messageLength === 0) {
          this.#single = EMPTY;
        } else {
          const { body, lease } = this.#bodyFor(h);
          this.#single = body;
          this.#singleLease = lease;
        }
        return this.#single;
      }
      if (this.#partials.size >= this.limits.maxPendingMessages) {
        throw new WireError(WireErrorCode.OVERSIZE, `more than ${this.limits.maxPendingMessages} messages partly received at once`);
      }
      if (this.#pendingBytes + h.messageLength > this.limits.maxPendingBytes) {
        throw new WireError(
          WireErrorCode.OVERSIZE,
          `partly received messages would hold ${this.#pendingBytes + h.messageLength} bytes, over the ${this.limits.maxPendingBytes}-byte reassembly limit`,
        );
      }
      const { body, lease } = this.#bodyFor(h);
      p = { cls: h.cls, streamId: h.streamId, kind: h.kind, tenant: h.tenant, body, filled: 0, lease };
      this.#partials.set(key, p);
      this.#pendingBytes += h.messageLength;
    } else if (p === undefined) {
      throw new WireError(WireErrorCode.FRAGMENT, `continuation fragment on ${h.cls} stream ${h.streamId} without a first fragment`);
    } else if (p.body.byteLength !== h.messageLength || p.kind !== h.kind || p.tenant !== h.tenant) {
      throw new WireError(WireErrorCode.FRAGMENT, `fragment on ${h.cls} stream ${h.streamId} disagrees with its first fragment (length, kind or tenant)`);
    }
    const end = p.filled + h.payloadLength;
    if (end > p.body.byteLength || (last && end !== p.body.byteLength)) {
      throw new WireError(WireErrorCode.FRAGMENT, `fragments on ${h.cls} stream ${h.streamId} add up to ${end} bytes, message declared ${p.body.byteLength}`);
    }
    return p.body.subarray(p.filled, end);
  }

  /** Records that the frame given to target() opened; returns the message it completed, if any. */
  commit(h: FrameHeader): InboundMessage | undefined {
    const whole = FrameFlags.FIRST | FrameFlags.LAST;
    if ((h.flags & whole) === whole) {
      const body = this.#single ?? EMPTY;
      const lease = this.#singleLease;
      this.#single = undefined;
      this.#singleLease = undefined;
      return delivered(h, body, lease);
    }
    const key = h.streamId * 4 + CLASS_CODES[h.cls];
    const p = this.#partials.get(key);
    if (p === undefined) throw new Error('commit() without target()');
    p.filled += h.payloadLength;
    if ((h.flags & FrameFlags.LAST) === 0) return undefined;
    this.#partials.delete(key);
    this.#pendingBytes -= p.body.byteLength;
    return delivered(p, p.body, p.lease);
  }

  /** A frame given to target() failed to open: its one-frame message's slab goes back. */
  abandon(): void {
    this.#singleLease?.release();
    this.#singleLease = undefined;
    this.#single = undefined;
  }

  /** Describes partly received messages, for an error when the peer vanishes. */
  describePending(): string | undefined {
    if (this.#partials.size === 0) return undefined;
    const parts = [...this.#partials.values()].slice(0, 3).map((p) => `${p.cls} stream ${p.streamId}: ${p.filled} of ${p.body.byteLength} bytes`);
    const more = this.#partials.size > 3 ? ` and ${this.#partials.size - 3} more` : '';
    return parts.join(', ') + more;
  }

  /** Drops partly received messages, giving their slabs back. */
  clear(): void {
    for (const p of this.#partials.values()) p.lease?.release();
    this.#partials.clear();
    this.#pendingBytes = 0;
    this.abandon();
  }
}

function delivered(h: { cls: TrafficClass; kind: number; streamId: number; tenant: number }, body: Buffer, lease: PooledBody | undefined): InboundMessage {
  const msg: InboundMessage = { cls: h.cls, kind: h.kind, streamId: h.streamId, tenant: h.tenant, body };
  if (lease !== undefined) msg.release = () => lease.release();
  return msg;
}
