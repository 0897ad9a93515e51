// The class on the wire of RDMA links (segments.<name>.dscp), inside the soft-RoCE guest: the GRH
// traffic class (DSCP << 2) of both ends' queue pairs, read back from the device with
// ibv_query_qp; a transport without a class leaves it at 0.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import type { RdmaLink } from '../../src/transport/rdma/rdma-link.ts';
import { RdmaTransport, type RdmaTransportOptions } from '../../src/transport/rdma-transport.ts';
import { segmentSocketClass } from '../../src/transport/socket-class.ts';
import type { Link, SegmentName } from '../../src/transport/types.ts';

const ETH0 = '10.0.2.15'; // rxe0

async function linkPair(segment: SegmentName, opts: RdmaTransportOptions): Promise<{ client: RdmaLink; server: RdmaLink; close(): Promise<void> }> {
  const segmentKey = randomBytes(32);
  const listener = await new RdmaTransport(opts).listen({ segment, host: ETH0, port: 0, segmentKey });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = (await new RdmaTransport(opts).connect({ segment, host: ETH0, port: listener.address.port, segmentKey })) as RdmaLink;
  const [server] = (await accepted) as [RdmaLink];
  return {
    client,
    server,
    async close() {
      await Promise.all([client.close(), server.close(), listener.close()]);
    },
  };
}

describe('GRH traffic class on rxe', { timeout: 300_000 }, () => {
  for (const [segment, dscp] of [
    ['inference', 34],
    ['training', 8],
    ['training', 46],
  ] as const) {
    test(`${segment} link with DSCP ${dscp}: both queue pairs carry traffic class ${dscp << 2}`, async () => {
      const p = await linkPair(segment, { socketClass: segmentSocketClass(segment, dscp) });
      try {
        assert.equal(p.client.trafficClass, dscp << 2);
        assert.equal(p.server.trafficClass, dscp << 2);
      } finally {
        await p.close();
      }
    });
  }

  test('without a class the queue pairs keep traffic class 0', async () => {
    const p = await linkPair('inference', {});
    try {
      assert.equal(p.client.trafficClass, 0);
      assert.equal(p.server.trafficClass, 0);
    } finally {
      await p.close();
    }
  });
});
