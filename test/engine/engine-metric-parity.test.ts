// The series an ingress + egress pair of `sluice serve` processes exports on the native engine
// against the same pair on the TypeScript path (SLUICE_ENGINE=0), after the same gRPC calls
// (40 ModelInfer calls and one ModelStreamInfer stream of 5 messages, tracing off):
//  - every metric family the TypeScript pair fills (a sample other than 0) the engine pair fills
//    too, both roles;
//  - sluice_scheduling_delay_seconds{segment="inference",class="inference"}: one observation per
//    message each link sent (CALLs at the ingress, REPLYs at the egress), in the TypeScript
//    histogram's buckets;
//  - sluice_link_rekeys_total: the tail witness (one REKEY frame after 200 ms without sending)
//    counts on both sides of an engine link as on a TypeScript link;
//  - sluice_requests_total counts each stream message (not the stream), as the TypeScript ingress.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';
import { QUEUE_DELAY_BUCKETS_SECONDS } from '../../src/telemetry/bucket-histogram.ts';
import { KserveClient, firstAnswered } from '../helpers/kserve-client.ts';
import { sampleSum, sampleValue, scrape, type PromScrape } from '../helpers/prom-text.ts';

const processes: SluiceProcess[] = [];
after(async () => {
  await Promise.all(processes.map((p) => p.stop()));
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const A = Array.from({ length: 16 }, (_, i) => i);
const request = {
  modelName: 'simple',
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
  ],
};
const CALLS = 40;
const STREAM_MESSAGES = 5;
const DELAY = { segment: 'inference', class: 'inference' };
const OK = { protocol: 'grpc', model: 'simple', code: 'OK' };

async function start(config: object, name: string, env: Record<string, string>): Promise<SluiceProcess> {
  const p = await startSluice(config, { name, env });
  processes.push(p);
  return p;
}

interface PairScrapes {
  ingress: { before: PromScrape; after: PromScrape };
  egress: { before: PromScrape; after: PromScrape };
  ingressLogs: Record<string, unknown>[];
  egressLogs: Record<string, unknown>[];
}

/** An egress + ingress pair in front of `models`, the calls, and scrapes before and after them. */
async function runPair(models: string, env: Record<string, string>, tag: string): Promise<PairScrapes> {
  const key = randomBytes(32).toString('base64');
  const egress = await start(
    {
      node: { name: `egress-${tag}` },
      listeners: { metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      routes: [{ model: '*', upstreams: [{ address: models }] }],
    },
    `egress-${tag}`,
    env,
  );
  const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
  const ingress = await start(
    {
      node: { name: `ingress-${tag}` },
      listeners: { grpc: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress-a', segment: 'inference', host, port: Number(port) }],
      routes: [{ model: '*', peers: ['egress-a'] }],
    },
    `ingress-${tag}`,
    env,
  );
  const kc = new KserveClient(ingress.endpoints.grpc!);
  try {
    // The link comes up in the background: the first call may find none yet.
    await firstAnswered(() => kc.infer(request));
    const iUrl = `http://${ingress.endpoints.metrics}/metrics`;
    const eUrl = `http://${egress.endpoints.metrics}/metrics`;
    const before = { ingress: await scrape(iUrl), egress: await scrape(eUrl) };
    for (let i = 0; i < CALLS; i++) await kc.infer(request);
    const answers = await kc.stream(Array.from({ length: STREAM_MESSAGES }, () => request));
    assert.equal(answers.length, STREAM_MESSAGES);
    assert.ok(answers.every((a) => a.errorMessage === ''), JSON.stringify(answers.map((a) => a.errorMessage)));
    // Past the tail witness (200 ms quiet) of both sides' links.
    await sleep(800);
    return {
      ingress: { before: before.ingress, after: await scrape(iUrl) },
      egress: { before: before.egress, after: await scrape(eUrl) },
      ingressLogs: ingress.logs,
      egressLogs: egress.logs,
    };
  } finally {
    kc.close();
  }
}

/** Metric families with a sample other than 0 (process and runtime metrics left out: they differ by process, not by path). */
function filledFamilies(s: PromScrape): Set<string> {
  const out = new Set<string>();
  for (const x of s.samples) {
    if (x.value === 0 || Number.isNaN(x.value)) continue;
    const family = x.name.replace(/_(bucket|sum|count)$/, '');
    if (/^sluice_(process_|nodejs_|event_loop|build_info|thread_|ready|component_up)/.test(family)) continue;
    out.add(family);
  }
  return out;
}

const delta = (p: { before: PromScrape; after: PromScrape }, name: string, labels: Record<string, string>): number =>
  sampleSum(p.after, name, labels) - sampleSum(p.before, name, labels);

function checkDelayHistogram(s: PromScrape, side: string): void {
  const buckets = s.samples.filter((x) => x.name === 'sluice_scheduling_delay_seconds_bucket' && x.labels.segment === 'inference' && x.labels.class === 'inference');
  const les = buckets.map((b) => b.labels.le);
  assert.deepEqual(les, [...QUEUE_DELAY_BUCKETS_SECONDS.map(String), '+Inf'], `${side}: the TypeScript histogram's bounds`);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, `${side}: cumulative buckets`);
  assert.equal(buckets.at(-1)!.value, sampleValue(s, 'sluice_scheduling_delay_seconds_count', DELAY), `${side}: +Inf = count`);
  assert.ok(sampleValue(s, 'sluice_scheduling_delay_seconds_sum', DELAY)! >= 0);
}

test('an engine pair exports what a TypeScript pair does after the same calls', { timeout: 240_000 }, async () => {
  const models = await start({ models: { listen: { host: '127.0.0.1', port: 0 } } }, 'models', {});
  const modelsAddr = models.endpoints.models!;
  const engine = await runPair(modelsAddr, {}, 'engine');
  assert.ok(engine.ingressLogs.some((l) => l.listener === 'grpc' && l.path === 'engine'), 'the gRPC ingress is the engine');
  assert.ok(engine.egressLogs.some((l) => l.listener === 'segment' && l.engine === true), 'the egress is the engine');
  const ts = await runPair(modelsAddr, { SLUICE_ENGINE: '0' }, 'ts');
  assert.ok(!ts.ingressLogs.some((l) => l.listener === 'grpc' && l.path === 'engine'), 'SLUICE_ENGINE=0: the TypeScript ingress');

  const messages = CALLS + STREAM_MESSAGES;
  for (const [name, pair] of [['engine', engine], ['typescript', ts]] as const) {
    // Each message a link sent was timed once (the ingress's CALLs, the egress's REPLYs).
    for (const side of ['ingress', 'egress'] as const) {
      const n = delta(pair[side], 'sluice_scheduling_delay_seconds_count', DELAY);
      assert.ok(n >= messages && n <= messages + 5, `${name} ${side}: ${n} scheduling delays for ${messages} messages`);
      checkDelayHistogram(pair[side].after, `${name} ${side}`);
      // The tail witness after the calls: a REKEY sent by each side and received by the other.
      const rekeys = delta(pair[side], 'sluice_link_rekeys_total', { segment: 'inference' });
      assert.ok(rekeys >= 2, `${name} ${side}: ${rekeys} rekeys (witness sent and received)`);
    }
    // Each stream message is a request of its own.
    assert.equal(delta(pair.ingress, 'sluice_requests_total', OK), messages, `${name}: requests counted per message`);
    assert.equal(delta(pair.ingress, 'sluice_request_duration_seconds_count', OK), messages, `${name}: durations per message`);
  }
  // The engine fills every family the TypeScript path fills.
  for (const side of ['ingress', 'egress'] as const) {
    const want = filledFamilies(ts[side].after);
    const have = filledFamilies(engine[side].after);
    const missing = [...want].filter((f) => !have.has(f));
    assert.deepEqual(missing, [], `${side}: families the TypeScript path fills and the engine does not`);
  }
});
