// Inside the soft-RoCE guest: verbs errors outside a work completion fail one link, never the
// process (issue 14, item 8). Moving a queue pair to the error state only yields flush
// completions, so the test-only injection hook (SLUICE_VERBS_FAULT_INJECTION=1) makes the next
// poll, CQ re-arm or receive post fail as the verbs call would. Each used to end the process
// (napi_fatal_exception from the completion callback, or the repost that threw into it); a bad
// slot handed to repost hit an assert (abort). After each fault a second link in the same
// process still carries traffic.
process.env.SLUICE_VERBS_FAULT_INJECTION = '1';

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { RdmaDevice } from '../../src/transport/rdma/devices.ts';
import type { RdmaLink } from '../../src/transport/rdma/rdma-link.ts';
import { VerbsFault } from '../../src/transport/rdma/verbs-addon.ts';
import { liveVerbsConnections, VerbsChannel } from '../../src/transport/rdma/verbs-channel.ts';
import { RdmaTransport } from '../../src/transport/rdma-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, Listener } from '../../src/transport/types.ts';

const ETH0 = '10.0.2.15'; // rxe0

async function pair(): Promise<{ client: Link; server: Link; listener: Listener; close(): Promise<void> }> {
  const key = randomBytes(32);
  const listener = await new RdmaTransport().listen({ segment: 'training', host: ETH0, port: 0, segmentKey: key });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const client = await new RdmaTransport().connect({ segment: 'training', host: ETH0, port: listener.address.port, segmentKey: key });
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

async function roundTrip(a: Link, b: Link): Promise<void> {
  const got = once(b, 'message') as Promise<[InboundMessage]>;
  a.send({ cls: 'training', kind: 1, streamId: 1, body: Buffer.from('still here') });
  const [m] = await got;
  assert.equal(m.body.toString(), 'still here');
}

describe('verbs errors fail one link, not the process', { timeout: 600_000 }, () => {
  for (const [name, fault, pattern] of [
    ['a failed receive post (the repost after a frame)', VerbsFault.POST_RECV, /ibv_post_recv/],
    ['a failed completion poll', VerbsFault.POLL, /ibv_poll_cq/],
    ['a failed CQ re-arm', VerbsFault.REARM, /ibv_req_notify_cq/],
  ] as const) {
    test(`${name}: that link closes with the verbs error, the other link keeps working`, async () => {
      const victim = await pair();
      const bystander = await pair();
      try {
        const closed = once(victim.server, 'close') as Promise<[LinkCloseInfo]>;
        (victim.server as RdmaLink).injectVerbsFault(fault);
        victim.client.send({ cls: 'training', kind: 1, streamId: 1, body: Buffer.from('triggers the fault') });
        const [info] = await closed;
        assert.equal(info.by, 'error');
        assert.match(info.reason, pattern);
        await roundTrip(bystander.client, bystander.server);
        await roundTrip(bystander.server, bystander.client);
      } finally {
        await victim.close();
        await bystander.close();
      }
    });
  }

  test('a receive slot out of range is an error from repost, not an assert', () => {
    const device = RdmaDevice.open('rxe0');
    const before = liveVerbsConnections();
    const handlers = { onReceive() {}, onSendComplete() {}, onProgress() {}, onError() {} };
    const a = new VerbsChannel(device, { sendSlots: 2, recvWindow: 2, slotBytes: 4096 }, handlers);
    const b = new VerbsChannel(device, { sendSlots: 2, recvWindow: 2, slotBytes: 4096 }, handlers);
    try {
      a.connect(b.local());
      b.connect(a.local());
      assert.throws(() => a.repost(1_000_000), /repost: slot out of range/);
      assert.throws(() => a.repost(0), /no receive is held/);
    } finally {
      a.close();
      b.close();
    }
    assert.equal(liveVerbsConnections(), before);
  });

  test('injection is refused without SLUICE_VERBS_FAULT_INJECTION=1', async () => {
    const p = await pair();
    try {
      process.env.SLUICE_VERBS_FAULT_INJECTION = '0';
      assert.throws(() => (p.server as RdmaLink).injectVerbsFault(VerbsFault.POLL), /fault injection is off/);
    } finally {
      process.env.SLUICE_VERBS_FAULT_INJECTION = '1';
      await p.close();
    }
  });
});
