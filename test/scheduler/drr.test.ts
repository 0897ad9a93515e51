import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DeficitRoundRobin } from '../../src/scheduler/drr.ts';
import { RingQueue } from '../../src/scheduler/ring-queue.ts';

test('ring queue keeps FIFO order across growth and unshift', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer(), fc.constant<'shift'>('shift'), fc.constant<'unshift'>('unshift')), { maxLength: 300 }), (ops) => {
      const q = new RingQueue<number>(2);
      const model: number[] = [];
      for (const op of ops) {
        if (op === 'shift') assert.equal(q.shift(), model.shift());
        else if (op === 'unshift') {
          q.unshift(-1);
          model.unshift(-1);
        } else {
          q.push(op);
          model.push(op);
        }
        assert.equal(q.length, model.length);
        assert.equal(q.peek(), model[0]);
      }
      assert.deepEqual([...q], model);
    }),
  );
});

test('DRR delivers every item exactly once, FIFO within each flow', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 5000 })), { maxLength: 200 }),
      fc.integer({ min: 1, max: 4096 }),
      (items, quantum) => {
        const drr = new DeficitRoundRobin<{ flow: number; seq: number }>(quantum);
        items.forEach(([flow, bytes], seq) => drr.push(flow, { flow, seq }, bytes));
        assert.equal(drr.items, items.length);
        const lastSeq = new Map<number, number>();
        let n = 0;
        for (let x = drr.shift(); x !== undefined; x = drr.shift()) {
          assert.ok((lastSeq.get(x.flow) ?? -1) < x.seq, 'FIFO within a flow');
          lastSeq.set(x.flow, x.seq);
          n++;
        }
        assert.equal(n, items.length);
        assert.equal(drr.bytes, 0);
        assert.ok(drr.isEmpty);
      },
    ),
  );
});

test('DRR is fair: two backlogged flows get bytes within quantum + max item of each other', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 50, maxLength: 50 }),
      fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 50, maxLength: 50 }),
      fc.integer({ min: 500, max: 4000 }),
      (sizesA, sizesB, quantum) => {
        const drr = new DeficitRoundRobin<{ flow: number; bytes: number }>(quantum);
        // Flow 1 is a deep queue (a "greedy" job); flow 2 has the same number of items.
        for (const b of sizesA) drr.push(1, { flow: 1, bytes: b }, b);
        for (const b of sizesB) drr.push(2, { flow: 2, bytes: b }, b);
        const served = new Map([[1, 0], [2, 0]]);
        const bound = quantum + 3000;
        const remaining = (f: number) => drr.flowBytes(f);
        for (let x = drr.shift(); x !== undefined; x = drr.shift()) {
          served.set(x.flow, (served.get(x.flow) ?? 0) + x.bytes);
          if (remaining(1) > 0 && remaining(2) > 0) {
            // While both are backlogged, service differs by at most one quantum plus one item.
            assert.ok(Math.abs((served.get(1) ?? 0) - (served.get(2) ?? 0)) <= bound, `served ${[...served]} bound ${bound}`);
          }
        }
      },
    ),
  );
});

test('a greedy flow cannot starve a late small flow', () => {
  const drr = new DeficitRoundRobin<string>(64 * 1024);
  for (let i = 0; i < 1000; i++) drr.push(7, `big${i}`, 256 * 1024);
  for (let i = 0; i < 3; i++) drr.push(9, `small${i}`, 1024);
  const order: string[] = [];
  for (let i = 0; i < 10; i++) order.push(drr.shift() as string);
  // All three small items go within the first round of the big flow's 256 KiB chunks.
  assert.ok(order.indexOf('small2') >= 0 && order.indexOf('small2') <= 4, order.join(','));
});

test('removeFlow drops a flow and keeps the round for the others', () => {
  const drr = new DeficitRoundRobin<string>(100);
  drr.push(1, 'a1', 100);
  drr.push(2, 'b1', 100);
  drr.push(3, 'c1', 100);
  drr.push(2, 'b2', 100);
  assert.equal(drr.shift(), 'a1');
  assert.deepEqual(drr.removeFlow(2), ['b1', 'b2']);
  assert.equal(drr.bytes, 100);
  assert.equal(drr.shift(), 'c1');
  assert.equal(drr.shift(), undefined);
  assert.deepEqual(drr.removeFlow(42), []);
});

test('DRR rejects a bad quantum and negative sizes', () => {
  assert.throws(() => new DeficitRoundRobin(0), /quantum must be a positive number/);
  assert.throws(() => new DeficitRoundRobin(1).push(1, 'x', -1), /bytes must be >= 0/);
});

test('peekBytes matches what shift returns', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 900 })), { maxLength: 60 }), (items) => {
      const drr = new DeficitRoundRobin<number>(300);
      for (const [f, b] of items) drr.push(f, b, b);
      for (let p = drr.peekBytes(); p !== undefined; p = drr.peekBytes()) assert.equal(drr.shift(), p);
      assert.equal(drr.shift(), undefined);
    }),
  );
});
