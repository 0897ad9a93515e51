// The RDMA suite beyond conformance, inside the soft-RoCE guest: tensors checked by SHA-256, a
// starved credit window, a peer killed mid-transfer (error, resources freed, reconnect), frames
// tampered with or replayed by a hostile peer on the queue pair itself, and the two segments on
// two rxe devices that cannot reach each other.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultAeadFactory } from '../../src/crypto/aead-factory.ts';
import { TrafficKeys } from '../../src/crypto/traffic-keys.ts';
import { isSluiceError } from '../../src/errors.ts';
import { performHandshake } from '../../src/transport/handshake.ts';
import { RdmaDevice } from '../../src/transport/rdma/devices.ts';
import type { RdmaLink } from '../../src/transport/rdma/rdma-link.ts';
import { setupInitiator } from '../../src/transport/rdma/rdma-setup.ts';
import { liveVerbsConnections, VerbsChannel } from '../../src/transport/rdma/verbs-channel.ts';
import { RdmaTransport, type RdmaTransportOptions } from '../../src/transport/rdma-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, Listener, SegmentName } from '../../src/transport/types.ts';
import { CloseCode, decodeClosePayload } from '../../src/wire/close-frame.ts';
import { decodeFrameHeader, FrameFlags, FrameType, HEADER_BYTES } from '../../src/wire/frame-header.ts';
import { FrameOpener } from '../../src/wire/frame-opener.ts';
import { FrameSealer } from '../../src/wire/frame-sealer.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const KiB = 1024;
const MiB = 1024 * KiB;
const ETH0 = '10.0.2.15'; // rxe0
const DUMMY0 = '10.0.3.15'; // rxe1

interface Pair {
  client: Link;
  server: Link;
  listener: Listener;
  close(): Promise<void>;
}

async function pair(segment: SegmentName, host: string, opts: RdmaTransportOptions = {}, maxMessageBytes = 128 * MiB): Promise<Pair> {
  const key = randomBytes(32);
  const listener = await new RdmaTransport(opts).listen({ segment, host, port: 0, segmentKey: key, maxMessageBytes });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await new RdmaTransport(opts).connect({ segment, host, port: listener.address.port, segmentKey: key, maxMessageBytes });
  const [server] = await accepted;
  return {
    client,
    server,
    listener,
    async close() {
      await Promise.all([client.close(), server.close(), listener.close()]);
    },
  };
}

function nextMessage(link: Link): Promise<InboundMessage> {
  return once(link, 'message').then(([m]) => m as InboundMessage);
}

function nextClose(link: Link): Promise<LinkCloseInfo> {
  return once(link, 'close').then(([info]) => info as LinkCloseInfo);
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

// Deadlines are generous: the guest is an emulator on a shared 2-core machine.
describe('rdma transport on rxe', { timeout: 900_000 }, () => {
  test('tensors of 4 KiB, 1 MiB and 64 MiB arrive with the same SHA-256', async (t) => {
    const p = await pair('training', ETH0);
    try {
      assert.equal((p.client as RdmaLink).device, 'rxe0');
      for (const size of [4 * KiB, MiB, 64 * MiB]) {
        const tensor = randomBytes(size);
        const got = nextMessage(p.server);
        const started = process.hrtime.bigint();
        p.client.send({ cls: 'training', kind: 1, streamId: 3, body: tensor });
        const m = await got;
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        assert.equal(m.body.byteLength, size);
        assert.equal(sha256(m.body), sha256(tensor));
        t.diagnostic(`${size} bytes in ${ms.toFixed(0)} ms (emulated: ${(size / ms / 1000).toFixed(1)} MB/s)`);
      }
      assert.equal(p.server.stats().rejectedFrames, 0);
    } finally {
      await p.close();
    }
  });

  test('a window of one credit: many messages in flight still arrive, in order, never overrunning', async () => {
    const p = await pair('inference', ETH0, { rdma: { sendSlots: 3, recvWindow: 1 }, link: { frameBytes: { inference: 16 * KiB, control: 16 * KiB } } });
    try {
      const bodies = Array.from({ length: 200 }, (_, i) => randomBytes((i * 4099) % (40 * KiB)));
      const got: InboundMessage[] = [];
      const all = new Promise<void>((resolve) => {
        p.server.on('message', (m: InboundMessage) => {
          got.push(m);
          if (got.length === bodies.length) resolve();
        });
      });
      for (const body of bodies) p.client.send({ cls: 'inference', kind: 2, streamId: 1, body });
      await all;
      got.forEach((m, i) => assert.ok(m.body.equals(bodies[i] as Buffer), `message ${i} differs`));
      // The receiver had nothing to send: every credit went back in a credit message.
      const server = (p.server as RdmaLink).verbsCounters();
      const client = (p.client as RdmaLink).verbsCounters();
      assert.ok(server.CTRL_SENT > 0, JSON.stringify(server));
      // At most the four credit messages the protocol allows can still be on their way.
      const inFlight = server.CTRL_SENT - client.CTRL_RECEIVED;
      assert.ok(inFlight >= 0 && inFlight <= 4, `sent ${server.CTRL_SENT}, received ${client.CTRL_RECEIVED}`);
      assert.ok(client.SEND_CREDITS <= 1);
    } finally {
      await p.close();
    }
  });

  test('a peer killed mid-transfer: clear error, queue pairs freed, and it can connect again', async () => {
    const key = randomBytes(32);
    const baseline = liveVerbsConnections();
    const listener = await new RdmaTransport().listen({ segment: 'training', host: ETH0, port: 0, segmentKey: key, maxMessageBytes: 256 * MiB });
    const child = (bytes: number) =>
      spawn(
        process.execPath,
        ['--import', 'tsx', path.join(here, '..', 'transport', 'peer-child.ts'), 'rdma', ETH0, String(listener.address.port), 'training', key.toString('hex'), String(bytes)],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
    const first = child(64 * MiB);
    try {
      const [link] = (await once(listener, 'link')) as [Link];
      assert.equal(liveVerbsConnections(), baseline + 1);
      const closed = nextClose(link);
      await nextMessage(link); // hello; the 64 MiB message follows
      const deadline = Date.now() + 120_000;
      while (link.stats().bytesReceived < 4 * MiB && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      first.kill('SIGKILL');
      const info = await closed;
      assert.equal(info.by, 'error');
      assert.ok(isSluiceError(info.error, 'SLUICE_ERR_TRANSPORT_PEER_GONE'), String(info.error));
      assert.match(info.reason, /training segment closed the connection without a close frame mid-message \(training stream 2: \d+ of 67108864 bytes\)/);
      assert.equal(liveVerbsConnections(), baseline, 'the queue pair of the dead link is destroyed');

      // The same listener takes the peer back.
      const second = child(8 * MiB);
      try {
        const [again] = (await once(listener, 'link')) as [Link];
        assert.equal((await nextMessage(again)).body.toString(), 'hello');
        const big = await nextMessage(again);
        assert.equal(big.body.byteLength, 8 * MiB);
        assert.ok(big.body.every((b) => b === 0x5a));
        second.kill('SIGKILL');
        await nextClose(again);
      } finally {
        second.kill('SIGKILL');
      }
      assert.equal(liveVerbsConnections(), baseline);
    } finally {
      first.kill('SIGKILL');
      await listener.close();
    }
  });

  describe('a hostile peer on the queue pair itself', () => {
    /** Dials like RdmaTransport does, but keeps the raw channel and keys to forge frames with. */
    async function rawPeer(port: number, key: Buffer) {
      const segment: SegmentName = 'inference';
      const socket = net.connect({ host: ETH0, port, allowHalfOpen: true });
      await once(socket, 'connect');
      const hs = await performHandshake(socket, { role: 'initiator', segment, segmentKey: key, timeoutMs: 20_000, remote: 'listener' });
      const aead = defaultAeadFactory();
      const sealer = new FrameSealer(new TrafficKeys(hs.secrets.send, hs.secrets.sendDirection, aead), segment);
      const opener = new FrameOpener(new TrafficKeys(hs.secrets.receive, hs.secrets.receiveDirection, aead));
      const received: Buffer[] = [];
      const channel: VerbsChannel = new VerbsChannel(RdmaDevice.open('rxe0'), { sendSlots: 4, recvWindow: 4, slotBytes: 64 * KiB });
      await setupInitiator({ socket, segment, sealer, opener, leftover: hs.leftover, timeoutMs: 20_000, remote: 'listener' }, channel);
      channel.attach({
        onReceive(slot, data) {
          received.push(Buffer.from(data));
          channel.repost(slot);
        },
        onSendComplete() {},
        onProgress() {},
        onError() {},
      });
      const frame = (text: string): Buffer => {
        const body = Buffer.from(text);
        return sealer.seal({
          type: FrameType.DATA,
          cls: 'inference',
          flags: FrameFlags.FIRST | FrameFlags.LAST,
          streamId: 1,
          kind: 1,
          tenant: 0,
          messageLength: body.byteLength,
          parts: [body],
          payloadLength: body.byteLength,
        });
      };
      const post = (bytes: Buffer): void => {
        const slot = channel.acquire() as number;
        bytes.copy(channel.sendSlot(slot));
        channel.post(slot, bytes.byteLength);
      };
      /** The close frame the link sent back, opened. */
      const closeFrame = async (): Promise<{ code: number; reason: string }> => {
        const deadline = Date.now() + 30_000;
        while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        const f = received[0] as Buffer;
        const h = decodeFrameHeader(f, { segment, maxFramePayload: 64 * KiB, maxMessageBytes: 64 * KiB });
        assert.equal(h.type, FrameType.CLOSE);
        const payload = Buffer.alloc(h.payloadLength);
        opener.open(h, f.subarray(0, HEADER_BYTES), f.subarray(HEADER_BYTES), payload);
        return decodeClosePayload(payload);
      };
      const close = () => {
        channel.close();
        socket.destroy();
      };
      return { frame, post, closeFrame, close };
    }

    async function hostileCase(forge: (peer: Awaited<ReturnType<typeof rawPeer>>) => void, code: string): Promise<void> {
      const key = randomBytes(32);
      const listener = await new RdmaTransport().listen({ segment: 'inference', host: ETH0, port: 0, segmentKey: key });
      const accepted = once(listener, 'link') as Promise<[Link]>;
      const peer = await rawPeer(listener.address.port, key);
      try {
        const [link] = await accepted;
        const closed = nextClose(link);
        forge(peer);
        const info = await closed;
        assert.equal(info.by, 'error');
        assert.ok(isSluiceError(info.error, code), String(info.error));
        assert.equal(link.stats().rejectedFrames, 1);
        const back = await peer.closeFrame();
        assert.equal(back.code, CloseCode.SECURITY_VIOLATION);
      } finally {
        peer.close();
        await listener.close();
      }
    }

    test('tampered ciphertext is rejected: the link closes with SLUICE_ERR_WIRE_AUTH and tells the peer', async () => {
      await hostileCase((peer) => {
        const f = peer.frame('a genuine frame, then one bit flipped');
        f[HEADER_BYTES + 3] = (f[HEADER_BYTES + 3] as number) ^ 0x01;
        peer.post(f);
      }, 'SLUICE_ERR_WIRE_AUTH');
    });

    test('a replayed frame is rejected with SLUICE_ERR_WIRE_REPLAY', async () => {
      await hostileCase((peer) => {
        const f = peer.frame('sent twice');
        peer.post(f);
        peer.post(Buffer.from(f));
      }, 'SLUICE_ERR_WIRE_REPLAY');
    });
  });

  test('two segments on two rxe devices: each carries its own traffic and cannot reach the other', async () => {
    const inference = await pair('inference', ETH0);
    const training = await pair('training', DUMMY0);
    try {
      assert.equal((inference.client as RdmaLink).device, 'rxe0');
      assert.equal((inference.server as RdmaLink).device, 'rxe0');
      assert.equal((training.client as RdmaLink).device, 'rxe1');
      assert.equal((training.server as RdmaLink).device, 'rxe1');
      for (const [p, cls] of [
        [inference, 'inference'],
        [training, 'training'],
      ] as const) {
        const body = randomBytes(300 * KiB);
        const got = nextMessage(p.server);
        p.client.send({ cls, kind: 1, streamId: 1, body });
        assert.equal(sha256((await got).body), sha256(body));
      }

      // With the right key, but from the other fabric: the queue pairs cannot be joined.
      const key = randomBytes(32);
      const listener = await new RdmaTransport().listen({ segment: 'inference', host: ETH0, port: 0, segmentKey: key });
      try {
        const rejected = once(listener, 'rejected') as Promise<[Error]>;
        await assert.rejects(
          new RdmaTransport().connect({ segment: 'inference', host: ETH0, port: listener.address.port, segmentKey: key, device: 'rxe1' }),
          (err: Error) => isSluiceError(err) && /^SLUICE_ERR_RDMA_/.test((err as { code: string }).code),
        );
        const [err] = await rejected;
        assert.ok(isSluiceError(err) && /^SLUICE_ERR_RDMA_/.test((err as unknown as { code: string }).code), String(err));
      } finally {
        await listener.close();
      }

      // And a training peer is refused by the inference listener before any queue pair exists.
      const before = liveVerbsConnections();
      const trainingKey = randomBytes(32);
      const inferenceListener = await new RdmaTransport().listen({ segment: 'inference', host: ETH0, port: 0, segmentKey: randomBytes(32) });
      try {
        await assert.rejects(
          new RdmaTransport().connect({ segment: 'training', host: ETH0, port: inferenceListener.address.port, segmentKey: trainingKey, device: 'rxe1' }),
          (err: Error) => isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_AUTH') || isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_SEGMENT'),
        );
        assert.equal(liveVerbsConnections(), before);
      } finally {
        await inferenceListener.close();
      }
    } finally {
      await inference.close();
      await training.close();
    }
  });

  test('rdma with no such device fails fast, listing the devices', async () => {
    await assert.rejects(
      new RdmaTransport().listen({ segment: 'training', host: ETH0, port: 0, segmentKey: randomBytes(32), device: 'mlx5_0' }),
      (err: Error) => {
        assert.ok(isSluiceError(err, 'SLUICE_ERR_RDMA_NO_DEVICE'));
        assert.match(err.message, /no RDMA device matches "mlx5_0" \(devices: rxe0 \(port 1 ACTIVE Ethernet eth0 ::ffff:10\.0\.2\.15\), rxe1 .*\); use transport: tcp/);
        return true;
      },
    );
  });
});
