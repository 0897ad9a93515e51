import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BandwidthEstimator } from '../../src/scheduler/bandwidth-estimator.ts';
import { BulkGovernor } from '../../src/scheduler/bulk-governor.ts';
import { BulkShareController } from '../../src/scheduler/bulk-share.ts';
import { chunkSizeFor } from '../../src/scheduler/chunk-size.ts';
import { TokenBucket } from '../../src/scheduler/token-bucket.ts';

test('the bulk share stays within [minShare, 1] whatever latency it sees', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0.01, max: 1, noNaN: true }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.oneof(fc.double({ min: 0, max: 100, noNaN: true }), fc.constant(Number.NaN))), { maxLength: 300 }),
      (minShare, steps) => {
        const c = new BulkShareController({ targetMs: 5, minShare });
        let t = 0;
        for (const [dt, p99] of steps) {
          t += dt;
          const before = c.share;
          const action = c.update(p99, t);
          assert.ok(c.share >= minShare - 1e-12 && c.share <= 1, `share ${c.share}`);
          if (action === 'decrease') assert.ok(c.share < before && p99 > 4);
          if (action === 'increase') assert.ok(c.share > before && !(p99 >= 2.5));
          if (action === 'hold') assert.equal(c.share, before);
        }
      },
    ),
  );
});

test('AIMD cuts multiplicatively under pressure and grows back additively', () => {
  const c = new BulkShareController({ targetMs: 5, minShare: 0.1, decrease: 0.5, increase: 0.1, increaseIntervalMs: 100, decreaseIntervalMs: 200 });
  assert.equal(c.update(6, 0), 'decrease');
  assert.equal(c.share, 0.5);
  assert.equal(c.update(6, 100), 'hold', 'a second cut waits for the decrease interval');
  assert.equal(c.update(6, 200), 'decrease');
  assert.equal(c.share, 0.25);
  for (let t = 400; t < 2000; t += 200) c.update(9, t);
  assert.equal(c.share, 0.1, 'never below the minimum share');
  assert.equal(c.update(3, 2100), 'hold', 'between the water marks: hold');
  assert.equal(c.update(1, 2200), 'increase');
  assert.ok(Math.abs(c.share - 0.2) < 1e-9);
  assert.equal(c.update(1, 2300), 'increase');
  assert.ok(Math.abs(c.share - 0.3) < 1e-9, 'low latency: additive growth');
  assert.equal(c.update(Number.NaN, 2310), 'increase');
  assert.equal(c.share, 1, 'no inference traffic: bulk gets the whole link back at once');
  assert.equal(c.update(6, 2320), 'decrease', 'and is cut again as soon as inference suffers');
  assert.equal(c.share, 0.5);
});

test('bad AIMD options are refused', () => {
  assert.throws(() => new BulkShareController({ targetMs: 5, minShare: 0 }), /minShare must be in \(0, 1\]/);
  assert.throws(() => new BulkShareController({ targetMs: 0, minShare: 0.1 }), /targetMs must be > 0/);
  assert.throws(() => new BulkShareController({ targetMs: 5, minShare: 0.1, lowWater: 0.9, highWater: 0.8 }), /lowWater/);
});

test('token bucket paces to its rate over time', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1000, max: 10_000_000 }), fc.integer({ min: 1, max: 65536 }), (rate, chunk) => {
      const burst = Math.max(chunk, 4096);
      const b = new TokenBucket(rate, burst, 0);
      let t = 0;
      let sent = 0;
      for (let i = 0; i < 200; i++) {
        const wait = b.take(chunk, t);
        if (wait === 0) sent += chunk;
        else t += wait;
      }
      // Sent bytes never exceed the initial burst plus what the rate allows in the elapsed time.
      assert.ok(sent <= burst + (rate * t) / 1000 + chunk, `sent ${sent} t ${t}`);
    }),
  );
  const unpaced = new TokenBucket(Infinity, 1, 0);
  assert.equal(unpaced.take(1e9, 0), 0);
});

test('token bucket lets an item bigger than the burst through once full', () => {
  const b = new TokenBucket(1000, 100, 0);
  assert.equal(b.take(500, 0), 0);
  assert.ok(b.take(10, 0) > 0);
  // The balance is -400 after the big item: 400 ms later it is 0, and 100 bytes need 100 ms more.
  assert.ok(Math.abs(b.take(100, 400) - 100) < 1e-6);
  assert.equal(b.take(100, 500), 0);
  b.configure(2000, 100, 500);
  assert.equal(b.rate, 2000);
});

test('chunk size follows bandwidth x latency budget, aligned and bounded', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 1, max: 1e11, noNaN: true }),
      fc.double({ min: 0.1, max: 100, noNaN: true }),
      fc.integer({ min: 1024, max: 65536 }),
      fc.integer({ min: 0, max: 16 * 1024 * 1024 }),
      (bw, target, min, extra) => {
        const opts = { latencyTargetMs: target, minBytes: min, maxBytes: min + extra };
        const size = chunkSizeFor(bw, opts);
        assert.ok(size >= opts.minBytes && size <= opts.maxBytes);
        // One chunk takes at most budgetFraction of the target when not clamped up to the minimum.
        if (size > opts.minBytes) assert.ok((size / bw) * 1000 <= target * 0.1 + 1e-9);
        assert.ok(chunkSizeFor(bw * 2, opts) >= size, 'monotone in bandwidth');
        assert.ok(chunkSizeFor(bw, { ...opts, latencyTargetMs: target * 2 }) >= size, 'monotone in target');
      },
    ),
  );
  assert.equal(chunkSizeFor(0, { latencyTargetMs: 5, minBytes: 16384, maxBytes: 1 << 20 }), 16384);
  // 1 GB/s and a 5 ms target: 0.5 ms of wire time, 500 kB, rounded down to 4 KiB.
  assert.equal(chunkSizeFor(1e9, { latencyTargetMs: 5, minBytes: 16384, maxBytes: 1 << 20 }), 122 * 4096);
});

test('bandwidth estimator measures busy intervals only', () => {
  const e = new BandwidthEstimator({ alpha: 1, minIntervalMs: 10, warmupSamples: 1 });
  e.onBusyDrain(0, 0);
  e.onBusyDrain(5_000_000, 5);
  assert.equal(e.bytesPerSec, 0, 'interval too short for a sample');
  e.onBusyDrain(5_000_000, 10);
  assert.equal(e.bytesPerSec, 1e9);
  e.onIdle();
  e.onBusyDrain(1, 1000); // after idle time: starts a fresh interval, no sample over the gap
  assert.equal(e.bytesPerSec, 1e9);
  e.onBusyDrain(1_000_000, 1010);
  assert.equal(e.bytesPerSec, 1e8);
});

test('the estimate settles after its warm-up, at the largest start-up sample', () => {
  const e = new BandwidthEstimator({ minIntervalMs: 10, warmupSamples: 4 });
  let t = 0;
  e.onBusyDrain(0, t);
  // A link's start: 10, 50, 150, then 200 MB/s over 10 ms intervals.
  for (const mbps of [10, 50, 150, 200]) {
    assert.equal(e.settledBytesPerSec, 0, 'not settled during the warm-up');
    e.onBusyDrain(mbps * 1e6 / 100, (t += 10));
  }
  assert.equal(e.settledBytesPerSec, 200e6, 'settled at the largest warm-up sample, not the first');
  assert.equal(e.bytesPerSec, 200e6);
  // Then an EWMA: one slow interval moves it a quarter of the way.
  e.onBusyDrain(100e6 / 100, (t += 10));
  assert.equal(e.settledBytesPerSec, 175e6);
  // During the warm-up chunk sizing already sees the provisional figure.
  const w = new BandwidthEstimator({ minIntervalMs: 10, warmupSamples: 4 });
  w.onBusyDrain(0, 0);
  w.onBusyDrain(1e6, 10);
  assert.equal(w.bytesPerSec, 100e6);
  assert.equal(w.settledBytesPerSec, 0);
  // A direct sample settles it at once (never below what the warm-up saw).
  w.addSample(50e6);
  assert.equal(w.settledBytesPerSec, 100e6);
  assert.throws(() => new BandwidthEstimator({ warmupSamples: 0 }), RangeError);
});

test('the governor cuts bulk for what bulk adds to inference latency, not for what the machine cannot do without it', () => {
  const opts = { targetMs: 5, minShare: 0.1, minSamples: 5, tickMs: 0, decreaseIntervalMs: 0, increaseIntervalMs: 0, windowMs: 1000 };
  // A machine whose inference p99 is 10 ms with no bulk at all: twice the absolute target.
  const g = new BulkGovernor(opts);
  let t = 0;
  for (let i = 0; i < 50; i++) g.recordInference(i % 10 === 0 ? 10 : 4, (t += 10));
  // Bulk starts (it asks for its share) and inference stays as it was: no cut.
  t += 1;
  for (let i = 0; i < 200; i++) {
    g.share(t);
    g.recordInference(i % 10 === 0 ? 11 : 4, (t += 10));
  }
  assert.equal(g.share(t), 1, 'within maxSlowdown (1.25) of the 10 ms baseline: bulk keeps the link');
  assert.ok(Math.abs(g.snapshot(t).baselineP99Ms - 10) < 0.5, `baseline ${g.snapshot(t).baselineP99Ms}`);
  // Bulk now slows inference well past 1.25x its baseline, in proportion to its share (30 ms
  // at the full link): cut until inference is back within 1.25x of the 10 ms baseline.
  for (let i = 0; i < 200; i++) {
    const share = g.share(t);
    g.recordInference(4 + 26 * share, (t += 10));
  }
  assert.ok(g.share(t) <= 0.33 && g.share(t) >= 0.1, `share ${g.share(t)}`);
  assert.equal(g.snapshot(t).futileCuts, 0);
  // Back under the baseline's allowance: bulk grows back.
  for (let i = 0; i < 400; i++) {
    g.share(t);
    g.recordInference(4, (t += 10));
  }
  assert.equal(g.share(t), 1);

  // No baseline yet (bulk ran from the start): the absolute target alone rules, as before.
  const cold = new BulkGovernor(opts);
  let u = 0;
  for (let i = 0; i < 100; i++) {
    const share = cold.share(u);
    cold.recordInference(40 * share, (u += 10));
  }
  assert.equal(cold.share(u), 0.1);
  assert.ok(Number.isNaN(cold.snapshot(u).baselineP99Ms));

  // A fast machine: the baseline is under the target, so the target (x highWater) is the cut line.
  const fast = new BulkGovernor(opts);
  let v = 0;
  for (let i = 0; i < 50; i++) fast.recordInference(1, (v += 10));
  for (let i = 0; i < 100; i++) {
    const share = fast.share(v);
    fast.recordInference(1 + 3.5 * share, (v += 10));
  }
  assert.ok(fast.share(v) < 1, 'p99 4.5 ms is over 0.8 x the 5 ms target and over 1.25 x the 1 ms baseline: cut');
});

/**
 * Drives a governor with one inference sample every `everyMs` for `ms`, bulk asking for its
 * share before each; `latency(share, t)` is the plant: what inference takes at that share.
 * Returns the mean share over the run and the lowest share seen.
 */
function drive(g: BulkGovernor, from: number, ms: number, everyMs: number, latency: (share: number, t: number) => number): { t: number; meanShare: number; minShare: number } {
  let sum = 0;
  let n = 0;
  let min = 1;
  let t = from;
  for (; t < from + ms; t += everyMs) {
    const share = g.share(t);
    sum += share;
    n++;
    min = Math.min(min, share);
    g.recordInference(latency(share, t), t);
  }
  return { t, meanShare: sum / n, minShare: min };
}

/** The defaults of the config (scheduling.bulk) at 200 inference calls a second. */
const DEFAULTS = { targetMs: 5, minShare: 0.1, decrease: 0.5, increase: 0.05, highWater: 0.8, lowWater: 0.5, increaseIntervalMs: 100, decreaseIntervalMs: 250, windowMs: 1000, maxSlowdown: 1.25 };

/** 20 s of inference alone (no bulk asking) at 200/s with a p99 of `p99` ms (one call in 50 that slow, the rest 0.6 of it). */
function baseline(g: BulkGovernor, p99: number): number {
  let t = 0;
  for (let i = 1; t < 20_000; t += 5, i++) g.recordInference(i % 50 === 0 ? p99 : 0.6 * p99, t);
  return t;
}

test('one slow moment costs bulk no cut (the window still held it after it, but one block of three)', () => {
  const g = new BulkGovernor(DEFAULTS);
  const t0 = baseline(g, 5);
  // Bulk runs at no cost to inference, except for 30 ms where every call takes 40 ms (a GC, a
  // noisy neighbour). The first governor cut four times in the second that spike stayed in its
  // 1 s window (1 -> 0.5 -> 0.25 -> 0.125 -> 0.1) and then needed 1.8 s to grow back; judging
  // each cut on the samples after it made that one cut. Now a series starts only when the
  // median of the last three blocks is over the line, and the spike lands in one block.
  let i = 0;
  const r = drive(g, t0, 5000, 5, (_share, t) => (t >= t0 + 1000 && t < t0 + 1030 ? 40 : ++i % 100 === 0 ? 5 : 3));
  assert.equal(r.minShare, 1, 'no cut');
  assert.equal(g.snapshot(r.t).decreases, 0);
});

test('a cut that does not lower inference p99 is undone, and bulk is not cut below that share again for futileCutHoldMs', () => {
  const g = new BulkGovernor(DEFAULTS);
  const t0 = baseline(g, 5);
  // While bulk runs, inference p99 is 7 ms whatever bulk's share (the machine and the jobs,
  // not this process's bulk, slow it): over 1.25 x the 5 ms baseline, and cutting does not help.
  let i = 0;
  const slow = () => (++i % 50 === 0 ? 7 : 3);
  const r = drive(g, t0, 30_000, 5, slow);
  const s = g.snapshot(r.t);
  assert.ok(s.futileCuts >= 2 && s.futileCuts <= 4, `one probe cut per ~10 s hold, undone each time: ${s.futileCuts}`);
  assert.equal(s.decreases, s.futileCuts, 'every cut was a probe that got undone');
  assert.ok(r.minShare >= 0.5, `never below one cut: ${r.minShare}`);
  assert.ok(r.meanShare >= 0.9, `bulk keeps nearly all of the link: mean share ${r.meanShare.toFixed(3)}`);
  assert.equal(g.share(r.t), 1);
});

test('a noisy slowdown bulk does not cause: cut only on a sustained p99, judged against it, and futile series in a row hold longer', () => {
  // While bulk runs, one call in 50 takes 6-12 ms whatever bulk's share (uniform, from fixed
  // seeds): the p99 of the 100 samples a verdict reads moves by tens of percent by chance. The
  // governor that judged each cut against the p99 that started it (picked for being high, so
  // any next window looks better) went down on such lucky verdicts and stayed low: mean shares
  // of 0.55, 0.23, 0.47, 0.58 and 0.14 over these five seeds (now 0.97-0.99).
  for (const seed0 of [1, 2, 3, 4, 5]) {
    const g = new BulkGovernor(DEFAULTS);
    const t0 = baseline(g, 5);
    let seed = seed0 * 7919;
    const uniform = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let i = 0;
    const r = drive(g, t0, 60_000, 5, () => (++i % 50 === 0 ? 6 + 6 * uniform() : 3));
    const s = g.snapshot(r.t);
    assert.ok(r.meanShare >= 0.9, `seed ${seed0}: bulk keeps nearly all of the link: mean share ${r.meanShare.toFixed(3)}`);
    // Holds of 10, 20, 40 s after the first futile series: at most 4 series in 60 s.
    assert.ok(s.futileCuts >= 1 && s.futileCuts <= 4, `seed ${seed0}: futile series ${s.futileCuts}`);
  }
});

test('a slowdown bulk causes is still cut until inference is within maxSlowdown of its baseline, and held there', () => {
  const g = new BulkGovernor(DEFAULTS);
  const t0 = baseline(g, 5);
  // Inference's p99 grows with bulk's share: 5 ms + 8 ms at the full link.
  let i = 0;
  const plant = (share: number) => (++i % 50 === 0 ? 5 + 8 * share : 3);
  const r = drive(g, t0, 20_000, 5, plant);
  const s = g.snapshot(r.t);
  assert.equal(s.futileCuts, 0, 'every cut lowered the p99');
  // Within 1.25 x 5 ms needs share <= 0.15: 1 -> 0.5 -> 0.25 -> 0.125 (p99 13 -> 9 -> 7 -> 6 ms).
  assert.ok(g.share(r.t) <= 0.15, `share ${g.share(r.t)}`);
  const tail = drive(g, r.t, 5000, 5, plant);
  assert.ok(tail.meanShare <= 0.2, `held low: mean share ${tail.meanShare.toFixed(3)}`);
  assert.ok(s.p99Ms <= 5 * 1.25 * 1.04, `p99 ${s.p99Ms} ms within the allowance (3% histogram rounding)`);
});
