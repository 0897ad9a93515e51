// Operations end to end, every part a real `sluice serve` process: metrics appear and move under
// real traffic; readiness (HTTP probes and grpc.health.v1) flips when an upstream or the egress
// goes away and comes back; SIGTERM under load finishes every request in flight and loses none
// that was acknowledged; SIGHUP reloads without dropping traffic.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { healthClientConstructor } from '../../src/telemetry/grpc-health.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { TestCa } from '../helpers/pki.ts';
import { sampleSum, sampleValue, scrape } from '../helpers/prom-text.ts';
import { startSluice, type SluiceProcess } from '../../scripts/sluice-child.ts';

const INFER_SERVICE = 'inference.GRPCInferenceService';
const A = Array.from({ length: 16 }, (_, i) => i);
const simpleBody = JSON.stringify({
  inputs: [
    { name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: A },
    { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: A },
  ],
});
const slowBody = (ms: number): string => JSON.stringify({ parameters: { delay_ms: ms }, inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1], data: [7] }] });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const processes: SluiceProcess[] = [];
after(async () => {
  await Promise.all(processes.map((p) => p.stop()));
});

async function start(config: object, name: string, graceMs?: number, env?: Record<string, string>): Promise<SluiceProcess> {
  const p = await startSluice(config, { name, ...(graceMs !== undefined ? { graceMs } : {}), ...(env !== undefined ? { env } : {}) });
  processes.push(p);
  return p;
}

const metricsListener = { metrics: { host: '127.0.0.1', port: 0 } };

async function startModels(port = 0): Promise<SluiceProcess> {
  return start({ node: { name: 'models' }, models: { listen: { host: '127.0.0.1', port }, maxDelayMs: 10_000 } }, 'models');
}

async function startEgress(key: string, models: string, graceMs?: number): Promise<SluiceProcess> {
  return start(
    {
      node: { name: 'egress' },
      listeners: metricsListener,
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      routes: [{ model: '*', upstreams: [{ address: models }] }],
    },
    'egress',
    graceMs,
  );
}

async function startIngress(key: string, segment: string, graceMs?: number, env?: Record<string, string>): Promise<SluiceProcess> {
  const [host, port] = segment.split(':') as [string, string];
  return start(
    {
      node: { name: 'ingress' },
      listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 }, ...metricsListener },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host, port: Number(port) }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'info' },
    },
    'ingress',
    graceMs,
    env,
  );
}

function healthClient(address: string): grpc.Client & Record<string, Function> {
  const C = healthClientConstructor();
  return new C(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>;
}

function check(client: Record<string, Function>, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check!({ service }, { deadline: Date.now() + 5_000 }, (err: Error | null, res: { status: string }) => (err ? reject(err) : resolve(res.status))),
  );
}

const ready = async (p: SluiceProcess): Promise<number> => (await fetch(`http://${p.endpoints.metrics}/readyz`)).status;

// Generous: on the shared 2-core machine under the team's load one test has taken 100 s. Every
// load loop also stops when its test ends (t.signal), so a cancelled test leaves nothing running.
describe('ops end to end', { timeout: 540_000 }, () => {
  test('metrics appear and move under load; readiness follows the upstream and the egress', async () => {
    const key = randomBytes(32).toString('hex');
    let models = await startModels();
    const modelsAddress = models.endpoints.models!;
    const egress = await startEgress(key, modelsAddress);
    const ingress = await startIngress(key, egress.endpoints.segment!);
    const ops = `http://${ingress.endpoints.metrics}/metrics`;
    await waitFor('ingress ready', async () => (await ready(ingress)) === 200);

    const before = await scrape(ops);
    assert.equal(sampleValue(before, 'sluice_requests_total', { protocol: 'http', model: 'simple', code: '200' }), undefined);
    // With the engine's ingress every call (HTTP too) crosses on the engine's links (per peer, as the TypeScript links).
    const bytesBefore = sampleSum(before, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' });

    const N = 30;
    const replies = await Promise.all(
      Array.from({ length: N }, () => fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, { method: 'POST', body: simpleBody, headers: { 'content-type': 'application/json' } })),
    );
    assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200));
    const kc = new KserveClient(ingress.endpoints.grpc!);
    for (let i = 0; i < 10; i++) {
      await kc.infer({
        modelName: 'simple',
        inputs: [
          { name: 'INPUT0', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
          { name: 'INPUT1', datatype: 'INT32', shape: [1, 16], contents: { intContents: A } },
        ],
      });
    }
    const missing = await fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, { method: 'POST', body: '{', headers: { 'content-type': 'application/json' } });
    assert.equal(missing.status, 400);
    kc.close();

    const s = await scrape(ops);
    assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'http', class: 'inference', model: 'simple', code: '200' }), N);
    assert.equal(sampleValue(s, 'sluice_requests_total', { protocol: 'grpc', class: 'inference', model: 'simple', code: 'OK' }), 10);
    assert.equal(sampleValue(s, 'sluice_request_duration_seconds_count', { protocol: 'http', model: 'simple', code: '200' }), N);
    assert.ok(sampleValue(s, 'sluice_request_duration_seconds_sum', { protocol: 'http', model: 'simple', code: '200' })! > 0);
    const bytes = sampleSum(s, 'sluice_link_bytes_total', { segment: 'inference', direction: 'tx', transport: 'tcp' });
    assert.ok(bytes - bytesBefore > 40 * 128, `link bytes moved (${bytesBefore} -> ${bytes})`);
    const open = s.samples.filter((x) => x.name === 'sluice_links_open' && x.labels.segment === 'inference' && x.labels.transport === 'tcp');
    const onEngine = ingress.logs.some((l) => l.listener === 'grpc' && l.path === 'engine');
    if (onEngine) {
      // One link set: the engine's (labelled by peer name) carries the HTTP requests as well; no TypeScript link to the egress.
      assert.equal(open.length, 1, JSON.stringify(open));
      assert.equal(open[0]!.value, 1);
    } else {
      // The TypeScript link scheduler sees every request.
      assert.ok(sampleValue(s, 'sluice_scheduling_delay_seconds_count', { segment: 'inference', class: 'inference' })! >= N + 10);
      assert.ok(open.length === 1 && open[0]!.value === 1, JSON.stringify(open));
    }
    assert.equal(sampleValue(s, 'sluice_ready'), 1);
    assert.equal(sampleValue(s, 'sluice_requests_in_flight', { stage: 'ingress' }), 0);
    assert.ok(sampleSum(s, 'sluice_process_resident_memory_bytes') > 0);

    const es = await scrape(`http://${egress.endpoints.metrics}/metrics`);
    assert.ok(sampleValue(es, 'sluice_link_bytes_total', { segment: 'inference', direction: 'rx', transport: 'tcp' })! >= bytes - bytesBefore);
    assert.equal(sampleValue(es, 'sluice_component_up', { component: `upstream:${modelsAddress}`, kind: 'upstream' }), 1);

    // gRPC health on the ingress' gRPC listener.
    const hc = healthClient(ingress.endpoints.grpc!);
    assert.equal(await check(hc, ''), 'SERVING');
    assert.equal(await check(hc, INFER_SERVICE), 'SERVING');

    // The upstream model server goes away: the egress stops being ready, then recovers.
    models.child.kill('SIGKILL');
    await waitFor('egress not ready', async () => (await ready(egress)) === 503);
    const detail = (await (await fetch(`http://${egress.endpoints.metrics}/health`)).json()) as { reason: string };
    assert.match(detail.reason, /upstreams \(no model server is ready/);
    assert.equal(sampleValue(await scrape(`http://${egress.endpoints.metrics}/metrics`), 'sluice_ready'), 0);
    const port = Number(modelsAddress.split(':')[1]);
    models = await startModels(port);
    await waitFor('egress ready again', async () => (await ready(egress)) === 200);

    // The egress goes away: the ingress has no peer left; Watch sees NOT_SERVING.
    const watch = hc.Watch!({ service: INFER_SERVICE }) as grpc.ClientReadableStream<{ status: string }>;
    const statuses: string[] = [];
    watch.on('data', (m: { status: string }) => statuses.push(m.status));
    watch.on('error', () => {});
    await waitFor('first watch message', async () => statuses.length > 0);
    egress.child.kill('SIGKILL');
    await waitFor('ingress not ready', async () => (await ready(ingress)) === 503);
    await waitFor('watch saw NOT_SERVING', async () => statuses.includes('NOT_SERVING'));
    assert.equal(await check(hc, ''), 'NOT_SERVING');
    assert.match(await (await fetch(`http://${ingress.endpoints.metrics}/readyz`)).text(), /no link to any egress peer/);
    watch.cancel();
    hc.close();
  });

  test('SIGTERM under load: every request in flight is answered, none acknowledged is lost, exit 0', async (t) => {
    const key = randomBytes(32).toString('hex');
    const models = await startModels();
    const egress = await startEgress(key, models.endpoints.models!, 10_000);
    const ingress = await startIngress(key, egress.endpoints.segment!, 10_000);
    await waitFor('ingress ready', async () => (await ready(ingress)) === 200);
    const url = `http://${ingress.endpoints.http}/v2/models/identity/infer`;
    const post = (ms: number): Promise<number | string> =>
      fetch(url, { method: 'POST', body: slowBody(ms), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(30_000) }).then(
        async (r) => {
          if (r.status === 200) assert.deepEqual(((await r.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data, [7]);
          else await r.arrayBuffer();
          return r.status;
        },
        (e: Error) => `error: ${(e.cause as { code?: string } | undefined)?.code ?? e.message}`,
      );

    // Long enough that all 20 are still in flight when a busy machine gets round to counting
    // them; well inside the 10 s grace.
    const inflight = Array.from({ length: 20 }, () => post(5_000));
    await waitFor('20 in flight', async () => sampleValue(await scrape(`http://${ingress.endpoints.metrics}/metrics`), 'sluice_requests_in_flight', { stage: 'ingress' }) === 20);
    let stop = false;
    const late: Promise<number | string>[] = [];
    let lateAnswered = 0;
    const load = (async () => {
      for (let i = 0; !stop && !t.signal.aborted && i < 2_000; i++) {
        late.push(post(10).finally(() => lateAnswered++));
        await sleep(15);
      }
    })();
    // Load is flowing (some answered) before the signal, and keeps coming during the drain.
    await waitFor('load before SIGTERM', async () => lateAnswered >= 3);
    const exitCode = await ingress.stop(30_000); // SIGTERM; SIGKILL only if the drain overruns badly
    stop = true;
    await load;
    // When this fails, the node's own account of the drain says why (how long it took, what it logged).
    const drainStory = (): string =>
      JSON.stringify(ingress.logs.filter((l) => (l.level as number) >= 40 || /drain|stopp|SIGTERM|signal/i.test(String(l.msg))).slice(-20));
    assert.equal(exitCode, 0, drainStory());
    assert.deepEqual(await Promise.all(inflight), inflight.map(() => 200), `every request in flight at SIGTERM was answered; the drain: ${drainStory()}`);
    const lateStatuses = await Promise.all(late);
    for (const st of lateStatuses) assert.ok(st === 200 || st === 503 || (typeof st === 'string' && /ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET/.test(st)), `late request: ${st}`);
    assert.ok(lateStatuses.some((st) => st !== 200), 'requests after the drain began were refused, not queued');
    const logs = ingress.logs.map((l) => l.msg);
    assert.ok(logs.includes('draining: readiness off, finishing in-flight work'));
    assert.ok(ingress.logs.some((l) => l.msg === 'drained' && l.clean === true));

    // The egress drains the same way: calls in flight at its SIGTERM finish.
    const ingress2 = await startIngress(key, egress.endpoints.segment!, 10_000);
    await waitFor('ingress2 ready', async () => (await ready(ingress2)) === 200);
    const url2 = `http://${ingress2.endpoints.http}/v2/models/identity/infer`;
    const calls = Array.from({ length: 10 }, () =>
      fetch(url2, { method: 'POST', body: slowBody(4_000), headers: { 'content-type': 'application/json' } }).then((r) => r.status),
    );
    await waitFor('egress calls in flight', async () => sampleValue(await scrape(`http://${egress.endpoints.metrics}/metrics`), 'sluice_requests_in_flight', { stage: 'egress' }) === 10);
    const egressExit = egress.stop(30_000); // SIGTERM
    assert.deepEqual(await Promise.all(calls), calls.map(() => 200));
    assert.equal(await egressExit, 0);
  });

  test('SIGHUP reloads the log level without dropping traffic; an invalid file changes nothing', async (t) => {
    const key = randomBytes(32).toString('hex');
    const models = await startModels();
    const egress = await startEgress(key, models.endpoints.models!);
    // The level comes from the file only (SLUICE_LOG_LEVEL would override it).
    const ingress = await startIngress(key, egress.endpoints.segment!, undefined, { SLUICE_LOG_LEVEL: '' });
    await waitFor('ingress ready', async () => (await ready(ingress)) === 200);
    const configFile = (ingress.child.spawnargs[ingress.child.spawnargs.indexOf('--config') + 1])!;
    const original = readFileSync(configFile, 'utf8');
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      for (let i = 0; !stop && !t.signal.aborted && i < 20_000; i++) {
        const r = await fetch(`http://${ingress.endpoints.http}/v2/models/simple/infer`, { method: 'POST', body: simpleBody, headers: { 'content-type': 'application/json' } });
        statuses.push(r.status);
        await r.arrayBuffer();
      }
    })();
    const reloads = async (result: string): Promise<number> =>
      sampleValue(await scrape(`http://${ingress.endpoints.metrics}/metrics`), 'sluice_config_reloads_total', { result }) ?? 0;

    assert.match(original, /level: info/);
    writeFileSync(configFile, original.replace('level: info', 'level: debug'));
    ingress.child.kill('SIGHUP');
    await waitFor('reload', async () => (await reloads('success')) === 1);
    await waitFor('debug lines', async () => ingress.logs.some((l) => l.level === 'debug'));

    writeFileSync(configFile, 'listeners: [not, a, map]\n');
    ingress.child.kill('SIGHUP');
    await waitFor('failed reload', async () => (await reloads('failure')) === 1);
    // Log lines travel a pipe: the counter may be scraped before they arrive.
    await waitFor('reload rejection logged', async () => ingress.logs.some((l) => l.msg === 'reload rejected: configuration invalid; keeping the running one'));

    writeFileSync(configFile, original.replace('routes:', 'limits:\n  maxRequestBytes: 1024\nroutes:'));
    ingress.child.kill('SIGHUP');
    await waitFor('reload with a restart-only change', async () => (await reloads('success')) === 2);
    await waitFor('restart-only fields logged', async () =>
      ingress.logs.some((l) => l.msg === 'reload cannot change these without a restart; keeping the running values' && JSON.stringify(l.fields) === '["limits"]'),
    );

    const afterReloads = statuses.length;
    await waitFor('traffic after the reloads', async () => statuses.length >= afterReloads + 20);
    stop = true;
    await load;
    assert.deepEqual(statuses, statuses.map(() => 200), 'no request failed across the reloads');
  });

  test('SIGHUP gives new TLS handshakes the new certificate while traffic keeps flowing', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-ops-tls-'));
    try {
      const ca = new TestCa(dir);
      const first = ca.issue('sluice-server-1', { server: true });
      const certFile = path.join(dir, 'server.crt');
      const keyFile = path.join(dir, 'server.key');
      copyFileSync(first.cert, certFile);
      copyFileSync(first.key, keyFile);
      const key = randomBytes(32).toString('hex');
      const models = await startModels();
      const egress = await startEgress(key, models.endpoints.models!);
      const [host, port] = egress.endpoints.segment!.split(':') as [string, string];
      const ingress = await start(
        {
          node: { name: 'tls-ingress' },
          listeners: { http: { host: '127.0.0.1', port: 0 }, grpc: { host: '127.0.0.1', port: 0 }, ...metricsListener },
          segments: { inference: { transport: 'tcp', key } },
          peers: [{ name: 'egress', segment: 'inference', host, port: Number(port) }],
          routes: [{ model: '*', peers: ['egress'] }],
          security: { tls: { enabled: true, certFile, keyFile } },
        },
        'tls-ingress',
      );
      await waitFor('ingress ready', async () => (await ready(ingress)) === 200);
      const caPem = readFileSync(ca.cert);
      const peerFingerprint = (address: string): Promise<string> =>
        new Promise((resolve, reject) => {
          const [h, p] = address.split(':') as [string, string];
          const s = tlsConnect({ host: h, port: Number(p), servername: 'localhost', ca: caPem, ALPNProtocols: ['h2'] }, () => {
            resolve((s.getPeerCertificate().fingerprint256 ?? '').replace(/:/g, '').toLowerCase());
            s.destroy();
          });
          s.on('error', reject);
        });
      assert.equal(await peerFingerprint(ingress.endpoints.grpc!), first.fingerprint);

      // gRPC over TLS keeps serving while the certificate changes under it.
      const creds = grpc.credentials.createSsl(caPem);
      const hc = new (healthClientConstructor())(ingress.endpoints.grpc!, creds, { 'grpc.ssl_target_name_override': 'localhost' }) as unknown as grpc.Client & Record<string, Function>;
      let stop = false;
      const results: string[] = [];
      const load = (async () => {
        for (let i = 0; !stop && !t.signal.aborted && i < 10_000; i++) {
          results.push(await check(hc, '').catch((e: Error) => `error: ${e.message}`));
          await sleep(10);
        }
      })();
      await waitFor('calls over TLS', async () => results.length >= 5);

      const second = ca.issue('sluice-server-2', { server: true });
      copyFileSync(second.cert, certFile);
      copyFileSync(second.key, keyFile);
      ingress.child.kill('SIGHUP');
      await waitFor('new certificate served', async () => (await peerFingerprint(ingress.endpoints.grpc!)) === second.fingerprint);
      const after = results.length;
      await waitFor('calls after the reload', async () => results.length >= after + 5);
      stop = true;
      await load;
      hc.close();
      assert.deepEqual(results, results.map(() => 'SERVING'), 'no call failed across the certificate change');
      assert.equal(sampleValue(await scrape(`http://${ingress.endpoints.metrics}/metrics`), 'sluice_config_reloads_total', { result: 'success' }), 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

