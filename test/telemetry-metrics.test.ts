import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, test } from 'node:test';
import { HealthModel } from '../src/telemetry/health.ts';
import { SluiceMetrics } from '../src/telemetry/metrics.ts';
import { MetricsServer } from '../src/telemetry/metrics-server.ts';
import { OTHER_MODEL } from '../src/telemetry/request-stats.ts';
import type { Link, LinkStats, OutboundMessage, SegmentName, TransportKind } from '../src/transport/types.ts';
import { parsePromText, sampleSum, sampleValue, scrape } from './helpers/prom-text.ts';

// A link whose counters the test drives; it stands in for a transport (not under test here) and
// keeps its stats the way every transport must: plain numbers updated where traffic happens.
class CountingLink extends EventEmitter implements Link {
  static next = 0;
  readonly id = `test-${CountingLink.next++}`;
  readonly remoteAddress = '127.0.0.1:1';
  closed = false;
  readonly s: LinkStats = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, queuedBytes: 0, rejectedFrames: 0 };
  constructor(
    readonly segment: SegmentName,
    readonly transport: TransportKind,
  ) {
    super();
  }
  send(msg: OutboundMessage): boolean {
    const body = Array.isArray(msg.body) ? Buffer.concat(msg.body) : (msg.body as Buffer);
    this.s.messagesSent++;
    this.s.framesSent++;
    this.s.bytesSent += body.length + 32;
    return true;
  }
  receive(bytes: number): void {
    this.s.messagesReceived++;
    this.s.framesReceived++;
    this.s.bytesReceived += bytes;
  }
  async close(): Promise<void> {
    this.closed = true;
    this.emit('close', undefined);
  }
  fail(err: Error): void {
    this.closed = true;
    this.emit('close', err);
  }
  stats(): LinkStats {
    return { ...this.s };
  }
}

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
  const doc = await readFile(new URL('../docs/operations.md', import.meta.url), 'utf8');
  const documented = new Map<string, { type: string; labels: string[] }>();
  for (const m of doc.matchAll(/^\|\s*`(sluice_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|/gm)) {
    documented.set(m[1]!, { type: m[2]!, labels: m[3]!.split(',').map((l) => l.trim()).filter(Boolean) });
  }
  const m = new SluiceMetrics({ processMetrics: false });
  const registered = m.registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames: readonly string[] }[];
  assert.ok(registered.length >= 25, `only ${registered.length} metrics`);
  for (const r of registered) {
    assert.match(r.name, /^sluice_[a-z0-9_]+$/);
    const d = documented.get(r.name);
    assert.ok(d !== undefined, `${r.name} is not in the docs/operations.md metric table`);
    assert.equal(d.type, r.type, `${r.name}: documented type`);
    assert.deepEqual(d.labels, [...r.labelNames], `${r.name}: documented labels`);
  }
  for (const d of documented.keys()) assert.ok(registered.some((r) => r.name === d), `${d} is documented but not registered`);
  const withProcess = new SluiceMetrics();
  assert.ok(withProcess.registry.getMetricsAsArray().every((x) => x.name.startsWith('sluice_')), 'process metrics carry the sluice_ prefix');
});

test('request counters and latency histograms appear and move with traffic', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  const before = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(before, 'sluice_requests_total', { model: 'simple' }), undefined);

  for (let i = 0; i < 50; i++) {
    metrics.requests.begin();
    metrics.requests.record('grpc', 'inference', 'simple', 'OK', 0.0004 + i * 0.0001);
  }
  metrics.requests.begin();
  metrics.requests.record('http', 'inference', 'simple', 503, 0.2);
  metrics.requests.begin(); // one still in flight

  const s = await scrape(`${base}/metrics`);
  assert.equal(s.types.get('sluice_requests_total'), 'counter');
  assert.equal(s.types.get('sluice_request_duration_seconds'), 'histogram');
  assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' }), 50);
  assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'http', code: '503' }), 1);
  assert.equal(sampleValue(s, 'sluice_requests_in_flight'), 1);
  const labels = { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' };
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_count', labels), 50);
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...labels, le: '+Inf' }), 50);
  // 0.0004..0.0053: 2 values <= 0.0005, 7 <= 0.001 (float steps), all <= 0.01.
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...labels, le: '0.0005' }), 2);
  assert.equal(sampleValue(s, 'sluice_request_duration_seconds_bucket', { ...labels, le: '0.01' }), 50);
  const sum = sampleValue(s, 'sluice_request_duration_seconds_sum', labels)!;
  assert.ok(Math.abs(sum - (50 * 0.0004 + 0.0001 * (49 * 50) / 2)) < 1e-9);

  metrics.requests.record('grpc', 'inference', 'simple', 'OK', 0.001);
  const s2 = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s2, 'sluice_requests_total', labels), 51);
  assert.equal(sampleValue(s2, 'sluice_requests_in_flight'), 0);
});

test('client-chosen model names cannot blow up label cardinality', () => {
  const metrics = new SluiceMetrics({ processMetrics: false, maxModels: 3 });
  for (let i = 0; i < 10; i++) metrics.requests.record('http', 'inference', `m${i}`, 404, 0.001, false);
  const models = new Set([...metrics.requests.all()].map((s) => s.model));
  assert.deepEqual([...models].sort(), ['_other', 'm0', 'm1', 'm2'].sort());
  assert.equal(OTHER_MODEL, '_other');
});

test('link bytes by segment, direction and transport are read from LinkStats and survive link close', async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  const base = await serve(metrics);
  const inf = new CountingLink('inference', 'tcp');
  const trn = new CountingLink('training', 'rdma');
  metrics.links.add(inf);
  metrics.links.add(trn);
  for (let i = 0; i < 10; i++) inf.send({ cls: 'inference', kind: 1, streamId: i + 1, body: Buffer.alloc(1000) });
  inf.receive(5000);
  trn.send({ cls: 'training', kind: 2, streamId: 1, body: [Buffer.alloc(4096), Buffer.alloc(4096)] });
  inf.s.queuedBytes = 777;
  inf.s.rejectedFrames = 2;

  let s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' }), 10 * 1032);
  assert.equal(sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'rx', transport: 'tcp' }), 5000);
  assert.equal(sampleValue(s, 'sluice_link_bytes_total', { segment: 'training', direction: 'tx', transport: 'rdma' }), 8192 + 32);
  assert.equal(sampleValue(s, 'sluice_link_messages_total', { segment: 'inference', direction: 'tx', transport: 'tcp' }), 10);
  assert.equal(sampleValue(s, 'sluice_link_queued_bytes', { segment: 'inference', transport: 'tcp' }), 777);
  assert.equal(sampleValue(s, 'sluice_links_open', { segment: 'inference', transport: 'tcp' }), 1);
  assert.equal(sampleValue(s, 'sluice_link_rejected_frames_total', { segment: 'inference', transport: 'tcp' }), 2);

  await inf.close();
  trn.fail(new Error('peer reset'));
  s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' }), 10 * 1032, 'counter kept after close');
  assert.equal(sampleValue(s, 'sluice_link_queued_bytes', { segment: 'inference', transport: 'tcp' }), 0, 'gauge only counts open links');
  assert.equal(sampleValue(s, 'sluice_links_open', { segment: 'inference', transport: 'tcp' }), 0);
  assert.equal(sampleValue(s, 'sluice_link_closes_total', { segment: 'inference', transport: 'tcp', result: 'clean' }), 1);
  assert.equal(sampleValue(s, 'sluice_link_closes_total', { segment: 'training', transport: 'rdma', result: 'error' }), 1);

  const again = new CountingLink('inference', 'tcp');
  metrics.links.add(again);
  again.send({ cls: 'inference', kind: 1, streamId: 1, body: Buffer.alloc(68) });
  s = await scrape(`${base}/metrics`);
  assert.equal(sampleValue(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' }), 10 * 1032 + 100);
  assert.equal(sampleValue(s, 'sluice_link_connects_total', { segment: 'inference', transport: 'tcp' }), 2);
});

test('queues, scheduling delay, bulk share, rejections, RDMA and connection sources', async () => {
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
  metrics.addConnectionSource({ protocol: 'grpc', count: () => 4 });
  metrics.addConnectionSource({ protocol: 'grpc', count: () => 1 });

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
  assert.equal(sampleValue(s, 'sluice_client_connections', { protocol: 'grpc' }), 5);

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
  metrics.requests.record('websocket', 'inference', 'we"ird\\model', 200, 0.01, false);
  const text = await metrics.render();
  const parsed = parsePromText(text);
  assert.equal(sampleValue(parsed, 'sluice_requests_total', { model: 'we"ird\\model' }), 1);
  assert.ok(sampleSum(parsed, 'sluice_process_resident_memory_bytes') > 0);
});
