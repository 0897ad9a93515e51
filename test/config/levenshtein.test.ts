// The edit distance behind the config's "did you mean" hints.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { closestMatch, levenshtein } from '../../src/config/levenshtein.ts';

describe('levenshtein', () => {
  test('known distances', () => {
    assert.equal(levenshtein('listners', 'listeners'), 1);
    assert.equal(levenshtein('kitten', 'sitting'), 3);
    assert.equal(levenshtein('', 'abc'), 3);
    assert.equal(closestMatch('lisen', ['listen', 'device', 'key']), 'listen');
    assert.equal(closestMatch('bogusSection', ['node', 'listeners', 'routes']), undefined);
  });

  test('is a metric: zero only on equal strings, symmetric, triangle inequality, bounded by the longer length', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b, c) => {
        const ab = levenshtein(a, b);
        assert.equal(ab === 0, a === b);
        assert.equal(ab, levenshtein(b, a));
        assert.ok(levenshtein(a, c) <= ab + levenshtein(b, c));
        assert.ok(ab <= Math.max(a.length, b.length) && ab >= Math.abs(a.length - b.length));
      }),
      { numRuns: 300 },
    );
  });
});
