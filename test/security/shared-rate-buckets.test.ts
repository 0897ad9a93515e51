// The shared per-tenant buckets (GCRA over one 64-bit slot): the same bucket as the TypeScript
// limiter's refill-and-take, kept across reassignment while the limits stay, refilled when they change.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TenantRateLimiter } from '../../src/security/rate-limiter.ts';
import { NO_BUCKET, SharedRateBuckets } from '../../src/security/shared-rate-buckets.ts';

test('a full bucket gives burst tokens, then refills at requestsPerSecond; the wait it names is enough', () => {
  const b = new SharedRateBuckets(4);
  b.assign('t', { requestsPerSecond: 2, burst: 3 });
  const t0 = 1_000_000_000n;
  assert.deepEqual([0, 1, 2, 3].map(() => b.take('t', t0)), [0, 0, 0, 500]);
  assert.equal(b.take('t', t0 + 499_000n), 1);
  assert.equal(b.take('t', t0 + 500_000n), 0);
  assert.equal(b.take('nobody', t0), null, 'a tenant without a slot is not limited here');
});

test('assign keeps the slot and its tokens while the limits stay; changed limits refill it; full: NO_BUCKET', () => {
  const b = new SharedRateBuckets(1);
  const limits = { requestsPerSecond: 0.001, burst: 1 };
  const slot = b.assign('t', limits);
  assert.equal(b.take('t', 5n), 0);
  assert.equal(b.assign('t', { ...limits }), slot);
  assert.ok(b.take('t', 6n)! > 0, 'a republish with the same limits does not refill');
  assert.equal(b.assign('t', { requestsPerSecond: 0.001, burst: 2 }), slot);
  assert.equal(b.take('t', 7n), 0, 'new limits: a full bucket');
  assert.equal(b.assign('u', limits), NO_BUCKET);
});

test('property: allowed calls never exceed burst + rate x elapsed, and a refused call allowed after the wait it was told', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 20 }), fc.constantFrom(0.5, 1, 3, 7, 100, 1000), fc.array(fc.integer({ min: 0, max: 400_000 }), { minLength: 1, maxLength: 200 }), (burst, rps, gaps) => {
      const b = new SharedRateBuckets(1);
      b.assign('t', { requestsPerSecond: rps, burst });
      let now = 10_000_000n;
      const start = now;
      let allowed = 0;
      for (const gap of gaps) {
        now += BigInt(gap);
        const wait = b.take('t', now)!;
        if (wait === 0) {
          allowed++;
        } else {
          assert.ok(wait >= 1);
          const probe = new SharedRateBuckets(1);
          probe.view[0] = b.view[0]!;
          probe.assign('t', { requestsPerSecond: rps, burst });
          assert.equal(probe.take('t', now + BigInt(wait) * 1000n), 0);
        }
        const elapsedS = Number(now - start) / 1e6;
        assert.ok(allowed <= burst + rps * elapsedS + 1e-6 * allowed + 1, `${allowed} > ${burst} + ${rps} x ${elapsedS}`);
      }
    }),
  );
});

test('TenantRateLimiter takes from the shared slot once buckets are shared, and keeps its own otherwise', () => {
  const limiter = new TenantRateLimiter({ enabled: true, default: { requestsPerSecond: 0.001, burst: 2, maxRequestBytes: 1000 }, tenants: {} });
  const shared = new SharedRateBuckets(4);
  shared.assign('a', limiter.limitsFor('a'));
  limiter.shareBuckets(shared);
  // Another taker (the engine) spends one of a's two tokens.
  assert.equal(shared.take('a'), 0);
  assert.deepEqual([limiter.take('a') === 0, limiter.take('a') === 0], [true, false]);
  // b has no slot: its own bucket of two.
  assert.deepEqual([limiter.take('b'), limiter.take('b'), limiter.take('b') > 0], [0, 0, true]);
});
