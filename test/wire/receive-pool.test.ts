// The reassembler on a receive pool, property-tested: random messages of the pooled and other
// classes, cut into random fragments and interleaved across streams, a consumer that releases
// at random moments (sometimes twice), and a link that fails mid-way (clear()). Every pooled
// message lands intact in a slab, the pool never lends more than it has, the caller is told to
// wait (never handed a fresh buffer) when it is empty, and every slab comes back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { InboundMessage, TrafficClass } from '../../src/transport/types.ts';
import { FrameFlags, FrameType, type FrameHeader } from '../../src/wire/frame-header.ts';
import { Reassembler } from '../../src/wire/reassembler.ts';
import { ReceivePool } from '../../src/wire/receive-pool.ts';

const SLAB = 4096;

function header(cls: TrafficClass, streamId: number, messageLength: number, payloadLength: number, first: boolean, last: boolean): FrameHeader {
  return {
    type: FrameType.DATA,
    cls,
    segment: 'training',
    flags: (first ? FrameFlags.FIRST : 0) | (last ? FrameFlags.LAST : 0),
    streamId,
    kind: 0x42,
    tenant: 0,
    payloadLength,
    messageLength,
    keyId: 0,
    sequence: 0,
    nonce: new Uint8Array(12),
  };
}

const message = fc.record({
  cls: fc.constantFrom<TrafficClass>('training', 'training', 'inference'),
  length: fc.oneof(fc.integer({ min: 0, max: SLAB }), fc.integer({ min: SLAB + 1, max: 2 * SLAB })),
  frame: fc.integer({ min: 1, max: 1500 }),
  seed: fc.integer({ min: 0, max: 255 }),
});

test('pooled reassembly: intact messages, bounded slabs, wait instead of allocate, every slab back', () => {
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 1, max: 6 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
      fc.option(fc.nat({ max: 200 }), { nil: undefined }),
      (messages, slabs, choices, failAt) => {
        const pool = new ReceivePool({ slabBytes: SLAB, slabs });
        const r = new Reassembler({ maxMessageBytes: 4 * SLAB, maxPendingBytes: 64 * SLAB, maxPendingMessages: 64 }, { pool, cls: 'training' });
        // Each message on its own stream: fragments of different streams interleave freely.
        const queues = messages.map((m, i) => {
          const body = Buffer.alloc(m.length, m.seed);
          const frags: FrameHeader[] = [];
          let at = 0;
          do {
            const n = Math.min(m.frame, m.length - at);
            frags.push(header(m.cls, i + 1, m.length, n, at === 0, at + n === m.length));
            at += n;
          } while (at < m.length);
          return { body, frags, at: 0, filled: 0 };
        });
        const held: InboundMessage[] = [];
        const done: InboundMessage[] = [];
        let step = 0;
        const pick = () => choices[step++ % choices.length] as number;
        for (let guard = 0; guard < 10_000; guard++) {
          if (failAt !== undefined && step === failAt) {
            r.clear(); // the link failed: partial messages give their slabs back
            break;
          }
          const open = queues.filter((q) => q.at < q.frags.length);
          if (open.length === 0) break;
          if (held.length > 0 && pick() % 3 === 0) {
            const m = held.splice(pick() % held.length, 1)[0] as InboundMessage;
            m.release?.();
            if (pick() % 5 === 0) m.release?.(); // twice: harmless
            continue;
          }
          const feed = (q: (typeof queues)[number]): void => {
            const h = q.frags[q.at]!;
            r.target(h).fill(q.body[0] ?? 0);
            q.at++;
            assert.ok(pool.inUse <= slabs);
            const msg = r.commit(h);
            if (msg === undefined) return;
            assert.ok(msg.body.equals(q.body), 'message intact');
            const pooled = msg.cls === 'training' && msg.body.length > 0 && msg.body.length <= SLAB;
            assert.equal(msg.release !== undefined, pooled, 'pooled exactly when training and it fits a slab');
            held.push(msg);
            done.push(msg);
          };
          const q = open[pick() % open.length]!;
          if (!r.waitsForSlab(q.frags[q.at]!)) {
            feed(q);
            continue;
          }
          assert.equal(pool.available, 0);
          // The consumer gives one back; when only partial messages hold slabs, a stream that
          // does not need one goes instead (continuations never wait, so this always ends).
          if (held.length > 0) {
            (held.shift() as InboundMessage).release?.();
            continue;
          }
          const other = open.find((o) => !r.waitsForSlab(o.frags[o.at]!));
          assert.ok(other !== undefined, 'every stream waits for a slab while none is lent to a consumer');
          feed(other);
        }
        for (const m of held) m.release?.();
        r.clear();
        assert.equal(pool.inUse, 0, 'every slab back');
        assert.equal(pool.available, slabs);
        const oversize = done.filter((m) => m.cls === 'training' && m.body.length > SLAB).length;
        assert.ok(pool.oneOffAllocations >= oversize);
      },
    ),
    { numRuns: 300 },
  );
});

test('the pool lends at most its slabs, counts one-offs, and wakes waiters on a later turn in order', async () => {
  const pool = new ReceivePool({ slabBytes: 100, slabs: 2 });
  const a = pool.take(10)!;
  const b = pool.take(100)!;
  assert.equal(pool.take(1), undefined);
  assert.throws(() => pool.take(101), RangeError);
  assert.equal(pool.oneOff(200).length, 200);
  assert.equal(pool.oneOffAllocations, 1);
  const woke: string[] = [];
  pool.whenAvailable(() => woke.push('first'));
  pool.whenAvailable(() => woke.push('second'));
  const cancelled = () => woke.push('cancelled');
  pool.whenAvailable(cancelled);
  pool.cancelWait(cancelled);
  a.release();
  a.release();
  assert.deepEqual(woke, [], 'never inside release()');
  await new Promise((r) => setImmediate(r));
  // One slab free: both waiters run (neither took it), the cancelled one never.
  assert.deepEqual(woke, ['first', 'second']);
  b.release();
  assert.equal(pool.inUse, 0);
  assert.equal(pool.exhaustions, 3);
});
