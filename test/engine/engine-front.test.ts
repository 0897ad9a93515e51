// The TypeScript gateway's calls on the native engine's links (native/engine/front_calls.h,
// src/engine/engine-segment-channel.ts): the egress here is the TypeScript link implementation
// (the interop reference) on a real encrypted TCP link, so every byte the engine sends is read
// by the TS codec. Replies, deadlines, cancellation, link loss, a dead peer, many calls at once
// through reused request slots, late replies, and the v1-peer fallback.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { EngineSegmentChannel } from '../../src/engine/engine-segment-channel.ts';
import { NativeEngine } from '../../src/engine/native-engine.ts';
import { newRequestContext, type RequestContext } from '../../src/ingress/request-context.ts';
import { SegmentForwarder } from '../../src/ingress/segment-forwarder.ts';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, Listener } from '../../src/transport/types.ts';
import { CallMethod, CancelReason, decodeCall, decodeCancel, encodeReplyHeader, InferenceKind } from '../../src/wire/inference-envelope.ts';
import { closedPort } from '../../scripts/sluice-child.ts';
import { linkOptions } from './engine-harness.ts';

const key = randomBytes(32);
const logger = createLogger('silent', 'test');
let listener: Listener;
let engine: NativeEngine;
let channel: EngineSegmentChannel;
let fwd: SegmentForwarder;
/** Links the TS egress accepted (the node must hold exactly one per peer). */
const accepted: Link[] = [];
/** CANCELs the egress received: stream -> reason. */
const cancels = new Map<number, number>();
/** Calls the egress holds without answering (model "hold"): request id -> answer later. */
const held = new Map<string, () => void>();

before(async () => {
  listener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key, maxMessageBytes: 8 << 20 });
  listener.on('link', (link: Link) => {
    accepted.push(link);
    link.on('message', (m: InboundMessage) => {
      if (m.kind === InferenceKind.CANCEL) {
        cancels.set(m.streamId, decodeCancel(m.body));
        return;
      }
      if (m.kind !== InferenceKind.CALL) return;
      const call = decodeCall(m.body);
      const reply = (): void => {
        link.send({
          cls: 'inference',
          kind: InferenceKind.REPLY,
          streamId: m.streamId,
          tenant: m.tenant,
          body: [encodeReplyHeader({ status: 0, code: '', message: '', requestId: call.requestId }, call.envelopeVersion), Buffer.concat([Buffer.from(`${call.model}:${m.tenant}:`), call.payload])],
        });
      };
      if (call.model === 'drop-link') void link.close('egress goes away');
      else if (call.model === 'hold') held.set(call.requestId, reply);
      else if (call.model === 'garbage') {
        // Replies on streams of no call (front-call ids and others), then junk on the right one.
        for (let i = 0; i < 50; i++) {
          const streamId = (randomBytes(4).readUInt32BE(0) | (i % 2 === 0 ? 0x80000000 : 0)) >>> 0;
          if (streamId !== m.streamId) link.send({ cls: 'inference', kind: InferenceKind.REPLY, streamId, tenant: m.tenant, body: randomBytes(i) });
        }
        link.send({ cls: 'inference', kind: InferenceKind.REPLY, streamId: m.streamId, tenant: m.tenant, body: randomBytes(12) });
      }
      else if (call.model === 'error')
        link.send({
          cls: 'inference',
          kind: InferenceKind.REPLY,
          streamId: m.streamId,
          tenant: m.tenant,
          body: encodeReplyHeader({ status: 14, code: 'SLUICE_ERR_UPSTREAM_UNAVAILABLE', message: 'model server down', requestId: call.requestId }, call.envelopeVersion),
        });
      else reply();
    });
  });
  engine = new NativeEngine('sluice-front-test');
  const dead = await closedPort();
  const peers = [
    { name: 'egress', dialer: engine.dial('127.0.0.1', listener.address.port, linkOptions(key, undefined, { maxMessageBytes: 8 << 20 })), address: `127.0.0.1:${listener.address.port}` },
    { name: 'dead', dialer: engine.dial('127.0.0.1', dead, linkOptions(key, undefined, { maxMessageBytes: 8 << 20 })), address: `127.0.0.1:${dead}` },
  ];
  channel = new EngineSegmentChannel(engine, peers, logger);
  fwd = new SegmentForwarder(channel, logger);
  assert.ok(await channel.waitForFirstAttempts(10_000));
  const t0 = Date.now();
  while (!channel.isUp('egress') && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  assert.ok(channel.isUp('egress'));
});

after(async () => {
  channel?.close();
  engine?.stop();
  await listener?.close();
});

function ctx(requestId: string, model: string, timeoutMs = 5000, tenant = 0): RequestContext {
  const c = newRequestContext({ requestId, protocol: 'http', method: 'ModelInfer', model, version: '', deadline: Date.now() + timeoutMs, headers: {}, requestBytes: 0 });
  c.tenant = tenant;
  return c;
}

async function failure(p: Promise<unknown>): Promise<InferenceError> {
  const e = await p.then(
    () => assert.fail('the call cannot succeed'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof InferenceError, String(e));
  return e;
}

test('a call goes out on the engine link with its tenant and comes back; the egress sees one link', async () => {
  const c = ctx('f-1', 'simple', 5000, 7);
  const out = await fwd.call(c, CallMethod.ModelInfer, Buffer.from('payload'), ['egress']);
  assert.equal(out.toString(), 'simple:7:payload');
  assert.equal(c.cancel, undefined);
  assert.ok(c.segment !== undefined && c.segment.peer === 'egress' && c.segment.repliedAt >= c.segment.sentAt);
  assert.equal(accepted.length, 1);
  assert.equal(channel.inflight, 0);
});

test('many calls at once through reused request slots, large and small', async () => {
  const big = randomBytes(3 << 20);
  for (let round = 0; round < 3; round++) {
    const calls = Array.from({ length: 200 }, (_, i) => fwd.call(ctx(`m-${round}-${i}`, 'simple'), CallMethod.ModelInfer, i % 50 === 0 ? big : Buffer.from(`p${i}`), ['egress']));
    const out = await Promise.all(calls);
    out.forEach((b, i) => assert.ok(i % 50 === 0 ? b.subarray(b.length - big.length).equals(big) : b.toString() === `simple:0:p${i}`));
  }
  assert.equal(channel.inflight, 0);
});

test('an egress error keeps its status and code', async () => {
  const e = await failure(fwd.call(ctx('f-err', 'error'), CallMethod.ModelInfer, Buffer.from('x'), ['egress']));
  assert.equal(e.code, 'SLUICE_ERR_UPSTREAM_UNAVAILABLE');
  assert.equal(e.message, 'model server down');
});

test('replies on streams of no call are ignored; a malformed reply fails its call with INTERNAL', async () => {
  const e = await failure(fwd.call(ctx('f-junk', 'garbage'), CallMethod.ModelInfer, Buffer.from('x'), ['egress']));
  assert.equal(e.code, 'SLUICE_ERR_INTERNAL');
  assert.match(e.message, /bad inference envelope/);
  assert.equal((await fwd.call(ctx('f-clean', 'simple'), CallMethod.ModelInfer, Buffer.from('ok'), ['egress'])).toString(), 'simple:0:ok');
  assert.equal(channel.inflight, 0);
});

test('the deadline: DEADLINE_EXCEEDED from the engine timer, CANCEL(DEADLINE) to the egress, a late reply ignored', async () => {
  const t0 = Date.now();
  const e = await failure(fwd.call(ctx('f-dl', 'hold', 300), CallMethod.ModelInfer, Buffer.from('x'), ['egress']));
  assert.equal(e.code, 'SLUICE_ERR_DEADLINE_EXCEEDED');
  assert.match(e.message, /within the deadline of/);
  assert.ok(Date.now() - t0 >= 250 && Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  const t1 = Date.now();
  while (![...cancels.values()].includes(CancelReason.DEADLINE) && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 10));
  assert.ok([...cancels.values()].includes(CancelReason.DEADLINE));
  // The egress answers late: nothing breaks, the next call in the (reused) slot gets its own answer.
  held.get('f-dl')!();
  assert.equal((await fwd.call(ctx('f-after', 'simple'), CallMethod.ModelInfer, Buffer.from('y'), ['egress'])).toString(), 'simple:0:y');
  assert.equal(channel.inflight, 0);
});

test('cancellation: CANCELLED at once, CANCEL(CALLER) to the egress', async () => {
  cancels.clear();
  const c = ctx('f-cancel', 'hold');
  const p = fwd.call(c, CallMethod.ModelInfer, Buffer.from('x'), ['egress']);
  const t0 = Date.now();
  while (!held.has('f-cancel') && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5));
  assert.ok(c.cancel !== undefined);
  c.cancel();
  const e = await failure(p);
  assert.equal(e.code, 'SLUICE_ERR_CANCELLED');
  const t1 = Date.now();
  while (![...cancels.values()].includes(CancelReason.CALLER) && Date.now() - t1 < 3000) await new Promise((r) => setTimeout(r, 10));
  assert.ok([...cancels.values()].includes(CancelReason.CALLER));
  assert.equal(channel.inflight, 0);
});

test('a dead peer: PEER_UNAVAILABLE naming its address, at once', async () => {
  const t0 = Date.now();
  const e = await failure(fwd.call(ctx('f-dead', 'simple'), CallMethod.ModelInfer, Buffer.from('x'), ['dead']));
  assert.equal(e.code, 'SLUICE_ERR_PEER_UNAVAILABLE');
  assert.match(e.message, /no live link to egress peer \(dead: connect to 127\.0\.0\.1:\d+ failed/);
  assert.ok(Date.now() - t0 < 1000);
});

test('link loss during a call: PEER_UNAVAILABLE "closed before the reply", then the engine redials', async () => {
  const e = await failure(fwd.call(ctx('f-drop', 'drop-link'), CallMethod.ModelInfer, Buffer.from('x'), ['egress']));
  assert.equal(e.code, 'SLUICE_ERR_PEER_UNAVAILABLE');
  assert.match(e.message, /link to egress peer egress closed before the reply \(peer: /);
  assert.equal(channel.inflight, 0);
  const t0 = Date.now();
  while (accepted.length < 2 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  while (!channel.isUp('egress') && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  assert.equal((await fwd.call(ctx('f-back', 'simple'), CallMethod.ModelInfer, Buffer.from('z'), ['egress'])).toString(), 'simple:0:z');
});

test('a message over the link limit: TOO_LARGE, not sent', async () => {
  const e = await failure(fwd.call(ctx('f-big', 'simple'), CallMethod.ModelInfer, Buffer.alloc(9 << 20), ['egress']));
  assert.equal(e.code, 'SLUICE_ERR_TOO_LARGE');
});
