import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LoadShedder } from '../../src/scheduler/load-shedder.ts';
import { OutlierDetector } from '../../src/scheduler/outlier-detector.ts';
import { P2cBalancer } from '../../src/scheduler/p2c-balancer.ts';
import { PeakEwma } from '../../src/scheduler/peak-ewma.ts';
import { RetryBudget, shouldRetry } from '../../src/scheduler/retry-budget.ts';
import { mulberry32 } from '../../src/models/seeded-random.ts';

/** Seeded so balancer tests are repeatable. */
const seeded = mulberry32;

test('peak EWMA jumps to a peak and decays back', () => {
  const e = new PeakEwma(100, 1, 0);
  e.observe(50, 10);
  assert.equal(e.get(10), 50);
  for (let t = 20; t <= 1000; t += 10) e.observe(1, t);
  assert.ok(e.get(1000) < 2, `decayed to ${e.get(1000)}`);
  assert.ok(e.get(2000) < e.get(1000), 'idle time decays the cost');
});

test('P2C prefers the faster of two upstreams and spreads load by outstanding', () => {
  const b = new P2cBalancer<string>({ random: seeded(1) });
  b.add('fast', 'fast', 0);
  b.add('slow', 'slow', 0);
  b.pick(0)!.done(true, 1, 0);
  const s = b.pick(0, new Set(['fast']));
  assert.equal(s?.key, 'slow');
  s!.done(true, 20, 0);
  const counts = { fast: 0, slow: 0 };
  for (let i = 0; i < 100; i++) {
    const l = b.pick(1)!;
    counts[l.key as 'fast' | 'slow']++;
    l.done(true, l.key === 'fast' ? 1 : 20, 1);
  }
  assert.equal(counts.slow, 0);
  // Outstanding requests raise the cost: with k in flight "fast" costs about 1 ms x (k + 1), so
  // once about 20 are in flight the 20 ms "slow" upstream becomes the cheaper one.
  const held = Array.from({ length: 22 }, () => b.pick(2)!.key);
  assert.deepEqual(held.slice(0, 18), Array(18).fill('fast'));
  assert.ok(held.includes('slow'), held.join(','));
});

test('P2C never picks an ejected upstream while a healthy one exists', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 8 }), fc.integer({ min: 0, max: 1e6 }), (n, seed) => {
      const b = new P2cBalancer<number>({
        random: seeded(seed),
        outlier: { consecutiveFailures: 2, baseEjectionMs: 1000, maxEjectionMs: 8000, maxEjectedFraction: 0.5 },
      });
      for (let i = 0; i < n; i++) b.add(`u${i}`, i, 0);
      // Upstream u0 fails every call until ejected.
      let ejected = false;
      for (let i = 0; i < 200 && !ejected; i++) {
        const l = b.pick(10)!;
        ejected = l.done(l.key !== 'u0', 1, 10) === 'ejected';
      }
      assert.ok(ejected);
      for (let i = 0; i < 50; i++) {
        const l = b.pick(20)!;
        assert.notEqual(l.key, 'u0');
        l.done(true, 1, 20);
      }
      // After the ejection time it is back in the pick set.
      let back = false;
      for (let i = 0; i < 200 && !back; i++) {
        const l = b.pick(1011)!;
        back = l.key === 'u0';
        l.done(true, 0.1, 1011);
      }
      assert.ok(back);
    }),
  );
});

test('P2C with every upstream ejected or excluded still answers (panic mode)', () => {
  const b = new P2cBalancer<string>({ outlier: { consecutiveFailures: 1, baseEjectionMs: 1000, maxEjectionMs: 1000, maxEjectedFraction: 1 } });
  b.add('a', 'a', 0);
  assert.equal(b.pick(0)!.done(false, 1, 0), 'ejected');
  assert.ok(b.outliers.isEjected('a', 1));
  assert.equal(b.pick(1)?.key, 'a');
  assert.equal(b.pick(1, new Set(['a']))?.key, 'a');
  assert.equal(new P2cBalancer().pick(0), undefined);
});

test('outlier ejection time doubles on repeat and is capped; ejection cap holds', () => {
  const d = new OutlierDetector({ consecutiveFailures: 3, baseEjectionMs: 100, maxEjectionMs: 350, maxEjectedFraction: 0.5 });
  for (const k of ['a', 'b', 'c', 'd']) d.add(k);
  const failN = (k: string, t: number, n: number) => {
    let r = '';
    for (let i = 0; i < n; i++) r = d.onFailure(k, t);
    return r;
  };
  assert.equal(failN('a', 0, 2), 'counted');
  d.onSuccess('a');
  assert.equal(failN('a', 0, 2), 'counted', 'a success resets the streak');
  assert.equal(failN('a', 0, 1), 'ejected');
  assert.equal(d.ejectedForMs('a', 0), 100);
  assert.equal(failN('a', 100, 3), 'ejected');
  assert.equal(d.ejectedForMs('a', 100), 200);
  assert.equal(failN('a', 300, 3), 'ejected');
  assert.equal(d.ejectedForMs('a', 300), 350, 'capped at maxEjectionMs');
  assert.equal(failN('b', 300, 3), 'ejected');
  assert.equal(failN('c', 300, 3), 'cap-reached', 'at most half of four upstreams are out');
  assert.equal(d.ejectedCount(300), 2);
});

test('retry budget allows ratio x requests + floor, over a sliding window', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2000 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 20 }), (requests, ratio, minPerSec) => {
      const b = new RetryBudget({ ratio, minPerSec, windowMs: 1000 });
      for (let i = 0; i < requests; i++) b.onRequest(500);
      let retries = 0;
      while (retries < 10_000 && b.tryRetry(500)) retries++;
      assert.ok(retries <= ratio * requests + minPerSec + 1e-9);
      assert.ok(retries >= Math.floor(ratio * requests + minPerSec - 1e-9) - 0);
    }),
  );
  const b = new RetryBudget({ ratio: 0, minPerSec: 1, windowMs: 1000 });
  assert.ok(b.tryRetry(0));
  assert.ok(!b.tryRetry(10));
  assert.ok(b.tryRetry(1100), 'the spent retry left the window');
});

test('shouldRetry only retries failures before the model, within attempts and deadline', () => {
  const policy = { maxAttempts: 2, minRemainingMs: 5 };
  const budget = new RetryBudget({ ratio: 1, minPerSec: 100, windowMs: 1000 });
  assert.ok(shouldRetry({ attempts: 1, phase: 'before-model', remainingMs: 100 }, policy, budget, 0));
  assert.ok(!shouldRetry({ attempts: 1, phase: 'at-model', remainingMs: 100 }, policy, budget, 0));
  assert.ok(!shouldRetry({ attempts: 2, phase: 'before-model', remainingMs: 100 }, policy, budget, 0));
  assert.ok(!shouldRetry({ attempts: 1, phase: 'before-model', remainingMs: 4 }, policy, budget, 0));
});

test('load shedder admits while the queue fits the deadline and sheds otherwise', () => {
  const s = new LoadShedder({ parallelism: 2, maxQueueDelayMs: 1000, maxInFlight: 100, initialServiceMs: 10, alpha: 1 });
  assert.deepEqual(s.admit(50), { admit: true });
  assert.deepEqual(s.admit(50), { admit: true });
  // Two in service, a third waits (1 ahead / 2 lanes) x 10 ms = 5 ms.
  assert.equal(s.queueDelayMs(), 5);
  const refused = s.admit(4);
  assert.equal(refused.admit, false);
  assert.match((refused as { reason: string }).reason, /queue delay 5\.0 ms exceeds the 4\.0 ms left before the deadline/);
  assert.deepEqual(s.admit(5), { admit: true });
  s.release(10);
  assert.equal(s.outstanding, 2);
  assert.equal(s.shed, 1);
});

test('load shedder decisions agree with the queue-delay model', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.double({ min: 0, max: 200, noNaN: true })), { maxLength: 200 }), fc.integer({ min: 1, max: 8 }), (ops, par) => {
      const s = new LoadShedder({ parallelism: par, maxQueueDelayMs: 50, maxInFlight: 20, initialServiceMs: 4 });
      for (const [arrive, x] of ops) {
        if (arrive) {
          const before = s.outstanding;
          const delay = s.queueDelayMs();
          const d = s.admit(x);
          const shouldShed = before >= 20 || delay > 50 || delay > x;
          assert.equal(!d.admit, shouldShed);
          assert.equal(s.outstanding, d.admit ? before + 1 : before);
        } else if (s.outstanding > 0) s.release(x / 10);
      }
    }),
  );
});
