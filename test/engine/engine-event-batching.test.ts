// The access records of fast-path calls (telemetry.accessLog: one engine event per call) reach
// JavaScript in batches: the engine queues them without waking the JS thread and one loop timer
// wakes it at most Engine::kEventBatchMs (10 ms) later, so a run of calls costs a few JS
// wake-ups, not one per call. Every record still arrives, in order, within the bound; events
// that something waits for (a failed call's log line still comes with its record; audit tickets
// and front calls are covered by their own tests) are not held longer than that.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EngineRequestDone } from '../../src/engine/native-engine.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { batchCounter, batchWindows } from '../helpers/batch-windows.ts';
import { inferWhenLinked, ingressEngine, startNodeChain } from '../helpers/node-chain.ts';
import { simpleInferRequest as simple } from '../helpers/tensors.ts';

test('access records of engine calls reach JS in bounded batches, every one of them', { timeout: 90_000 }, async () => {
  const chain = await startNodeChain({ name: 'engine-batching', ingress: { listeners: { grpc: { host: '127.0.0.1', port: 0 } }, telemetry: { accessLog: true } } });
  const { ingress } = chain;
  const kc = new KserveClient(ingress.endpoints.grpc!);
  try {
    assert.equal(ingress.grpcOnEngine, true);
    const engine = ingressEngine(ingress);
    await inferWhenLinked(kc, simple('simple'));
    await new Promise((r) => setTimeout(r, 100)); // records of the warm-up calls are in
    // Events of one batch are emitted in one synchronous run: a batch is a run of events with no
    // macrotask between them.
    const records: { r: EngineRequestDone; at: number; batch: number }[] = [];
    const counter = batchCounter();
    engine.on('request-done', (r: EngineRequestDone) => {
      counter.note();
      records.push({ r, at: performance.now(), batch: counter.batches });
    });
    const N = 60;
    const answeredAt: number[] = [];
    for (let i = 0; i < N; i++) {
      await kc.infer(simple('simple'));
      answeredAt.push(performance.now());
    }
    // One failed call: its record (and log line) comes the same way.
    const failed = await kc.infer(simple('no-such-model')).then(
      () => assert.fail('an unknown model must fail'),
      (e: { code: number }) => e.code,
    );
    const deadline = performance.now() + 5000;
    while (records.length < N + 1 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(records.length, N + 1, 'one access record per call');
    assert.ok(records.slice(0, N).every((x) => x.r.model === 'simple' && x.r.status === 0));
    assert.equal(records[N]!.r.model, 'no-such-model');
    assert.equal(records[N]!.r.status, failed);
    // Batched: records whose calls ended within one batch window come in one wake-up. The
    // windows the answers span (8 ms: under the engine's 10, since a call's answer reaches the
    // client a little after its record is queued) bound the batches, plus the failed call's and
    // one for a window split by that skew. Calls slower than the window (a loaded machine) leave
    // nothing to batch; on a quiet one a call takes a few ms and one wake-up per call fails this.
    const windows = batchWindows(answeredAt);
    const batches = counter.batches;
    assert.ok(batches <= windows + 2, `${batches} batches for ${N + 1} records, whose answers span ${windows} windows of 8 ms`);
    // Bounded: a record is in JS soon after its call's answer (10 ms timer; generous slack for a
    // loaded machine: the bound is the engine's, the JS thread may itself run late).
    const lateMs = records.slice(0, N).map((x, i) => x.at - answeredAt[i]!);
    assert.ok(Math.max(...lateMs) < 1000, `a record came ${Math.max(...lateMs).toFixed(1)} ms after its answer`);
  } finally {
    kc.close();
    await chain.stop();
  }
});
