// The threat detectors, positive and negative cases, on the frozen bench workloads and on
// hand-made inputs; the monitor's actions, profile entry/exit and bounded tap.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { adversarialStream, benignStream, extractionStream, poison, weightVersions } from '../../../bench/threats/workloads.ts';
import type { SecurityEvent } from '../../../src/security/events.ts';
import { AdversarialDetector } from '../../../src/security/threats/adversarial-detector.ts';
import { ksStatistic, PoisoningDetector } from '../../../src/security/threats/poisoning-detector.ts';
import { PradaDetector } from '../../../src/security/threats/prada.ts';
import { tensorStats } from '../../../src/security/threats/tensor-stats.ts';
import { threatsSchema } from '../../../src/security/threats/threat-config.ts';
import { ThreatMonitor } from '../../../src/security/threats/threat-monitor.ts';
import { mulberry32 } from '../../../src/models/seeded-random.ts';

test('PRADA: benign streams stay unflagged over 2000 queries; the extraction attack is flagged within 1000', () => {
  for (let t = 0; t < 3; t++) {
    const d = new PradaDetector(64, {}, mulberry32(t));
    const s = benignStream(t);
    for (let i = 0; i < 2000; i++) assert.equal(d.observe(s()).flagged, false, `benign tenant ${t} flagged at query ${i}`);
  }
  const d = new PradaDetector(64, {}, mulberry32(7));
  const a = extractionStream();
  let at = -1;
  for (let i = 1; i <= 1000 && at < 0; i++) if (d.observe(a()).flagged) at = i;
  assert.ok(at > 0, 'attack not flagged within 1000 queries');
});

test('PRADA: memory is bounded whatever the query count, and wrong-length queries are refused', () => {
  const d = new PradaDetector(8, { maxGrowingSet: 50, window: 100 });
  const before = d.memoryBytes;
  const r = mulberry32(1);
  for (let i = 0; i < 5000; i++) d.observe(Float32Array.from({ length: 8 }, () => r() * 100));
  assert.equal(d.memoryBytes, before);
  assert.throws(() => d.observe([1, 2, 3]), RangeError);
});

test('tensor stats: finite features for any input, non-finite values counted', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.double(), fc.constant(Number.NaN)), { minLength: 0, maxLength: 200 }), (xs) => {
      const s = tensorStats(Float64Array.from(xs), [1, xs.length]);
      for (const k of ['mean', 'variance', 'min', 'max', 'saturatedFraction', 'highFrequencyEnergy'] as const) assert.ok(!Number.isNaN(s[k]), k);
      assert.equal(s.nonFinite + s.count, xs.length);
    }),
    { numRuns: 300 },
  );
  const img = new Float32Array(8 * 8).fill(0.5);
  assert.equal(tensorStats(img, [1, 8, 8, 1]).highFrequencyEnergy, 0);
});

test('adversarial: clean inputs pass after warm-up, FGSM-like inputs (eps 0.1) and NaNs are flagged', () => {
  const d = new AdversarialDetector();
  const b = benignStream(11);
  for (let i = 0; i < 200; i++) assert.equal(d.observe(b(), [1, 64]).flagged, false);
  for (let i = 0; i < 2000; i++) assert.equal(d.observe(b(), [1, 64]).flagged, false);
  const adv = adversarialStream(0.1);
  for (let i = 0; i < 100; i++) assert.equal(d.observe(adv(), [1, 64]).flagged, true);
  const bad = b();
  bad[3] = Number.NaN;
  assert.equal(d.observe(bad, [1, 64]).flagged, true);
});

test('poisoning: clean versions pass; scaled, shifted, NaN, Inf, another sender and repeated digest failures are flagged', () => {
  const p = new PoisoningDetector();
  const v = weightVersions(16384);
  for (let i = 0; i < 10; i++) assert.deepEqual(p.observe('w', 'job', v(), [16384]).signals, []);
  const latest = v();
  assert.deepEqual(p.observe('w', 'job', latest, [16384]).signals, []);
  assert.ok(p.observe('w', 'job', poison(latest, 'scaled'), [16384]).signals.includes('norm_jump'));
  assert.ok(p.observe('w', 'job', poison(latest, 'shifted'), [16384]).signals.includes('distribution_shift'));
  assert.deepEqual(p.observe('w', 'job', poison(latest, 'nan'), [16384]).signals, ['non_finite']);
  assert.deepEqual(p.observe('w', 'job', poison(latest, 'inf'), [16384]).signals, ['non_finite']);
  assert.deepEqual(p.observe('w', 'intruder', v(), [16384]).signals, ['unexpected_sender']);
  p.digestMismatch('w', 'job');
  assert.deepEqual(p.observe('w', 'job', v(), [16384]).signals, []);
  p.digestMismatch('w', 'job');
  assert.ok(p.observe('w', 'job', v(), [16384]).signals.includes('digest_mismatch'));
});

test('ksStatistic: 0 for identical samples, 1 for disjoint ones, symmetric', () => {
  const a = Float64Array.from([1, 2, 3, 4]);
  assert.equal(ksStatistic(a, a), 0);
  assert.equal(ksStatistic(a, Float64Array.from([10, 11])), 1);
  fc.assert(
    fc.property(fc.array(fc.double({ noNaN: true }), { minLength: 1, maxLength: 50 }), fc.array(fc.double({ noNaN: true }), { minLength: 1, maxLength: 50 }), (x, y) => {
      const sx = Float64Array.from(x).sort();
      const sy = Float64Array.from(y).sort();
      const d = ksStatistic(sx, sy);
      assert.ok(d >= 0 && d <= 1);
      assert.equal(d, ksStatistic(sy, sx));
    }),
  );
});

test('monitor: a flagged tenant enters its configured profile (audited), which ends after durationSeconds (audited)', () => {
  let now = 1_000_000;
  const events: SecurityEvent[] = [];
  const cfg = threatsSchema.parse({ enabled: true, tenants: [{ tenant: 'evil', action: 'block' }], profile: { durationSeconds: 60 } });
  const m = new ThreatMonitor(cfg, { emit: (e) => events.push(e) }, {}, () => now);
  assert.equal(m.actionFor('evil'), 'block');
  assert.equal(m.actionFor('someone'), 'observe');
  const a = extractionStream();
  for (let i = 0; i < 400; i++) m.inspect({ tenant: 'evil', model: 'dense', requestId: `r${i}`, inputs: [{ name: 'INPUT0', shape: [1, 64], values: a() }] });
  assert.equal(events.filter((e) => e.type === 'threat.extraction_suspected').length, 1, 'one event, not a storm');
  const entered = events.find((e) => e.type === 'threat.profile_entered');
  assert.equal(entered?.tenant, 'evil');
  assert.equal(m.profileOf('evil')?.action, 'block');
  now += 61_000;
  assert.equal(m.profileOf('evil'), undefined);
  assert.equal(events.at(-1)?.type, 'threat.profile_exited');
  // Details never carry tensor values.
  for (const e of events) assert.ok(!JSON.stringify(e).includes('values'));
});

test('monitor: the tap is sampled, bounded and never blocks; queued calls are inspected later', async () => {
  const cfg = threatsSchema.parse({ enabled: true, sampleRate: 0.25, maxQueued: 10 });
  let dropped = 0;
  const m = new ThreatMonitor(cfg, { emit() {} }, { onDropped: () => dropped++ });
  let sampled = 0;
  for (let i = 0; i < 100; i++) if (m.shouldSample()) sampled++;
  assert.equal(sampled, 25);
  const b = benignStream(1);
  for (let i = 0; i < 15; i++) m.tap({ tenant: 't', model: 'dense', requestId: `r${i}`, inputs: [{ name: 'INPUT0', shape: [1, 64], values: b() }] });
  assert.equal(m.queued, 10);
  assert.equal(dropped, 5);
  await m.idle();
  assert.equal(m.queued, 0);
  const off = new ThreatMonitor(threatsSchema.parse({}), { emit() {} });
  assert.equal(off.shouldSample(), false);
});

test('inference tap: numeric inputs of raw and typed requests become float copies; BYTES is skipped', async () => {
  const { encodeMessage } = await import('../../../src/kserve/proto.ts');
  const { tapInputs } = await import('../../../src/security/threats/inference-tap.ts');
  const raw = encodeMessage('ModelInferRequest', {
    modelName: 'dense',
    inputs: [
      { name: 'INPUT0', datatype: 'FP32', shape: [1, 4] },
      { name: 'TEXT', datatype: 'BYTES', shape: [1] },
      { name: 'IDS', datatype: 'INT64', shape: [2] },
    ],
    rawInputContents: [Buffer.from(new Float32Array([1, -2, 3.5, 0]).buffer), Buffer.from([3, 0, 0, 0, 104, 105, 33]), Buffer.from(new BigInt64Array([7n, -9n]).buffer)],
  });
  const t = tapInputs(raw);
  assert.deepEqual(t.map((x) => x.name), ['INPUT0', 'IDS']);
  assert.deepEqual([...t[0]!.values], [1, -2, 3.5, 0]);
  assert.deepEqual([...t[1]!.values], [7, -9]);
  const typed = encodeMessage('ModelInferRequest', { modelName: 'dense', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 3], contents: { intContents: [5, 6, -7] } }] });
  assert.deepEqual([...tapInputs(typed)[0]!.values], [5, 6, -7]);
  assert.deepEqual(tapInputs(raw)[0]!.shape, [1, 4]);
});
