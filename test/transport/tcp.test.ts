import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import type { TcpLink } from '../../src/transport/tcp-link.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage } from '../../src/transport/types.ts';
import { makePair, runTransportConformance } from './conformance.ts';

runTransportConformance('tcp', (opts) => new TcpTransport(opts), { registryName: 'tcp' });

describe('tcp specifics', { timeout: 120_000 }, () => {
  test('both ends read into reusable buffers', async () => {
    const p = await makePair((o) => new TcpTransport(o), 'training');
    try {
      assert.equal((p.client as TcpLink).zeroCopyReads, true);
      assert.equal((p.server as TcpLink).zeroCopyReads, true);
    } finally {
      await p.cleanup();
    }
  });

  test('read buffers smaller than a frame, a reader that pauses: data intact', async () => {
    const tuning = { link: { receiveBufferBytes: 128 * 1024, frameBytes: { training: 1024 * 1024 } } };
    const p = await makePair((o) => new TcpTransport(o), 'training', { server: tuning, client: tuning });
    try {
      const bodies = Array.from({ length: 40 }, (_, i) => randomBytes(((i * 7919) % 3) * 1024 * 1024 + i * 1000));
      const got: Buffer[] = [];
      const done = new Promise<void>((resolve) => {
        p.server.on('message', (m: InboundMessage) => {
          got.push(m.body);
          if (got.length === bodies.length) return resolve();
          if (got.length % 3 === 0) {
            p.server.pause();
            setTimeout(() => p.server.resume(), 5);
          }
        });
      });
      for (const body of bodies) {
        if (!p.client.send({ cls: 'training', kind: 1, streamId: 1, body })) await once(p.client, 'drain');
      }
      await done;
      got.forEach((b, i) => assert.ok(b.equals(bodies[i] as Buffer), `message ${i} differs`));
    } finally {
      await p.cleanup();
    }
  });
});
