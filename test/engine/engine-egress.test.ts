// The engine's egress against the reference model server, side by side with the TypeScript
// egress (src/egress/egress-service.ts): every scenario is sent to both over a TS initiator
// link, and the REPLY envelopes must agree (status, code, message, request id, payload).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { EgressService } from '../../src/egress/egress-service.ts';
import { UpstreamPool } from '../../src/egress/upstream-pool.ts';
import { NativeEngine } from '../../src/engine/native-engine.ts';
import { decodeMessage, encodeMessage, type ModelInferResponseMsg } from '../../src/kserve/proto.ts';
import { ModelServer } from '../../src/models/model-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, Listener } from '../../src/transport/types.ts';
import { CallMethod, decodeReply, encodeCallHeader, encodeCancel, InferenceKind, type DecodedReply } from '../../src/wire/inference-envelope.ts';
import { closedPort } from '../../scripts/sluice-child.ts';
import { linkOptions } from './engine-harness.ts';

const KEY = randomBytes(32);
const MAX = 8 << 20;
const logger = createLogger('silent', 'test');

function inferRequest(model: string, bytes: number, delayMs = 0): Buffer {
  return encodeMessage('ModelInferRequest', {
    modelName: model,
    ...(delayMs > 0 ? { parameters: { delay_ms: { int64Param: delayMs } } } : {}),
    inputs: [{ name: 'INPUT0', datatype: 'UINT8', shape: [bytes] }],
    rawInputContents: [Buffer.alloc(bytes, 7)],
  });
}

interface Egress {
  name: string;
  link: Link;
  replies: Map<number, DecodedReply>;
  waiters: Map<number, (r: DecodedReply) => void>;
}

function call(e: Egress, stream: number, body: Buffer | Buffer[], tenant = 0): Promise<DecodedReply> {
  const reply = new Promise<DecodedReply>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${e.name}: no reply on stream ${stream}`)), 15_000);
    e.waiters.set(stream, (r) => {
      clearTimeout(timer);
      resolve(r);
    });
  });
  e.link.send({ cls: 'inference', kind: InferenceKind.CALL, streamId: stream, tenant, body });
  return reply;
}

function attach(name: string, link: Link): Egress {
  const e: Egress = { name, link, replies: new Map(), waiters: new Map() };
  link.on('message', (m: InboundMessage) => {
    if (m.kind !== InferenceKind.REPLY) return;
    const r = decodeReply(Buffer.from(m.body));
    e.waiters.get(m.streamId)?.(r);
    e.waiters.delete(m.streamId);
  });
  return e;
}

function callBody(model: string, payload: Buffer, opts: { method?: number; timeoutMs?: number; requestId?: string } = {}): Buffer[] {
  const header = encodeCallHeader({
    method: (opts.method ?? CallMethod.ModelInfer) as 1,
    timeoutMs: opts.timeoutMs ?? 5000,
    requestId: opts.requestId ?? `req-${model}`,
    model,
    version: '',
  });
  return [header, payload];
}

describe('engine egress, in parity with the TypeScript egress', { timeout: 90_000 }, () => {
  let server: ModelServer;
  let upstream: string;
  let dead: string;
  let engine: NativeEngine;
  let tsListener: Listener;
  let tsEgress: EgressService;
  const both: Egress[] = [];
  let enginePort = 0;

  before(async () => {
    server = new ModelServer({ host: '127.0.0.1', port: 0, models: ['identity', 'simple'], dense: { k: 1, n: 1, seed: 1, maxBatch: 1 }, maxMessageBytes: MAX, maxDelayMs: 5000, logger });
    upstream = `127.0.0.1:${await server.start()}`;
    dead = `127.0.0.1:${await closedPort()}`;
    const routes = [
      { model: 'identity', upstreams: [{ address: upstream }] },
      { model: 'simple', upstreams: [{ address: upstream }] },
      { model: 'nope', upstreams: [{ address: upstream }] },
      { model: 'down', upstreams: [{ address: dead }] },
    ];
    engine = new NativeEngine('sluice-egress-t');
    engine.configureEgress({ routes: routes.map((r) => ({ model: r.model, addresses: r.upstreams.map((u) => u.address) })), tenants: [], maxMessageBytes: MAX, connectTimeoutMs: 3000 });
    const { port } = await engine.listen('127.0.0.1', 0, linkOptions(KEY));
    enginePort = port;
    tsEgress = new EgressService({ upstreams: new UpstreamPool(routes, MAX), logger });
    tsListener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: KEY });
    tsListener.on('link', (l: Link) => tsEgress.attach(l));
    const t = new TcpTransport();
    both.push(attach('engine', await t.connect({ segment: 'inference', host: '127.0.0.1', port, segmentKey: KEY })));
    both.push(attach('ts', await t.connect({ segment: 'inference', host: '127.0.0.1', port: tsListener.address.port, segmentKey: KEY })));
  });

  after(async () => {
    for (const e of both) await e.link.close();
    engine?.stop();
    tsEgress?.close();
    await tsListener?.close();
    await server?.stop(100);
  });

  let stream = 1;
  async function compare(body: () => Buffer | Buffer[], check: (r: DecodedReply) => void): Promise<void> {
    const replies = await Promise.all(both.map((e) => call(e, stream, body())));
    stream += 1;
    const [a, b] = replies as [DecodedReply, DecodedReply];
    check(a);
    check(b);
    assert.deepEqual(
      { status: a.status, code: a.code, message: a.message, requestId: a.requestId, payload: a.payload.toString('hex') },
      { status: b.status, code: b.code, message: b.message, requestId: b.requestId, payload: b.payload.toString('hex') },
    );
  }

  test('ModelInfer: the serialized response comes back OK', async () => {
    for (const size of [1, 1000, 300_000, 3 << 20]) {
      await compare(
        () => callBody('identity', inferRequest('identity', size)),
        (r) => {
          assert.equal(r.status, 0);
          const msg = decodeMessage<ModelInferResponseMsg>('ModelInferResponse', r.payload);
          assert.equal(msg.rawOutputContents[0]!.length, size);
        },
      );
    }
  });

  test('ModelReady and ModelMetadata go through', async () => {
    await compare(() => callBody('simple', encodeMessage('ModelReadyRequest', { name: 'simple' }), { method: CallMethod.ModelReady }), (r) => assert.equal(r.status, 0));
    await compare(() => callBody('simple', encodeMessage('ModelMetadataRequest', { name: 'simple' }), { method: CallMethod.ModelMetadata }), (r) => assert.equal(r.status, 0));
  });

  test('a model the server does not know: NOT_FOUND with the server details', async () => {
    await compare(() => callBody('nope', inferRequest('nope', 4)), (r) => {
      assert.equal(r.status, 5);
      assert.equal(r.code, 'SLUICE_ERR_MODEL_NOT_FOUND');
    });
  });

  test('a model without an upstream here: NOT_FOUND from the egress', async () => {
    await compare(() => callBody('unrouted', inferRequest('unrouted', 4)), (r) => {
      assert.equal(r.status, 5);
      assert.equal(r.message, "no upstream model server serves model 'unrouted' on this egress");
    });
  });

  test('a dead upstream answers UNAVAILABLE, and the egress keeps serving', async () => {
    await compare(() => callBody('down', inferRequest('down', 4)), (r) => {
      assert.equal(r.status, 14);
      assert.equal(r.code, 'SLUICE_ERR_UPSTREAM_UNAVAILABLE');
      assert.match(r.message, new RegExp(`^model server ${dead} is unavailable: `));
    });
    await compare(() => callBody('identity', inferRequest('identity', 10)), (r) => assert.equal(r.status, 0));
  });

  test('the deadline of the call bounds the upstream call', async () => {
    await compare(() => callBody('identity', inferRequest('identity', 4, 2000), { timeoutMs: 200 }), (r) => {
      assert.equal(r.status, 4);
      assert.equal(r.code, 'SLUICE_ERR_DEADLINE_EXCEEDED');
    });
  });

  test('a malformed envelope is answered INTERNAL for request "invalid"', async () => {
    await compare(() => Buffer.from([9, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 65]), (r) => {
      assert.equal(r.status, 13);
      assert.equal(r.requestId, 'invalid');
      assert.equal(r.message, 'bad inference envelope: unsupported version 9');
    });
  });

  test('CANCEL stops the upstream call: no reply, counted', async () => {
    const e = both[0]!;
    const before = engine.counters.get('egressCallsCancelled');
    let replied = false;
    e.waiters.set(9000, () => {
      replied = true;
    });
    e.link.send({ cls: 'inference', kind: InferenceKind.CALL, streamId: 9000, body: callBody('identity', inferRequest('identity', 4, 1500)) });
    await new Promise((r) => setTimeout(r, 100));
    e.link.send({ cls: 'inference', kind: InferenceKind.CANCEL, streamId: 9000, body: encodeCancel(0) });
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(replied, false);
    assert.equal(engine.counters.get('egressCallsCancelled'), before + 1);
    assert.equal(engine.egressInflight, 0);
    e.waiters.delete(9000);
  });

  test('a link that closes cancels its calls', async () => {
    const link = await new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port: enginePort, segmentKey: KEY });
    link.send({ cls: 'inference', kind: InferenceKind.CALL, streamId: 1, body: callBody('identity', inferRequest('identity', 4, 1500)) });
    await waitUntil(() => engine.egressInflight === 1);
    await link.close();
    await waitUntil(() => engine.egressInflight === 0);
  });

  test('many concurrent calls on one link, replies matched by stream', async () => {
    const e = both[0]!;
    const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => call(e, 10_000 + i, callBody('identity', inferRequest('identity', 100 + i), { requestId: `r-${i}` }))));
    replies.forEach((r, i) => {
      assert.equal(r.status, 0);
      assert.equal(r.requestId, `r-${i}`);
      assert.equal(decodeMessage<ModelInferResponseMsg>('ModelInferResponse', r.payload).rawOutputContents[0]!.length, 100 + i);
    });
    assert.ok(engine.counters.replies(0) >= 64);
  });

});

async function waitUntil(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
