// Faults on real TCP connections: tampered, replayed, foreign and cut frames travel through a
// frame-aware proxy; clients that do not speak the handshake hit the listener directly.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { isSluiceError } from '../../src/errors.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, Listener } from '../../src/transport/types.ts';
import { CloseCode } from '../../src/wire/close-frame.ts';
import { startFaultProxy, type FrameHook } from './fault-proxy.ts';

interface Setup {
  client: Link;
  server: Link;
  received: InboundMessage[];
  serverClosed: Promise<LinkCloseInfo>;
  clientClosed: Promise<LinkCloseInfo>;
  /** Client-to-server frames the proxy saw. */
  frames: Buffer[];
  cleanup(): Promise<void>;
}

async function throughProxy(hook: FrameHook): Promise<Setup> {
  const key = randomBytes(32);
  const transport = new TcpTransport();
  const listener: Listener = await transport.listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: key });
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: listener.address.port }, hook);
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await transport.connect({ segment: 'inference', host: '127.0.0.1', port: proxy.port, segmentKey: key });
  const [server] = await accepted;
  const received: InboundMessage[] = [];
  server.on('message', (m: InboundMessage) => received.push(m));
  const closeOf = (l: Link): Promise<LinkCloseInfo> => once(l, 'close').then(([i]) => i as LinkCloseInfo);
  return {
    client,
    server,
    received,
    serverClosed: closeOf(server),
    clientClosed: closeOf(client),
    frames: proxy.frames,
    async cleanup() {
      await Promise.all([client.close(), server.close(), listener.close(), proxy.close()]);
    },
  };
}

function send(link: Link, text: string): void {
  link.send({ cls: 'inference', kind: 1, streamId: 1, body: Buffer.from(text) });
}

describe('tcp faults', { timeout: 60_000 }, () => {
  test('a tampered frame: the receiver refuses it (_AUTH) and tells the sender', async () => {
    const s = await throughProxy((i, f) => {
      if (i === 1) f[f.byteLength - 20] = (f[f.byteLength - 20] as number) ^ 0x01; // a payload byte
      return [f];
    });
    try {
      send(s.client, 'first');
      send(s.client, 'second');
      const info = await s.serverClosed;
      assert.equal(info.by, 'error');
      assert.ok(isSluiceError(info.error, 'SLUICE_ERR_WIRE_AUTH'), String(info.error));
      assert.deepEqual(
        s.received.map((m) => m.body.toString()),
        ['first'],
      );
      assert.equal(s.server.stats().rejectedFrames, 1);
      const c = await s.clientClosed;
      assert.equal(c.by, 'peer');
      assert.equal(c.code, CloseCode.SECURITY_VIOLATION);
    } finally {
      await s.cleanup();
    }
  });

  test('a captured frame sent again: refused with _REPLAY', async () => {
    const s = await throughProxy((i, f) => (i === 1 ? [f, f] : [f]));
    try {
      send(s.client, 'a');
      send(s.client, 'b');
      const info = await s.serverClosed;
      assert.ok(isSluiceError(info.error, 'SLUICE_ERR_WIRE_REPLAY'), String(info.error));
      assert.deepEqual(
        s.received.map((m) => m.body.toString()),
        ['a', 'b'],
      );
    } finally {
      await s.cleanup();
    }
  });

  test('an earlier frame replayed later: refused with _REPLAY', async () => {
    let first: Buffer | undefined;
    const s = await throughProxy((i, f) => {
      if (i === 0) first = Buffer.from(f);
      return i === 2 && first !== undefined ? [first, f] : [f];
    });
    try {
      for (const t of ['a', 'b', 'c']) send(s.client, t);
      const info = await s.serverClosed;
      assert.ok(isSluiceError(info.error, 'SLUICE_ERR_WIRE_REPLAY'), String(info.error));
      assert.deepEqual(
        s.received.map((m) => m.body.toString()),
        ['a', 'b'],
      );
    } finally {
      await s.cleanup();
    }
  });

  test('a dropped frame: the next one is refused with _SEQUENCE_GAP', async () => {
    const s = await throughProxy((i, f) => (i === 0 ? [] : [f]));
    try {
      send(s.client, 'a');
      send(s.client, 'b');
      const info = await s.serverClosed;
      assert.ok(isSluiceError(info.error, 'SLUICE_ERR_WIRE_SEQUENCE_GAP'), String(info.error));
      assert.equal(s.received.length, 0);
    } finally {
      await s.cleanup();
    }
  });

  test('a frame from another link (same segment key) put in place of a real one: refused with _AUTH', async () => {
    const other = await throughProxy((_i, f) => [f]);
    try {
      send(other.client, 'from another link');
      await once(other.server, 'message');
      const foreign = other.frames[0] as Buffer; // sequence 1, key 0, nonce counter 0: the same position
      const s = await throughProxy((i, f) => (i === 0 ? [foreign] : [f]));
      try {
        send(s.client, 'mine');
        const info = await s.serverClosed;
        assert.ok(isSluiceError(info.error, 'SLUICE_ERR_WIRE_AUTH'), String(info.error));
        assert.equal(s.received.length, 0);
      } finally {
        await s.cleanup();
      }
    } finally {
      await other.cleanup();
    }
  });

  test('the connection cut in the middle of a frame: PEER_GONE, said to be mid-message', async () => {
    const s = await throughProxy((i, f, sock) => {
      if (i === 3) {
        sock.cut(f.subarray(0, 1000));
        return [];
      }
      return [f];
    });
    try {
      s.client.send({ cls: 'inference', kind: 1, streamId: 4, body: randomBytes(2 * 1024 * 1024) });
      const info = await s.serverClosed;
      assert.ok(isSluiceError(info.error, 'SLUICE_ERR_TRANSPORT_PEER_GONE'), String(info.error));
      assert.match(info.reason, /mid-message \(inference stream 4: 786432 of 2097152 bytes\)/);
    } finally {
      await s.cleanup();
    }
  });
});

describe('tcp listener hygiene', { timeout: 30_000 }, () => {
  test('a client speaking another protocol is rejected and disconnected', async () => {
    const listener = await new TcpTransport().listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: randomBytes(32) });
    try {
      const rejected = once(listener, 'rejected');
      const sock = net.connect(listener.address.port, '127.0.0.1');
      sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      const [err] = (await rejected) as [Error];
      assert.ok(isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_PROTOCOL'), String(err));
      await once(sock, 'close');
      assert.equal(Buffer.concat(chunks).subarray(0, 4).toString(), 'SLHS'); // a REJECT record
    } finally {
      await listener.close();
    }
  });

  test('a client that says nothing is dropped after the handshake timeout', async () => {
    const listener = await new TcpTransport({ handshakeTimeoutMs: 200 }).listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: randomBytes(32) });
    try {
      const rejected = once(listener, 'rejected');
      const sock = net.connect(listener.address.port, '127.0.0.1');
      sock.on('data', () => undefined);
      const [err] = (await rejected) as [Error];
      assert.ok(isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_TIMEOUT'), String(err));
      await once(sock, 'close');
    } finally {
      await listener.close();
    }
  });
});
