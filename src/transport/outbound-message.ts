// Checks a message handed to Link.send() and turns it into the scheduler's queue entry.
// Shared by every transport so they refuse the same things with the same codes.
import { MessageCursor } from '../scheduler/message-cursor.ts';
import type { QueuedMessage } from '../scheduler/link-scheduler.ts';
import { classAllowedOnSegment } from '../wire/traffic-codes.ts';
import { TransportError, TransportErrorCode } from './errors.ts';
import type { OutboundMessage, SegmentName, TrafficClass } from './types.ts';

const CLASSES: ReadonlySet<string> = new Set<TrafficClass>(['control', 'inference', 'training']);

function u(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new TransportError(TransportErrorCode.INVALID_MESSAGE, `${name} must be an integer in [0, ${max}], got ${String(v)}`);
  }
  return v;
}

function asBuffer(b: unknown): Buffer {
  if (Buffer.isBuffer(b)) return b;
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  throw new TransportError(TransportErrorCode.INVALID_MESSAGE, 'body must be a Buffer (or Uint8Array) or an array of them');
}

export function toQueuedMessage(msg: OutboundMessage, segment: SegmentName, maxMessageBytes: number): QueuedMessage {
  if (!CLASSES.has(msg.cls)) throw new TransportError(TransportErrorCode.INVALID_MESSAGE, `cls must be "control" | "inference" | "training", got ${String(msg.cls)}`);
  if (!classAllowedOnSegment(msg.cls, segment)) {
    throw new TransportError(TransportErrorCode.WRONG_SEGMENT, `${msg.cls} traffic may not travel on the ${segment} segment`);
  }
  const kind = u('kind', msg.kind, 0xffff);
  const streamId = u('streamId', msg.streamId, 0xffff_ffff);
  if (streamId === 0) throw new TransportError(TransportErrorCode.INVALID_MESSAGE, 'streamId 0 is reserved for link control');
  const tenant = u('tenant', msg.tenant ?? 0, 0xffff_ffff);
  const flow = u('flow', msg.flow ?? streamId, Number.MAX_SAFE_INTEGER);
  const parts = Array.isArray(msg.body) ? (msg.body as readonly unknown[]).map(asBuffer) : [asBuffer(msg.body)];
  const cursor = new MessageCursor(parts);
  if (cursor.length > maxMessageBytes) {
    throw new TransportError(TransportErrorCode.MESSAGE_TOO_BIG, `message of ${cursor.length} bytes exceeds maxMessageBytes (${maxMessageBytes})`);
  }
  return { cls: msg.cls, kind, streamId, tenant, flow, cursor, bodyReleased: msg.bodyReleased };
}
