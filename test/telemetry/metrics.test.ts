import { isDeprecatedName } from '../../src/telemetry/metric-names.ts';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server } from 'node:net';
import { after, test } from 'node:test';
import { PriorityLinkScheduler } from '../../src/scheduler/link-scheduler.ts';
import { HealthModel } from '../../src/telemetry/health.ts';
import { SluiceMetrics } from '../../src/telemetry/metrics.ts';
import { MetricsServer } from '../../src/telemetry/metrics-server.ts';
import { OTHER_MODEL } from '../../src/telemetry/request-stats.ts';
import { instrumentScheduler } from '../../src/telemetry/scheduler-telemetry.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, Listener, SegmentName } from '../../src/transport/types.ts';
import { parsePromText, sampleSum, sampleValue, scrape } from '../helpers/prom-text.ts';

const servers: MetricsServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(metrics: SluiceMetrics, health = new HealthModel()): Promise<string> {
  metrics.attachHealth(health);
  const server = new MetricsServer({ host: '127.0.0.1', port: 0, metrics, health });
  servers.push(server);
  const { port } = await server.listen();
  return `http://127.0.0.1:${port}`;
}

test('every metric is named sluice_* and documented in docs/operations.md with its type and labels', async () => {
  const { readFile } = await import('node:fs/promises');
  const doc = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8');
  const documented = new Map<string, { type: string; labels: string[] }>();
  for (const m of doc.matchAll(/^\|\s*`(sluice_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/gm)) {
    documented.set(m[1]!, { type: m[2]!, labels: m[3]!.split(',').map((l) => l.trim()).filter(Boolean) });
  }
  const m = new SluiceMetrics({ processMetrics: false });
  const registered = m.registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames: readonly string[] }[];
  assert.ok(registered.length >= 25, `only ${registered.length} metrics`);
  for (const r of registered) {
    assert.match(r.name, /^sluice_[a-z0-9_]+$/);
    if (isDeprecatedName(r.name)) {
      // Exported for one release under its old name: listed in the renamed-metrics table.
      assert.ok(doc.includes(`| \`${r.name}\` (`), `${r.name} is in the renamed-metrics table`);
      continue;
    }
    const d = documented.get(r.name);
    assert.ok(d !== undefined, `${r.name} is not in the docs/operations.md metric table`);
    assert.equal(d.type, r.type, `${r.name}: documented type`);
    assert.deepEqual(d.labels, [...r.labelNames], `${r.name}: documented labels`);
  }
  for (const d of documented.keys()) assert.ok(registered.some((r) => r.name === d), `${d} is documented but not registered`);
  // The process metrics are documented as one row of wildcards (`sluice_process_*`, ...).
  const wildcards = [...doc.matchAll(/^\|\s*(`sluice_[a-z0-9_]+\*`(?:,\s*`sluice_[a-z0-9_]+\*`)*)\s*\|/gm)].flatMap((w) => [...w[1]!.matchAll(/`(sluice_[a-z0-9_]+)\*`/g)].map((x) => x[1]!));
  assert.ok(wildcards.length > 0, 'the process metrics row is in the table');
  const withProcess = new SluiceMetrics();
  for (const x of withProcess.registry.getMetricsAsArray()) {
    if (documented.has(x.name) || isDeprecatedName(x.name)) continue;
    assert.ok(wildcards.some((w) => x.name.startsWith(w)), `${x.name} is neither in the table nor covered by its process-metrics row`);
  }
});

test('request counters and latency histograms appear and move with traffic', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  const before = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(before, 'sluice_requests_total', { model: 'simple' }), undefined);

  let inFlight = 1;
  metrics.setInFlightSource('ingress', () => inFlight);
  for (let i = 0; i < 50; i++) metrics.requests.record('grpc', 'inference', 'simple', 'OK', 0.0004 + i * 0.0001);
  metrics.requests.record('http', 'inference', 'simple', 503, 0.2);

  const s = await scrape(`${base}/metrics`);
  assert.equal(s.types.get('sluice_requests_total'), 'counter');
  assert.equal(s.types.get('sluice_request_duration_seconds'), 'histogram');
  assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' }), 50);
  assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'http', code: '503' }), 1);
  assert.equal(sampleValue(s, 'sluice_requests_in_flight', { stage: 'ingress' }), 1);
  const labels = { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' };
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_count', labels), 50);
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), 50);
  // 0.0004..0.0053: 2 values <= 0.0005, 7 <= 0.001 (float steps), all <= 0.01.
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...labels, le: '0.0005' }), 2);
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...labels, le: '0.01' }), 50);
  const sum = sampleValue(s, 'sluice_request_duration_seconds_sum', labels)!;
  assert.ok(Math.abs(sum - (50 * 0.0004 + 0.0001 * (49 * 50) / 2)) < 1e-9);

  metrics.requests.record('grpc', 'inference', 'simple', 'OK', 0.001);
  inFlight = 0;
  const s2 = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s2, 'sluice_requests_total', labels), 51);
  assert.equal(sampleValue(s2, 'sluice_requests_in_flight', { stage: 'ingress' }), 0);
});

test('client-chosen model names cannot blow up label cardinality', () => {
  const metrics = new SluiceMetrics({ processMetrics: false, maxModels: 3 });
  for (let i = 0; i < 10; i++) metrics.requests.record('http', 'inference', `m${i}`, 404, 0.001);
  const models = new Set([...metrics.requests.all()].map((s) => s.model));
  assert.deepEqual([...models].sort(), ['_other', 'm0', 'm1', 'm2'].sort());
  assert.equal(OTHER_MODEL, '_other');
});

async function tcpPair(metrics: SluiceMetrics, segment: SegmentName, via?: (port: number) => Promise<number>): Promise<{ client: Link; server: Link; listener: Listener }> {
  const key = randomBytes(32);
  const tuning = { link: { scheduler: instrumentScheduler((o) => new PriorityLinkScheduler(o), metrics.segmentQueues(segment)), frameBytes: { control: 16384, inference: 16384, training: 16384 } } };
  const listener = await new TcpTransport(tuning).listen({ segment, host: '127.0.0.1', port: 0, segmentKey: key });
  metrics.links.watchListener(listener, segment);
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const port = via === undefined ? listener.address.port : await via(listener.address.port);
  const client = await new TcpTransport(tuning).connect({ segment, host: '127.0.0.1', port, segmentKey: key });
  const [server] = await accepted;
  metrics.links.add(client);
  metrics.links.add(server);
  return { client, server, listener };
}

function receive(link: Link, n: number): Promise<InboundMessage[]> {
  const got: InboundMessage[] = [];
  return new Promise((resolve) => {
    const on = (m: InboundMessage): void => {
      got.push(m);
      if (got.length === n) {
        link.off('message', on);
        resolve(got);
      }
    };
    link.on('message', on);
  });
}

test('link bytes by segment, direction and transport come from real links and survive their close', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  const { client, server, listener } = await tcpPair(metrics, 'inference');
  const got = receive(server, 10);
  for (let i = 0; i < 10; i++) client.send({ cls: 'inference', kind: 1, streamId: i + 1, body: Buffer.alloc(1000, i) });
  await got;
  const reply = receive(client, 1);
  server.send({ cls: 'inference', kind: 2, streamId: 1, body: Buffer.alloc(5000) });
  await reply;

  const cs = client.stats();
  const ss = server.stats();
  let s = await scrape(`${base}/metrics`);
  const tx = sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' })!;
  const rx = sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'rx', transport: 'tcp' })!;
  assert.equal(tx, cs.bytesSent + ss.bytesSent);
  assert.equal(rx, cs.bytesReceived + ss.bytesReceived);
  assert.ok(tx >= 10 * 1000 + 5000, `tx ${tx} covers the payloads`);
  assert.equal(tx, rx, 'both ends are in this process: what one sent the other received');
  assert.equal(sampleValue(s, 'sluice_link_messages_total', { segment: 'inference', direction: 'tx', transport: 'tcp' }), 11);
  assert.ok(sampleValue(s, 'sluice_link_frames_total', { segment: 'inference', direction: 'rx', transport: 'tcp' })! >= 11);
  assert.equal(sampleValue(s, 'sluice_links_open', { segment: 'inference', transport: 'tcp' }), 2);
  assert.equal(sampleValue(s, 'sluice_link_connects_total', { segment: 'inference', transport: 'tcp' }), 2);
  assert.equal(sampleValue(s, 'sluice_queue_depth', { segment: 'inference', class: 'inference' }), 0, 'everything sent has left the queue');
  assert.equal(sampleValue(s, 'sluice_scheduling_delay_seconds_count', { segment: 'inference', class: 'inference' }), 11, 'one delay per message sent');

  await client.close('test done');
  await once(server, 'close');
  await listener.close();
  s = await scrape(`${base}/metrics`);
  assert.ok(sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' })! >= tx, 'counters kept after close');
  assert.equal(sampleValue(s, 'sluice_links_open', { segment: 'inference', transport: 'tcp' }), 0);
  assert.equal(sampleValue(s, 'sluice_link_queued_bytes', { segment: 'inference', transport: 'tcp' }), 0);
  assert.equal(sampleValue(s, 'sluice_link_closes_total', { segment: 'inference', transport: 'tcp', by: 'local' }), 1);
  assert.equal(sampleValue(s, 'sluice_link_closes_total', { segment: 'inference', transport: 'tcp', by: 'peer' }), 1);
  assert.equal(sampleValue(s, 'sluice_link_closes_total', { segment: 'inference', transport: 'tcp', by: 'error' }), 0);
});

test('queue depth and bytes by class rise while a reader stalls and fall when it catches up', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  const { client, server, listener } = await tcpPair(metrics, 'training');
  try {
    server.pause();
    const chunk = Buffer.alloc(1 << 20);
    let sent = 0;
    while (client.send({ cls: 'training', kind: 3, streamId: 1 + (sent % 4), body: chunk })) sent++;
    sent++;
    const s = await scrape(`${base}/metrics`);
    assert.ok(sampleValue(s, 'sluice_queue_depth', { segment: 'training', class: 'training' })! >= 1);
    assert.ok(sampleValue(s, 'sluice_queue_bytes', { segment: 'training', class: 'training' })! > 0);
    assert.ok(sampleValue(s, 'sluice_link_queued_bytes', { segment: 'training', transport: 'tcp' })! > 0);
    const all = receive(server, sent);
    server.resume();
    await all;
    const after = await scrape(`${base}/metrics`);
    assert.equal(sampleValue(after, 'sluice_queue_depth', { segment: 'training', class: 'training' }), 0);
    assert.equal(sampleValue(after, 'sluice_queue_bytes', { segment: 'training', class: 'training' }), 0);
    assert.equal(sampleValue(after, 'sluice_scheduling_delay_seconds_count', { segment: 'training', class: 'training' }), sent);
  } finally {
    await client.close();
    await listener.close();
  }
});

test('a tampered frame is counted as a crypto rejection; a wrong key as a failed handshake', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  // A proxy that flips one bit in the middle of the first large client->server chunk (a data frame).
  let flipped = false;
  const proxies: Server[] = [];
  const via = async (port: number): Promise<number> => {
    const proxy = createServer((inbound) => {
      const out = connect({ host: '127.0.0.1', port });
      inbound.on('data', (d: Buffer) => {
        if (!flipped && d.length >= 2000) {
          d[d.length >> 1]! ^= 0x01;
          flipped = true;
        }
        out.write(d);
      });
      out.pipe(inbound);
      const end = (): void => {
        inbound.destroy();
        out.destroy();
      };
      inbound.on('error', end).on('close', end);
      out.on('error', end).on('close', end);
    });
    proxies.push(proxy);
    proxy.listen(0, '127.0.0.1');
    await once(proxy, 'listening');
    return (proxy.address() as { port: number }).port;
  };
  const { client, server, listener } = await tcpPair(metrics, 'inference', via);
  const closed = once(server, 'close') as Promise<[LinkCloseInfo]>;
  client.send({ cls: 'inference', kind: 1, streamId: 1, body: Buffer.alloc(4096, 7) });
  const [info] = await closed;
  assert.equal(info.by, 'error');
  assert.equal((info.error as { code?: string }).code, 'SLUICE_ERR_WIRE_AUTH');
  await once(client, 'close');
  let s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_crypto_rejections_total', { segment: 'inference', reason: 'auth_tag' }), 1);
  assert.equal(sampleValue(s, 'sluice_link_rejected_frames_total', { segment: 'inference', transport: 'tcp' }), 1);
  assert.equal(sampleValue(s, 'sluice_link_closes_total', { segment: 'inference', transport: 'tcp', by: 'error' }), 1);

  const wrong = new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port: listener.address.port, segmentKey: randomBytes(32) });
  await assert.rejects(wrong, (err: Error & { code?: string }) => {
    metrics.links.connectFailed('inference', err);
    return err.code === 'SLUICE_ERR_HANDSHAKE_AUTH';
  });
  await waitFor(async () => sampleValue(await scrape(`${base}/metrics`), 'sluice_handshake_failures_total', { segment: 'inference', code: 'auth' }) === 2);
  s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_crypto_rejections_total', { segment: 'inference', reason: 'handshake_auth' }), 2, 'both ends count the refused handshake');
  await listener.close();
  for (const p of proxies) p.close();
});

async function waitFor(cond: () => Promise<boolean>, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail('condition not met in time');
}

test('queues, scheduling delay, bulk share, rejections and RDMA sources', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  let share = 0.5;
  metrics.addQueueSource({ segment: 'training', snapshot: () => ({ depth: { training: 7, inference: 1 }, bytes: { training: 7 << 20 }, bulkShare: share }) });
  const removeQ = metrics.addQueueSource({ segment: 'training', snapshot: () => ({ depth: { training: 3 }, bytes: {}, bulkShare: 0.9 }) });
  const delay = metrics.schedulingDelay('inference', 'inference');
  assert.equal(metrics.schedulingDelay('inference', 'inference'), delay, 'one shared histogram per segment and class');
  delay.observe(0.00002);
  delay.observe(0.003);
  metrics.rejections.crypto('inference', 'auth_tag');
  metrics.rejections.crypto('inference', 'auth_tag');
  metrics.rejections.policy('training', 'cross_segment');
  metrics.rejections.auth('jwt', 'expired');
  const rdma = { completions: { send: 10, recv: 12 } as Record<string, number>, completionErrors: { 'retry counter exceeded': 1 } as Record<string, number>, registeredBytes: 64 << 20, queuePairs: 2 };
  const removeRdma = metrics.addRdmaSource({ device: 'rxe0', snapshot: () => rdma });

  let s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_queue_depth', { segment: 'training', class: 'training' }), 10);
  assert.equal(sampleValue(s, 'sluice_queue_depth', { segment: 'training', class: 'inference' }), 1);
  assert.equal(sampleValue(s, 'sluice_queue_bytes', { segment: 'training', class: 'training' }), 7 << 20);
  assert.ok(Math.abs(sampleValue(s, 'sluice_bulk_share', { segment: 'training' })! - 0.7) < 1e-9);
  assert.equal(sampleValue(s, 'sluice_scheduling_delay_seconds_count', { segment: 'inference', class: 'inference' }), 2);
  assert.equal(sampleValue(s, 'sluice_scheduling_delay_seconds_bucket', { segment: 'inference', class: 'inference', le: '0.000025' }), 1);
  assert.equal(sampleValue(s, 'sluice_crypto_rejections_total', { segment: 'inference', reason: 'auth_tag' }), 2);
  assert.equal(sampleValue(s, 'sluice_policy_rejections_total', { segment: 'training', reason: 'cross_segment' }), 1);
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'jwt', reason: 'expired' }), 1);
  assert.equal(sampleValue(s, 'sluice_rdma_completions_total', { device: 'rxe0', opcode: 'recv' }), 12);
  assert.equal(sampleValue(s, 'sluice_rdma_completion_errors_total', { device: 'rxe0', status: 'retry counter exceeded' }), 1);
  assert.equal(sampleValue(s, 'sluice_rdma_registered_bytes', { device: 'rxe0' }), 64 << 20);
  assert.equal(sampleValue(s, 'sluice_rdma_queue_pairs', { device: 'rxe0' }), 2);

  share = 0.1;
  removeQ();
  rdma.completions.send = 15;
  removeRdma(); // device closed: its counts stay in the totals, its gauges go
  s = await scrape(`${base}/metrics`);
  assert.ok(Math.abs(sampleValue(s, 'sluice_bulk_share', { segment: 'training' })! - 0.1) < 1e-9);
  assert.equal(sampleValue(s, 'sluice_queue_depth', { segment: 'training', class: 'training' }), 7);
  assert.equal(sampleValue(s, 'sluice_rdma_completions_total', { device: 'rxe0', opcode: 'send' }), 15);
  assert.equal(sampleValue(s, 'sluice_rdma_registered_bytes', { device: 'rxe0' }), undefined);
  const again = { completions: { send: 1 }, completionErrors: {}, registeredBytes: 1, queuePairs: 1 };
  metrics.addRdmaSource({ device: 'rxe0', snapshot: () => again });
  s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_rdma_completions_total', { device: 'rxe0', opcode: 'send' }), 16, 'a reopened device continues the total');
});

test('the ops listener serves readiness, liveness and detail from the health model', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const health = new HealthModel();
  const base = await serve(metrics, health);
  const upstream = health.register('upstream:simple', { kind: 'upstream' });

  let r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /not ready: starting/);
  health.markStarted();
  r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /upstream:simple \(starting\)/);
  upstream.up();
  r = await fetch(`${base}/readyz`);
  assert.equal(r.status, 200);
  assert.equal(sampleValue(await scrape(`${base}/metrics`), 'sluice_ready'), 1);
  upstream.down('connection refused');
  r = await fetch(`${base}/health`);
  assert.equal(r.status, 503);
  const detail = (await r.json()) as { ready: boolean; components: { name: string; up: boolean; detail: string }[] };
  assert.equal(detail.ready, false);
  assert.deepEqual(detail.components.map((c) => [c.name, c.up, c.detail]), [['upstream:simple', false, 'connection refused']]);
  const s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_ready'), 0);
  assert.equal(sampleValue(s, 'sluice_component_up', { component: 'upstream:simple', kind: 'upstream' }), 0);

  assert.equal((await fetch(`${base}/livez`)).status, 200);
  health.markFatal('verbs device lost');
  r = await fetch(`${base}/livez`);
  assert.equal(r.status, 503);
  assert.match(await r.text(), /verbs device lost/);
  assert.equal((await fetch(`${base}/nope`)).status, 404);
  assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
  assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 200);
});

test('a collect() that throws turns the scrape into a 500, not a crash', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const errors: unknown[] = [];
  const health = new HealthModel();
  metrics.attachHealth(health);
  const server = new MetricsServer({ host: '127.0.0.1', port: 0, metrics, health, onError: (e) => errors.push(e) });
  servers.push(server);
  const { port } = await server.listen();
  metrics.addQueueSource({ segment: 'inference', snapshot: () => { throw new Error('scheduler gone'); } });
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 500);
  assert.equal(errors.length, 1);
});

test('the exposition text parses line by line', async () => {
  const metrics = new SluiceMetrics();
  metrics.requests.record('websocket', 'inference', 'we"ird\\model', 200, 0.01);
  const text = await metrics.render();
  const parsed = parsePromText(text);
  assert.equal(sampleValue(parsed, 'sluice_requests_total', { model: 'we"ird\\model' }), 1);
  assert.ok(sampleSum(parsed, 'sluice_process_resident_memory_bytes') > 0);
});

test('security events count as auth and policy rejections and still reach the next sink', async () => {
  const { countingEventSink } = await import('../../src/telemetry/security-event-metrics.ts');
  const metrics = new SluiceMetrics({ processMetrics: false });
  const seen: string[] = [];
  const sink = countingEventSink(metrics.rejections, { emit: (e) => seen.push(e.type) });
  const ev = (type: string, actor = 'anonymous', detail?: Record<string, unknown>, outcome: 'denied' | 'success' | 'failure' = 'denied') => ({
    type,
    tenant: null,
    requestId: null,
    actor,
    outcome,
    ...(detail !== undefined ? { detail } : {}),
  });
  sink.emit(ev('tls.client_refused'));
  sink.emit(ev('tls.client_refused'));
  sink.emit(ev('tls.handshake_failed', 'remote:1.2.3.4:5', { suppressed_since_last: 3 }));
  sink.emit(ev('auth.failed', 'unauthenticated', { code: 'SLUICE_ERR_UNAUTHENTICATED', credential: 'none' }));
  sink.emit(ev('auth.failed', 'unauthenticated', { code: 'SLUICE_ERR_TOKEN_EXPIRED', credential: 'jwt' }));
  sink.emit(ev('auth.failed', 'key:k9', { code: 'SLUICE_ERR_UNAUTHENTICATED', credential: 'api_key' }));
  sink.emit(ev('auth.failed', 'unauthenticated', { code: 'not a code <script>', credential: 'x' }));
  sink.emit(ev('policy.denied', 'key:k1', { code: 'SLUICE_ERR_PERMISSION_DENIED' }));
  sink.emit(ev('policy.denied', 'tenant-id:7', { gate: 'egress', code: 'SLUICE_ERR_TENANT_DENIED' }));
  sink.emit(ev('ratelimit.exceeded', 'key:k1'));
  sink.emit(ev('link.frame_rejected', 'peer:1.2.3.4'));
  sink.emit(ev('segment.violation', 'peer:1.2.3.4'));
  sink.emit(ev('tls.reload_failed', 'listener:http', undefined, 'failure'));
  const s = parsePromText(await metrics.render());
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'client_refused' }), 2);
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'mtls', reason: 'handshake_failed' }), 4, 'the summarised handshakes count too');
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'none', reason: 'unauthenticated' }), 1);
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'jwt', reason: 'token_expired' }), 1);
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'api_key', reason: 'unauthenticated' }), 1);
  assert.equal(sampleValue(s, 'sluice_auth_rejections_total', { method: 'none', reason: 'failed' }), 1, 'unknown codes and kinds never become labels');
  assert.equal(sampleValue(s, 'sluice_policy_rejections_total', { segment: 'client', reason: 'permission_denied' }), 1);
  assert.equal(sampleValue(s, 'sluice_policy_rejections_total', { segment: 'inference', reason: 'tenant_denied' }), 1);
  assert.equal(sampleValue(s, 'sluice_policy_rejections_total', { segment: 'client', reason: 'rate_limited' }), 1);
  assert.equal(sampleSum(s, 'sluice_crypto_rejections_total'), 0, 'link refusals are counted by the link tracker, not twice');
  assert.equal(sampleSum(s, 'sluice_policy_rejections_total'), 3, 'segment violations are counted by the link tracker, not twice');
  assert.equal(seen.length, 13, 'every event is passed on');
});

test('RDMA device counters kept by the verbs channels are exported per device', async () => {
  const { rdmaDeviceStats } = await import('../../src/telemetry/rdma-stats.ts');
  const metrics = new SluiceMetrics({ processMetrics: false });
  const dev = rdmaDeviceStats('test-rxe9');
  dev.completions.send! += 3;
  dev.completions.recv! += 5;
  dev.error('IBV_WC_RETRY_EXC_ERR');
  dev.registeredBytes += 1 << 20;
  dev.queuePairs += 1;
  let s = parsePromText(await metrics.render());
  assert.equal(sampleValue(s, 'sluice_rdma_completions_total', { device: 'test-rxe9', opcode: 'recv' }), 5);
  assert.equal(sampleValue(s, 'sluice_rdma_completion_errors_total', { device: 'test-rxe9', status: 'IBV_WC_RETRY_EXC_ERR' }), 1);
  assert.equal(sampleValue(s, 'sluice_rdma_registered_bytes', { device: 'test-rxe9' }), 1 << 20);
  dev.completions.send! += 1;
  s = parsePromText(await metrics.render());
  assert.equal(sampleValue(s, 'sluice_rdma_completions_total', { device: 'test-rxe9', opcode: 'send' }), 4);
});
