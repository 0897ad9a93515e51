import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PriorityLinkScheduler, type QueuedMessage, type ScheduledFrame } from '../../src/scheduler/link-scheduler.ts';
import { MessageCursor } from '../../src/scheduler/message-cursor.ts';
import type { TrafficClass } from '../../src/transport/types.ts';

const CHUNK = 64 * 1024;

function msg(cls: TrafficClass, streamId: number, body: Buffer | Buffer[]): QueuedMessage {
  return { cls, kind: 1, streamId, tenant: 0, flow: streamId, cursor: new MessageCursor(Array.isArray(body) ? body : [body]) };
}

function scheduler(): PriorityLinkScheduler {
  return new PriorityLinkScheduler({ frameBytes: { control: 16 * 1024, inference: 256 * 1024, training: CHUNK } });
}

function drain(s: PriorityLinkScheduler): ScheduledFrame[] {
  const out: ScheduledFrame[] = [];
  for (let f = s.next(); f !== undefined; f = s.next()) out.push(f);
  return out;
}

describe('priority link scheduler', () => {
  test('an inference message arriving during a training transfer waits for at most one chunk', () => {
    const s = scheduler();
    s.enqueue(msg('training', 1, Buffer.alloc(10 * CHUNK)));
    const first = s.next();
    assert.equal(first?.msg.cls, 'training');
    assert.equal(first?.length, CHUNK);
    s.enqueue(msg('inference', 2, Buffer.alloc(100)));
    s.enqueue(msg('control', 3, Buffer.alloc(10)));
    assert.equal(s.next()?.msg.cls, 'control');
    assert.equal(s.next()?.msg.cls, 'inference');
    const rest = drain(s);
    assert.equal(rest.length, 9);
    assert.ok(rest.every((f) => f.msg.cls === 'training' && f.length === CHUNK));
    assert.equal(rest.at(-1)?.last, true);
  });

  test('frames of a message leave in order with first/last marks; classes cut to their own frame size', () => {
    const s = scheduler();
    s.enqueue(msg('inference', 1, Buffer.alloc(600 * 1024)));
    const frames = drain(s);
    assert.deepEqual(
      frames.map((f) => [f.length, f.first, f.last]),
      [
        [256 * 1024, true, false],
        [256 * 1024, false, false],
        [88 * 1024, false, true],
      ],
    );
  });

  test('FIFO within a class; messages of one class never interleave', () => {
    const s = scheduler();
    s.enqueue(msg('training', 1, Buffer.alloc(2 * CHUNK + 1)));
    s.enqueue(msg('training', 2, Buffer.alloc(CHUNK)));
    s.enqueue(msg('training', 1, Buffer.alloc(0)));
    assert.deepEqual(
      drain(s).map((f) => [f.msg.streamId, f.first, f.last]),
      [
        [1, true, false],
        [1, false, false],
        [1, false, true],
        [2, true, true],
        [1, true, true],
      ],
    );
  });

  test('gather lists are cut across parts without copying', () => {
    const a = Buffer.alloc(CHUNK - 10, 1);
    const b = Buffer.alloc(30, 2);
    const c = Buffer.alloc(CHUNK, 3);
    const s = scheduler();
    s.enqueue(msg('training', 1, [a, Buffer.alloc(0), b, c]));
    const frames = drain(s);
    assert.equal(frames[0]?.parts[0], a); // the caller's buffer itself
    assert.equal(frames[0]?.parts[1]?.buffer, b.buffer);
    assert.deepEqual(
      frames.map((f) => f.length),
      [CHUNK, CHUNK, 20],
    );
    assert.ok(Buffer.concat(frames.flatMap((f) => f.parts)).equals(Buffer.concat([a, b, c])));
  });

  test('queued bytes and messages are accounted; clear() drops everything', () => {
    const s = scheduler();
    s.enqueue(msg('training', 1, Buffer.alloc(3 * CHUNK)));
    s.enqueue(msg('inference', 2, Buffer.alloc(5)));
    assert.equal(s.queuedBytes, 3 * CHUNK + 5);
    assert.equal(s.queuedMessages, 2);
    s.next();
    assert.equal(s.queuedBytes, 3 * CHUNK);
    s.next();
    assert.equal(s.queuedBytes, 2 * CHUNK);
    assert.equal(s.clear().length, 1);
    assert.equal(s.queuedBytes, 0);
    assert.equal(s.next(), undefined);
  });

  test('frame sizes are checked', () => {
    assert.throws(() => new PriorityLinkScheduler({ frameBytes: { control: 0, inference: 1, training: 1 } }), /frameBytes.control must be a positive integer/);
  });
});
