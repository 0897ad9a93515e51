import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SealRing } from '../../src/transport/seal-ring.ts';

const CAPACITY = 100_000;

function overlaps(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

test('regions are handed out in order, reused after release, never overlapping live ones', () => {
  const ring = new SealRing(CAPACITY);
  const first = ring.alloc(10); // an empty ring always serves from its start
  const ringMemory = first.buffer;
  ring.release();
  const live: Buffer[] = [];
  let x = 7;
  let fromRing = 0;
  let allocations = 0;
  for (let i = 0; i < 5000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    if (live.length > 3 || (live.length > 0 && x % 2 === 0)) {
      ring.release();
      live.shift();
      continue;
    }
    const size = 1 + (x % 40_000);
    const b = ring.alloc(size);
    allocations += 1;
    assert.equal(b.byteLength, size);
    for (const other of live) assert.ok(!overlaps(b, other), `allocation ${i} overlaps a live region`);
    if (b.buffer === ringMemory) fromRing += 1;
    live.push(b);
  }
  assert.ok(fromRing > allocations / 3, `the ring served only ${fromRing} of ${allocations}`);
  while (live.length > 0) {
    ring.release();
    live.shift();
  }
  assert.equal(ring.outstanding, 0);
  assert.equal(ring.alloc(10).buffer, ringMemory);
});

test('a frame larger than the ring gets its own buffer', () => {
  const ring = new SealRing(CAPACITY);
  const a = ring.alloc(50);
  const b = ring.alloc(CAPACITY + 1);
  assert.notEqual(a.buffer, b.buffer);
  assert.equal(b.byteLength, CAPACITY + 1);
  ring.release();
  ring.release();
  assert.equal(ring.outstanding, 0);
});
