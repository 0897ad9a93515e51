import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { EventLoopDelayMonitor } from '../../src/telemetry/event-loop-delay.ts';
import { SluiceMetrics } from '../../src/telemetry/metrics.ts';

function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // a synchronous slice, as a big seal or hash would be
  }
}

test('a synchronous slice shows up as event-loop delay of about its length', async () => {
  const m = new EventLoopDelayMonitor({ resolutionMs: 2 });
  m.start();
  try {
    await sleep(20);
    blockFor(40);
    await sleep(20);
    const h = m.histogram;
    assert.ok(h.count > 0, 'the probe ran');
    // Bucket 0.03 (30 ms) and below hold the quiet ticks; the blocked one is above 30 ms.
    const above30ms = h.count - h.cumulative()[h.bounds.indexOf(0.03)]!;
    assert.ok(above30ms >= 1, `a tick late by more than 30 ms is recorded (buckets ${[...h.counts].join(',')})`);
    assert.ok(m.maxSeconds() >= 0.03, `max ${m.maxSeconds()}`);
  } finally {
    m.stop();
  }
  assert.equal(m.running, false);
});

test('the max covers the last one to two windows, then forgets', async () => {
  const m = new EventLoopDelayMonitor({ resolutionMs: 1, maxWindowMs: 50 });
  m.start();
  try {
    await sleep(5);
    blockFor(20);
    await sleep(5);
    assert.ok(m.maxSeconds() >= 0.015);
    await sleep(150); // more than two windows of quiet ticks
    assert.ok(m.maxSeconds() < 0.015, `max still ${m.maxSeconds()}`);
  } finally {
    m.stop();
  }
});

test('bad options are refused', () => {
  assert.throws(() => new EventLoopDelayMonitor({ resolutionMs: 0 }), /resolutionMs/);
  assert.throws(() => new EventLoopDelayMonitor({ maxWindowMs: -1 }), /maxWindowMs/);
});

test('the registry exports the histogram and the max gauge', async () => {
  const metrics = new SluiceMetrics();
  try {
    blockFor(15);
    await sleep(10);
    const text = await metrics.registry.metrics();
    assert.match(text, /^sluice_event_loop_delay_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
    const max = Number(/^sluice_event_loop_delay_max_seconds (\S+)$/m.exec(text)?.[1]);
    assert.ok(max >= 0.01, `max gauge ${max} after a 15 ms slice`);
  } finally {
    metrics.eventLoop.stop();
  }
});

test('retune changes the probe period of a running monitor and still sees a stall', async () => {
  const m = new EventLoopDelayMonitor({ resolutionMs: 2 });
  assert.throws(() => m.retune(0), RangeError);
  m.start();
  try {
    m.retune(20);
    assert.equal(m.resolutionMs, 20);
    assert.equal(m.running, true);
    const before = m.histogram.count;
    await sleep(110);
    const ticks = m.histogram.count - before;
    // About 5 ticks in 110 ms at 20 ms (not the 55 of a 2 ms probe); generous for a loaded machine.
    assert.ok(ticks >= 1 && ticks <= 8, `${ticks} ticks`);
    await sleep(5);
    blockFor(60);
    await sleep(30);
    assert.ok(m.maxSeconds() >= 0.03, `max ${m.maxSeconds()}`);
  } finally {
    m.stop();
  }
});
