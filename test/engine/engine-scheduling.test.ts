// The engine ingress under the scheduler: a node with both segments keeps listeners.grpc on the
// engine and its bulk governors (main and training thread) see the engine's inference latency
// through the shared ring; the engine picks egress peers by P2C (a slow peer gets few calls)
// and sheds with the TypeScript path's status, message and metrics.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { EngineIngress } from '../../src/engine/engine-ingress.ts';
import { connect } from '../../src/index.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { KserveClient, type CallFailure } from '../helpers/kserve-client.ts';
import { parsePromText, sampleSum } from '../helpers/prom-text.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

const logging = new Logging({ level: 'silent', node: 'engine-sched' });
const any = { host: '127.0.0.1', port: 0 };

function identity(delayMs: number): object {
  return {
    modelName: 'identity',
    ...(delayMs > 0 ? { parameters: { delay_ms: { int64Param: delayMs } } } : {}),
    inputs: [{ name: 'INPUT0', datatype: 'INT8', shape: [4], contents: { intContents: [1, 2, 3, 4] } }],
  };
}

async function startModels(): Promise<SluiceNode> {
  const m = new SluiceNode({ config: parseConfig({ models: { listen: any }, log: { level: 'silent' } }), logger: logging.component('m'), transports: defaultTransports });
  await m.start();
  return m;
}

/** An egress node (the engine's egress) in front of `models` on segment port `port`. */
async function startEgress(key: string, port: number, models: SluiceNode): Promise<SluiceNode> {
  const e = new SluiceNode({
    config: parseConfig({
      listeners: { metrics: any },
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port } } },
      routes: [{ model: '*', upstreams: [{ address: models.endpoints.models! }] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('e'),
    transports: defaultTransports,
  });
  await e.start();
  return e;
}

/** Loopback TCP relay that holds every chunk `delayMs` in both directions (a slow network path). */
async function slowPath(targetPort: number, delayMs: number): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client).add(upstream);
    const pipe = (from: net.Socket, to: net.Socket) => from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), delayMs));
    pipe(client, upstream);
    pipe(upstream, client);
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', kill);
      s.on('close', kill);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function scrape(node: SluiceNode) {
  return parsePromText(await node.metrics.render());
}

test('a node with a training segment serves gRPC from the engine, and its training governor backs off on the engine latency while bulk runs', { timeout: 180_000 }, async () => {
  const key = randomBytes(32).toString('hex');
  const trainKey = randomBytes(32).toString('hex');
  const spool = tempDir('sluice-engine-sched-');
  const models = await startModels();
  const egress = await startEgress(key, await closedPort(), models);
  const receiver = new SluiceNode({
    config: parseConfig({
      node: { name: 'rx' },
      listeners: { training: any },
      segments: { training: { transport: 'tcp', key: trainKey, listen: any } },
      training: { spoolDir: path.join(spool, 'rx') },
      log: { level: 'silent' },
    }),
    logger: logging.component('rx'),
    transports: defaultTransports,
  });
  await receiver.start();
  const [rxHost, rxPort] = receiver.endpoints.training!.split(':') as [string, string];
  const ingress = new SluiceNode({
    config: parseConfig({
      node: { name: 'mixed' },
      listeners: { grpc: any, training: any },
      segments: { inference: { transport: 'tcp', key }, training: { transport: 'tcp', key: trainKey } },
      peers: [
        { name: 'egress', segment: 'inference', host: '127.0.0.1', port: Number(egress.endpoints.segment!.split(':')[1]) },
        { name: 'rx', segment: 'training', host: rxHost, port: Number(rxPort) },
      ],
      routes: [{ model: '*', peers: ['egress'] }],
      // A target the delayed calls below miss by far, whatever the machine's load.
      scheduling: { latencyTargetMs: 20 },
      training: { spoolDir: path.join(spool, 'tx') },
      log: { level: 'silent' },
    }),
    logger: logging.component('i'),
    transports: defaultTransports,
  });
  await ingress.start();
  const client = new KserveClient(ingress.endpoints.grpc!);
  const tx = connect(ingress.endpoints.trainingService!);
  let load = true;
  try {
    assert.equal(ingress.grpcOnEngine, true, 'listeners.grpc is on the engine with a training segment');
    // Inference alone, fast: answered; the governors learn the no-bulk baseline; bulk keeps its whole share.
    for (let i = 0; i < 40; i++) assert.deepEqual((await client.infer(identity(0))).response.outputs[0]!.contents!.intContents, [1, 2, 3, 4]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ingress.trainingGovernor()!.share, 1);
    assert.equal(ingress.trainingGovernor()!.decreases, 0);
    assert.ok(ingress.governor.snapshot(performance.now()).samples >= 20, 'the main-thread governor reads the engine ring too');

    // Bulk running (tensor pushes to the training peer) while inference through the engine is
    // slower than the target (8 callers of 60 ms calls): the training thread's governor cuts bulk.
    let pushes = 0;
    const bulk = (async () => {
      while (load) await tx.push('rx', `ckpt/${pushes}`, randomBytes(8 * 1024 * 1024), { transferId: `sched-${pushes++}` });
    })();
    let answered = 0;
    const callers = Array.from({ length: 8 }, async () => {
      while (load) {
        await client.infer(identity(60), { timeoutMs: 5_000 });
        answered++;
      }
    });
    await until('the training thread governor to cut bulk', () => {
      const g = ingress.trainingGovernor()!;
      // ...and enough calls answered to count (the cut can come before 20 answers).
      return g.decreases > 0 && g.share < 1 && answered >= 20;
    }, 30_000);
    const g = ingress.trainingGovernor()!;
    assert.ok(g.p99Ms >= 20, `the training governor's p99 (${g.p99Ms} ms) is the engine calls' latency`);
    assert.ok(g.samples >= 20, `samples in the window: ${g.samples}`);
    load = false;
    await Promise.all([...callers, bulk]);
    assert.ok(answered >= 20 && pushes >= 1, `${answered} calls, ${pushes} pushes`);

    // Those calls took the engine's fast path (counted by the engine itself), not the TypeScript gateway.
    const engineIngress = (ingress as unknown as { engineIngress: EngineIngress }).engineIngress;
    assert.ok(engineIngress.engine.counters.ingress('ingressFastCalls') >= answered + 40);
    assert.equal(engineIngress.engine.counters.ingress('ingressRelayedCalls'), 0);
    const s = await scrape(ingress);
    assert.ok(sampleSum(s, 'sluice_link_messages_total', { segment: 'inference', direction: 'tx' }) >= answered + 40);
  } finally {
    load = false;
    tx.close();
    client.close();
    await ingress.stop(0);
    await receiver.stop(0);
    await egress.stop(0);
    await models.stop(0);
  }
});

test('P2C: with one slow egress peer, the engine sends most calls to the fast one', { timeout: 120_000 }, async () => {
  const key = randomBytes(32).toString('hex');
  const models = await startModels();
  const fast = await startEgress(key, await closedPort(), models);
  const slow = await startEgress(key, await closedPort(), models);
  const delayed = await slowPath(Number(slow.endpoints.segment!.split(':')[1]), 150);
  const ingress = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: any },
      segments: { inference: { transport: 'tcp', key } },
      peers: [
        { name: 'fast', segment: 'inference', host: '127.0.0.1', port: Number(fast.endpoints.segment!.split(':')[1]) },
        { name: 'slow', segment: 'inference', host: '127.0.0.1', port: delayed.port },
      ],
      routes: [{ model: '*', peers: ['fast', 'slow'] }],
      log: { level: 'silent' },
    }),
    logger: logging.component('i'),
    transports: defaultTransports,
  });
  await ingress.start();
  const client = new KserveClient(ingress.endpoints.grpc!);
  const rx = async (n: SluiceNode) => sampleSum(await scrape(n), 'sluice_link_messages_total', { segment: 'inference', direction: 'rx' });
  try {
    assert.equal(ingress.grpcOnEngine, true);
    // Both links up (the engine dials on its own): a call through each, until each peer has answered once.
    await until('both egress peers to answer', async () => {
      await client.infer(identity(0));
      return (await rx(fast)) > 0 && (await rx(slow)) > 0;
    }, 30_000);
    const [f0, s0] = [await rx(fast), await rx(slow)];
    // One call at a time: the pick compares the peers' latency alone (outstanding 0 on both), so
    // a load spike on this machine (peak-EWMA keeps it for seconds) does not tip it by queueing.
    const N = 60;
    for (let i = 0; i < N; i++) await client.infer(identity(0));
    const [f1, s1] = [(await rx(fast)) - f0, (await rx(slow)) - s0];
    assert.equal(f1 + s1, N, `every call went to one peer (fast ${f1}, slow ${s1})`);
    assert.ok(f1 >= 0.8 * N, `the fast peer got ${f1} of ${N} calls, the slow one ${s1}`);
  } finally {
    client.close();
    await ingress.stop(0);
    await delayed.close();
    await fast.stop(0);
    await slow.stop(0);
    await models.stop(0);
  }
});

/** Six concurrent slow calls through an ingress that admits two: what the callers got, and the shed metric. */
async function overload(ingressEnv: string | undefined): Promise<{ onEngine: boolean; failures: CallFailure[]; ok: number; shed: number }> {
  const key = randomBytes(32).toString('hex');
  const models = await startModels();
  const egress = await startEgress(key, await closedPort(), models);
  const saved = process.env.SLUICE_ENGINE_INGRESS;
  if (ingressEnv === undefined) delete process.env.SLUICE_ENGINE_INGRESS;
  else process.env.SLUICE_ENGINE_INGRESS = ingressEnv;
  const ingress = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: any },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: Number(egress.endpoints.segment!.split(':')[1]) }],
      routes: [{ model: '*', peers: ['egress'] }],
      scheduling: { shedding: { maxInFlight: 2 } },
      log: { level: 'silent' },
    }),
    logger: logging.component('i'),
    transports: defaultTransports,
  });
  try {
    await ingress.start();
  } finally {
    if (saved === undefined) delete process.env.SLUICE_ENGINE_INGRESS;
    else process.env.SLUICE_ENGINE_INGRESS = saved;
  }
  const client = new KserveClient(ingress.endpoints.grpc!);
  try {
    await until('the egress link', async () => {
      try {
        await client.infer(identity(0));
        return true;
      } catch {
        return false;
      }
    });
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => client.infer(identity(400), { timeoutMs: 10_000 })));
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as CallFailure);
    const shed = sampleSum(await scrape(ingress), 'sluice_requests_shed_total', { cause: 'in_flight' });
    return { onEngine: ingress.grpcOnEngine, failures, ok: results.length - failures.length, shed };
  } finally {
    client.close();
    await ingress.stop(0);
    await egress.stop(0);
    await models.stop(0);
  }
}

test('overload: the engine sheds with the TypeScript ingress status, message and metric', { timeout: 120_000 }, async () => {
  const engine = await overload(undefined);
  const ts = await overload('0');
  assert.equal(engine.onEngine, true);
  assert.equal(ts.onEngine, false);
  for (const r of [engine, ts]) {
    assert.equal(r.ok, 2, `two admitted: ${JSON.stringify(r)}`);
    assert.equal(r.failures.length, 4);
    for (const f of r.failures) {
      assert.equal(f.code, 8, 'RESOURCE_EXHAUSTED');
      assert.match(f.details, /^request shed: 2 requests in flight \(limit 2\); retry in about \d+ ms$/);
      assert.ok(f.requestId !== undefined && f.requestId.length > 0, 'x-request-id in the trailers');
    }
    assert.equal(r.shed, 4);
  }
  assert.deepEqual(
    engine.failures.map((f) => f.details.replace(/\d+ ms$/, 'N ms')),
    ts.failures.map((f) => f.details.replace(/\d+ ms$/, 'N ms')),
  );
});
