// Pooled receive buffers on real TCP links (loopback): the shared suite
// (receive-pool-suite.ts), and what only a TCP fault proxy can do here: a link cut mid-message
// gives back the slab of its partial message, and messages delivered before the cut stay valid
// until released.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, TransportOptions } from '../../src/transport/types.ts';
import { MessageKind } from '../../src/wire/message-kinds.ts';
import { ReceivePool } from '../../src/wire/receive-pool.ts';
import { startTcpFaultProxy } from '../helpers/tcp-fault-proxy.ts';
import { FRAME, pooled, runReceivePoolSuite } from './receive-pool-suite.ts';

const KiB = 1024;
const frames = { control: FRAME, inference: FRAME, training: FRAME };
const make = (opts?: TransportOptions) => new TcpTransport(opts);

runReceivePoolSuite('tcp', make, { host: '127.0.0.1' });

test('a link cut mid-message gives back its partial message\'s slab; delivered ones stay valid until released', async () => {
  const pool = new ReceivePool({ slabBytes: 200 * KiB, slabs: 8 });
  const key = randomBytes(32);
  const listener = await make(pooled(pool)).listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: key });
  // The connection dies 500 KiB in: two messages whole, the third cut in the middle.
  const proxy = await startTcpFaultProxy({ host: '127.0.0.1', port: listener.address.port }, () => ({ cutAfter: 500 * KiB }));
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await make({ link: { frameBytes: frames } }).connect({ segment: 'training', host: '127.0.0.1', port: proxy.port, segmentKey: key });
  const [server] = await accepted;
  const got: InboundMessage[] = [];
  server.on('message', (m: InboundMessage) => got.push(m));
  const closed = once(server, 'close') as Promise<[LinkCloseInfo]>;
  const bodies = Array.from({ length: 4 }, () => randomBytes(200 * KiB));
  for (const body of bodies) client.send({ cls: 'training', kind: MessageKind.TRAINING_CHUNK, streamId: 1, body });
  const [info] = await closed;
  assert.equal(info.by, 'error');
  assert.match(info.reason, /mid-message|closed/);
  assert.equal(got.length, 2);
  // Only the delivered messages hold slabs: the partial third one's went back with the link.
  assert.equal(pool.inUse, 2);
  assert.ok((got[0] as InboundMessage).body.equals(bodies[0] as Buffer));
  assert.ok((got[1] as InboundMessage).body.equals(bodies[1] as Buffer));
  for (const m of got) m.release?.();
  assert.equal(pool.inUse, 0);
  assert.equal(pool.available, 8);
  await client.close();
  await listener.close();
  await proxy.close();
});

