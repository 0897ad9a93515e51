// The egress's access log (telemetry.accessLog) on both egress paths: the native engine (its
// batched EGRESS_CALL_DONE records, src/engine/engine-egress-access.ts) and the TypeScript
// egress (SLUICE_ENGINE=0, node-telemetry.ts egressObserver). Real nodes in this process: a
// model server, the egress under test, and a front whose gRPC listener runs on the engine.
// Calls that succeed, a model without a route at the egress, a model server that is down and
// a tensor the model server refuses: each gives one `segment` line whose request id is the
// client's x-request-id, with the status the model server (or the egress) answered, the ingress
// it came from and the model server called. Both paths write the same fields.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import type { EngineEgress } from '../../src/engine/engine-egress.ts';
import type { EngineEgressCallDone } from '../../src/engine/native-engine.ts';
import { SluiceNode } from '../../src/node/sluice-node.ts';
import { defaultTransports } from '../../src/node/transports.ts';
import { Logging } from '../../src/telemetry/logger.ts';
import { closedPort } from '../helpers/sluice-process.ts';
import { KserveClient } from '../helpers/kserve-client.ts';
import { batchCounter, batchWindows } from '../helpers/batch-windows.ts';

const A = Array.from({ length: 16 }, (_, i) => i);
const simple = (model: string, n = 16): object => ({
  modelName: model,
  inputs: [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, n], contents: { intContents: A.slice(0, n) } },
    { name: 'INPUT1', datatype: 'INT32', shape: [1, n], contents: { intContents: A.slice(0, n) } },
  ],
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
type Line = Record<string, unknown>;

/** Log lines written through a Logging, parsed. */
function lineSink(): { lines: Line[]; destination: { write(s: string): boolean } } {
  const lines: Line[] = [];
  return {
    lines,
    destination: {
      write(s: string) {
        for (const l of s.split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Line);
        return true;
      },
    },
  };
}

interface Rig {
  models: SluiceNode;
  egress: SluiceNode;
  front: SluiceNode;
  kc: KserveClient;
  egressLines: Line[];
  downAddress: string;
  silent: Server;
  garbled: Http2Server;
}

async function startRig(onEngine: boolean): Promise<Rig> {
  const key = randomBytes(32).toString('hex');
  const quiet = new Logging({ level: 'silent', node: 'x' });
  const models = new SluiceNode({ config: parseConfig({ models: { listen: { host: '127.0.0.1', port: 0 } }, log: { level: 'silent' } }), logger: quiet.component('m'), transports: defaultTransports });
  await models.start();
  const sink = lineSink();
  const logging = new Logging({ level: 'info', node: 'egress', destination: sink.destination });
  const downAddress = `127.0.0.1:${await closedPort()}`;
  // A model server that takes the connection and never answers: the call ends at its deadline
  // (or the front's CANCEL), after the model server was called.
  const held: Socket[] = [];
  const silent = createServer((sock) => {
    held.push(sock);
    sock.on('error', () => {});
    sock.resume();
  });
  silent.on('close', () => held.forEach((x) => x.destroy()));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as { port: number }).port;
  // A model server that answers OK with a broken gRPC frame (its length prefix says 9 bytes, 2
  // follow): the caller gets INTERNAL, and so must the access line.
  const garbled = createHttp2Server();
  garbled.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 9, 1, 2]));
    });
  });
  await new Promise<void>((resolve) => garbled.listen(0, '127.0.0.1', resolve));
  const garbledPort = (garbled.address() as { port: number }).port;
  const egress = new SluiceNode({
    config: parseConfig({
      segments: { inference: { transport: 'tcp', key, listen: { host: '127.0.0.1', port: 0 } } },
      // `simple` is served, `down` goes to a model server nobody listens for, others have no route.
      routes: [
        { model: 'simple', upstreams: [{ address: models.endpoints.models! }] },
        { model: 'down', upstreams: [{ address: downAddress }] },
        { model: 'silent', upstreams: [{ address: `127.0.0.1:${silentPort}` }] },
        { model: 'garbled', upstreams: [{ address: `127.0.0.1:${garbledPort}` }] },
      ],
      telemetry: { accessLog: true },
      log: { level: 'info' },
    }),
    logger: logging.root,
    transports: defaultTransports,
  });
  const saved = process.env.SLUICE_ENGINE;
  if (!onEngine) process.env.SLUICE_ENGINE = '0';
  try {
    await egress.start();
  } finally {
    if (saved === undefined) delete process.env.SLUICE_ENGINE;
    else process.env.SLUICE_ENGINE = saved;
  }
  const [, port] = egress.endpoints.segment!.split(':') as [string, string];
  const front = new SluiceNode({
    config: parseConfig({
      listeners: { grpc: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 } },
      segments: { inference: { transport: 'tcp', key } },
      peers: [{ name: 'egress', segment: 'inference', host: '127.0.0.1', port: Number(port) }],
      routes: [{ model: '*', peers: ['egress'] }],
      log: { level: 'silent' },
    }),
    logger: quiet.component('f'),
    transports: defaultTransports,
  });
  await front.start();
  const kc = new KserveClient(front.endpoints.grpc!);
  // The front's link to the egress comes up in the background.
  for (let i = 0; ; i++) {
    try {
      await kc.infer(simple('simple'), { requestId: `warm-${i}` });
      break;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(100);
    }
  }
  return { models, egress, front, kc, egressLines: sink.lines, downAddress, silent, garbled };
}

async function stopRig(r: Rig | undefined): Promise<void> {
  if (r === undefined) return;
  r.kc.close();
  await r.front.stop(0);
  await r.egress.stop(0);
  await r.models.stop(0);
  r.silent.close();
  r.garbled.close();
}

const codeOf = (p: Promise<unknown>): Promise<number> =>
  p.then(
    () => 0,
    (e: { code: number }) => e.code,
  );

/** Runs the calls of the test and returns the egress's access lines by request id. */
async function callsAndLines(r: Rig): Promise<{ byId: Map<string, Line>; statuses: Record<string, number> }> {
  const statuses: Record<string, number> = {};
  for (let i = 0; i < 3; i++) statuses[`ok-${i}`] = await codeOf(r.kc.infer(simple('simple'), { requestId: `ok-${i}` }));
  const http = await fetch(`http://${r.front.endpoints.http}/v2/models/simple/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'INPUT0', shape: [1, 16], datatype: 'INT32', data: A }, { name: 'INPUT1', shape: [1, 16], datatype: 'INT32', data: A }] }),
    headers: { 'content-type': 'application/json', 'x-request-id': 'http-1' },
    signal: AbortSignal.timeout(20_000),
  });
  await http.arrayBuffer();
  statuses['http-1'] = http.status;
  statuses['no-route-1'] = await codeOf(r.kc.infer(simple('no-such-model'), { requestId: 'no-route-1' }));
  statuses['down-1'] = await codeOf(r.kc.infer(simple('down'), { requestId: 'down-1' }));
  // The model server refuses the tensor (INVALID_ARGUMENT from the model server itself).
  statuses['refused-1'] = await codeOf(r.kc.infer({ modelName: 'simple', inputs: [{ name: 'INPUT0', datatype: 'INT32', shape: [1, 3], contents: { intContents: [1, 2, 3] } }] }, { requestId: 'refused-1' }));
  statuses['garbled-1'] = await codeOf(r.kc.infer(simple('garbled'), { requestId: 'garbled-1' }));
  statuses['silent-1'] = await codeOf(r.kc.infer(simple('silent'), { requestId: 'silent-1', timeoutMs: 300 }));
  const want = Object.keys(statuses);
  const access = (): Line[] => r.egressLines.filter((l) => l.msg === 'access');
  const deadline = Date.now() + 10_000;
  while (!want.every((id) => access().some((l) => l.request_id === id)) && Date.now() < deadline) await sleep(10);
  const byId = new Map<string, Line>();
  for (const l of access()) {
    const id = l.request_id as string;
    // UNAVAILABLE is retried by the front (scheduling.retries): one CALL, one line, per attempt.
    if (id === 'down-1' && byId.has(id)) {
      assert.equal(l.status, 14, JSON.stringify(l));
      continue;
    }
    assert.ok(!byId.has(id), `one line per call: ${id}`);
    byId.set(id, l);
  }
  for (const id of want) assert.ok(byId.has(id), `an access line for ${id}: ${JSON.stringify([...byId.keys()])}`);
  return { byId, statuses };
}

const FIELDS = ['request_id', 'tenant', 'model', 'protocol', 'method', 'status', 'code', 'bytes_in', 'bytes_out', 'total_ms', 'queue_ms', 'upstream_ms'];

function checkLines(r: Rig, byId: Map<string, Line>, statuses: Record<string, number>): void {
  for (const [id, l] of byId) {
    assert.equal(l.level, 'info', id);
    assert.equal(l.component, 'access', id);
    for (const k of FIELDS) assert.ok(k in l, `${k} in ${JSON.stringify(l)}`);
    assert.equal(l.protocol, 'segment');
    assert.equal(l.method, 'ModelInfer');
    assert.equal(l.tenant, 0);
    // The ingress the CALL came from: the front's side of the link.
    assert.match(String(l.peer), /^127\.0\.0\.1:\d+$/, `peer of ${id}`);
    assert.ok((l.bytes_in as number) > 0, `bytes_in of ${id}`);
    assert.ok((l.total_ms as number) >= 0 && (l.queue_ms as number) >= 0 && (l.upstream_ms as number) >= 0, id);
    assert.ok((l.queue_ms as number) + (l.upstream_ms as number) <= (l.total_ms as number) + 0.002, `times of ${id}: ${JSON.stringify(l)}`);
  }
  for (const id of ['ok-0', 'ok-1', 'ok-2']) {
    const l = byId.get(id)!;
    assert.equal(statuses[id], 0);
    assert.equal(l.status, 0);
    assert.equal(l.code, 'OK');
    assert.equal(l.model, 'simple');
    assert.equal(l.upstream, r.models.endpoints.models);
    assert.ok((l.bytes_out as number) > 0);
    assert.ok((l.upstream_ms as number) > 0);
  }
  assert.equal(statuses['http-1'], 200);
  assert.equal(byId.get('http-1')!.status, 0);
  assert.ok((byId.get('http-1')!.bytes_out as number) > 0);
  // No route at the egress: NOT_FOUND, no model server called.
  const nr = byId.get('no-route-1')!;
  assert.equal(statuses['no-route-1'], 5);
  assert.equal(nr.status, 5);
  assert.equal(nr.code, 'NOT_FOUND');
  assert.equal(nr.model, 'no-such-model');
  assert.equal(nr.bytes_out, 0);
  assert.ok(!('upstream' in nr), JSON.stringify(nr));
  // The model server is down: UNAVAILABLE, and the line names it.
  const down = byId.get('down-1')!;
  assert.equal(statuses['down-1'], 14);
  assert.equal(down.status, 14);
  assert.equal(down.code, 'UNAVAILABLE');
  assert.equal(down.upstream, r.downAddress);
  assert.equal(down.bytes_out, 0);
  // The model server refused the tensor.
  const refused = byId.get('refused-1')!;
  assert.equal(statuses['refused-1'], 3);
  assert.equal(refused.status, 3);
  assert.equal(refused.code, 'INVALID_ARGUMENT');
  assert.equal(refused.upstream, r.models.endpoints.models);
  // The model server answered OK with a broken frame: INTERNAL to the caller and in the line.
  const garbled = byId.get('garbled-1')!;
  assert.equal(statuses['garbled-1'], 13, 'the client saw INTERNAL');
  assert.equal(garbled.status, 13, JSON.stringify(garbled));
  assert.equal(garbled.code, 'INTERNAL');
  assert.equal(garbled.bytes_out, 0);
  // The model server never answered: the egress's deadline or the front's CANCEL ended it.
  const silent = byId.get('silent-1')!;
  assert.equal(statuses['silent-1'], 4, 'the client saw DEADLINE_EXCEEDED');
  assert.ok(silent.status === 4 || silent.status === 1, JSON.stringify(silent));
  assert.equal(silent.upstream, `127.0.0.1:${(r.silent.address() as { port: number }).port}`);
  assert.equal(silent.bytes_out, 0);
  assert.ok((silent.upstream_ms as number) >= 200, `the model server's time: ${JSON.stringify(silent)}`);
}

const keyShape = (byId: Map<string, Line>): Record<string, string[]> => Object.fromEntries([...byId].filter(([id]) => !id.startsWith('warm')).map(([id, l]) => [id, Object.keys(l).sort()]));

describe('egress access log', { timeout: 180_000 }, () => {
  let engineRig: Rig | undefined;
  let tsRig: Rig | undefined;
  let engineLines: Map<string, Line> | undefined;
  before(async () => {
    engineRig = await startRig(true);
  });
  after(async () => {
    await stopRig(engineRig);
    await stopRig(tsRig);
  });

  test('on the engine: one segment line per call, the client request id end to end, statuses and addresses; records come in batches', async () => {
    const r = engineRig!;
    assert.equal(r.egress.egressOnEngine, true, 'the access log keeps the egress on the engine');
    assert.ok(!r.egressLines.some((l) => typeof l.msg === 'string' && l.msg.includes('the access log is on')), 'no refusal warning');
    const engine = (r.egress as unknown as { engineEgress: EngineEgress }).engineEgress.engine;
    const batches = batchCounter();
    let records = 0;
    engine.on('egress-call-done', (_: EngineEgressCallDone) => {
      records += 1;
      batches.note();
    });
    const { byId, statuses } = await callsAndLines(r);
    checkLines(r, byId, statuses);
    engineLines = byId;
    // A run of back-to-back calls: their records share wake-ups (at most one per 10 ms window
    // the answers span, plus slack for a window split by the skew between record and answer).
    const before = { batches: batches.batches, records };
    const N = 60;
    const answeredAt: number[] = [];
    for (let i = 0; i < N; i++) {
      await r.kc.infer(simple('simple'), { requestId: `run-${i}` });
      answeredAt.push(performance.now());
    }
    const deadline = Date.now() + 5000;
    while (records - before.records < N && Date.now() < deadline) await sleep(5);
    assert.equal(records - before.records, N, 'one record per call');
    const windows = batchWindows(answeredAt);
    const runBatches = batches.batches - before.batches;
    assert.ok(runBatches <= windows + 2, `${runBatches} batches for ${N} records, whose answers span ${windows} windows of 8 ms`);
    assert.equal(engine.counters.eventsDropped, 0, 'no record dropped');
    console.log(`egress access records: ${N} calls, ${runBatches} JS wake-ups (${(runBatches / N).toFixed(2)} per call; ${windows} windows of 8 ms)`);
  });

  test('on the TypeScript egress (SLUICE_ENGINE=0): the same lines, the same fields', async () => {
    tsRig = await startRig(false);
    assert.equal(tsRig.egress.egressOnEngine, false);
    const { byId, statuses } = await callsAndLines(tsRig);
    checkLines(tsRig, byId, statuses);
    if (engineLines !== undefined) assert.deepEqual(keyShape(byId), keyShape(engineLines), 'the log format does not depend on the path');
  });
});
