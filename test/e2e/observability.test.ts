// Observability end to end with real `sluice serve` processes (models, egress, ingress):
//  - every stdout line of every process parses with a parser that refuses duplicate keys;
//  - the access log (telemetry.accessLog) has one line per request with the documented fields,
//    HTTP status over HTTP, and the egress' line of the same request (the egress on the native
//    engine: its batched access records);
//  - traces go to a real OTLP/HTTP receiver (node:http here, decoding the JSON export): spans
//    ingress, link, egress and upstream share one trace id across the two processes, the
//    client's traceparent is continued, and the egress span is a child of the ingress span;
//  - the new metrics are exported (upstream latency histogram, peer label, shed/retry counters).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { scrape, sampleValue } from '../helpers/prom-text.ts';
import { DuplicateKeyError, parseStrictJson } from '../helpers/strict-json.ts';
import { otlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.ts';

const A = Array.from({ length: 16 }, (_, i) => i);
const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: A },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: A },
  ],
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const processes: SluiceProcess[] = [];
let receiver: OtlpReceiver | undefined;
after(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  receiver?.close();
});

async function start(config: object, name: string): Promise<SluiceProcess> {
  const p = await startSluice(config, { name });
  processes.push(p);
  return p;
}

describe('observability end to end', { timeout: 240_000 }, () => {
  test('strict JSON logs, access log, OTLP traces across ingress and egress, new metrics', async () => {
    const otlp = (receiver = await otlpReceiver());
    const telemetry = { accessLog: true, otlp: { endpoint: otlp.url } };
    const key = randomBytes(32).toString('base64');
    const models = await start({ node: { name: 'models' }, models: { listen: { host: '127.0.0.1', port: 0 } } }, 'models');
    const egress = await start(
      {
        node: { name: 'egress' },
        listeners: { metrics: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
        routes: [{ model: '*', upstreams: [{ address: models.endpoints.models }] }],
        telemetry,
      },
      'egress',
    );
    const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
    const ingress = await start(
      {
        node: { name: 'ingress' },
        listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress-a', segment: 'inference', host, port: Number(port) }],
        routes: [{ model: '*', peers: ['egress-a'] }],
        telemetry,
      },
      'ingress',
    );

    // A client trace to continue, plain HTTP requests, gRPC requests, and failures.
    const clientTrace = randomBytes(16).toString('hex');
    const traced = await fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, {
      method: 'POST',
      body: simpleBody,
      headers: { 'content-type': 'application/json', traceparent: `00-${clientTrace}-${randomBytes(8).toString('hex')}-01`, 'x-request-id': 'traced-1' },
    });
    assert.equal(traced.status, 200);
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, { method: 'POST', body: simpleBody, headers: { 'content-type': 'application/json', 'x-request-id': `http-${i}` } });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
    const kc = new KserveClient(ingress.endpoints.grpc!);
    for (let i = 0; i < 5; i++) {
      await kc.infer(
        {
          modelName: 'simple',
          inputs: [
            { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
            { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
          ],
        },
        { requestId: `grpc-${i}` },
      );
    }
    kc.close();
    // A tensor the model refuses (INVALID_ARGUMENT at the model server, 400 over HTTP).
    const wrongShape = JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 3], datatype: 'INT32', data: [1, 2, 3] }] });
    const missing = await fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, { method: 'POST', body: wrongShape, headers: { 'content-type': 'application/json', 'x-request-id': 'missing-1' } });
    assert.ok(missing.status >= 400, `refused tensor: HTTP ${missing.status}`);
    const bad = await fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, { method: 'POST', body: '{', headers: { 'content-type': 'application/json', 'x-request-id': 'bad-1' } });
    assert.equal(bad.status, 400);

    // Metrics (before stopping): the upstream histogram at the egress, peer labels, shed/retry counters.
    const es = await scrape(`http://${egress.endpoints.metrics!}/metrics`);
    assert.ok((sampleValue(es, 'sluice_upstream_request_duration_seconds_count', { model: 'simple', code: 'OK' }) ?? 0) >= 11);
    const is = await scrape(`http://${ingress.endpoints.metrics!}/metrics`);
    assert.ok((sampleValue(is, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp', peer: 'egress-a' }) ?? 0) > 0);
    assert.equal(sampleValue(is, 'sluice_request_retries_total', { outcome: 'retried' }), 0);
    assert.equal(sampleValue(is, 'sluice_requests_shed_total', { cause: 'in_flight' }), 0);
    assert.ok((sampleValue(es, 'sluice_link_bytes_total', { segment: 'inference', direction: 'rx', transport: 'tcp', peer: '127.0.0.1' }) ?? 0) > 0);

    // Spans: wait for the batch exports (1 s interval) of both processes.
    const end = Date.now() + 20_000;
    const traceOf = (rid: string) => otlp.spans.find((s) => s.name === 'ingress' && s.attributes?.some((a) => a.key === 'sluice.request_id' && a.value.stringValue === rid))?.traceId;
    while (Date.now() < end) {
      const complete = ['http-0', 'grpc-0', 'traced-1'].every((rid) => {
        const t = traceOf(rid);
        return t !== undefined && otlp.spans.filter((s) => s.traceId === t).length >= 4;
      });
      if (complete) break;
      await sleep(100);
    }
    for (const rid of ['http-0', 'grpc-0', 'traced-1']) {
      const traceId = traceOf(rid);
      assert.ok(traceId, `ingress span of ${rid}: ${JSON.stringify(otlp.spans.filter((s) => s.name === 'ingress').map((s) => s.attributes))}`);
      const inTrace = otlp.spans.filter((s) => s.traceId === traceId);
      const byName = new Map(inTrace.map((s) => [s.name, s]));
      assert.deepEqual([...byName.keys()].sort(), ['egress', 'ingress', 'link', 'upstream'], `spans of ${rid}`);
      assert.equal(byName.get('ingress')!.service, 'ingress');
      assert.equal(byName.get('link')!.service, 'ingress');
      assert.equal(byName.get('egress')!.service, 'egress');
      assert.equal(byName.get('upstream')!.service, 'egress');
      assert.equal(byName.get('link')!.parentSpanId, byName.get('ingress')!.spanId);
      assert.equal(byName.get('egress')!.parentSpanId, byName.get('ingress')!.spanId, 'the traceparent crossed the segment');
      assert.equal(byName.get('upstream')!.parentSpanId, byName.get('egress')!.spanId);
    }
    assert.equal(traceOf('traced-1'), clientTrace, "the client's trace is continued");
    assert.ok([...otlp.contentTypes].every((c) => c.startsWith('application/json')), 'check 176');

    // Stop (the access log and every other line flushed), then read every line strictly.
    await ingress.stop();
    await egress.stop();
    await models.stop();
    for (const p of [ingress, egress, models]) {
      assert.ok(p.lines.length > 1, `${p.lines.length} lines`);
      for (const line of p.lines) {
        if (line.trim() === '') continue;
        try {
          parseStrictJson(line);
        } catch (err) {
          if (err instanceof DuplicateKeyError) assert.fail(`duplicate key in a log line: ${err.message}: ${line}`);
          throw err;
        }
      }
    }

    // Access log lines.
    const access = (p: SluiceProcess) => p.logs.filter((l) => l.msg === 'access');
    const ia = access(ingress);
    assert.equal(ia.length, 13, 'one line per request at the ingress');
    for (const l of ia) {
      assert.equal(l.level, 'info');
      assert.equal(l.component, 'access');
      for (const k of ['request_id', 'tenant', 'model', 'protocol', 'method', 'status', 'code', 'bytes_in', 'bytes_out', 'total_ms', 'queue_ms', 'upstream_ms']) assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
    }
    const line = (rid: string) => ia.find((l) => l.request_id === rid)!;
    assert.equal(line('http-0').protocol, 'http');
    assert.equal(line('http-0').status, 200);
    assert.equal(line('http-0').peer, 'egress-a');
    assert.ok((line('http-0').bytes_in as number) === simpleBody.length, 'check 208');
    assert.ok((line('http-0').bytes_out as number) > 0, 'check 209');
    assert.ok((line('http-0').upstream_ms as number) > 0 && (line('http-0').upstream_ms as number) <= (line('http-0').total_ms as number), 'check 210');
    assert.equal(line('grpc-0').protocol, 'grpc');
    assert.equal(line('grpc-0').status, 0);
    assert.equal(line('grpc-0').code, 'OK');
    assert.equal(line('missing-1').status, missing.status, 'the HTTP status the client saw');
    assert.equal(line('bad-1').status, 400);
    assert.equal(line('traced-1').trace_id, clientTrace);
    // A gRPC call's line names its trace too (the engine's access record carries it).
    assert.equal(line('grpc-0').trace_id, traceOf('grpc-0'));
    const ea = access(egress);
    const eline = ea.find((l) => l.request_id === 'http-0')!;
    assert.equal(eline.protocol, 'segment');
    assert.equal(eline.code, 'OK');
    assert.ok((eline.upstream_ms as number) <= (line('http-0').upstream_ms as number), 'model time is part of the segment round trip');
    // The egress runs on the engine with the access log on; its lines come from the engine's records.
    assert.ok(egress.logs.some((l) => l.listener === 'segment' && l.engine === true), 'the egress role runs on the engine');
    assert.equal(eline.upstream, models.endpoints.models, 'the model server called');
    assert.match(String(eline.peer), /^127\.0\.0\.1:\d+$/, 'the ingress the CALL came from');
    assert.equal(eline.trace_id, traceOf('http-0'));
    for (const rid of ['grpc-0', 'traced-1']) assert.equal(ea.find((l) => l.request_id === rid)?.code, 'OK', `the egress line of ${rid}`);
    const erefused = ea.find((l) => l.request_id === 'missing-1');
    assert.equal(erefused?.code, 'INVALID_ARGUMENT', 'the model server refused the tensor');
    assert.equal(erefused?.bytes_out, 0);
    // The ingress' own failure line also reports the HTTP status a client saw.
    const failed = ingress.logs.filter((l) => l.request_id === 'missing-1' && l.msg !== 'access');
    assert.ok(failed.length > 0 && failed.every((l) => l.status === missing.status), JSON.stringify(failed));
  });
});
