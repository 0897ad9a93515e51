// The transport conformance suite again, with links scheduled by FairLinkScheduler (DRR across
// flows, paced bulk) instead of the default priority scheduler, plus a real link whose bulk is
// paced at the governor's minimum share.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { BulkGovernor } from '../../src/scheduler/bulk-governor.ts';
import { type FairLinkScheduler, fairLinkSchedulerFactory, type FairSchedulerConfig } from '../../src/scheduler/fair-link-scheduler.ts';
import type { LinkSchedulerFactory } from '../../src/scheduler/link-scheduler.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, TransportOptions } from '../../src/transport/types.ts';
import { runTransportConformance } from './conformance.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

function fair(cfg: Partial<FairSchedulerConfig> = {}) {
  return fairLinkSchedulerFactory({ latencyTargetMs: 5, chunkBudgetFraction: 0.1, minChunkBytes: 16 * KiB, quantumBytes: 256 * KiB, governor: new BulkGovernor({ targetMs: 5, minShare: 0.1 }), ...cfg });
}

const withFair = (opts?: TransportOptions) => new TcpTransport({ ...opts, link: { ...opts?.link, scheduler: fair() } });
runTransportConformance('tcp + fair scheduler', withFair, { registryName: 'tcp', bulkBytes: 32 * MiB });

test('bulk paced at the minimum share still arrives whole, at about that share of the link', async () => {
  const governor = new BulkGovernor({ targetMs: 5, minShare: 0.1, minSamples: 1, tickMs: 0, decreaseIntervalMs: 0 });
  const key = randomBytes(32);
  const server = new TcpTransport();
  // The client link's scheduler, kept to see when its bandwidth estimate has settled.
  let sched: FairLinkScheduler | undefined;
  const made = fair({ governor });
  const keep: LinkSchedulerFactory = (o) => (sched = made(o) as FairLinkScheduler);
  const client = new TcpTransport({ link: { scheduler: keep } });
  const listener = await server.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: key });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const link = await client.connect({ segment: 'training', host: '127.0.0.1', port: listener.address.port, segmentKey: key });
  const [peer] = await accepted;
  // A failed assertion must still close the link: open sockets would keep the file running.
  try {
    const payload = randomBytes(40 * MiB);
    const got = createHash('sha256');
    let received = 0;
    let expected = Number.POSITIVE_INFINITY; // set once the unpaced rounds are known
    const done = new Promise<void>((resolve) =>
      peer.on('message', (m: InboundMessage) => {
        got.update(m.body);
        received += m.body.length;
        if (received >= expected) resolve();
      }),
    );
    // Unpaced first, until the link's bandwidth estimate has settled (4 busy intervals of 20 ms;
    // bounded: at most 8 rounds of 32 MiB), then 8 MiB more paced at the minimum share.
    let streamId = 1;
    let unpacedBytes = 0;
    const t0 = performance.now();
    for (let round = 0; round < 8 && (sched?.bandwidth.settledBytesPerSec ?? 0) === 0; round++) {
      for (let off = 0; off < 32 * MiB; off += MiB) link.send({ cls: 'training', kind: 1, streamId: streamId++, body: payload.subarray(off, off + MiB) });
      unpacedBytes += 32 * MiB;
      while (received < unpacedBytes) await new Promise((r) => setTimeout(r, 5));
    }
    const unpacedSeconds = (performance.now() - t0) / 1000;
    assert.ok((sched?.bandwidth.settledBytesPerSec ?? 0) > 0, 'the estimate settled');
    expected = unpacedBytes + 8 * MiB; // nothing of the paced bytes is sent yet
    const sent = createHash('sha256');
    for (let r = 0; r < unpacedBytes / (32 * MiB); r++) sent.update(payload.subarray(0, 32 * MiB));
    sent.update(payload.subarray(32 * MiB));
    // Inference is now far over its target, in proportion to bulk's share (so every cut helps:
    // the governor undoes cuts that do not): the share drops to the minimum and bulk is paced.
    const slowdown = () => governor.recordInference(500 * governor.share(performance.now()), performance.now());
    for (let i = 0; i < 60; i++) slowdown(); // a cut is judged on 5 samples after it (5 x minSamples)
    assert.equal(governor.share(performance.now()), 0.1);
    const t1 = performance.now();
    for (let off = 32 * MiB; off < payload.length; off += MiB) link.send({ cls: 'training', kind: 1, streamId: streamId++, body: payload.subarray(off, off + MiB) });
    const keepHot = setInterval(slowdown, 20);
    await done;
    clearInterval(keepHot);
    const pacedSeconds = (performance.now() - t1) / 1000;
    assert.equal(got.digest('hex'), sent.digest('hex'));
    // 8 MiB at 10% of the measured rate takes longer than the unpaced bytes (32 MiB or more) did.
    assert.ok(pacedSeconds > unpacedSeconds * (8 * MiB * 10) / unpacedBytes / 2, `paced ${pacedSeconds.toFixed(3)} s vs unpaced ${unpacedSeconds.toFixed(3)} s for ${unpacedBytes / MiB} MiB`);
  } finally {
    await Promise.all([link.close(), peer.close(), listener.close()]);
  }
});

test('while inference runs, a bulk link seals and takes in one training frame per event-loop turn, and everything arrives', async () => {
  const governor = new BulkGovernor({ targetMs: 5, minShare: 0.1 });
  const sliced = () => fair({ governor, slicesBulkTurns: true });
  const key = randomBytes(32);
  const server = new TcpTransport({ link: { scheduler: sliced() } });
  const client = new TcpTransport({ link: { scheduler: sliced() } });
  const listener = await server.listen({ segment: 'training', host: '127.0.0.1', port: 0, segmentKey: key });
  const accepted = once(listener, 'link') as Promise<[Link]>;
  const link = await client.connect({ segment: 'training', host: '127.0.0.1', port: listener.address.port, segmentKey: key });
  const [peer] = await accepted;
  const payload = randomBytes(8 * MiB);
  const received: Buffer[] = [];
  peer.on('message', (m: InboundMessage) => received.push(Buffer.from(m.body)));
  const turnSealed = async (body: Buffer, streamId: number): Promise<number> => {
    const before = link.stats().bytesSent;
    link.send({ cls: 'training', kind: 1, streamId, body });
    await new Promise((r) => setImmediate(r)); // the pump ran once (nextTick), then yielded
    return link.stats().bytesSent - before;
  };
  // No inference: the pump seals until the socket holds sealAheadBytes (1 MiB).
  const idle = await turnSealed(payload.subarray(0, 4 * MiB), 1);
  assert.ok(idle > 512 * KiB, `without inference one turn sealed ${idle} bytes`);
  while (received.length < 1) await new Promise((r) => setTimeout(r, 5)); // the socket is free again
  // Inference passed through: frames up to the budget (frameBytes.training = 256 KiB), the
  // last of which may cross it, per turn.
  governor.noteInference(performance.now());
  const busy = await turnSealed(payload.subarray(4 * MiB), 2);
  assert.ok(busy > 0 && busy <= 2 * 256 * KiB + 4 * KiB, `with inference one turn sealed ${busy} bytes`);
  while (received.length < 2) {
    governor.noteInference(performance.now()); // keep the receiver slicing too
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(Buffer.concat(received).equals(payload), 'both messages arrive whole and in order');
  await Promise.all([link.close(), peer.close(), listener.close()]);
});
