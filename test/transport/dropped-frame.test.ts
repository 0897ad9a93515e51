// A frame dropped between two links (issue 14, item 7): the receiver used to notice the gap only
// when a later frame arrived, so a call whose request (or reply) was the last frame waited for
// its deadline. The tail witness (link-base.ts) makes the sender follow a quiet period with a
// REKEY frame, so the gap is found within tailWitnessMs and the calls fail at once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SegmentForwarder } from '../../src/ingress/segment-forwarder.ts';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo } from '../../src/transport/types.ts';
import { FrameType } from '../../src/wire/frame-header.ts';
import { CallMethod, InferenceKind } from '../../src/wire/inference-envelope.ts';
import { startFrameProxy, type FrameEdit } from '../helpers/frame-proxy.ts';

const isInferenceData = (f: Buffer) => f[3] === FrameType.DATA && f[4] === 1;

async function linkThroughProxy(edit: FrameEdit, tailWitnessMs?: number) {
  const key = randomBytes(32);
  const transport = new TcpTransport(tailWitnessMs === undefined ? {} : { link: { tailWitnessMs } });
  const listener = await transport.listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key });
  const proxy = await startFrameProxy({ host: '127.0.0.1', port: listener.address.port }, edit);
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await transport.connect({ segment: 'inference', host: '127.0.0.1', port: proxy.port, segmentKey: key });
  const [server] = await accepted;
  return {
    client,
    server,
    async cleanup() {
      await Promise.all([client.close(), server.close()]);
      await proxy.close();
      await listener.close();
    },
  };
}

/** Drops the `n`th inference data frame (0-based) the initiator sends. */
function dropInferenceFrame(n: number): FrameEdit {
  let seen = 0;
  return (f) => (isInferenceData(f) && seen++ === n ? [] : [f]);
}

test('the last frame dropped: the receiver finds the gap within the witness bound and both ends close', async () => {
  const l = await linkThroughProxy(dropInferenceFrame(1));
  try {
    const got: string[] = [];
    l.server.on('message', (m: InboundMessage) => got.push(m.body.toString()));
    const serverClosed = once(l.server, 'close') as Promise<[LinkCloseInfo]>;
    const clientClosed = once(l.client, 'close') as Promise<[LinkCloseInfo]>;
    const t0 = performance.now();
    l.client.send({ cls: 'inference', kind: 0, streamId: 1, tenant: 0, body: Buffer.from('first') });
    l.client.send({ cls: 'inference', kind: 0, streamId: 3, tenant: 0, body: Buffer.from('second (dropped)') });
    // Nothing else is sent: only the witness can reveal the gap.
    const [info] = await Promise.race([serverClosed, sleep(5000).then(() => assert.fail('the gap went unnoticed for 5 s'))]);
    const ms = performance.now() - t0;
    assert.equal((info.error as { code?: string }).code, 'SLUICE_ERR_WIRE_SEQUENCE_GAP');
    assert.ok(ms < 2000, `found after ${Math.round(ms)} ms`);
    await clientClosed;
    assert.deepEqual(got, ['first']);
  } finally {
    await l.cleanup();
  }
});

test('a quiet link that lost nothing stays up through its witnesses', async () => {
  const l = await linkThroughProxy((f) => [f], 50);
  try {
    const got: string[] = [];
    l.server.on('message', (m: InboundMessage) => got.push(m.body.toString()));
    for (let i = 0; i < 5; i++) {
      l.client.send({ cls: 'inference', kind: 0, streamId: 1, tenant: 0, body: Buffer.from(`m${i}`) });
      await sleep(120); // past the witness bound each time
    }
    assert.equal(l.client.closed || l.server.closed, false);
    assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4']);
    const rekeys = l.client.stats().rekeys;
    assert.ok(rekeys >= 4 && rekeys <= 6, `one witness per quiet period, got ${rekeys}`);
    await sleep(200);
    assert.equal(l.client.stats().rekeys, rekeys, 'no witness without new frames');
  } finally {
    await l.cleanup();
  }
});

test('an inference call whose request frame is dropped fails with PEER_UNAVAILABLE at once, not at its deadline', async () => {
  const l = await linkThroughProxy(dropInferenceFrame(0));
  // The egress side: answers nothing (it never sees the call).
  l.server.on('message', () => undefined);
  const links = Object.assign(new EventEmitter(), {
    pick: () => ({ name: 'egress-1', link: l.client }),
    isUp: () => true,
    linkOf: () => l.client,
  });
  const forwarder = new SegmentForwarder(links as never, createLogger('silent', 'test'));
  links.emit('link', 'egress-1', l.client);
  try {
    const t0 = performance.now();
    const ctx = { requestId: 'r-1', model: 'simple', version: '', tenant: 0, deadline: Date.now() + 30_000 } as never;
    const err = await forwarder.call(ctx, CallMethod.ModelInfer, Buffer.from('payload'), ['egress-1']).then(
      () => assert.fail('the call cannot succeed'),
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    assert.ok(err instanceof InferenceError, String(err));
    assert.equal(err.code, 'SLUICE_ERR_PEER_UNAVAILABLE');
    assert.match(err.message, /closed before the reply/);
    assert.ok(ms < 3000, `failed after ${Math.round(ms)} ms (deadline 30 s)`);
    assert.equal(forwarder.inflight, 0);
  } finally {
    await l.cleanup();
  }
});

test('a dropped reply frame fails the waiting call at once too (the egress side is the sender)', async () => {
  // Here the initiator plays the egress: the frame it drops is the reply.
  const l = await linkThroughProxy(dropInferenceFrame(0));
  const ingress = l.server;
  const egress = l.client;
  egress.on('message', (m: InboundMessage) => {
    if (m.kind === InferenceKind.CALL) egress.send({ cls: 'inference', kind: InferenceKind.REPLY, streamId: m.streamId, tenant: m.tenant, body: Buffer.alloc(8) });
  });
  const links = Object.assign(new EventEmitter(), {
    pick: () => ({ name: 'egress-1', link: ingress }),
    isUp: () => true,
    linkOf: () => ingress,
  });
  const forwarder = new SegmentForwarder(links as never, createLogger('silent', 'test'));
  links.emit('link', 'egress-1', ingress);
  try {
    const t0 = performance.now();
    const ctx = { requestId: 'r-2', model: 'simple', version: '', tenant: 0, deadline: Date.now() + 30_000 } as never;
    const err = await forwarder.call(ctx, CallMethod.ModelInfer, Buffer.from('payload'), ['egress-1']).then(
      () => assert.fail('the reply was dropped'),
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    assert.ok(err instanceof InferenceError, String(err));
    assert.equal(err.code, 'SLUICE_ERR_PEER_UNAVAILABLE');
    assert.ok(ms < 3000, `failed after ${Math.round(ms)} ms (deadline 30 s)`);
  } finally {
    await l.cleanup();
  }
});
