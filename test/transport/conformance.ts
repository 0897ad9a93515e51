// The transport conformance suite: what every Transport (tcp, rdma) must do, over real
// connections. Each implementation's test file calls runTransportConformance().
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isSluiceError } from '../../src/errors.ts';
import type { TransportName } from '../../src/transport/registry.ts';
import type {
  InboundMessage,
  Link,
  LinkCloseInfo,
  Listener,
  SegmentName,
  TrafficClass,
  Transport,
  TransportOptions,
} from '../../src/transport/types.ts';
import { CloseCode } from '../../src/wire/close-frame.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface ConformanceOptions {
  /** Name of the transport in src/transport/registry.ts, for the child-process peer. */
  registryName: TransportName;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Volume of the SHA-256-checked bulk transfer (default 256 MiB). */
  bulkBytes?: number;
  /** Deadline for the whole suite (default 180 s; an emulated guest needs more). */
  timeoutMs?: number;
}

export type MakeTransport = (opts?: TransportOptions) => Transport;

const MiB = 1024 * 1024;
const FRAME = 64 * 1024; // frame payload per class used by these tests (set through tuning)
const TUNING: TransportOptions = { link: { frameBytes: { control: FRAME, inference: FRAME, training: FRAME } } };

export interface Pair {
  client: Link;
  server: Link;
  listener: Listener;
  cleanup(): Promise<void>;
}

/** The most a TCP connection's kernel buffers can hold, both ends: tcp_rmem max + tcp_wmem max. */
function socketBufferMaxima(): number {
  const max = (f: string): number => {
    try {
      return Number(readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[2]) || 0;
    } catch {
      return 0;
    }
  };
  return max('tcp_rmem') + max('tcp_wmem');
}

function classFor(segment: SegmentName): TrafficClass {
  return segment;
}

export async function makePair(
  make: MakeTransport,
  segment: SegmentName,
  opts: { host?: string; server?: TransportOptions; client?: TransportOptions; maxMessageBytes?: number; clientMaxMessageBytes?: number } = {},
): Promise<Pair> {
  const host = opts.host ?? '127.0.0.1';
  const key = randomBytes(32);
  const listener = await make(opts.server ?? TUNING).listen({ segment, host, port: 0, segmentKey: key, maxMessageBytes: opts.maxMessageBytes });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await make(opts.client ?? TUNING).connect({
    segment,
    host,
    port: listener.address.port,
    segmentKey: key,
    maxMessageBytes: opts.clientMaxMessageBytes ?? opts.maxMessageBytes,
  });
  const [server] = await accepted;
  return {
    client,
    server,
    listener,
    async cleanup() {
      await Promise.all([client.close(), server.close(), listener.close()]);
    },
  };
}

/** Resolves with the next n messages of a link. */
function collect(link: Link, n: number): Promise<InboundMessage[]> {
  const got: InboundMessage[] = [];
  return new Promise((resolve, reject) => {
    if (n === 0) resolve(got);
    const onMessage = (m: InboundMessage): void => {
      got.push(m);
      if (got.length === n) {
        link.off('message', onMessage);
        link.off('close', onClose);
        resolve(got);
      }
    };
    const onClose = (info: LinkCloseInfo): void => reject(new Error(`link closed after ${got.length}/${n} messages: ${info.reason}`));
    link.on('message', onMessage);
    link.once('close', onClose);
  });
}

function nextClose(link: Link): Promise<LinkCloseInfo> {
  return once(link, 'close').then(([info]) => info as LinkCloseInfo);
}

/** Sends respecting backpressure. */
async function sendAll(link: Link, cls: TrafficClass, bodies: Iterable<Buffer | Buffer[]>, streamId = 1): Promise<void> {
  for (const body of bodies) {
    if (!link.send({ cls, kind: 7, streamId, body })) await once(link, 'drain');
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function runTransportConformance(name: string, make: MakeTransport, options: ConformanceOptions): void {
  const host = options.host ?? '127.0.0.1';
  const bulkBytes = options.bulkBytes ?? 256 * MiB;

  describe(`transport conformance: ${name}`, { timeout: options.timeoutMs ?? 180_000 }, () => {
    test('handshake: both ends get an authenticated link with the same id', async () => {
      const p = await makePair(make, 'training', { host });
      try {
        assert.equal(p.client.id, p.server.id);
        assert.match(p.client.id, /^[0-9a-f]{16}$/);
        assert.equal(p.client.segment, 'training');
        assert.equal(p.server.segment, 'training');
        assert.equal(p.client.transport, p.server.transport);
        assert.equal(p.client.closed, false);
        assert.ok(p.client.remoteAddress.includes(String(p.listener.address.port)));
      } finally {
        await p.cleanup();
      }
    });

    test('a wrong segment key is refused on both ends with SLUICE_ERR_HANDSHAKE_AUTH', async () => {
      const listener = await make().listen({ segment: 'inference', host, port: 0, segmentKey: randomBytes(32) });
      try {
        const rejected = once(listener, 'rejected');
        let linked = false;
        listener.on('link', () => {
          linked = true;
        });
        await assert.rejects(
          make().connect({ segment: 'inference', host, port: listener.address.port, segmentKey: randomBytes(32) }),
          (err: unknown) => isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_AUTH') && /segment key/.test((err as Error).message),
        );
        const [err] = (await rejected) as [Error];
        assert.ok(isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_AUTH'), String(err));
        assert.equal(linked, false);
      } finally {
        await listener.close();
      }
    });

    test('a wrong segment is refused on both ends with SLUICE_ERR_HANDSHAKE_SEGMENT', async () => {
      const key = randomBytes(32);
      const listener = await make().listen({ segment: 'training', host, port: 0, segmentKey: key });
      try {
        const rejected = once(listener, 'rejected');
        await assert.rejects(
          make().connect({ segment: 'inference', host, port: listener.address.port, segmentKey: key }),
          (err: unknown) => isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_SEGMENT') && /"training"/.test((err as Error).message),
        );
        const [err] = (await rejected) as [Error];
        assert.ok(isSluiceError(err, 'SLUICE_ERR_HANDSHAKE_SEGMENT'), String(err));
      } finally {
        await listener.close();
      }
    });

    test('connecting to a closed port fails with SLUICE_ERR_TRANSPORT_CONNECT', async () => {
      const listener = await make().listen({ segment: 'training', host, port: 0, segmentKey: randomBytes(32) });
      const port = listener.address.port;
      await listener.close();
      await assert.rejects(make().connect({ segment: 'training', host, port, segmentKey: randomBytes(32) }), (err: unknown) =>
        isSluiceError(err, 'SLUICE_ERR_TRANSPORT_CONNECT'),
      );
    });

    for (const segment of ['inference', 'training'] as const) {
      test(`${segment}: messages of 0, 1, frame-1, frame, frame+1 bytes and 5 MiB arrive intact and in order, both ways`, async () => {
        const p = await makePair(make, segment, { host });
        try {
          const sizes = [0, 1, FRAME - 1, FRAME, FRAME + 1, 5 * MiB, 3 * FRAME + 17];
          const bodies = sizes.map((n, i) => pattern(n, i + 1));
          for (const [from, to] of [
            [p.client, p.server],
            [p.server, p.client],
          ] as const) {
            const got = collect(to, bodies.length);
            await sendAll(from, classFor(segment), bodies, 9);
            const msgs = await got;
            assert.deepEqual(
              msgs.map((m) => m.body.byteLength),
              sizes,
            );
            msgs.forEach((m, i) => {
              assert.ok(m.body.equals(bodies[i] as Buffer), `message ${i} (${sizes[i]} bytes) differs`);
              assert.equal(m.cls, classFor(segment));
              assert.equal(m.kind, 7);
              assert.equal(m.streamId, 9);
              assert.equal(m.tenant, 0);
            });
          }
        } finally {
          await p.cleanup();
        }
      });
    }

    test('a gather list is sent as one message; tenant and kind arrive', async () => {
      const p = await makePair(make, 'inference', { host });
      try {
        const parts = [pattern(10, 1), Buffer.alloc(0), pattern(FRAME * 2 + 3, 2), pattern(1, 3)];
        const got = collect(p.server, 1);
        p.client.send({ cls: 'inference', kind: 0xfffe, streamId: 0xffff_ffff, tenant: 0xdead_beef, body: parts });
        const [m] = await got;
        assert.ok(m?.body.equals(Buffer.concat(parts)));
        assert.equal(m?.kind, 0xfffe);
        assert.equal(m?.streamId, 0xffff_ffff);
        assert.equal(m?.tenant, 0xdead_beef);
      } finally {
        await p.cleanup();
      }
    });

    test('send() refuses what the link cannot carry, with typed errors', async () => {
      const p = await makePair(make, 'inference', { host, maxMessageBytes: MiB });
      try {
        const expectCode = (code: string, fn: () => unknown): void => {
          assert.throws(fn, (err: unknown) => isSluiceError(err, code), code);
        };
        expectCode('SLUICE_ERR_LINK_WRONG_SEGMENT', () => p.client.send({ cls: 'training', kind: 1, streamId: 1, body: Buffer.alloc(1) }));
        expectCode('SLUICE_ERR_LINK_MESSAGE_TOO_BIG', () => p.client.send({ cls: 'inference', kind: 1, streamId: 1, body: Buffer.alloc(MiB + 1) }));
        expectCode('SLUICE_ERR_LINK_INVALID_MESSAGE', () => p.client.send({ cls: 'inference', kind: 1, streamId: 0, body: Buffer.alloc(1) }));
        expectCode('SLUICE_ERR_LINK_INVALID_MESSAGE', () => p.client.send({ cls: 'inference', kind: 70_000, streamId: 1, body: Buffer.alloc(1) }));
        expectCode('SLUICE_ERR_LINK_INVALID_MESSAGE', () => p.client.send({ cls: 'inference', kind: 1, streamId: 1, tenant: -1, body: Buffer.alloc(1) }));
        // The link is still usable afterwards.
        const got = collect(p.server, 1);
        p.client.send({ cls: 'inference', kind: 1, streamId: 1, body: Buffer.from('ok') });
        assert.equal((await got)[0]?.body.toString(), 'ok');
      } finally {
        await p.cleanup();
      }
    });

    test('many messages in flight on many streams arrive intact, in order per stream', async () => {
      const p = await makePair(make, 'training', { host });
      try {
        const count = 3000;
        const sent = new Map<number, string[]>();
        const bodies: { streamId: number; body: Buffer }[] = [];
        for (let i = 0; i < count; i++) {
          const streamId = 1 + (i % 17);
          const body = pattern((i * 7919) % 40_000, i + 11);
          bodies.push({ streamId, body });
          const list = sent.get(streamId) ?? [];
          list.push(createHash('sha256').update(body).digest('hex'));
          sent.set(streamId, list);
        }
        const got = collect(p.server, count);
        for (const { streamId, body } of bodies) p.client.send({ cls: 'training', kind: 2, streamId, body }); // no waiting: all in flight
        const msgs = await got;
        const received = new Map<number, string[]>();
        for (const m of msgs) {
          const list = received.get(m.streamId) ?? [];
          list.push(createHash('sha256').update(m.body).digest('hex'));
          received.set(m.streamId, list);
        }
        assert.deepEqual(received, sent);
        assert.equal(p.client.stats().messagesSent, count);
        assert.equal(p.server.stats().messagesReceived, count);
      } finally {
        await p.cleanup();
      }
    });

    test('control frames overtake queued bulk: priority control > inference and control > training', async () => {
      for (const segment of ['inference', 'training'] as const) {
        const p = await makePair(make, segment, { host });
        try {
          const order: TrafficClass[] = [];
          const got = new Promise<void>((resolve) => {
            p.server.on('message', (m: InboundMessage) => {
              order.push(m.cls);
              if (order.length === 2) resolve();
            });
          });
          p.client.send({ cls: segment, kind: 1, streamId: 1, body: pattern(8 * MiB, 5) });
          p.client.send({ cls: 'control', kind: 1, streamId: 2, body: Buffer.from('urgent') });
          await got;
          assert.deepEqual(order, ['control', segment]);
        } finally {
          await p.cleanup();
        }
      }
    });

    test('keys are replaced before their limits: rekeys in both directions, data intact', async () => {
      const tuning: TransportOptions = { link: { ...TUNING.link, keyLimits: { maxFramesPerKey: 5, maxBytesPerKey: 256 * 1024 } } };
      const p = await makePair(make, 'training', { host, server: tuning, client: tuning });
      try {
        const bodies = Array.from({ length: 60 }, (_, i) => pattern((i * 12_345) % (3 * FRAME), i + 100));
        for (const [from, to] of [
          [p.client, p.server],
          [p.server, p.client],
        ] as const) {
          const got = collect(to, bodies.length);
          await sendAll(from, 'training', bodies);
          const msgs = await got;
          msgs.forEach((m, i) => assert.ok(m.body.equals(bodies[i] as Buffer), `message ${i} differs`));
        }
        assert.ok(p.client.stats().rekeys >= 20, `client rekeys ${p.client.stats().rekeys}`);
        assert.ok(p.server.stats().rekeys >= 20, `server rekeys ${p.server.stats().rekeys}`);
      } finally {
        await p.cleanup();
      }
    });

    test('close with a reason: the peer sees it, queued messages are delivered first', async () => {
      const p = await makePair(make, 'inference', { host });
      try {
        const got = collect(p.server, 3);
        const serverClose = nextClose(p.server);
        const clientClose = nextClose(p.client);
        for (let i = 0; i < 3; i++) p.client.send({ cls: 'inference', kind: 1, streamId: 1, body: pattern(MiB, i) });
        await p.client.close('maintenance window');
        assert.equal((await got).length, 3);
        const s = await serverClose;
        assert.deepEqual({ by: s.by, code: s.code, reason: s.reason }, { by: 'peer', code: CloseCode.NORMAL, reason: 'maintenance window' });
        const c = await clientClose;
        assert.equal(c.by, 'local');
        assert.equal(p.client.closed, true);
        assert.throws(() => p.client.send({ cls: 'inference', kind: 1, streamId: 1, body: Buffer.alloc(1) }), (err: unknown) =>
          isSluiceError(err, 'SLUICE_ERR_LINK_CLOSED'),
        );
      } finally {
        await p.cleanup();
      }
    });

    test('a message over the receiver limit closes the link with TOO_BIG on both ends', async () => {
      const p = await makePair(make, 'training', { host, maxMessageBytes: MiB, clientMaxMessageBytes: 4 * MiB });
      try {
        const serverClose = nextClose(p.server);
        const clientClose = nextClose(p.client);
        p.client.send({ cls: 'training', kind: 1, streamId: 1, body: Buffer.alloc(2 * MiB) });
        const s = await serverClose;
        assert.equal(s.by, 'error');
        assert.ok(isSluiceError(s.error, 'SLUICE_ERR_WIRE_OVERSIZE'), String(s.error));
        const c = await clientClose;
        assert.equal(c.by, 'peer');
        assert.equal(c.code, CloseCode.TOO_BIG);
      } finally {
        await p.cleanup();
      }
    });

    test('a peer process killed mid-message: the other end closes with SLUICE_ERR_TRANSPORT_PEER_GONE', async () => {
      const key = randomBytes(32);
      const listener = await make(TUNING).listen({ segment: 'training', host, port: 0, segmentKey: key, maxMessageBytes: 256 * MiB });
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(here, 'peer-child.ts'), String(options.registryName), host, String(listener.address.port), 'training', key.toString('hex'), String(128 * MiB)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      try {
        const [link] = (await once(listener, 'link')) as [Link];
        const closed = nextClose(link);
        await collect(link, 1); // the child's hello: the big message follows
        const deadline = Date.now() + 60_000;
        while (link.stats().bytesReceived < 2 * MiB && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
        link.pause(); // the big message cannot complete now
        child.kill('SIGKILL');
        await once(child, 'exit');
        link.resume();
        const info = await closed;
        assert.equal(info.by, 'error');
        assert.ok(isSluiceError(info.error, 'SLUICE_ERR_TRANSPORT_PEER_GONE'), String(info.error));
        assert.match(info.reason, /mid-message \(training stream 2: \d+ of 134217728 bytes\)/);
      } finally {
        child.kill('SIGKILL');
        await listener.close();
      }
    });

    test('backpressure: a slow reader bounds what the sender holds', async () => {
      const highWaterMark = 4 * MiB;
      const tuning: TransportOptions = { link: { ...TUNING.link, highWaterMark } };
      const p = await makePair(make, 'training', { host, client: tuning });
      try {
        const message = MiB;
        const total = 96;
        let consumed = 0;
        const done = new Promise<void>((resolve) => {
          p.server.on('message', () => {
            consumed += 1;
            if (consumed === total) return resolve();
            p.server.pause(); // a reader that takes 10 ms per message
            setTimeout(() => p.server.resume(), 10);
          });
        });
        let accepted = 0;
        let maxQueued = 0;
        let maxInFlight = 0;
        let refusals = 0;
        for (let i = 0; i < total; i++) {
          const ok = p.client.send({ cls: 'training', kind: 1, streamId: 1, body: Buffer.alloc(message, i) });
          accepted += 1;
          maxQueued = Math.max(maxQueued, p.client.stats().queuedBytes);
          maxInFlight = Math.max(maxInFlight, (accepted - consumed) * message);
          if (!ok) {
            refusals += 1;
            await once(p.client, 'drain');
          }
        }
        await done;
        assert.ok(refusals > 0, 'send() never returned false: the reader was not slow enough to test anything');
        assert.ok(maxQueued <= highWaterMark + message, `sender queued ${maxQueued} bytes (mark ${highWaterMark})`);
        // Beyond the sender's queue only the kernel's socket buffers (or the RDMA credits) hold
        // data, and the reader's message being reassembled. The receive buffer autotunes up to
        // tcp_rmem's maximum (32 MiB on some machines), so the bound reads this machine's limits.
        const bound = highWaterMark + 2 * message + Math.max(32 * MiB, socketBufferMaxima());
        assert.ok(maxInFlight <= bound, `${maxInFlight} bytes accepted but not consumed (bound ${bound})`);
        assert.ok(total * message > bound, 'the test must offer more than the bound');
      } finally {
        await p.cleanup();
      }
    });

    test(`bulk: ${bulkBytes / MiB} MiB in messages of mixed sizes, SHA-256 equal on both ends`, async () => {
      const p = await makePair(make, 'training', { host, server: {}, client: {} }); // default tuning
      try {
        const pool = randomBytes(8 * MiB);
        const sizes: number[] = [];
        let planned = 0;
        let x = 12345;
        while (planned < bulkBytes) {
          x = (x * 1103515245 + 12345) % 2 ** 31;
          const pick = x % 10;
          const n = Math.min(bulkBytes - planned, pick < 3 ? x % 512 : pick < 7 ? x % (256 * 1024) : x % (4 * MiB));
          sizes.push(n);
          planned += n;
        }
        const receivedHash = createHash('sha256');
        let receivedBytes = 0;
        let receivedCount = 0;
        const done = new Promise<void>((resolve) => {
          p.server.on('message', (m: InboundMessage) => {
            receivedHash.update(m.body);
            receivedBytes += m.body.byteLength;
            receivedCount += 1;
            if (receivedCount === sizes.length) resolve();
          });
        });
        const sentHash = createHash('sha256');
        let offset = 0;
        for (const n of sizes) {
          if (offset + n > pool.byteLength) offset = (offset * 31 + 7) % (pool.byteLength - n + 1);
          const body = pool.subarray(offset, offset + n);
          offset += n;
          sentHash.update(body);
          if (!p.client.send({ cls: 'training', kind: 3, streamId: 5, body })) await once(p.client, 'drain');
        }
        await done;
        assert.equal(receivedBytes, bulkBytes);
        assert.equal(receivedHash.digest('hex'), sentHash.digest('hex'));
        assert.equal(p.server.stats().rejectedFrames, 0);
      } finally {
        await p.cleanup();
      }
    });
  });
}
