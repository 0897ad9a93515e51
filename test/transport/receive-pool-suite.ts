// Pooled receive buffers on real links, for every transport that takes a receive pool (TCP on
// loopback here; RDMA in the soft-RoCE guest, test/rdma-guest/receive-pool.guest.ts):
// training-class messages are decrypted into the pool's slabs and handed over with release();
// other classes and oversize messages get their own buffers; a consumer that holds every slab
// stops the link's reading (the sender backs up, the receiver's memory stays bounded) until it
// releases; a link closed while it waits for a slab stops waiting and holds nothing.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import type { InboundMessage, TransportOptions } from '../../src/transport/types.ts';
import { MessageKind } from '../../src/wire/message-kinds.ts';
import { ReceivePool } from '../../src/wire/receive-pool.ts';
import { makePair, type MakeTransport } from './conformance.ts';

const KiB = 1024;
export const FRAME = 64 * KiB;
const frames = { control: FRAME, inference: FRAME, training: FRAME };

export function pooled(pool: ReceivePool): TransportOptions {
  return { link: { frameBytes: frames, receivePool: pool } };
}

export async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface ReceivePoolSuiteOptions {
  host: string;
  /** 200 KiB messages the starved-pool test offers (120 on loopback; fewer on a slow device). */
  backlogMessages?: number;
  timeoutMs?: number;
}

export function runReceivePoolSuite(name: string, make: MakeTransport, o: ReceivePoolSuiteOptions): void {
  const host = o.host;
  describe(`receive pool: ${name}`, { timeout: o.timeoutMs ?? 60_000 }, () => {
    test('training messages land in pooled slabs and go back on release; other classes and oversize ones are the consumer\'s own', async () => {
      const pool = new ReceivePool({ slabBytes: 256 * KiB, slabs: 4 });
      const pair = await makePair(make, 'training', { host, server: pooled(pool), client: { link: { frameBytes: frames } } });
      const got: InboundMessage[] = [];
      pair.server.on('message', (m: InboundMessage) => got.push(m));
      const bodies = [randomBytes(200 * KiB), randomBytes(1), randomBytes(256 * KiB), randomBytes(300 * KiB)];
      for (const body of bodies) pair.client.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 1, body });
      pair.client.send({ cls: 'control', kind: MessageKind.TRAINING_ACK, streamId: 1, body: randomBytes(100) });
      await until(() => got.length === 5, 'five messages');
      // Control goes ahead of training on the link.
      const control = got.findIndex((m) => m.cls === 'control');
      assert.equal(got.splice(control, 1)[0]?.release, undefined, 'control messages are not pooled');
      for (let i = 0; i < 4; i++) assert.ok((got[i] as InboundMessage).body.equals(bodies[i] as Buffer), `message ${i} intact`);
      // Three fit a slab (one of them whole in one frame); the 300 KiB one does not.
      assert.equal(pool.inUse, 3);
      assert.equal(pool.oneOffAllocations, 1);
      assert.equal(typeof got[0]?.release, 'function');
      assert.equal(got[3]?.release, undefined, 'an oversize message is its own buffer');
      for (const m of got) m.release?.();
      got[0]?.release?.(); // a second release is harmless
      assert.equal(pool.inUse, 0);
      assert.equal(pool.available, 4);
      // The slabs are reused: the next message lands in memory allocated before.
      const before = pool.allocatedBytes;
      pair.client.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 1, body: randomBytes(100 * KiB) });
      await until(() => got.length === 5, 'a sixth message');
      assert.equal(pool.allocatedBytes, before);
      got[4]?.release?.();
      await pair.cleanup();
      assert.equal(pool.inUse, 0);
    });

    test('a consumer holding every slab stops the link reading: the sender backs up, the receiver stays bounded, release resumes it', async () => {
      const slabs = 4;
      const pool = new ReceivePool({ slabBytes: 200 * KiB, slabs });
      const pair = await makePair(make, 'training', { host, server: pooled(pool), client: { link: { frameBytes: frames, highWaterMark: 64 * 1024 * 1024 } } });
      const count = o.backlogMessages ?? 120;
      const size = 200 * KiB;
      const bodies = Array.from({ length: count }, () => randomBytes(size));
      const held: InboundMessage[] = [];
      let delivered = 0;
      pair.server.on('message', (m: InboundMessage) => {
        assert.ok(m.body.equals(bodies[delivered] as Buffer), `message ${delivered} intact`);
        delivered++;
        held.push(m);
      });
      for (const body of bodies) pair.client.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 1, flow: 1, body });
      await until(() => delivered === slabs, 'the pool to fill');
      await new Promise((r) => setTimeout(r, 400));
      // Nothing more was delivered or allocated: the link waits for a slab instead.
      assert.equal(delivered, slabs);
      assert.equal(pool.inUse, slabs);
      assert.ok(pool.exhaustions >= 1);
      assert.equal(pool.oneOffAllocations, 0);
      // The receiver stopped taking bytes in: most of it still waits at the sender (its
      // queue, its socket, the kernel's buffers), not in the receiver's memory.
      const received = pair.server.stats().bytesReceived;
      assert.ok(received < (count * size) / 2, `receiver took in ${received} bytes of ${count * size}`);
      assert.ok(pair.client.stats().queuedBytes > 0, 'the sender backed up');
      // Released one by one as they arrive, everything comes through in order.
      const drain = (): void => {
        while (held.length > 0) (held.shift() as InboundMessage).release?.();
      };
      drain();
      pair.server.on('message', () => queueMicrotask(drain));
      await until(() => delivered === count, 'every message', (o.timeoutMs ?? 60_000) / 2);
      drain();
      assert.equal(pool.inUse, 0);
      assert.ok(pool.allocatedBytes <= slabs * 200 * KiB);
      await pair.cleanup();
    });

    test('a link closed while waiting for a slab stops waiting and holds nothing', async () => {
      const pool = new ReceivePool({ slabBytes: 100 * KiB, slabs: 2 });
      const closeTimeoutMs = 500;
      const pair = await makePair(make, 'training', { host,
        server: { link: { frameBytes: frames, receivePool: pool, closeTimeoutMs } },
        client: { link: { frameBytes: frames, closeTimeoutMs } },
      });
      const held: InboundMessage[] = [];
      pair.server.on('message', (m: InboundMessage) => held.push(m));
      for (let i = 0; i < 10; i++) pair.client.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 1, body: randomBytes(100 * KiB) });
      await until(() => held.length === 2 && pool.exhaustions >= 1, 'the pool to run dry');
      // Neither side can finish sending while the receiver does not read: the close timeout ends
      // both (its timers do not hold the process open, this one does).
      const alive = setInterval(() => {}, 100);
      const t0 = Date.now();
      await pair.cleanup();
      clearInterval(alive);
      assert.ok(Date.now() - t0 < 5000, 'closed within the close timeout and teardown grace');
      assert.equal(pool.inUse, 2, 'only the two delivered messages hold slabs');
      for (const m of held) m.release?.();
      await new Promise((r) => setImmediate(r)); // a waiter, had it stayed, would run now
      assert.equal(held.length, 2, 'a closed link delivers nothing more');
      assert.equal(pool.inUse, 0);
    });
  });
}
