// Spans and upstream/link metrics of the native engine, with real `sluice serve` processes: an
// ingress node whose gRPC listener is the engine's and an egress node on the engine, both with
// tracing on (telemetry.otlp to a real OTLP/HTTP receiver), in front of a gRPC model server
// (node:http2 here) that records the traceparent each call brings.
//  - a traced call yields ingress + link (ingress node) and egress + upstream (egress node) with
//    the parent chain client -> ingress -> {link, egress -> upstream}, and the model server sees
//    a traceparent naming the upstream span;
//  - no traceparent: a new trace, same chain; malformed ones (bad hex, upper case, version ff,
//    version 00 with an extra field, zero ids): ignored, a new trace, as the TypeScript path;
//  - an unsampled caller (flags 00): no spans, and its traceparent reaches the model server
//    unchanged;
//  - sluice_upstream_request_duration_seconds at the egress counts every call, and the link
//    metrics are labelled by peer (the ingress's peer name, the egress's remote host).
//  - a TypeScript ingress (SLUICE_ENGINE_INGRESS=0) in front of the same engine egress: the
//    engine egress continues its trace too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { after, describe, test } from 'node:test';
import { startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { attr, otlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.ts';
import { sampleSum, sampleValue, scrape } from '../helpers/prom-text.ts';

const processes: SluiceProcess[] = [];
let receiver: OtlpReceiver | undefined;
let models: http2.Http2Server | undefined;
after(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  receiver?.close();
  models?.close();
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A gRPC model server: ServerReady says ready, every other method answers an empty message; records each call's traceparent by x-request-id. */
async function modelServer(): Promise<{ address: string; seen: Map<string, string | undefined> }> {
  const seen = new Map<string, string | undefined>();
  models = http2.createServer();
  models.on('stream', (stream, headers) => {
    const path = String(headers[':path']);
    const rid = headers['x-request-id'];
    if (typeof rid === 'string') seen.set(rid, headers.traceparent as string | undefined);
    stream.on('data', () => {});
    stream.on('end', () => {
      // ServerReadyResponse { ready: true } or an empty ModelInferResponse, gRPC-framed.
      const body = path.endsWith('/ServerReady') ? Buffer.from([8, 1]) : Buffer.alloc(0);
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  await new Promise<void>((r) => models!.listen(0, '127.0.0.1', r));
  return { address: `127.0.0.1:${(models.address() as { port: number }).port}`, seen };
}

async function start(config: object, name: string): Promise<SluiceProcess> {
  const p = await startSluice(config, { name });
  processes.push(p);
  return p;
}

const request = {
  modelName: 'simple',
  inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 4], contents: { intContents: [1, 2, 3, 4] } }],
};

describe('native engine spans and upstream metrics', { timeout: 180_000 }, () => {
  test('traced calls through an engine pair: parent chain, model server traceparent, malformed headers, metrics by peer', async () => {
    const otlp = (receiver = await otlpReceiver());
    const ms = await modelServer();
    const telemetry = { otlp: { endpoint: otlp.url } };
    const key = randomBytes(32).toString('base64');
    const egress = await start(
      {
        node: { name: 'egress' },
        listeners: { metrics: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
        routes: [{ model: '*', upstreams: [{ address: ms.address }] }],
        telemetry,
      },
      'egress',
    );
    const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
    const ingress = await start(
      {
        node: { name: 'ingress' },
        listeners: { grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress-a', segment: 'inference', host, port: Number(port) }],
        routes: [{ model: '*', peers: ['egress-a'] }],
        telemetry,
      },
      'ingress',
    );
    // Both roles are on the engine, tracing notwithstanding.
    assert.ok(ingress.logs.some((l) => l.listener === 'grpc' && l.path === 'engine'), 'the gRPC ingress is the engine');
    assert.ok(egress.logs.some((l) => l.listener === 'segment' && l.engine === true), 'the egress is the engine');

    const kc = new KserveClient(ingress.endpoints.grpc!);
    const clientTrace = randomBytes(16).toString('hex');
    const clientSpan = randomBytes(8).toString('hex');
    const unsampled = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`;
    const malformed: Record<string, string> = {
      'bad-hex': `00-${'g'.repeat(32)}-${clientSpan}-01`,
      'upper-case': `00-${clientTrace.toUpperCase()}-${clientSpan}-01`,
      'version-ff': `ff-${clientTrace}-${clientSpan}-01`,
      'v00-extra': `00-${clientTrace}-${clientSpan}-01-extra`,
      'zero-trace': `00-${'0'.repeat(32)}-${clientSpan}-01`,
      'zero-span': `00-${clientTrace}-${'0'.repeat(16)}-01`,
      short: `00-${clientTrace}-${clientSpan}-1`,
    };
    // The retries of the link coming up: the first call may find no link yet.
    for (let i = 0; ; i++) {
      try {
        await kc.infer(request, { requestId: 'warm-up' });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await sleep(100);
      }
    }
    await kc.infer(request, { requestId: 'traced', metadata: { traceparent: `00-${clientTrace}-${clientSpan}-01` } });
    await kc.infer(request, { requestId: 'fresh' });
    for (const [rid, tp] of Object.entries(malformed)) await kc.infer(request, { requestId: rid, metadata: { traceparent: tp } });
    await kc.infer(request, { requestId: 'unsampled', metadata: { traceparent: unsampled } });
    const calls = 3 + Object.keys(malformed).length;
    kc.close();

    // Spans arrive in the 1 s batch exports of both processes.
    const ingressOf = (rid: string) => otlp.spans.find((s) => s.name === 'ingress' && attr(s, 'sluice.request_id') === rid);
    const traced = ['traced', 'fresh', ...Object.keys(malformed)];
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      if (traced.every((rid) => { const t = ingressOf(rid)?.traceId; return t !== undefined && otlp.spans.filter((s) => s.traceId === t).length >= 4; })) break;
      await sleep(100);
    }
    for (const rid of traced) {
      const root = ingressOf(rid);
      assert.ok(root, `ingress span of ${rid}`);
      const inTrace = otlp.spans.filter((s) => s.traceId === root.traceId);
      const byName = new Map(inTrace.map((s) => [s.name, s]));
      assert.deepEqual([...byName.keys()].sort(), ['egress', 'ingress', 'link', 'upstream'], `spans of ${rid}`);
      assert.equal(inTrace.length, 4, `one span each for ${rid}`);
      const [ing, link, eg, up] = ['ingress', 'link', 'egress', 'upstream'].map((n) => byName.get(n)!);
      assert.equal(ing!.service, 'ingress');
      assert.equal(link!.service, 'ingress');
      assert.equal(eg!.service, 'egress');
      assert.equal(up!.service, 'egress');
      assert.equal(link!.parentSpanId, ing!.spanId);
      assert.equal(eg!.parentSpanId, ing!.spanId, `${rid}: the trace context crossed the segment`);
      assert.equal(up!.parentSpanId, eg!.spanId);
      // The model server was sent the upstream span's context.
      assert.equal(ms.seen.get(rid), `00-${root.traceId}-${up!.spanId}-01`, `${rid}: traceparent at the model server`);
      // The TypeScript path's attributes and kinds.
      assert.equal(attr(ing!, 'sluice.protocol'), 'grpc');
      assert.equal(attr(ing!, 'sluice.method'), 'ModelInfer');
      assert.equal(attr(ing!, 'sluice.model'), 'simple');
      assert.equal(attr(ing!, 'sluice.code'), 'OK');
      assert.equal(attr(link!, 'sluice.peer'), 'egress-a');
      assert.equal(attr(link!, 'sluice.attempts'), 1);
      assert.equal(attr(eg!, 'sluice.method'), 'ModelInfer');
      assert.equal(attr(up!, 'sluice.code'), 'OK');
      assert.deepEqual([ing!.kind, link!.kind, eg!.kind, up!.kind], [2, 3, 2, 3], 'SERVER, CLIENT, SERVER, CLIENT');
      // Times: the link and egress lie within the ingress span.
      const t = (s: typeof ing, k: 'startTimeUnixNano' | 'endTimeUnixNano') => BigInt(s![k]!);
      assert.ok(t(link, 'startTimeUnixNano') >= t(ing, 'startTimeUnixNano') && t(link, 'endTimeUnixNano') <= t(ing, 'endTimeUnixNano'), `${rid}: link within ingress`);
      assert.ok(t(up, 'startTimeUnixNano') >= t(eg, 'startTimeUnixNano') && t(up, 'endTimeUnixNano') <= t(eg, 'endTimeUnixNano'), `${rid}: upstream within egress`);
    }
    assert.equal(ingressOf('traced')!.traceId, clientTrace, "the client's trace is continued");
    assert.equal(ingressOf('traced')!.parentSpanId, clientSpan, "the ingress span's parent is the client's span");
    for (const rid of ['fresh', ...Object.keys(malformed)]) {
      assert.notEqual(ingressOf(rid)!.traceId, clientTrace, `${rid}: a new trace`);
      assert.equal(ingressOf(rid)!.parentSpanId ?? '', '', `${rid}: a root span`);
    }
    // The unsampled caller: no span anywhere, its header went on unchanged.
    assert.equal(ingressOf('unsampled'), undefined);
    assert.equal(otlp.spans.filter((s) => s.traceId === unsampled.slice(3, 35)).length, 0);
    assert.equal(ms.seen.get('unsampled'), unsampled);

    // Metrics: the upstream histogram counts every call the egress made; link series by peer.
    const es = await scrape(`http://${egress.endpoints.metrics!}/metrics`);
    assert.equal(sampleValue(es, 'sluice_upstream_request_duration_seconds_count', { model: 'simple', code: 'OK' }), calls + 1, 'every call, the warm-up included');
    assert.ok((sampleValue(es, 'sluice_link_bytes_total', { segment: 'inference', direction: 'rx', transport: 'tcp', peer: '127.0.0.1' }) ?? 0) > 0);
    const is = await scrape(`http://${ingress.endpoints.metrics!}/metrics`);
    assert.ok((sampleValue(is, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp', peer: 'egress-a' }) ?? 0) > 0);
    assert.ok((sampleValue(is, 'sluice_link_messages_total', { segment: 'inference', direction: 'tx', transport: 'tcp', peer: 'egress-a' }) ?? 0) >= calls + 1);
    for (const s of [es, is]) assert.equal(sampleSum(s, 'sluice_link_bytes_total', { peer: 'engine' }), 0, 'no peer="engine" series');

    // A TypeScript ingress (SLUICE_ENGINE_INGRESS=0) in front of the same engine egress: the
    // engine egress continues the TypeScript ingress's trace the same way.
    const tsIngress = await startSluice(
      {
        node: { name: 'ts-ingress' },
        listeners: { grpc: { host: '127.0.0.1', port: 0 } },
        segments: { inference: { transport: 'tcp', key } },
        peers: [{ name: 'egress-a', segment: 'inference', host, port: Number(port) }],
        routes: [{ model: '*', peers: ['egress-a'] }],
        telemetry,
      },
      { name: 'ts-ingress', env: { SLUICE_ENGINE_INGRESS: '0' } },
    );
    processes.push(tsIngress);
    assert.ok(tsIngress.logs.some((l) => l.listener === 'grpc' && l.path === 'typescript'), 'the TypeScript ingress');
    const tc = new KserveClient(tsIngress.endpoints.grpc!);
    for (let i = 0; ; i++) {
      try {
        await tc.infer(request, { requestId: 'from-ts', metadata: { traceparent: `00-${clientTrace}-${clientSpan}-01` } });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await sleep(100);
      }
    }
    tc.close();
    const until = Date.now() + 20_000;
    const fromTs = () => otlp.spans.filter((s) => s.traceId === clientTrace && attr(s, 'sluice.request_id') === 'from-ts');
    while (Date.now() < until && fromTs().length < 4) await sleep(100);
    const byName = new Map(fromTs().map((s) => [s.name, s]));
    assert.deepEqual([...byName.keys()].sort(), ['egress', 'ingress', 'upstream'], 'ingress (TypeScript), egress and upstream (engine) carry the request id');
    assert.equal(byName.get('ingress')!.service, 'ts-ingress');
    assert.equal(byName.get('egress')!.parentSpanId, byName.get('ingress')!.spanId, 'the engine egress continues the TypeScript ingress span');
    assert.equal(byName.get('upstream')!.parentSpanId, byName.get('egress')!.spanId);
    assert.equal(ms.seen.get('from-ts'), `00-${clientTrace}-${byName.get('upstream')!.spanId}-01`);
  });
});
