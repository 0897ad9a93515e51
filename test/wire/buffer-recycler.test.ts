// BufferRecycler (src/wire/buffer-recycler.ts): under any sequence of takes and gives, a buffer
// is never lent to two holders at once, every take fits its request, and no more than `keep`
// free buffers are kept; a steady writer stops allocating.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BufferRecycler } from '../../src/wire/buffer-recycler.ts';

const KiB = 1024;

test('no buffer is held twice, takes fit, and the free list stays bounded', () => {
  const op = fc.oneof(
    fc.record({ take: fc.integer({ min: 0, max: 300 * KiB }) }),
    fc.record({ give: fc.nat() }),
    fc.record({ giveTwice: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 6 }), fc.array(op, { maxLength: 80 }), (keep, ops) => {
      const r = new BufferRecycler({ keep, minBytes: 64 * KiB });
      const held: Buffer[] = [];
      for (const o of ops) {
        if ('take' in o) {
          const b = r.take(o.take);
          assert.ok(b.length >= o.take);
          const overlaps = (h: Buffer) => h.buffer === b.buffer && h.byteOffset < b.byteOffset + b.length && b.byteOffset < h.byteOffset + h.length;
          for (const h of held) assert.ok(!overlaps(h), 'memory still held was lent again');
          held.push(b);
        } else if (held.length > 0) {
          const i = ('give' in o ? o.give : o.giveTwice) % held.length;
          const b = held.splice(i, 1)[0]!;
          r.give(b);
          if ('giveTwice' in o) r.give(b);
        }
        assert.ok(r.freeCount <= keep, `${r.freeCount} free buffers kept, keep is ${keep}`);
      }
    }),
  );
});

test('a steady writer reuses its buffers: one allocation per buffer in flight', () => {
  const r = new BufferRecycler({ keep: 4, minBytes: 64 * KiB });
  const inFlight: Buffer[] = [];
  for (let i = 0; i < 1000; i++) {
    // A tensor's chunks: 1 MiB + a header, and a shorter last one.
    inFlight.push(r.take(i % 10 === 9 ? 300 * KiB : 1024 * KiB + 60));
    if (inFlight.length > 2) r.give(inFlight.shift()!);
  }
  assert.equal(r.allocations, 3);
  assert.equal(r.reuses, 997);
});

test('small requests and views are not recycled', () => {
  const r = new BufferRecycler({ keep: 4, minBytes: 64 * KiB });
  const small = r.take(100);
  r.give(small);
  assert.equal(r.freeCount, 0);
  const big = r.take(128 * KiB);
  r.give(big.subarray(0, 64 * KiB)); // a view, not what take() returned
  assert.equal(r.freeCount, 0);
  r.give(big);
  assert.equal(r.freeCount, 1);
  assert.equal(r.take(128 * KiB), big);
  assert.throws(() => new BufferRecycler({ keep: -1, minBytes: 1 }), RangeError);
  assert.throws(() => new BufferRecycler({ keep: 1, minBytes: 0 }), RangeError);
  assert.throws(() => r.take(-1), RangeError);
});
