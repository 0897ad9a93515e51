// Known-answer vectors from scipy (test/fixtures/shapiro-wilk-scipy.json) for the normal
// distribution helpers and the Shapiro-Wilk test PRADA relies on, plus properties.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { normalCdf, normalQuantile } from '../../../src/security/threats/normal-distribution.ts';
import { shapiroWilk } from '../../../src/security/threats/shapiro-wilk.ts';

interface Fixture {
  shapiro: { n: number; kind: string; values: number[]; w: number; p: number }[];
  quantile: { p: number; z: number }[];
  cdf: { z: number; p: number }[];
}
const fx = JSON.parse(readFileSync(new URL('../../fixtures/shapiro-wilk-scipy.json', import.meta.url), 'utf8')) as Fixture;

const close = (got: number, want: number, rel: number, abs = 0): void =>
  assert.ok(Math.abs(got - want) <= Math.max(abs, rel * Math.abs(want)), `got ${got}, want ${want}`);

test('normalQuantile matches scipy norm.ppf', () => {
  for (const { p, z } of fx.quantile) close(normalQuantile(p), z, 1e-9);
  assert.equal(normalQuantile(0), -Infinity);
  assert.ok(Number.isNaN(normalQuantile(1.5)));
});

test('normalCdf matches scipy norm.cdf, tails included', () => {
  for (const { z, p } of fx.cdf) close(normalCdf(z), p, 1e-12, 1e-300);
});

test('shapiroWilk matches scipy.stats.shapiro on normal, uniform and exponential samples (n = 3..3000)', () => {
  for (const c of fx.shapiro) {
    const r = shapiroWilk(c.values);
    close(r.w, c.w, 1e-6);
    // scipy runs the same AS R94 algorithm in single-precision Fortran: p agrees to a few digits.
    close(r.p, c.p, 2e-3, 1e-6);
  }
});

test('shapiroWilk: W in (0, 1], invariant to order, shift and positive scale', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 3, maxLength: 300 }),
      fc.double({ min: -1e3, max: 1e3, noNaN: true }),
      fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
      (xs, shift, scale) => {
        const r = shapiroWilk(xs);
        assert.ok(r.w > 0 && r.w <= 1, `W ${r.w}`);
        assert.ok(r.p >= 0 && r.p <= 1, `p ${r.p}`);
        const spread = Math.max(...xs) - Math.min(...xs);
        if (spread > 1e-3) {
          const moved = shapiroWilk(xs.map((x) => x * scale + shift).reverse());
          close(moved.w, r.w, 1e-6, 1e-9);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('shapiroWilk: a constant sample says nothing against normality; sizes outside 3..5000 are refused', () => {
  assert.deepEqual(shapiroWilk([2, 2, 2, 2]), { w: 1, p: 1, n: 4 });
  assert.throws(() => shapiroWilk([1, 2]), RangeError);
  assert.throws(() => shapiroWilk(new Array(5001).fill(0).map((_, i) => i)), RangeError);
});
