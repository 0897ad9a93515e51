// LatencySampleRing (src/scheduler/latency-sample-ring.ts): the ring declares where its slots
// start (the native engine's writer reads that offset, native/engine/latency_ring.h); a reader
// on another view gets every sample across wraps, and only the newest ring's worth after
// falling behind; a buffer of another layout is refused; the stats round-trip.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LatencySampleRing } from '../../src/scheduler/latency-sample-ring.ts';

test('the ring declares its slots offset, and a second view reads every sample across wraps', () => {
  const w = new LatencySampleRing({ capacity: 16 });
  const header = new Int32Array(w.buffer, 0, 2);
  assert.equal(header[1], 8 + 6 * 8);
  assert.equal(w.buffer.byteLength, header[1]! + 16 * 16);
  const r = new LatencySampleRing({ buffer: w.buffer });
  const got: number[] = [];
  const drain = () => r.drain((ms, at) => {
    assert.ok(Math.abs(at - performance.now()) < 5_000, `sample dated ${at} vs now ${performance.now()}`);
    got.push(ms);
  }, () => got.push(-1));
  let next = 0;
  for (let lap = 0; lap < 5; lap++) {
    for (let i = 0; i < 11; i++) w.record(next++);
    w.note();
    next++;
    drain();
  }
  assert.deepEqual(got, Array.from({ length: next }, (_, i) => (i % 12 === 11 ? -1 : i)));
  // Fallen 40 behind: only the newest 16 are handed over.
  got.length = 0;
  for (let i = 0; i < 40; i++) w.record(1000 + i);
  drain();
  assert.deepEqual(got, Array.from({ length: 16 }, (_, i) => 1024 + i));
  w.publish({ share: 0.5, p99Ms: 7, samples: 3, decreases: 2, baselineP99Ms: 4, futileCuts: 1 });
  assert.deepEqual(r.published(), { share: 0.5, p99Ms: 7, samples: 3, decreases: 2, baselineP99Ms: 4, futileCuts: 1 });
});

test('a buffer that is not a ring of this layout is refused', () => {
  assert.throws(() => new LatencySampleRing({ buffer: new SharedArrayBuffer(8 + 6 * 8 + 16 * 16) }), RangeError);
  assert.throws(() => new LatencySampleRing({ capacity: 8 }), RangeError);
});
