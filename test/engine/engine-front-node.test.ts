// A node whose gRPC ingress runs on the native engine serves HTTP and WebSocket inference over
// the engine's links too: one link set to its egress peer. The egress here is the TypeScript
// link implementation in this process (the interop reference), answering ModelInfer with a real
// ModelInferResponse, and dropping the link on request (model "drop-link") to show that link
// loss during an HTTP call gives the same problem as with the TypeScript links. The access log is
// on: the engine still serves the gRPC port and its per-call records become the same lines.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { encodeMessage } from '../../src/kserve/proto.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, Listener } from '../../src/transport/types.ts';
import { decodeCall, encodeReplyHeader, InferenceKind } from '../../src/wire/inference-envelope.ts';
import { startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { sampleValue, scrape } from '../helpers/prom-text.ts';

const key = randomBytes(32);
let listener: Listener;
let node: SluiceProcess;
const accepted: Link[] = [];

before(async () => {
  listener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key });
  listener.on('link', (link: Link) => {
    accepted.push(link);
    link.on('message', (m: InboundMessage) => {
      if (m.kind !== InferenceKind.CALL) return;
      const call = decodeCall(m.body);
      if (call.model === 'drop-link') {
        void link.close('egress goes away');
        return;
      }
      const response = encodeMessage('ModelInferResponse', {
        modelName: call.model,
        modelVersion: '1',
        id: call.requestId,
        outputs: [{ name: 'OUTPUT0', datatype: 'INT32', shape: [1], contents: { intContents: [42] } }],
        rawOutputContents: [],
      });
      link.send({
        cls: 'inference',
        kind: InferenceKind.REPLY,
        streamId: m.streamId,
        tenant: m.tenant,
        body: [encodeReplyHeader({ status: 0, code: '', message: '', requestId: call.requestId }, call.envelopeVersion), response],
      });
    });
  });
  node = await startSluice(
    {
      node: { name: 'front' },
      listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key: key.toString('hex') } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: listener.address.port }],
      routes: [{ model: '*', peers: ['egress'] }],
      telemetry: { accessLog: true },
      log: { level: 'info' },
    },
    { name: 'front' },
  );
  const t0 = Date.now();
  while ((await fetch(`http://${node.endpoints.metrics}/readyz`)).status !== 200) {
    assert.ok(Date.now() - t0 < 20_000, 'node ready');
    await new Promise((r) => setTimeout(r, 50));
  }
});

after(async () => {
  await node?.stop();
  await listener?.close();
});

const infer = (model: string): Promise<Response> =>
  fetch(`http://${node.endpoints.http}/v2/models/${model}/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], data: [1] }] }),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(20_000),
  });

test('HTTP and WebSocket inference cross on the engine links: the egress sees one link, the node has no TypeScript link', async () => {
  assert.ok(node.logs.some((l) => l.path === 'engine' && l.listener === 'grpc'), 'the gRPC ingress runs on the engine');
  for (let i = 0; i < 5; i++) {
    const r = await infer('simple');
    assert.equal(r.status, 200);
    const body = (await r.json()) as { outputs: { data: number[] }[] };
    assert.deepEqual(body.outputs[0]!.data, [42]);
  }
  const ws = new WebSocket(`ws://${node.endpoints.http}/v2/models/simple/infer/stream`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
    ws.once('message', (d: Buffer) => resolve(JSON.parse(d.toString()) as Record<string, unknown>));
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ id: 'w1', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], data: [1] }] }));
  const a = (await answer) as { id: string; outputs: { data: number[] }[] };
  ws.close();
  // The fake egress answers with the CALL's request id as the response id.
  assert.match(a.id, /:1$/);
  assert.deepEqual(a.outputs[0]!.data, [42]);

  assert.equal(accepted.length, 1, 'one link to the egress peer');
  const s = await scrape(`http://${node.endpoints.metrics}/metrics`);
  const open = s.samples.filter((x) => x.name === 'sluice_links_open' && x.labels.segment === 'inference');
  assert.deepEqual(open.map((x) => [x.labels.peer, x.value]), [['egress', 1]], 'only the engine link set (by peer name)');
  assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'http', class: 'inference', model: 'simple', code: '200' }), 5);
  assert.equal(sampleValue(s, 'sluice_requests_in_flight', { stage: 'ingress' }), 0);
});

test('link loss during an HTTP call: 503 peer-unavailable (as with TypeScript links), then the link comes back', async () => {
  const r = await infer('drop-link');
  assert.equal(r.status, 503);
  assert.equal(r.headers.get('content-type'), 'application/problem+json');
  const p = (await r.json()) as Record<string, unknown>;
  assert.equal(p.type, 'urn:sluice:problem:peer-unavailable');
  assert.match(String(p.detail), /link to egress peer egress closed before the reply/);
  assert.equal(p.request_id, r.headers.get('x-request-id'));
  const t0 = Date.now();
  for (;;) {
    const again = await infer('simple');
    if (again.status === 200) break;
    assert.ok(Date.now() - t0 < 15_000, `still ${again.status}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(accepted.length, 2, 'the engine redialled');
});

test('the access log with the engine serving: fast-path gRPC lines from the engine records, HTTP lines from the gateway, same fields', async () => {
  const kc = new KserveClient(node.endpoints.grpc!);
  const A = Array.from({ length: 16 }, (_, i) => i);
  const req = { modelName: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } }] };
  await kc.infer(req, { requestId: 'acc-grpc-1' });
  kc.close();
  const r = await fetch(`http://${node.endpoints.http}/v2/models/simple/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], data: [1] }] }),
    headers: { 'content-type': 'application/json', 'x-request-id': 'acc-http-1' },
  });
  assert.equal(r.status, 200);
  await r.arrayBuffer();
  const t0 = Date.now();
  const line = (rid: string) => node.logs.find((l) => l.msg === 'access' && l.request_id === rid);
  while ((line('acc-grpc-1') === undefined || line('acc-http-1') === undefined) && Date.now() - t0 < 5000) await new Promise((res) => setTimeout(res, 20));
  const g = line('acc-grpc-1')!;
  const h = line('acc-http-1')!;
  assert.ok(g !== undefined && h !== undefined, 'both lines written');
  for (const l of [g, h]) {
    assert.equal(l.component, 'access');
    for (const k of ['request_id', 'tenant', 'model', 'protocol', 'method', 'status', 'code', 'bytes_in', 'bytes_out', 'total_ms', 'queue_ms', 'upstream_ms', 'peer', 'attempts']) assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
    assert.equal(l.peer, 'egress');
    assert.equal(l.attempts, 1);
    assert.ok((l.upstream_ms as number) > 0 && (l.upstream_ms as number) <= (l.total_ms as number), JSON.stringify(l));
    assert.ok((l.queue_ms as number) >= 0 && (l.queue_ms as number) <= (l.total_ms as number), JSON.stringify(l));
    assert.ok((l.bytes_in as number) > 0 && (l.bytes_out as number) > 0, JSON.stringify(l));
  }
  assert.deepEqual([g.protocol, g.method, g.status, g.code, g.model, g.tenant], ['grpc', 'ModelInfer', 0, 'OK', 'simple', 0]);
  assert.deepEqual([h.protocol, h.status, h.code], ['http', 200, '']);
  assert.ok(node.logs.some((l) => l.path === 'engine' && l.listener === 'grpc'), 'the access log does not move the port off the engine');
});
