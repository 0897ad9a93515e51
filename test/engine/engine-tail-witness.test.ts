// The tail witness on the engine's TCP links (native/engine/tcp_link.cc, as
// src/transport/link-base.ts): after tailWitnessMs without sending, a link that sent frames since
// its last witness sends one REKEY frame. Real sockets: an engine initiator, a frame proxy that
// may drop frames, a TypeScript acceptor.
//  - the engine's last frame dropped: the TypeScript receiver finds the sequence gap within the
//    witness bound (not never), both ends close;
//  - a quiet link that lost nothing stays up: one witness per quiet period, none without new
//    frames, counted as rekeys on both sides;
//  - tailWitnessMs 0: no witness.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NativeEngine } from '../../src/engine/native-engine.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage, Link, LinkCloseInfo, Listener } from '../../src/transport/types.ts';
import { FrameType } from '../../src/wire/frame-header.ts';
import { startFrameProxy, type FrameEdit } from '../helpers/frame-proxy.ts';
import { linkOptions, waitFor, type CloseEvent, type LinkEvent } from './engine-harness.ts';

const KEY = randomBytes(32);
const TEST_KIND = 0xff00;
const isInferenceData = (f: Buffer): boolean => f[3] === FrameType.DATA && f[4] === 1;

describe('engine link tail witness', { timeout: 60_000 }, () => {
  let engine: NativeEngine;
  let listener: Listener;
  before(async () => {
    engine = new NativeEngine('sluice-test');
    listener = await new TcpTransport().listen({ segment: 'inference', host: '127.0.0.1', port: 0, segmentKey: KEY });
  });
  after(async () => {
    engine.stop();
    await listener.close();
  });

  /** An engine link dialed through a frame proxy that applies `edit` to what the engine sends. */
  async function link(edit: FrameEdit, tailWitnessMs: number): Promise<{ id: number; ts: Link; close: () => Promise<void> }> {
    const proxy = await startFrameProxy({ host: '127.0.0.1', port: listener.address.port }, edit);
    // The TypeScript end of this very link (a dialer of an earlier test may reconnect meanwhile).
    const accepted = new Map<string, Link>();
    const onLink = (l: Link): void => void accepted.set(l.id, l);
    listener.on('link', onLink);
    const dialer = engine.dial('127.0.0.1', proxy.port, linkOptions(KEY, { tailWitnessMs }));
    const [info] = await waitFor<LinkEvent>(engine, 'link', (l) => l.dialer === dialer);
    for (let i = 0; i < 100 && !accepted.has(info.linkId); i++) await sleep(50);
    listener.off('link', onLink);
    const ts = accepted.get(info.linkId);
    assert.ok(ts !== undefined, 'the TypeScript end of the link');
    return {
      id: info.id,
      ts,
      close: async () => {
        await proxy.close(); // the dialer's reconnects end here
        engine.closeLink(info.id);
        await ts.close();
      },
    };
  }

  test('the last frame dropped: the TypeScript receiver finds the gap within the witness bound', async () => {
    let seen = 0;
    const l = await link((f) => (isInferenceData(f) && seen++ === 1 ? [] : [f]), 200);
    try {
      const got: string[] = [];
      l.ts.on('message', (m: InboundMessage) => got.push(m.body.toString()));
      const tsClosed = once(l.ts, 'close') as Promise<[LinkCloseInfo]>;
      const engineClosed = waitFor<CloseEvent>(engine, 'close', (id) => id === l.id);
      const t0 = performance.now();
      engine.send(l.id, { cls: 1, kind: TEST_KIND, streamId: 1, body: Buffer.from('first') });
      engine.send(l.id, { cls: 1, kind: TEST_KIND, streamId: 3, body: Buffer.from('second (dropped)') });
      // Nothing else is sent: only the witness can reveal the gap.
      const [info] = await Promise.race([tsClosed, sleep(5000).then(() => assert.fail('the gap went unnoticed for 5 s'))]);
      const ms = performance.now() - t0;
      assert.equal((info.error as { code?: string } | undefined)?.code, 'SLUICE_ERR_WIRE_SEQUENCE_GAP');
      assert.ok(ms < 2000, `found after ${Math.round(ms)} ms`);
      await engineClosed;
      assert.deepEqual(got, ['first']);
    } finally {
      await l.close();
    }
  });

  test('a quiet link that lost nothing stays up: one witness per quiet period', async () => {
    const l = await link((f) => [f], 50);
    try {
      const got: string[] = [];
      l.ts.on('message', (m: InboundMessage) => got.push(m.body.toString()));
      const rekeys0 = engine.counters.get('linkRekeys');
      for (let i = 0; i < 5; i++) {
        engine.send(l.id, { cls: 1, kind: TEST_KIND, streamId: 1, body: Buffer.from(`m${i}`) });
        await sleep(150); // past the witness bound each time
      }
      assert.equal(l.ts.closed, false);
      assert.deepEqual(got, ['m0', 'm1', 'm2', 'm3', 'm4']);
      const sent = engine.counters.get('linkRekeys') - rekeys0;
      assert.ok(sent >= 4 && sent <= 6, `one witness per quiet period, got ${sent}`);
      assert.equal(l.ts.stats().rekeys, sent, 'the TypeScript receiver applied each witness');
      await sleep(250);
      assert.equal(engine.counters.get('linkRekeys') - rekeys0, sent, 'no witness without new frames');
    } finally {
      await l.close();
    }
  });

  test('tailWitnessMs 0: no witness', async () => {
    const l = await link((f) => [f], 0);
    try {
      const got = once(l.ts, 'message');
      const rekeys0 = engine.counters.get('linkRekeys');
      engine.send(l.id, { cls: 1, kind: TEST_KIND, streamId: 1, body: Buffer.from('only') });
      await got;
      await sleep(400);
      assert.equal(engine.counters.get('linkRekeys'), rekeys0);
      assert.equal(l.ts.stats().rekeys, 0);
    } finally {
      await l.close();
    }
  });
});
