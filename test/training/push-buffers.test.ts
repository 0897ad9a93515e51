// Pooled Push buffers (src/training/push-buffers.ts) and the release of a chunk's buffer by the
// links and the transfer window. The decoder is a parser of untrusted bytes (a job's HTTP/2
// DATA): property-tested against grpc-js's framing, split at any points, with every slab given
// back exactly once. Over real gRPC and real TCP training links: a job's chunks are gathered
// into slabs (not grpc-js's per-message buffers), the tensor arrives whole, and every slab is
// back after completion, a job that went away, and a cancelled transfer. A link gives a message's
// body back once: after sealing its last frame, or when it drops the message.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { connect } from '../../src/index.ts';
import { framedMessage } from '../../src/ingress/grpc-deframer.ts';
import { TrainingGrpcServer } from '../../src/training/grpc-server.ts';
import { tensorTransferClientConstructor } from '../../src/training/proto.ts';
import { POOLED_MIN_BYTES, PooledPushDecoder, PushBuffers } from '../../src/training/push-buffers.ts';
import { TrainingNode } from '../../src/training/training-node.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { Link } from '../../src/transport/types.ts';
import { MessageKind } from '../../src/wire/message-kinds.ts';
import { makePair } from '../transport/conformance.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

test('the pooled decoder frames messages split anywhere as grpc-js does, large ones in slabs, each slab back exactly once', () => {
  const sizes = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: POOLED_MIN_BYTES, max: POOLED_MIN_BYTES + 3000 }));
  fc.assert(
    fc.property(
      fc.array(fc.tuple(sizes, fc.boolean(), fc.boolean()), { maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      fc.boolean(),
      (specs, cuts, closeFirst) => {
        const buffers = new PushBuffers({ maxChunkBytes: POOLED_MIN_BYTES + 4096, slabs: 3 });
        const decoder = new PooledPushDecoder(buffers, 1 * MiB);
        const bodies = specs.map(([n]) => randomBytes(n));
        const wire = Buffer.concat(specs.map(([, compressed], i) => framedMessage(bodies[i]!, compressed)));
        const got: Buffer[] = [];
        for (const piece of splitAt(wire, cuts)) got.push(...decoder.write(piece));
        assert.deepEqual(
          got.map((b) => b.toString('hex')),
          specs.map(([, compressed], i) => framedMessage(bodies[i]!, compressed).toString('hex')),
        );
        // Adopt some (as the Push handler does with a chunk's view of the message), leave the rest.
        const releases: (() => void)[] = [];
        got.forEach((m, i) => {
          if (specs[i]![2]) {
            const r = buffers.adopt(m);
            if (r !== undefined) releases.push(r);
          }
        });
        assert.ok(buffers.pool.inUse <= 3);
        if (closeFirst) decoder.close();
        for (const r of releases) {
          r();
          r(); // a second call does nothing
        }
        decoder.close();
        assert.equal(buffers.pool.inUse, 0);
        assert.equal(decoder.heldSlabs, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('arbitrary bytes give messages or an error from the pooled decoder, never anything else, and every slab comes back', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 70 * 1024 }), { maxLength: 4 }), (pieces) => {
      const buffers = new PushBuffers({ maxChunkBytes: 256 * KiB, slabs: 2 });
      const decoder = new PooledPushDecoder(buffers, 128 * KiB);
      try {
        for (const p of pieces) for (const m of decoder.write(Buffer.from(p))) assert.ok(m.length >= 5 && m.readUInt32BE(1) === m.length - 5);
      } catch (err) {
        assert.ok(err instanceof Error);
      }
      decoder.close();
      assert.equal(buffers.pool.inUse, 0);
    }),
    { numRuns: 100 },
  );
});

test('the pooled decoder refuses a message over the limit on its prefix, and takes a slab only for large messages', () => {
  const buffers = new PushBuffers({ maxChunkBytes: 256 * KiB, slabs: 2 });
  const decoder = new PooledPushDecoder(buffers, 128 * KiB);
  assert.throws(() => decoder.write(framedMessage(Buffer.alloc(128 * KiB + 1)).subarray(0, 5)), /larger than max/);
  const d2 = new PooledPushDecoder(buffers, 1 * MiB);
  const big = randomBytes(100 * KiB);
  const wire = framedMessage(big);
  const out = [...d2.write(wire.subarray(0, 1000)), ...d2.write(wire.subarray(1000))];
  assert.equal(out.length, 1);
  assert.equal(buffers.pool.inUse, 1);
  assert.ok(out[0]!.subarray(5).equals(big));
  // Every slab out: the next large message gets a buffer of its own, counted.
  const d3 = new PooledPushDecoder(buffers, 1 * MiB);
  const w3 = framedMessage(randomBytes(100 * KiB));
  d3.write(w3.subarray(0, 10));
  d3.write(w3.subarray(10));
  const d4 = new PooledPushDecoder(buffers, 1 * MiB);
  d4.write(w3.subarray(0, 10));
  assert.equal(d4.write(w3.subarray(10)).length, 1);
  assert.equal(buffers.oneOffAllocations, 1);
  for (const d of [d2, d3, d4]) d.close();
  assert.equal(buffers.pool.inUse, 0);
});

test('a link gives a message body back once: after sealing its last frame, or when it drops the message', async () => {
  const make = (opts?: ConstructorParameters<typeof TcpTransport>[0]) => new TcpTransport(opts);
  const frames = { control: 16 * KiB, inference: 16 * KiB, training: 16 * KiB };
  const pair = await makePair(make, 'training', { server: { link: { frameBytes: frames } }, client: { link: { frameBytes: frames, closeTimeoutMs: 300 } } });
  let received = 0;
  pair.server.on('message', () => received++);
  let released = 0;
  const body = randomBytes(100 * KiB);
  pair.client.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 1, body, bodyReleased: () => released++ });
  assert.equal(released, 0, 'not before the pump sealed it');
  await until(() => received === 1, 'the message');
  assert.equal(released, 1);
  // The peer stops reading and the close times out with most still queued: those are dropped,
  // and given back too.
  const link: Link = pair.client;
  const many = 256;
  let given = 0;
  const before = received;
  pair.server.pause();
  for (let i = 0; i < many; i++) link.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 2 + i, body: randomBytes(64 * KiB), bodyReleased: () => given++ });
  // The close timer is unref'd: keep the loop alive while it runs.
  const keepAlive = setInterval(() => {}, 20);
  try {
    const closing = link.close();
    await until(() => given === many, 'every queued body given back');
    await closing;
    pair.server.resume();
    await pair.cleanup();
  } finally {
    clearInterval(keepAlive);
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(given, many, 'each exactly once');
  assert.ok(received - before < many, 'some were dropped, not sent');
});

test('Push over gRPC: chunks are gathered into pooled slabs, the tensor arrives whole, every slab comes back', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-push-buffers-'));
  const key = randomBytes(32);
  const transport = new TcpTransport();
  const b = new TrainingNode({ nodeName: 'b', transport, segmentKey: key, peers: [], spoolDir: path.join(dir, 'b') });
  await b.start();
  const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: key });
  listener.on('link', (l) => b.attachLink(l));
  const a = new TrainingNode({
    nodeName: 'a',
    transport,
    segmentKey: key,
    peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port: listener.address.port }],
    spoolDir: path.join(dir, 'a'),
    limits: { windowBytes: 4 * MiB, resumeTimeoutMs: 5000 },
  });
  await a.start();
  const pushBuffers = new PushBuffers({ maxChunkBytes: a.limits.maxChunkBytes, slabs: 32 });
  const server = new TrainingGrpcServer(a, '127.0.0.1', 0, { pushBuffers });
  const port = await server.start();
  const address = `127.0.0.1:${port}`;
  try {
    const client = connect(address);
    const data = randomBytes(9 * MiB + 123);
    const r = await client.push('b', 'pool/t0', data, { transferId: 'pool-0' });
    assert.equal(r.sha256.toString('hex'), sha(data));
    assert.equal(pushBuffers.swapFailures, 0);
    assert.ok(pushBuffers.pool.allocatedBytes > 0, 'chunks were gathered into slabs');
    assert.equal(pushBuffers.oneOffAllocations, 0);
    await until(() => pushBuffers.pool.inUse === 0, 'every slab back after completion');
    client.close();

    // A job that goes away mid-push: its chunks stay in the window until the peer acknowledged
    // them, then come back; a cancel of the transfer frees the rest.
    const Ctor = tensorTransferClientConstructor();
    const raw = new Ctor(address, grpc.credentials.createInsecure());
    const call = (raw as unknown as { Push(): grpc.ClientDuplexStream<unknown, { msg?: string }> }).Push();
    const accepted = new Promise<void>((resolve, reject) => {
      call.on('data', (m: { msg?: string }) => {
        if (m.msg === 'accepted') resolve();
      });
      call.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    const total = 6 * MiB;
    call.write({ start: { peer: 'b', tensor: { name: 'pool/t1' }, totalBytes: total, transferId: 'pool-1' } });
    await accepted;
    for (let off = 0; off < 3 * MiB; off += MiB) call.write({ chunk: { offset: off, data: randomBytes(MiB) } });
    await until(() => a.status('pool-1').acked >= 3 * MiB, 'three chunks acknowledged');
    call.cancel();
    raw.close();
    await until(() => pushBuffers.pool.inUse === 0, 'every slab back after the job went away');
    a.cancel('pool-1', 'test');
    assert.equal(pushBuffers.pool.inUse, 0);
  } finally {
    await server.stop(0);
    await a.close();
    await b.close();
    await listener.close();
    await rm(dir, { recursive: true, force: true });
  }
});
