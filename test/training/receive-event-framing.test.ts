// Subscribe and Pull data events framed in one buffer (src/training/receive-event-framing.ts):
// byte for byte what grpc-js and protobufjs write, for any transfer id, offset and chunk; and
// over real gRPC and a real TCP training link, a streamed and a pulled tensor arrive whole
// through the swapped serializer (its counter shows it was used).
import * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { connect } from '../../src/index.ts';
import { addTensorTransferService } from '../../src/training/grpc-service.ts';
import { tensorTransferClientConstructor } from '../../src/training/proto.ts';
import { encodeFramedDataEvent, framedEventBuffers, receiveEventFraming, receiveEventFramingInterceptor } from '../../src/training/receive-event-framing.ts';
import { TrainingNode } from '../../src/training/training-node.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a framed data event is the gRPC prefix and the protobuf bytes grpc-js would send', () => {
  const def = tensorTransferClientConstructor().service.Subscribe!;
  fc.assert(
    fc.property(
      fc.string({ unit: 'grapheme', maxLength: 80 }),
      fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 32 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
      fc.uint8Array({ maxLength: 3000 }),
      (transferId, offset, bytes) => {
        const data = Buffer.from(bytes);
        const framed = encodeFramedDataEvent({ transferId, offset, data });
        const expected = def.responseSerialize({ data: { transferId, offset, data } });
        assert.equal(framed[0], 0);
        assert.equal(framed.readUInt32BE(1), framed.length - 5);
        assert.ok(framed.subarray(5).equals(expected), `${framed.subarray(5).toString('hex')} vs ${expected.toString('hex')}`);
        const back = def.responseDeserialize(framed.subarray(5)) as { data: { transferId: string; offset: number; data: Buffer } };
        assert.equal(back.data.transferId, transferId);
        assert.equal(back.data.offset, offset);
        assert.ok(back.data.data.equals(data));
      },
    ),
  );
  assert.throws(() => encodeFramedDataEvent({ transferId: 'x', offset: -1, data: Buffer.alloc(1) }), RangeError);
  assert.throws(() => encodeFramedDataEvent({ transferId: 'x', offset: 2 ** 53, data: Buffer.alloc(1) }), RangeError);
});

test('streamed and pulled tensors arrive whole through the one-buffer framing', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-framing-'));
  const key = randomBytes(32);
  const transport = new TcpTransport();
  const b = new TrainingNode({ nodeName: 'b', transport, segmentKey: key, peers: [], spoolDir: path.join(dir, 'b') });
  await b.start();
  const listener = await transport.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: key });
  listener.on('link', (l) => b.attachLink(l));
  const a = new TrainingNode({ nodeName: 'a', transport, segmentKey: key, peers: [{ name: 'b', segment: 'training', host: '127.0.0.1', port: listener.address.port }], spoolDir: path.join(dir, 'a') });
  await a.start();
  const servers: grpc.Server[] = [];
  const serve = async (node: TrainingNode, interceptors: grpc.ServerInterceptor[]): Promise<string> => {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * MiB, interceptors });
    servers.push(server);
    addTensorTransferService(server, node);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    return `127.0.0.1:${port}`;
  };
  const tx = connect(await serve(a, []));
  const rx = connect(await serve(b, [receiveEventFramingInterceptor]));
  try {
    const before = receiveEventFraming.framed;
    const reusedBefore = framedEventBuffers.reuses;
    const sub = rx.subscribe({ namePrefix: 'act/' });
    await sub.ready;
    const data = randomBytes(12 * MiB + 5);
    const received = (async () => {
      const parts: Buffer[] = [];
      let at = 0;
      for await (const e of sub) {
        if ('data' in e) {
          assert.equal(e.data.offset, at);
          at += e.data.data.length;
          parts.push(e.data.data);
        }
        if ('end' in e) return { bytes: Buffer.concat(parts), sha256: e.end.sha256 };
      }
      throw new Error('subscription ended early');
    })();
    const r = await tx.push('b', 'act/layer1', data, { sink: 'stream', chunkBytes: MiB });
    const got = await received;
    sub.close();
    assert.equal(sha(got.bytes), sha(data));
    assert.ok(got.sha256.equals(r.sha256));
    assert.ok(receiveEventFraming.framed - before >= 13, `${receiveEventFraming.framed - before} data events framed`);
    // The framed buffers came back after each write and were framed into again: the bytes above
    // are whole, so none was reused while the stream still held it.
    assert.ok(framedEventBuffers.reuses - reusedBefore >= 8, `${framedEventBuffers.reuses - reusedBefore} framed buffers reused`);

    // Two readers that take their time, fed at once: HTTP/2 flow control backs both streams
    // up, so writes complete late while the other stream frames its next chunk. A framed
    // buffer handed out again before its write completed would put one tensor's bytes into the
    // other's events.
    const slowly = async (prefix: string) => {
      const sub = rx.subscribe({ namePrefix: prefix });
      await sub.ready;
      return { sub, bytes: (async () => {
        const parts: Buffer[] = [];
        for await (const e of sub) {
          if ('data' in e) {
            parts.push(e.data.data);
            await new Promise((r) => setTimeout(r, 5));
          }
          if ('end' in e) return Buffer.concat(parts);
        }
        throw new Error('subscription ended early');
      })() };
    };
    const [s1, s2] = await Promise.all([slowly('slow1/'), slowly('slow2/')]);
    const d1 = randomBytes(40 * MiB + 3);
    const d2 = randomBytes(36 * MiB + 11);
    await Promise.all([tx.push('b', 'slow1/t', d1, { sink: 'stream', chunkBytes: MiB }), tx.push('b', 'slow2/t', d2, { sink: 'stream', chunkBytes: MiB })]);
    assert.equal(sha(await s1.bytes), sha(d1));
    assert.equal(sha(await s2.bytes), sha(d2));
    s1.sub.close();
    s2.sub.close();

    await tx.push('b', 'ckpt/x', data, { transferId: 'pulled-1' });
    const parts: Buffer[] = [];
    for await (const e of rx.pull({ transferId: 'pulled-1' }, 7)) if ('data' in e) parts.push(e.data.data);
    assert.equal(sha(Buffer.concat(parts)), sha(data.subarray(7)));
    assert.equal(receiveEventFraming.misses, 0);
  } finally {
    tx.close();
    rx.close();
    for (const s of servers) s.forceShutdown();
    await a.close();
    await b.close();
    await listener.close();
    await rm(dir, { recursive: true, force: true });
  }
});
