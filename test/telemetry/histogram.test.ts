import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BucketHistogram, LATENCY_BUCKETS_SECONDS } from '../../src/telemetry/bucket-histogram.ts';

test('observations land in the first bucket whose bound is >= the value', () => {
  const h = new BucketHistogram([1, 2, 5]);
  for (const v of [0, 1, 1.0001, 2, 4.9, 5, 5.1, 100]) h.observe(v);
  assert.deepEqual([...h.counts], [2, 2, 2, 2]);
  assert.deepEqual(h.cumulative(), [2, 4, 6, 8]);
  assert.equal(h.count, 8);
  assert.ok(Math.abs(h.sum - (0 + 1 + 1.0001 + 2 + 4.9 + 5 + 5.1 + 100)) < 1e-9);
});

test('NaN is ignored; infinities count in the edge buckets', () => {
  const h = new BucketHistogram([1]);
  h.observe(NaN);
  h.observe(Infinity);
  h.observe(-Infinity);
  assert.equal(h.count, 2);
  assert.deepEqual([...h.counts], [1, 1]);
});

test('bounds must be finite and strictly ascending', () => {
  assert.throws(() => new BucketHistogram([]), /must not be empty/);
  assert.throws(() => new BucketHistogram([1, 1]), /ascend strictly \(bounds\[1\] = 1\)/);
  assert.throws(() => new BucketHistogram([1, Infinity]), /bounds\[1\] must be finite/);
});

test('cumulative counts end at count, and add() merges two histograms exactly', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 60, noNaN: true }), { maxLength: 200 }), fc.array(fc.double({ min: 0, max: 60, noNaN: true }), { maxLength: 200 }), (xs, ys) => {
      const a = new BucketHistogram(LATENCY_BUCKETS_SECONDS);
      const b = new BucketHistogram(LATENCY_BUCKETS_SECONDS);
      const all = new BucketHistogram(LATENCY_BUCKETS_SECONDS);
      for (const x of xs) (a.observe(x), all.observe(x));
      for (const y of ys) (b.observe(y), all.observe(y));
      a.add(b);
      assert.deepEqual([...a.counts], [...all.counts]);
      const cum = a.cumulative();
      assert.equal(cum[cum.length - 1], xs.length + ys.length);
      for (let i = 1; i < cum.length; i++) assert.ok(cum[i]! >= cum[i - 1]!);
      // Every value at or below bound i is counted in cumulative[i].
      LATENCY_BUCKETS_SECONDS.forEach((bound, i) => assert.equal(cum[i], [...xs, ...ys].filter((v) => v <= bound).length));
    }),
  );
});

test('quantile estimates fall inside the bucket that holds the true quantile', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 29, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.double({ min: 0.01, max: 1, noNaN: true }), (xs, q) => {
      const h = new BucketHistogram(LATENCY_BUCKETS_SECONDS);
      for (const x of xs) h.observe(x);
      const sorted = [...xs].sort((p, r) => p - r);
      const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
      const est = h.quantile(q);
      const i = LATENCY_BUCKETS_SECONDS.findIndex((b) => exact <= b);
      const lo = i <= 0 ? 0 : LATENCY_BUCKETS_SECONDS[i - 1]!;
      const hi = LATENCY_BUCKETS_SECONDS[i]!;
      assert.ok(est >= lo - 1e-12 && est <= hi + 1e-12, `q=${q} exact=${exact} est=${est} not in [${lo}, ${hi}]`);
    }),
  );
  assert.ok(Number.isNaN(new BucketHistogram([1]).quantile(0.5)));
});

test('histograms with different bounds cannot be added', () => {
  assert.throws(() => new BucketHistogram([1, 2]).add(new BucketHistogram([1, 3])), /different bounds/);
});

test('addCounts adds buckets counted elsewhere (the engine tally) as if observed here', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 40, noNaN: true }), { maxLength: 200 }), (values) => {
      const observed = new BucketHistogram(LATENCY_BUCKETS_SECONDS);
      for (const v of values) observed.observe(v);
      const added = new BucketHistogram(LATENCY_BUCKETS_SECONDS);
      added.addCounts([...observed.counts], observed.sum);
      assert.deepEqual([...added.counts], [...observed.counts]);
      assert.equal(added.count, observed.count);
      assert.equal(added.sum, observed.sum);
    }),
  );
  assert.throws(() => new BucketHistogram([1, 2]).addCounts([1, 2], 0), RangeError);
});

test('RequestStats: sources are pulled whenever the series are read', async () => {
  const { RequestStats } = await import('../../src/telemetry/request-stats.ts');
  const stats = new RequestStats();
  let pending = 3;
  const remove = stats.addSource(() => {
    if (pending === 0) return;
    const counts = new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
    counts[2] = pending; // <= 0.5 ms
    stats.recordCounts('grpc', 'inference', 'simple', 'OK', counts, pending * 0.0004);
    pending = 0;
  });
  stats.record('grpc', 'inference', 'simple', 'OK', 0.002);
  const s = [...stats.all()];
  assert.equal(s.length, 1);
  assert.equal(s[0]!.latency.count, 4);
  assert.ok(Math.abs(s[0]!.latency.sum - 0.0032) < 1e-12);
  pending = 2;
  remove();
  assert.equal([...stats.all()][0]!.latency.count, 4, 'a removed source is not pulled');
});
