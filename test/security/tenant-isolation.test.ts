import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { nodeCryptoAeadFactory } from '../../src/crypto/aead-factory.ts';
import { tenantTrafficKey, trafficKey } from '../../src/crypto/key-schedule.ts';
import { TrafficKeys } from '../../src/crypto/traffic-keys.ts';
import { isSluiceError } from '../../src/errors.ts';
import type { SecurityEvent } from '../../src/security/events.ts';
import { guardLink, guardListener } from '../../src/security/link-guard.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo } from '../../src/transport/types.ts';
import { FrameFlags, FrameType, HEADER_BYTES, decodeFrameHeader } from '../../src/wire/frame-header.ts';
import { FrameOpener } from '../../src/wire/frame-opener.ts';
import { FrameSealer } from '../../src/wire/frame-sealer.ts';
import { startFrameProxy, type FrameEdit } from '../helpers/frame-proxy.ts';

const LIMITS = { segment: 'inference' as const, maxFramePayload: 1 << 20, maxMessageBytes: 1 << 24 };

function pair() {
  const secret = randomBytes(32);
  return { sealer: new FrameSealer(new TrafficKeys(secret, 1, nodeCryptoAeadFactory), 'inference'), opener: new FrameOpener(new TrafficKeys(secret, 1, nodeCryptoAeadFactory)) };
}

function sealFor(sealer: FrameSealer, tenant: number, body: Buffer): Buffer {
  return sealer.seal({ type: FrameType.DATA, cls: 'inference', flags: FrameFlags.FIRST | FrameFlags.LAST, streamId: 1, kind: 0, tenant, messageLength: body.length, parts: [body], payloadLength: body.length });
}

function openFrame(opener: FrameOpener, frame: Buffer): Buffer {
  const h = decodeFrameHeader(frame, LIMITS);
  const out = Buffer.alloc(h.payloadLength);
  opener.open(h, frame.subarray(0, HEADER_BYTES), frame.subarray(HEADER_BYTES), out);
  return out;
}

test('each tenant has its own key per epoch, derived from the link secret with the tenant id', () => {
  const secret = randomBytes(32);
  const keys = new Set([trafficKey(secret), tenantTrafficKey(secret, 1), tenantTrafficKey(secret, 2), tenantTrafficKey(secret, 0xffff_ffff)].map((k) => k.toString('hex')));
  assert.equal(keys.size, 4);
  assert.throws(() => tenantTrafficKey(secret, 0), RangeError);
  // Same secret, same (first) nonce, same plaintext: GCM's ciphertext does not depend on the
  // AAD, so it differs between tenants only because the key does. Same tenant: identical.
  const body = Buffer.alloc(64, 0x42);
  const sealer = () => new FrameSealer(new TrafficKeys(secret, 1, nodeCryptoAeadFactory), 'inference');
  const ct = (tenant: number) => sealFor(sealer(), tenant, body).subarray(HEADER_BYTES, HEADER_BYTES + body.length);
  assert.deepEqual(ct(7), ct(7));
  assert.notDeepEqual(ct(7), ct(8));
  assert.notDeepEqual(ct(7), ct(0));
});

test("a frame's tenant cannot be changed: rewritten tenant fails authentication, the original still opens", () => {
  const { sealer, opener } = pair();
  const frame = sealFor(sealer, 7, Buffer.from('tensor bytes of tenant 7'));
  const forged = Buffer.from(frame);
  forged.writeUInt32BE(8, 16);
  assert.throws(() => openFrame(opener, forged), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_WIRE_AUTH'));
  assert.equal(openFrame(opener, frame).toString(), 'tensor bytes of tenant 7');
  // ... and once accepted it cannot be replayed, under any tenant.
  assert.throws(() => openFrame(opener, frame), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_WIRE_REPLAY'));
});

test('tenant keys follow rekeys', () => {
  const { sealer, opener } = pair();
  openFrame(opener, sealFor(sealer, 5, Buffer.from('one')));
  const rekey = sealer.sealRekey();
  opener.applyRekey(openFrame(opener, rekey));
  assert.equal(openFrame(opener, sealFor(sealer, 5, Buffer.from('two'))).toString(), 'two');
});

async function linkThroughProxy(edit: FrameEdit) {
  const events: SecurityEvent[] = [];
  const sink = { emit: (e: SecurityEvent) => void events.push(e) };
  const key = randomBytes(32);
  const transport = new TcpTransport({ aeadFactory: nodeCryptoAeadFactory });
  const listener = await transport.listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key });
  guardListener(listener, 'inference', sink);
  const proxy = await startFrameProxy({ host: '127.0.0.1', port: listener.address.port }, edit);
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await transport.connect({ segment: 'inference', host: '127.0.0.1', port: proxy.port, segmentKey: key });
  guardLink(client, sink);
  const [server] = await accepted;
  return {
    events,
    client,
    server,
    async cleanup() {
      await Promise.all([client.close(), server.close()]);
      await proxy.close();
      await listener.close();
    },
  };
}

const isInferenceData = (f: Buffer) => f[3] === FrameType.DATA && f[4] === 1;

test('over a real link: a frame whose tenant was rewritten in flight is refused and audited', async () => {
  let done = false;
  const l = await linkThroughProxy((f) => {
    if (!done && isInferenceData(f) && f.readUInt32BE(16) === 7) {
      done = true;
      f.writeUInt32BE(8, 16);
    }
    return [f];
  });
  try {
    const closed = once(l.server, 'close') as Promise<[LinkCloseInfo]>;
    let received: InboundMessage | null = null;
    l.server.on('message', (m: InboundMessage) => (received = m));
    l.client.send({ cls: 'inference', kind: 0, streamId: 1, tenant: 7, body: Buffer.from('for tenant 7 only') });
    const [info] = await closed;
    assert.equal((info.error as { code?: string }).code, 'SLUICE_ERR_WIRE_AUTH');
    assert.equal(received, null, 'tenant 8 received nothing');
    assert.ok(l.events.some((e) => e.type === 'link.frame_rejected' && e.detail?.code === 'SLUICE_ERR_WIRE_AUTH'));
  } finally {
    await l.cleanup();
  }
});

test('over a real link: a replayed frame is refused and audited', async () => {
  let done = false;
  const l = await linkThroughProxy((f) => {
    if (!done && isInferenceData(f)) {
      done = true;
      return [f, Buffer.from(f)];
    }
    return [f];
  });
  try {
    const got: InboundMessage[] = [];
    l.server.on('message', (m: InboundMessage) => got.push(m));
    const closed = once(l.server, 'close') as Promise<[LinkCloseInfo]>;
    l.client.send({ cls: 'inference', kind: 0, streamId: 1, tenant: 3, body: Buffer.from('once') });
    const [info] = await closed;
    assert.equal((info.error as { code?: string }).code, 'SLUICE_ERR_WIRE_REPLAY');
    assert.equal(got.length, 1, 'the original was delivered once, the copy refused');
    assert.ok(l.events.some((e) => e.type === 'link.frame_rejected' && e.detail?.code === 'SLUICE_ERR_WIRE_REPLAY'));
  } finally {
    await l.cleanup();
  }
});

test('over a real link: a frame relabelled as the training segment is refused as a segment violation', async () => {
  let done = false;
  const l = await linkThroughProxy((f) => {
    if (!done && isInferenceData(f)) {
      done = true;
      f[4] = 2; // class training
      f[5] = 2; // segment training
    }
    return [f];
  });
  try {
    const closed = once(l.server, 'close') as Promise<[LinkCloseInfo]>;
    l.client.send({ cls: 'inference', kind: 0, streamId: 1, tenant: 3, body: Buffer.from('x') });
    const [info] = await closed;
    assert.equal((info.error as { code?: string }).code, 'SLUICE_ERR_WIRE_SEGMENT');
    const violation = l.events.find((e) => e.type === 'segment.violation');
    assert.ok(violation !== undefined, 'the receiving end audits the violation');
    assert.equal(violation.outcome, 'denied');
    assert.equal(violation.detail?.segment, 'inference');
  } finally {
    await l.cleanup();
  }
});

test('the sending end refuses to queue traffic of the other segment; the link stays usable', async () => {
  const l = await linkThroughProxy((f) => [f]);
  try {
    assert.throws(() => l.client.send({ cls: 'training', kind: 0, streamId: 2, body: Buffer.from('bulk') }), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_LINK_WRONG_SEGMENT'));
    // The body may be a view of a receive buffer: read it inside the handler.
    const got = new Promise<string>((resolve) => l.server.once('message', (m: InboundMessage) => resolve(m.body.toString())));
    l.client.send({ cls: 'inference', kind: 0, streamId: 3, tenant: 3, body: Buffer.from('still fine') });
    assert.equal(await got, 'still fine');
  } finally {
    await l.cleanup();
  }
});

test('a training node dialling the inference listener is refused at the handshake and audited', async () => {
  const events: SecurityEvent[] = [];
  const key = randomBytes(32);
  const transport = new TcpTransport({ aeadFactory: nodeCryptoAeadFactory });
  const listener = await transport.listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key });
  guardListener(listener, 'inference', { emit: (e) => void events.push(e) });
  try {
    await assert.rejects(transport.connect({ segment: 'training', host: '127.0.0.1', port: listener.address.port, segmentKey: key }), (e: unknown) => isSluiceError(e, 'SLUICE_ERR_HANDSHAKE_SEGMENT'));
    for (let i = 0; i < 100 && events.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(events[0]?.type, 'segment.violation');
  } finally {
    await listener.close();
  }
});
