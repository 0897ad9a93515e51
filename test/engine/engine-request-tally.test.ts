// The request metrics of the engine's gRPC fast path come from the engine's native tally, read
// at scrape time: counts, latency buckets and sums per (model, status) match the calls made;
// only failed calls reach JavaScript as events (for their log line), successful ones do not.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { EngineIngress } from '../../src/engine/engine-ingress.ts';
import type { EngineRequestDone } from '../../src/engine/native-engine.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { LATENCY_BUCKETS_SECONDS } from '../../src/telemetry/bucket-histogram.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';

const A = Array.from({ length: 16 }, (_, i) => i);
const simple = (model: string): object => ({
  modelName: model,
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
  ],
});

test('fast-path request metrics come from the engine tally; only failures are events', { timeout: 90_000 }, async () => {
  const logging = new Logging({ level: 'silent', node: 'engine-tally' });
  const key = randomBytes(32).toString('hex');
  const seg = await closedPort();
  const models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: logging.component('m'), transports: defaultTransports });
  await models.start();
  const egress = new SluiceNode({
    config: parseConfig({
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: seg } } },
      routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('e'),
    transports: defaultTransports,
  });
  await egress.start();
  const ingress = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: seg }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('i'),
    transports: defaultTransports,
  });
  await ingress.start();
  const kc = new KserveClient(ingress.endpoints.grpc!);
  try {
    assert.equal(ingress.grpcOnEngine, true);
    // The engine behind the node (private: the test counts the events it hands to JS).
    const engine = (ingress as unknown as { engineIngress: EngineIngress }).engineIngress.engine;
    const failedEvents: EngineRequestDone[] = [];
    engine.on('request-done', (r: EngineRequestDone) => failedEvents.push(r));
    const url = `http://${ingress.endpoints.metrics}/metrics`;
    const scrape = async (): Promise<ReturnType<typeof parsePromText>> => parsePromText(await (await fetch(url)).text());
    const ok = { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' };

    // The link comes up in the background: the first call may be answered UNAVAILABLE.
    for (let i = 0; i < 50; i++) {
      try {
        await kc.infer(simple('simple'));
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
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
    await ingress.stop(0);
    await egress.stop(0);
    await models.stop(0);
  }
});
