// Interop of the engine's inference-segment links with the TypeScript links (the reference
// implementation of docs/wire.md): real sockets on loopback, both ends as initiator, refusals
// with the handshake codes, tampering / replay / removed frames refused with the wire codes,
// fragmentation of large messages, and rekeying at lowered limits.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { NativeEngine } from '../../src/engine/native-engine.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, Listener } from '../../src/transport/types.ts';
import { HEADER_BYTES } from '../../src/wire/frame-header.ts';
import { startFrameProxy } from '../helpers/frame-proxy.ts';
import { echo, linkOptions, waitFor, type CloseEvent, type LinkEvent, type RejectedEvent } from './engine-harness.ts';

const KEY = randomBytes(32);
const TEST_KIND = 0xff00;

function nextMessage(link: Link, ms = 10_000): Promise<InboundMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message in time')), ms);
    link.once('message', (m: InboundMessage) => {
      clearTimeout(timer);
      resolve(m);
    });
  });
}

describe('engine link <-> TypeScript link', { timeout: 60_000 }, () => {
  let engine: NativeEngine;
  let port: number;

  before(async () => {
    engine = new NativeEngine('sluice-test');
    echo(engine);
    ({ port } = await engine.listen('127.0.0.1', 0, linkOptions(KEY)));
  });

  after(() => engine.stop());

  test('a TS initiator talks to an engine acceptor and back', async () => {
    const opened = waitFor<LinkEvent>(engine, 'link');
    const link = await new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port, segmentKey: KEY });
    try {
      const [info] = await opened;
      assert.equal(info.linkId, link.id, 'both ends derive the same link id from the transcript');
      assert.equal(info.role, 'acceptor');
      for (const size of [0, 1, 100, 70_000]) {
        const body = randomBytes(size);
        const got = nextMessage(link);
        link.send({ cls: 'inference', kind: TEST_KIND, streamId: 7, tenant: 3, body });
        const m = await got;
        assert.equal(m.kind, TEST_KIND);
        assert.equal(m.streamId, 7);
        assert.equal(m.tenant, 3);
        assert.ok(m.body.equals(body));
      }
      const closed = waitFor<CloseEvent>(engine, 'close', (id) => id === info.id);
      await link.close('done');
      const [, why] = await closed;
      assert.equal(why.by, 'peer');
      assert.equal(why.reason, 'done');
    } finally {
      await link.close();
    }
  });

  test('an engine initiator talks to a TS acceptor and back', async () => {
    const listener: Listener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: KEY });
    try {
      const accepted = once(listener, 'link') as Promise<[Link]>;
      const dialer = engine.dial('127.0.0.1', listener.address.port, linkOptions(KEY));
      const [info] = await waitFor<LinkEvent>(engine, 'link', (l) => l.dialer === dialer);
      const [link] = await accepted;
      assert.equal(info.role, 'initiator');
      assert.equal(info.linkId, link.id);
      link.on('message', (m: InboundMessage) => link.send({ cls: 'inference', kind: m.kind, streamId: m.streamId, tenant: m.tenant, body: m.body }));
      const body = randomBytes(3 * 1024 * 1024 + 17); // fragmented: 256 KiB inference frames
      engine.removeAllListeners('message'); // this engine must not echo its own echo back
      const echoed = new Promise<Buffer>((resolve) => {
        const on = (id: number, m: { body: Buffer; streamId: number }): void => {
          if (id !== info.id || m.streamId !== 9) return;
          engine.off('message', on);
          resolve(m.body);
        };
        engine.on('message', on);
      });
      engine.send(info.id, { cls: 1, kind: TEST_KIND, streamId: 9, body });
      assert.ok((await echoed).equals(body));
      const closed = once(link, 'close') as Promise<[LinkCloseInfo]>;
      engine.closeLink(info.id, 'bye');
      const [why] = await closed;
      assert.deepEqual({ by: why.by, reason: why.reason }, { by: 'peer', reason: 'bye' });
    } finally {
      echo(engine);
      await listener.close();
    }
  });

  test('large messages cross fragmented both ways, intact', async () => {
    const link = await new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port, segmentKey: KEY });
    try {
      for (const size of [256 * 1024, 256 * 1024 + 1, 5 * 1024 * 1024 + 3]) {
        const body = randomBytes(size);
        const got = nextMessage(link);
        link.send({ cls: 'inference', kind: TEST_KIND, streamId: size, body });
        assert.ok((await got).body.equals(body), `${size} bytes`);
      }
    } finally {
      await link.close();
    }
  });

  test('a wrong key and a wrong segment are refused with their codes on both ends', async () => {
    const rejected = waitFor<RejectedEvent>(engine, 'rejected', (e) => e.code === 'SLUICE_ERR_HANDSHAKE_AUTH');
    await assert.rejects(new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port, segmentKey: randomBytes(32) }), { code: 'SLUICE_ERR_HANDSHAKE_AUTH' });
    await rejected;
    const rejectedSeg = waitFor<RejectedEvent>(engine, 'rejected', (e) => e.code === 'SLUICE_ERR_HANDSHAKE_SEGMENT');
    await assert.rejects(new TcpTransport().connect({ segment: 'training', host: '127.0.0.1', port, segmentKey: KEY }), { code: 'SLUICE_ERR_HANDSHAKE_SEGMENT' });
    await rejectedSeg;
    // The engine as initiator with the wrong key: the TS listener refuses, the dialer says why.
    const listener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: KEY });
    try {
      const tsRejected = once(listener, 'rejected') as Promise<[{ code: string }]>;
      const dialer = engine.dial('127.0.0.1', listener.address.port, linkOptions(randomBytes(32)));
      const [, err] = await waitFor<[number, { code: string }]>(engine, 'dial-failed', (d) => d === dialer);
      assert.equal(err.code, 'SLUICE_ERR_HANDSHAKE_AUTH');
      assert.equal((await tsRejected)[0].code, 'SLUICE_ERR_HANDSHAKE_AUTH');
    } finally {
      await listener.close();
    }
  });

  for (const [name, edit, code] of [
    ['a tampered frame', (f: Buffer) => {
      f[HEADER_BYTES] = f[HEADER_BYTES]! ^ 1;
      return [f];
    }, 'SLUICE_ERR_WIRE_AUTH'],
    ['a replayed frame', (f: Buffer) => [f, f], 'SLUICE_ERR_WIRE_REPLAY'],
  ] as const) {
    test(`${name} is refused (${code}) and the link closed as a security violation`, async () => {
      const proxy = await startFrameProxy({ host: '127.0.0.1', port }, (frame, i) => (i === 1 ? edit(Buffer.from(frame)) : [frame]));
      const link = await new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port: proxy.port, segmentKey: KEY });
      try {
        const engineClosed = waitFor<CloseEvent>(engine, 'close', (_, why) => why.error?.code === code);
        const closed = once(link, 'close') as Promise<[LinkCloseInfo]>;
        for (let i = 0; i < 3; i++) link.send({ cls: 'inference', kind: TEST_KIND, streamId: i + 1, body: randomBytes(64) });
        const [, why] = await engineClosed;
        assert.equal(why.code, 3);
        const [tsWhy] = await closed;
        assert.equal(tsWhy.by, 'peer');
        assert.equal(tsWhy.code, 3, 'the TS end hears SECURITY_VIOLATION in the CLOSE frame');
      } finally {
        await link.close();
        await proxy.close();
      }
    });
  }

  test('a removed frame is refused as a sequence gap', async () => {
    const proxy = await startFrameProxy({ host: '127.0.0.1', port }, (frame, i) => (i === 1 ? [] : [frame]));
    const link = await new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port: proxy.port, segmentKey: KEY });
    try {
      const engineClosed = waitFor<CloseEvent>(engine, 'close', (_, why) => why.error?.code === 'SLUICE_ERR_WIRE_SEQUENCE_GAP');
      for (let i = 0; i < 3; i++) link.send({ cls: 'inference', kind: TEST_KIND, streamId: i + 1, body: randomBytes(64) });
      await engineClosed;
    } finally {
      await link.close();
      await proxy.close();
    }
  });

  test('rekey at lowered limits, both directions, many times', async () => {
    const limits = { keyLimits: { maxFramesPerKey: 5, maxBytesPerKey: 256 * 1024 } };
    const e2 = new NativeEngine('sluice-test2');
    echo(e2);
    try {
      const { port: p2 } = await e2.listen('127.0.0.1', 0, linkOptions(KEY, limits));
      const link = await new TcpTransport({ link: limits }).connect({ segment: 'inference', host: '127.0.0.1', port: p2, segmentKey: KEY });
      try {
        for (let i = 0; i < 40; i++) {
          const body = randomBytes(i % 2 === 0 ? 100 : 100_000);
          const got = nextMessage(link);
          link.send({ cls: 'inference', kind: TEST_KIND, streamId: i + 1, tenant: i % 3, body });
          assert.ok((await got).body.equals(body));
        }
        assert.ok(e2.counters.get('linkRekeys') >= 10, `engine rekeys: ${e2.counters.get('linkRekeys')}`);
        assert.ok(link.stats().rekeys >= 10, `ts rekeys: ${link.stats().rekeys}`);
      } finally {
        await link.close();
      }
    } finally {
      e2.stop();
    }
  });

  test('counters are read from the shared block', () => {
    const c = engine.counters.snapshot();
    assert.ok(c.linksOpened >= 5);
    assert.ok(c.linkFramesReceived > 0 && c.linkBytesSent > 0);
    assert.ok(c.handshakesFailed >= 2);
    assert.ok(c.linkRejectedFrames >= 3);
  });
});
