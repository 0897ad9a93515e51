// Runs inside the soft-RoCE guest (test/rdma/rdma-suite.test.ts boots it): the verbs channel
// on rxe0, two queue pairs in one process connected to each other.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { RdmaDevice } from '../../src/transport/rdma/devices.ts';
import type { RdmaError } from '../../src/transport/rdma/rdma-errors.ts';
import { liveVerbsConnections, VerbsChannel, type VerbsChannelHandlers } from '../../src/transport/rdma/verbs-channel.ts';

interface Side {
  ch: VerbsChannel;
  received: Buffer[];
  errors: RdmaError[];
  hold: boolean;
  held: number[];
  progress: () => void;
}

function side(device: RdmaDevice, opts: { sendSlots: number; recvWindow: number; slotBytes: number }): Side {
  const s = { received: [] as Buffer[], errors: [] as RdmaError[], hold: false, held: [] as number[], progress: () => {} } as Side;
  const handlers: VerbsChannelHandlers = {
    onReceive(slot, data) {
      s.received.push(Buffer.from(data));
      if (s.hold) s.held.push(slot);
      else s.ch.repost(slot);
    },
    onSendComplete() {},
    onProgress() {
      s.progress();
    },
    onError(err) {
      s.errors.push(err);
      s.progress();
    },
  };
  s.ch = new VerbsChannel(device, opts, handlers);
  return s;
}

function pair(device: RdmaDevice, opts = { sendSlots: 8, recvWindow: 8, slotBytes: 64 * 1024 }): [Side, Side] {
  const a = side(device, opts);
  const b = side(device, opts);
  const la = a.ch.local();
  const lb = b.ch.local();
  a.ch.connect(lb);
  b.ch.connect(la);
  return [a, b];
}

/** Sends all messages from a to b as credits and slots allow; resolves when b has them all. */
function pump(a: Side, b: Side, msgs: Buffer[], until: () => boolean = () => b.received.length >= msgs.length): Promise<void> {
  let next = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: sent ${next}, received ${b.received.length}, ${JSON.stringify(a.ch.counters())}`)), 60_000);
    const go = () => {
      if (a.errors.length > 0 || b.errors.length > 0) {
        clearTimeout(timer);
        reject(a.errors[0] ?? b.errors[0]);
        return;
      }
      while (next < msgs.length && a.ch.writable) {
        const slot = a.ch.acquire() as number;
        const m = msgs[next] as Buffer;
        m.copy(a.ch.sendSlot(slot));
        a.ch.post(slot, m.byteLength);
        next += 1;
      }
      if (until()) {
        clearTimeout(timer);
        resolve();
      }
    };
    a.progress = go;
    b.progress = go;
    go();
  });
}

const device = RdmaDevice.open('rxe0');

test('device info: rxe0 on Ethernet with an IPv4-mapped RoCE v2 GID', () => {
  assert.equal(device.info.name, 'rxe0');
  assert.equal(device.info.ethernet, true);
  assert.match(device.info.gid, /^::ffff:10\.0\.2\.15$/);
});

test('messages arrive intact and in order, with more messages than credits', async () => {
  const [a, b] = pair(device);
  const msgs = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7919) % (64 * 1024 - 1))));
  await pump(a, b, msgs);
  assert.equal(b.received.length, msgs.length);
  for (let i = 0; i < msgs.length; i += 1) assert.ok((b.received[i] as Buffer).equals(msgs[i] as Buffer), `message ${i} differs`);
  // Credits went out as credit messages (b never sends data).
  assert.ok(b.ch.counters().CTRL_SENT > 0);
  a.ch.close();
  b.ch.close();
});

test('a receiver that holds its buffers stops the sender at the window, without overrun', async () => {
  const [a, b] = pair(device, { sendSlots: 16, recvWindow: 4, slotBytes: 4096 });
  b.hold = true;
  const msgs = Array.from({ length: 12 }, () => randomBytes(4096));
  await pump(a, b, msgs, () => b.received.length >= 4);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(b.received.length, 4, 'no more than the window arrives while the receiver holds its buffers');
  assert.equal(a.ch.credits, 0);
  // Release: the rest flows.
  b.hold = false;
  for (const s of b.held.splice(0)) b.ch.repost(s);
  await pump(a, b, msgs.slice(4), () => b.received.length >= 12);
  const digest = (l: Buffer[]) => createHash('sha256').update(Buffer.concat(l)).digest('hex');
  assert.equal(digest(b.received), digest(msgs));
  assert.equal(a.errors.length + b.errors.length, 0);
  a.ch.close();
  b.ch.close();
});

test('traffic both ways piggybacks credits on data', async () => {
  const [a, b] = pair(device);
  const ab = Array.from({ length: 100 }, () => randomBytes(30_000));
  const ba = Array.from({ length: 100 }, () => randomBytes(30_000));
  const p1 = pump(a, b, ab);
  await Promise.all([p1]);
  await pump(b, a, ba);
  assert.equal(a.received.length, 100);
  assert.equal(b.received.length, 100);
  a.ch.close();
  b.ch.close();
});

test('a peer that disappears fails the sender with a completion error naming the status', async () => {
  const before = liveVerbsConnections();
  const [a, b] = pair(device, { sendSlots: 4, recvWindow: 4, slotBytes: 4096 });
  assert.equal(liveVerbsConnections(), before + 2);
  b.ch.close();
  const msgs = Array.from({ length: 4 }, () => randomBytes(100));
  await assert.rejects(pump(a, b, msgs, () => false), (err: RdmaError) => {
    assert.equal(err.code, 'SLUICE_ERR_RDMA_COMPLETION');
    assert.equal(err.wcStatus, 'IBV_WC_RETRY_EXC_ERR');
    assert.match(err.message, /transport retry counter exceeded/i);
    return true;
  });
  a.ch.close();
  assert.equal(liveVerbsConnections(), before);
});

test('no device by that name: a clear error listing the devices', () => {
  assert.throws(() => RdmaDevice.open('mlx5_9'), (err: RdmaError) => {
    assert.equal(err.code, 'SLUICE_ERR_RDMA_NO_DEVICE');
    assert.match(err.message, /no RDMA device matches "mlx5_9" \(devices: rxe0 .*rxe1/);
    return true;
  });
});

test('devices open by netdev and by IPv4 address', () => {
  assert.equal(RdmaDevice.open('dummy0').info.name, 'rxe1');
  assert.equal(RdmaDevice.open('10.0.2.15').info.name, 'rxe0');
});
