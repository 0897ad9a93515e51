// Subscribe and Pull send each tensor chunk to the job as a ReceiveEvent{data}. grpc-js turns a
// response into bytes in two steps: the method's serializer (protobufjs: a buffer of the
// message's size, the chunk copied in), then the gRPC framing (a second buffer 5 bytes longer,
// and a second copy). For 1 MiB chunks that is 2 MiB of fresh buffers and 2 MiB of copies per
// MiB delivered (docs/training.md, "Delivering to a job", has what it costs). A server
// interceptor gives Subscribe and Pull calls a serializeMessage that writes a data event straight
// into one framed buffer (one copy); every other event keeps grpc-js's path. The framed buffers
// are recycled: the call's sendMessage is wrapped too, and a buffer goes back to the recycler
// when grpc-js's write callback says the HTTP/2 stream is done with it, so a steady Subscribe
// reuses a few buffers instead of allocating one per chunk (each fresh 1 MiB is external memory
// that drives V8's mark-compacts). The bytes are the same as protobufjs writes
// (test/training/receive-event-framing.test.ts).
//
// Like push-buffers.ts this reaches into grpc-js's call object (its `serializeMessage`;
// @grpc/grpc-js is pinned); when it is not there the call keeps grpc-js's own serializer
// (counted in `receiveEventFraming.misses`), which costs copies, not correctness.
import type * as grpc from '@grpc/grpc-js';
import { GRPC_PREFIX_BYTES } from '../ingress/grpc-deframer.ts';
import { BufferRecycler } from '../wire/buffer-recycler.ts';
import { TENSOR_TRANSFER_SERVICE, type ReceiveEventMsg } from './proto.ts';

export const RECEIVE_EVENT_PATHS: ReadonlySet<string> = new Set([`/${TENSOR_TRANSFER_SERVICE}/Subscribe`, `/${TENSOR_TRANSFER_SERVICE}/Pull`]);

/** ReceiveEvent.data = 2 and TensorData's transfer_id = 1, offset = 2, data = 3 (proto/sluice/v1/tensor_transfer.proto). */
const TAG_EVENT_DATA = (2 << 3) | 2;
const TAG_TRANSFER_ID = (1 << 3) | 2;
const TAG_OFFSET = (2 << 3) | 0;
const TAG_DATA = (3 << 3) | 2;

/** Process-wide counts: data events framed here; calls whose serializer could not be swapped (grpc-js changed). */
export const receiveEventFraming = { framed: 0, misses: 0 };

/**
 * The framed buffers of every Subscribe and Pull of this thread: a few chunks in flight per
 * subscriber (a send waits for the stream to take the last one), so four kept buffers cover
 * the common case of one or two subscribers; more only allocate.
 */
export const framedEventBuffers = new BufferRecycler({ keep: 4, minBytes: 64 * 1024 });

function varintBytes(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes `n` (a non-negative safe integer) as a varint at `at`; returns the offset after it. */
function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 128) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

/**
 * A ReceiveEvent{data} as one gRPC-framed message: the 5-byte prefix, then the protobuf bytes
 * protobufjs writes for it (every field present, in field order, defaults included).
 */
export function encodeFramedDataEvent(d: { transferId: string; offset: number; data: Uint8Array }, alloc: (length: number) => Buffer = Buffer.allocUnsafe): Buffer {
  if (!Number.isSafeInteger(d.offset) || d.offset < 0) throw new RangeError(`offset must be a non-negative safe integer, got ${d.offset}`);
  const idBytes = Buffer.byteLength(d.transferId, 'utf8');
  const inner = 1 + varintBytes(idBytes) + idBytes + 1 + varintBytes(d.offset) + 1 + varintBytes(d.data.length) + d.data.length;
  const message = 1 + varintBytes(inner) + inner;
  const length = GRPC_PREFIX_BYTES + message;
  const out = alloc(length).subarray(0, length);
  out[0] = 0; // not compressed
  out.writeUInt32BE(message, 1);
  let at = GRPC_PREFIX_BYTES;
  out[at++] = TAG_EVENT_DATA;
  at = writeVarint(out, at, inner);
  out[at++] = TAG_TRANSFER_ID;
  at = writeVarint(out, at, idBytes);
  at += out.write(d.transferId, at, 'utf8');
  out[at++] = TAG_OFFSET;
  at = writeVarint(out, at, d.offset);
  out[at++] = TAG_DATA;
  at = writeVarint(out, at, d.data.length);
  out.set(d.data, at);
  return out;
}

function isDataEvent(m: ReceiveEventMsg): m is Required<Pick<ReceiveEventMsg, 'data'>> {
  return m.data !== undefined && m.begin === undefined && m.end === undefined && m.aborted === undefined && m.data.data instanceof Uint8Array;
}

/** What the interceptor needs of grpc-js's BaseServerInterceptingCall (a private method and sendMessage). */
interface Serializing {
  serializeMessage(value: unknown): Buffer;
  sendMessage(message: unknown, callback: () => void): void;
}

function isSerializing(call: unknown): call is Serializing {
  const c = call as Partial<Serializing> | null;
  return typeof c?.serializeMessage === 'function' && typeof c.sendMessage === 'function';
}

/** The server interceptor; it needs grpc-js's own call object (before any wrapping interceptor). */
export const receiveEventFramingInterceptor: grpc.ServerInterceptor = (method, call) => {
  if (RECEIVE_EVENT_PATHS.has(method.path)) {
    if (isSerializing(call)) {
      const grpcJs = call.serializeMessage.bind(call);
      const send = call.sendMessage.bind(call);
      // Set only while this call's sendMessage runs (grpc-js serializes synchronously inside it):
      // the recycled buffer the message was framed into, given back by the write callback.
      let sending: { buf: Buffer | undefined } | undefined;
      call.serializeMessage = (value: unknown) => {
        if (!isDataEvent(value as ReceiveEventMsg)) return grpcJs(value);
        receiveEventFraming.framed += 1;
        const slot = sending;
        if (slot === undefined) return encodeFramedDataEvent((value as Required<Pick<ReceiveEventMsg, 'data'>>).data);
        return encodeFramedDataEvent((value as Required<Pick<ReceiveEventMsg, 'data'>>).data, (n) => {
          const buf = framedEventBuffers.take(n);
          if (framedEventBuffers.recycles(n)) slot.buf = buf;
          return buf;
        });
      };
      call.sendMessage = (message: unknown, callback: () => void) => {
        const slot: { buf: Buffer | undefined } = { buf: undefined };
        sending = slot;
        try {
          // The callback runs once the HTTP/2 stream wrote the buffer; a call cancelled or failed
          // meanwhile never calls it, and its buffer is left to the GC.
          send(message, () => {
            if (slot.buf !== undefined) framedEventBuffers.give(slot.buf);
            slot.buf = undefined;
            callback();
          });
        } finally {
          sending = undefined;
        }
      };
    } else {
      receiveEventFraming.misses += 1;
    }
  }
  return call as grpc.ServerInterceptingCall;
};
