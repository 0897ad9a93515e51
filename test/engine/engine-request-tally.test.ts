// The request metrics of the engine's gRPC fast path come from the engine's native tally, read
// at scrape time: counts, latency buckets and sums per (model, status) match the calls made;
// only failed calls reach JavaScript as events (for their log line), successful ones do not.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EngineRequestDone } from '../../src/engine/native-engine.ts';
import { LATENCY_BUCKETS_SECONDS } from '../../src/telemetry/bucket-histogram.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { inferWhenLinked, ingressEngine, startNodeChain } from '../helpers/node-chain.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';
import { simpleInferRequest as simple } from '../helpers/tensors.ts';

test('fast-path request metrics come from the engine tally; only failures are events', { timeout: 90_000 }, async () => {
  const chain = await startNodeChain({ name: 'engine-tally', ingress: { listeners: { grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } } } });
  const { ingress } = chain;
  const kc = new KserveClient(ingress.endpoints.grpc!);
  try {
    assert.equal(ingress.grpcOnEngine, true);
    // The engine behind the node (private: the test counts the events it hands to JS).
    const engine = ingressEngine(ingress);
    const failedEvents: EngineRequestDone[] = [];
    engine.on('request-done', (r: EngineRequestDone) => failedEvents.push(r));
    const url = `http://${ingress.endpoints.metrics}/metrics`;
    const scrape = async (): Promise<ReturnType<typeof parsePromText>> => parsePromText(await (await fetch(url)).text());
    const ok = { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' };

    // The link comes up in the background: the first call may be answered UNAVAILABLE.
    await inferWhenLinked(kc, simple('simple'));
    const s0 = await scrape();
    const before = sampleValue(s0, 'sluice_requests_total', ok) ?? 0;
    const failedBefore = failedEvents.length;
    const N = 40;
    for (let i = 0; i < N; i++) await kc.infer(simple('simple'));
    let code = -1;
    const M = 3;
    for (let i = 0; i < M; i++) {
      await kc.infer(simple('no-such-model')).then(
        () => assert.fail('an unknown model must fail'),
        (e: { code: number }) => (code = e.code),
      );
    }
    // Events reach JS asynchronously; the tally is read synchronously at the scrape.
    await new Promise((r) => setTimeout(r, 200));
    const s = await scrape();
    assert.equal(sampleValue(s, 'sluice_requests_total', ok), before + N);
    assert.equal(sampleValue(s, 'sluice_request_duration_seconds_count', ok), before + N);
    assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...ok, le: '+Inf' }), before + N);
    // Cumulative buckets never go down, and the sum is a plausible total of call durations.
    let last = 0;
    for (const b of LATENCY_BUCKETS_SECONDS) {
      const v = sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...ok, le: String(b) })!;
      assert.ok(v >= last, `bucket ${b}: ${v} < ${last}`);
      last = v;
    }
    const sum = sampleValue(s, 'sluice_request_duration_seconds_sum', ok)!;
    assert.ok(sum > 0 && sum < (before + N) * 10, `sum ${sum}`);
    // The failed calls: counted under their status, and each one event (its log line).
    const failedCode = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'][code]!;
    assert.notEqual(failedCode, 'OK');
    assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'grpc', model: 'no-such-model', code: failedCode }), M);
    assert.equal(failedEvents.length - failedBefore, M, 'one event per failed call, none per successful one');
    assert.ok(failedEvents.slice(failedBefore).every((e) => e.model === 'no-such-model' && e.status === code && e.requestId !== ''));
    // A second scrape without calls in between changes nothing (a take moves counts once).
    const s2 = await scrape();
    assert.equal(sampleValue(s2, 'sluice_requests_total', ok), before + N);
  } finally {
    kc.close();
    await chain.stop();
  }
});
