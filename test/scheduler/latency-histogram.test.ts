import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BUCKETS, LatencyHistogram, bucketOf, bucketUpperBound } from '../../src/scheduler/latency-histogram.ts';

test('bucket index is monotone and its upper bound is within 1/32 of any value in it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), (us) => {
      const b = bucketOf(us);
      assert.ok(b >= 0 && b < BUCKETS);
      const hi = bucketUpperBound(b);
      assert.ok(hi >= us, `upper ${hi} < value ${us}`);
      assert.ok(hi - us <= us / 32 + 1, `upper ${hi} too far from ${us}`);
      if (us > 0) assert.ok(bucketOf(us - 1) <= b);
      if (b > 0) assert.ok(bucketUpperBound(b - 1) < us);
    }),
  );
});

test('quantiles are within 3.2% above the exact nearest-rank quantile', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0.001, max: 10_000, noNaN: true }), { minLength: 1, maxLength: 500 }),
      fc.constantFrom(0.5, 0.9, 0.99, 0.999, 1),
      (samples, q) => {
        const h = new LatencyHistogram({ windowMs: 1000, slots: 4 });
        for (const s of samples) h.record(s, 10);
        const sorted = samples.map((s) => Math.round(s * 1000) / 1000).sort((a, b) => a - b);
        const exact = sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1] as number;
        const got = h.quantile(q, 10);
        assert.ok(got >= exact - 0.001, `got ${got} < exact ${exact}`);
        assert.ok(got <= exact * (1 + 1 / 32) + 0.002, `got ${got} > exact ${exact} + 3.2%`);
        assert.equal(h.count(10), samples.length);
      },
    ),
  );
});

test('samples older than the window are forgotten', () => {
  const h = new LatencyHistogram({ windowMs: 1000, slots: 10 });
  for (let i = 0; i < 100; i++) h.record(50, 0); // a burst of slow requests at t=0
  for (let t = 100; t < 1000; t += 10) h.record(1, t);
  assert.ok(h.quantile(0.99, 999) >= 50);
  // At t=1050 the window covers slots [100, 1100): the burst in slot [0, 100) has expired.
  assert.equal(h.count(1050), 90);
  assert.ok(h.quantile(0.99, 1050) <= 1.04);
  assert.equal(h.count(1150), 80);
  assert.ok(Number.isNaN(h.quantile(0.5, 5000)));
  assert.equal(h.count(5000), 0);
});

test('windowed counts match a brute-force model under random times', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 100 })), { maxLength: 200 }), (steps) => {
      const windowMs = 100;
      const slots = 5;
      const h = new LatencyHistogram({ windowMs, slots });
      const kept: { t: number; v: number }[] = [];
      let t = 0;
      for (const [dt, v] of steps) {
        t += dt;
        h.record(v, t);
        kept.push({ t, v });
        const slotMs = windowMs / slots;
        const firstEpoch = Math.floor(t / slotMs) - slots + 1;
        const live = kept.filter((k) => Math.floor(k.t / slotMs) >= firstEpoch);
        assert.equal(h.count(t), live.length);
        assert.equal(h.max(t), Math.max(...live.map((k) => k.v)));
      }
    }),
  );
});

test('bad options are refused', () => {
  assert.throws(() => new LatencyHistogram({ windowMs: 0 }), /windowMs must be > 0/);
  assert.throws(() => new LatencyHistogram({ windowMs: 10, slots: 0 }), /slots must be a positive integer/);
  assert.throws(() => new LatencyHistogram({ windowMs: 10 }).quantile(0, 0), /q must be in/);
});
