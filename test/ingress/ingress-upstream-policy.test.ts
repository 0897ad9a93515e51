import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { UpstreamPolicy } from '../../src/ingress/upstream-policy.ts';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import { BulkGovernor } from '../../src/scheduler/bulk-governor.ts';

const scheduling = parseConfig({ scheduling: { shedding: { parallelism: 1, maxQueueDelayMs: 1000, maxInFlight: 3 } } }).scheduling;

test('a request whose queue would blow its deadline is shed as OVERLOADED: RESOURCE_EXHAUSTED / 429', () => {
  const policy = new UpstreamPolicy({ peers: ['a'], scheduling });
  policy.admit(1000);
  policy.release(40, true); // service time is now learnt: 1 ms + 0.1 x (40 - 1)
  policy.admit(1000);
  policy.admit(1000);
  // Two in flight on one lane: the next waits about one service time (~4.9 ms).
  assert.throws(
    () => policy.admit(2),
    (err: InferenceError) => err.code === 'SLUICE_ERR_OVERLOADED' && err.grpcStatus === 8 && err.httpStatus === 429 && /request shed: estimated queue delay/.test(err.message),
  );
  policy.admit(1000);
  assert.throws(() => policy.admit(1000), /3 requests in flight \(limit 3\)/);
});

test('answered requests feed the bulk governor; failures and shed ones do not', () => {
  const governor = new BulkGovernor({ targetMs: 5, minShare: 0.1, minSamples: 1, tickMs: 0 });
  const policy = new UpstreamPolicy({ peers: ['a'], scheduling, governor });
  governor.share(performance.now()); // bulk is running: the samples below are not its no-bulk baseline
  policy.admit(1000);
  policy.release(50, false);
  assert.equal(governor.snapshot(performance.now()).samples, 0);
  policy.admit(1000);
  policy.release(50, true);
  assert.equal(governor.snapshot(performance.now()).samples, 1);
  assert.ok(governor.share(performance.now()) < 1, 'a 50 ms p99 against a 5 ms target cuts bulk');
});

test('retries only for failures before the model, within the attempt limit', () => {
  const policy = new UpstreamPolicy({ peers: ['a', 'b'], scheduling });
  assert.equal(policy.retry({ phase: 'before-model', upstreamFault: true }, 1, 1000), true);
  assert.equal(policy.retry({ phase: 'at-model', upstreamFault: true }, 1, 1000), false);
  assert.equal(policy.retry({ phase: 'before-model', upstreamFault: true }, 2, 1000), false, 'maxAttempts 2');
  assert.equal(policy.retries, 1);
  const first = policy.pick(new Set(), () => true);
  const second = policy.pick(new Set([first!.key]), () => true);
  assert.notEqual(first!.key, second!.key);
  assert.equal(policy.pick(new Set(), (n) => n === 'zzz'), undefined);
});
