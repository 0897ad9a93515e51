// sluice.v1.TensorTransfer on the training listener (listeners.training, 8003), backed by a TrainingNode.
// Push maps HTTP/2 flow control onto the transfer window: the call stops reading the client's
// stream while the window is full, so a fast producer never makes this node buffer more than
// the window. Errors are gRPC statuses with a one-line `details` and x-request-id in trailers.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { TransferError, type TransferStatusCode } from './errors.ts';
import type { OutboundTransfer } from './outbound-transfer.ts';
import type { PushBuffers } from './push-buffers.ts';
import {
  tensorTransferClientConstructor,
  type PushRequestMsg,
  type PushResponseMsg,
  type ReceiveEventMsg,
  type SinkName,
  type TensorMetaMsg,
  type TransferStateName,
  type TransferStatusMsg,
} from './proto.ts';
import type { ReceiveEvent, Subscriber } from './receive-events.ts';
import type { Sink, TensorMeta } from './tensor-meta.ts';
import type { TrainingNode } from './training-node.ts';
import type { TransferSummary } from './transfer-state.ts';

export interface TensorTransferServiceOptions {
  /**
   * Authenticates a call and returns its tenant; throws a TransferError (UNAUTHENTICATED,
   * PERMISSION_DENIED) to refuse it. Default: every caller is tenant 0 (the node's security
   * gates, when on, run before this as a server interceptor).
   */
  authorize?: (metadata: grpc.Metadata, method: string) => { tenant: number };
  /**
   * Pooled buffers Push chunks arrive in (push-buffers.ts; its interceptor must be on the
   * server): a chunk's slab goes to the transfer's window with it. Without: grpc-js's buffers.
   */
  pushBuffers?: PushBuffers;
}

const STATUS: Record<TransferStatusCode, grpc.status> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  ABORTED: grpc.status.ABORTED,
  DATA_LOSS: grpc.status.DATA_LOSS,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  CANCELLED: grpc.status.CANCELLED,
  INTERNAL: grpc.status.INTERNAL,
};

function requestIdOf(md: grpc.Metadata): string {
  const v = md.get('x-request-id')[0];
  return typeof v === 'string' && /^[\x21-\x7e]{1,128}$/.test(v) ? v : randomUUID();
}

function trailers(requestId: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-request-id', requestId);
  return md;
}

function toStatus(err: unknown, requestId: string): Partial<grpc.StatusObject> {
  if (err instanceof TransferError) return { code: STATUS[err.status], details: err.message, metadata: trailers(requestId) };
  return { code: grpc.status.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}`, metadata: trailers(requestId) };
}

const SINK_IN: Record<SinkName, Sink> = { SINK_UNSPECIFIED: 'spool', SINK_SPOOL: 'spool', SINK_STREAM: 'stream' };
const SINK_OUT: Record<Sink, SinkName> = { spool: 'SINK_SPOOL', stream: 'SINK_STREAM' };

function metaIn(m: TensorMetaMsg | undefined): TensorMeta {
  if (m === undefined) throw new TransferError('INVALID_ARGUMENT', 'start.tensor is required');
  return { name: m.name, datatype: m.datatype, shape: m.shape.map(Number), attributes: { ...m.attributes } };
}

export function statusMessage(s: TransferSummary): TransferStatusMsg {
  return {
    transferId: s.id,
    direction: s.direction === 'outbound' ? 'OUTBOUND' : 'INBOUND',
    peer: s.peer,
    tensor: s.tensor,
    totalBytes: s.total,
    ackedBytes: s.acked,
    state: s.state.toUpperCase() as TransferStateName,
    sink: SINK_OUT[s.sink],
    sha256: s.sha256 ?? Buffer.alloc(0),
    error: s.error ?? '',
  };
}

export function eventMessage(e: ReceiveEvent): ReceiveEventMsg {
  if ('begin' in e) return { begin: { ...e.begin, sink: SINK_OUT[e.begin.sink] } };
  return e;
}

export function addTensorTransferService(server: grpc.Server, node: TrainingNode, opts: TensorTransferServiceOptions = {}): void {
  const authorize = opts.authorize ?? (() => ({ tenant: 0 }));
  server.addService(tensorTransferClientConstructor().service, {
    Push: (call: grpc.ServerDuplexStream<PushRequestMsg, PushResponseMsg>) => push(node, authorize, call, opts.pushBuffers),
    GetStatus: unary((req: { transferId: string }) => statusMessage(node.status(req.transferId)), authorize, 'GetStatus'),
    Cancel: unary((req: { transferId: string; reason: string }) => statusMessage(node.cancel(req.transferId, req.reason)), authorize, 'Cancel'),
    List: unary(() => ({ transfers: node.list().map(statusMessage) }), authorize, 'List'),
    Subscribe: (call: grpc.ServerWritableStream<{ namePrefix: string; includeSpooled: boolean }, ReceiveEventMsg>) => subscribe(node, authorize, call),
    Pull: (call: grpc.ServerWritableStream<{ transferId: string; name: string; offset: number }, ReceiveEventMsg>) => void pull(node, authorize, call),
  });
}

function unary<Req, Res>(fn: (req: Req) => Res, authorize: NonNullable<TensorTransferServiceOptions['authorize']>, method: string) {
  return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => {
    const requestId = requestIdOf(call.metadata);
    try {
      authorize(call.metadata, method);
      cb(null, fn(call.request), trailers(requestId));
    } catch (err) {
      cb(toStatus(err, requestId) as grpc.ServiceError);
    }
  };
}

function push(
  node: TrainingNode,
  authorize: NonNullable<TensorTransferServiceOptions['authorize']>,
  call: grpc.ServerDuplexStream<PushRequestMsg, PushResponseMsg>,
  pushBuffers: PushBuffers | undefined,
): void {
  const requestId = requestIdOf(call.metadata);
  let transfer: OutboundTransfer | undefined;
  let over = false;
  const fail = (err: unknown) => {
    if (over) return;
    over = true;
    detach();
    call.emit('error', toStatus(err, requestId));
  };
  const onAck = (acked: number) => {
    if (!over) call.write({ ack: { ackedBytes: acked } });
  };
  const onSuperseded = () => {
    if (transfer === undefined) return;
    transfer.off('ack', onAck);
    transfer.off('superseded', onSuperseded);
    transfer = undefined; // the new producer owns it now
    fail(new TransferError('ABORTED', 'a Push with resume took over this transfer'));
  };
  const detach = () => {
    if (transfer === undefined) return;
    transfer.off('ack', onAck);
    transfer.off('superseded', onSuperseded);
    transfer.producerAttached = false;
  };
  let tenant = 0;
  try {
    tenant = authorize(call.metadata, 'Push').tenant;
  } catch (err) {
    fail(err);
    return;
  }
  call.on('data', (req: PushRequestMsg) => {
    if (over) return;
    try {
      if (req.msg === 'start' && req.start) {
        if (transfer !== undefined) throw new TransferError('INVALID_ARGUMENT', 'start was sent twice');
        const s = req.start;
        const handle = node.push({
          peer: s.peer,
          tensor: metaIn(s.tensor),
          total: Number(s.totalBytes),
          ...(s.transferId ? { transferId: s.transferId } : {}),
          resume: s.resume,
          sink: SINK_IN[s.sink] ?? 'spool',
          tenant,
        });
        const t = handle.transfer;
        transfer = t;
        t.on('superseded', onSuperseded);
        call.pause(); // no chunk is read before the client knows where to start
        handle.offset.then(
          (offset) => {
            if (over) return;
            call.write({ accepted: { transferId: t.id, offset, maxChunkBytes: node.limits.maxChunkBytes, windowBytes: node.limits.windowBytes } });
            t.on('ack', onAck);
            call.resume();
          },
          fail,
        );
        t.done.then((r) => {
          if (over) return;
          over = true;
          detach();
          call.write({ result: { transferId: r.id, totalBytes: r.total, sha256: r.sha256, seconds: r.seconds, resumes: r.resumes, resentChunks: r.resentChunks } });
          call.end(trailers(requestId));
        }, fail);
        return;
      }
      if (transfer === undefined) throw new TransferError('INVALID_ARGUMENT', 'the first message of Push must be start');
      if (req.msg === 'chunk' && req.chunk) {
        // The chunk's pooled slab (if it is in one) goes with it; the window gives it back.
        transfer.write(Number(req.chunk.offset), req.chunk.data, pushBuffers?.adopt(req.chunk.data));
        if (!transfer.hasSpace) {
          call.pause();
          transfer.waitForSpace().then(() => {
            if (!over) call.resume();
          }, fail);
        }
        return;
      }
      if (req.msg === 'finish' && req.finish) {
        transfer.finish(req.finish.sha256);
        return;
      }
      throw new TransferError('INVALID_ARGUMENT', 'a Push message must carry start, chunk or finish');
    } catch (err) {
      fail(err);
    }
  });
  // The client went away (or half-closed before finish): the transfer keeps what it has and
  // waits for a Push with resume.
  call.on('cancelled', () => {
    over = true;
    detach();
  });
  call.on('end', () => {
    if (!over && transfer !== undefined && transfer.producedBytes < transfer.opts.total) {
      fail(new TransferError('ABORTED', `the client closed its stream after ${transfer.producedBytes} of ${transfer.opts.total} bytes; Push with resume to continue`));
    }
  });
}

/** A gRPC server stream as a Subscriber: send() resolves once the stream took the message. */
class GrpcSubscriber implements Subscriber {
  closed = false;
  constructor(
    readonly namePrefix: string,
    readonly includeSpooled: boolean,
    private readonly call: grpc.ServerWritableStream<unknown, ReceiveEventMsg>,
  ) {
    const onGone = () => {
      this.closed = true;
    };
    call.on('cancelled', onGone);
    call.on('close', onGone);
    call.on('error', onGone);
  }

  send(event: ReceiveEvent): Promise<void> {
    if (this.closed) return Promise.reject(new TransferError('ABORTED', 'the subscriber went away'));
    return writeAndWait(this.call, eventMessage(event));
  }
}

/**
 * Writes one message and resolves once grpc-js took it and the stream is below its high-water
 * mark: the caller's next write waits for the client to read (HTTP/2 flow control).
 */
function writeAndWait<T>(call: grpc.ServerWritableStream<unknown, T>, msg: T): Promise<void> {
  return new Promise((resolve, reject) => {
    let written = false;
    let drained = false;
    const ok = call.write(msg, (err?: Error | null) => {
      if (err) return reject(err);
      written = true;
      if (drained) resolve();
    });
    if (ok) drained = true;
    else call.once('drain', () => {
      drained = true;
      if (written) resolve();
    });
    if (written && drained) resolve();
  });
}

function subscribe(node: TrainingNode, authorize: NonNullable<TensorTransferServiceOptions['authorize']>, call: grpc.ServerWritableStream<{ namePrefix: string; includeSpooled: boolean }, ReceiveEventMsg>): void {
  const requestId = requestIdOf(call.metadata);
  try {
    authorize(call.metadata, 'Subscribe');
  } catch (err) {
    call.emit('error', toStatus(err, requestId));
    return;
  }
  const sub = new GrpcSubscriber(call.request.namePrefix, call.request.includeSpooled, call);
  const remove = node.subscribe(sub);
  call.on('cancelled', remove);
  call.on('close', remove);
  // An empty metadata frame tells the client the subscription is live.
  call.sendMetadata(new grpc.Metadata());
}

async function pull(node: TrainingNode, authorize: NonNullable<TensorTransferServiceOptions['authorize']>, call: grpc.ServerWritableStream<{ transferId: string; name: string; offset: number }, ReceiveEventMsg>): Promise<void> {
  const requestId = requestIdOf(call.metadata);
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
  });
  try {
    authorize(call.metadata, 'Pull');
    const req = call.request;
    if (!req.transferId && !req.name) throw new TransferError('INVALID_ARGUMENT', 'Pull needs a transfer_id or a name');
    const reader = await node.read({ ...(req.transferId ? { transferId: req.transferId } : { name: req.name }) }, Number(req.offset));
    const r = reader.record;
    const write = (m: ReceiveEventMsg) => writeAndWait(call, m);
    await write({ begin: { transferId: r.id, from: r.from, tensor: r.tensor, totalBytes: r.total, sink: 'SINK_SPOOL', offset: reader.offset } });
    let offset = reader.offset;
    for await (const chunk of reader.chunks) {
      if (cancelled) return;
      await write({ data: { transferId: r.id, offset, data: chunk } });
      offset += chunk.length;
    }
    await write({ end: { transferId: r.id, totalBytes: r.total, sha256: Buffer.from(r.sha256 ?? '', 'hex') } });
    call.end(trailers(requestId));
  } catch (err) {
    if (!cancelled) call.emit('error', toStatus(err, requestId));
  }
}
