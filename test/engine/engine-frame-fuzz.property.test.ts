// Property test of the engine's frame parser and receiver, through the binding and a real
// socket: after a genuine handshake, a peer sends valid frames followed by random or mutated
// bytes. The engine must refuse what is wrong with a docs/wire.md code (or see the peer gone
// when the bytes end mid-frame), deliver exactly the valid messages before it, never crash,
// and keep serving new links. (libFuzzer harnesses for the same sans-IO entry points,
// FrameParser::Feed / LinkReceiver::Feed / Handshake::Feed, live with the sanitizer build.)
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { defaultAeadFactory } from '../../src/crypto/aead-factory.ts';
import { TrafficKeys } from '../../src/crypto/traffic-keys.ts';
import { NativeEngine } from '../../src/engine/native-engine.ts';
import { performHandshake } from '../../src/transport/handshake.ts';
import { TcpTransport } from '../../src/transport/tcp-transport.ts';
import type { InboundMessage } from '../../src/transport/types.ts';
import { FrameFlags, FrameType } from '../../src/wire/frame-header.ts';
import { FrameSealer } from '../../src/wire/frame-sealer.ts';
import { echo, linkOptions, waitFor, type CloseEvent } from './engine-harness.ts';

const KEY = randomBytes(32);
const WIRE_CODES = new Set([
  'SLUICE_ERR_WIRE_TRUNCATED',
  'SLUICE_ERR_WIRE_OVERSIZE',
  'SLUICE_ERR_WIRE_BAD_MAGIC',
  'SLUICE_ERR_WIRE_VERSION',
  'SLUICE_ERR_WIRE_MALFORMED',
  'SLUICE_ERR_WIRE_SEGMENT',
  'SLUICE_ERR_WIRE_CLASS',
  'SLUICE_ERR_WIRE_REPLAY',
  'SLUICE_ERR_WIRE_SEQUENCE_GAP',
  'SLUICE_ERR_WIRE_NONCE',
  'SLUICE_ERR_WIRE_KEY',
  'SLUICE_ERR_WIRE_AUTH',
  'SLUICE_ERR_WIRE_FRAGMENT',
  'SLUICE_ERR_TRANSPORT_PEER_GONE',
]);

let engine: NativeEngine;
let port: number;

before(async () => {
  engine = new NativeEngine('sluice-fuzz');
  // Messages the engine hands to JS are counted per link, not echoed (the peer never reads).
  ({ port } = await engine.listen('127.0.0.1', 0, linkOptions(KEY, { keyLimits: { maxFramesPerKey: 4, maxBytesPerKey: 8192 } })));
});

after(() => engine.stop());

interface Case {
  messages: Uint8Array[];
  mutation: { kind: 'garbage'; bytes: Uint8Array } | { kind: 'flip'; at: number; bit: number } | { kind: 'truncate'; keep: number } | { kind: 'duplicate'; index: number };
}

const caseArb: fc.Arbitrary<Case> = fc.record({
  messages: fc.array(fc.uint8Array({ maxLength: 3000 }), { minLength: 1, maxLength: 6 }),
  mutation: fc.oneof(
    fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 400 }) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
    fc.record({ kind: fc.constant('duplicate' as const), index: fc.nat() }),
  ),
});

async function runCase(c: Case): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  const opened = waitFor<[{ id: number; linkId: string }]>(engine, 'link');
  const hs = await performHandshake(socket, { role: 'initiator', segment: 'inference', segmentKey: KEY, timeoutMs: 5000, remote: 'engine' });
  socket.resume();
  const [info] = await opened;
  assert.equal(info.linkId, hs.linkId);
  const sealer = new FrameSealer(new TrafficKeys(hs.secrets.send, hs.secrets.sendDirection, defaultAeadFactory(), { maxFramesPerKey: 4, maxBytesPerKey: 8192 }), 'inference');
  const frames: Buffer[] = [];
  c.messages.forEach((m, i) => {
    if (sealer.rekeyDue(m.byteLength)) frames.push(sealer.sealRekey());
    frames.push(
      sealer.seal({ type: FrameType.DATA, cls: 'inference', flags: FrameFlags.FIRST | FrameFlags.LAST, streamId: i + 1, kind: 0xff01, tenant: i % 2, messageLength: m.byteLength, parts: [m], payloadLength: m.byteLength }),
    );
  });
  let wire = Buffer.concat(frames);
  const m = c.mutation;
  if (m.kind === 'garbage') wire = Buffer.concat([wire, m.bytes]);
  else if (m.kind === 'flip') {
    const at = m.at % wire.length;
    wire[at] = wire[at]! ^ (1 << m.bit);
  } else if (m.kind === 'truncate') wire = wire.subarray(0, m.keep % wire.length);
  else {
    const f = frames[m.index % frames.length]!;
    wire = Buffer.concat([wire, f]);
  }
  let delivered = 0;
  const onMessage = (id: number): void => {
    if (id === info.id) delivered += 1;
  };
  engine.on('message', onMessage);
  const closed = waitFor<CloseEvent>(engine, 'close', (id) => id === info.id, 10_000);
  socket.end(wire);
  const [, why] = await closed;
  engine.off('message', onMessage);
  socket.destroy();
  assert.equal(why.by, 'error');
  assert.ok(why.error !== undefined && WIRE_CODES.has(why.error.code), `close code ${why.error?.code}: ${why.reason}`);
  assert.ok(delivered <= c.messages.length);
}

test('valid frames then random or mutated bytes: refused with a wire code, never a crash', { timeout: 240_000 }, async () => {
  await fc.assert(fc.asyncProperty(caseArb, runCase), { numRuns: 150 });
  // Still serving: a normal link works after all that.
  echo(engine);
  const link = await new TcpTransport().connect({ segment: 'inference', host: '127.0.0.1', port, segmentKey: KEY });
  try {
    const got = new Promise<InboundMessage>((resolve) => link.once('message', resolve));
    link.send({ cls: 'inference', kind: 0xff02, streamId: 1, body: Buffer.from('still here') });
    assert.equal((await got).body.toString(), 'still here');
  } finally {
    await link.close();
  }
  // The engine counts the link closed once its loop has read the peer's end (a moment after
  // the TypeScript side's close resolves).
  for (let i = 0; i < 200 && engine.counters.get('linksOpen') !== 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(engine.counters.get('linksOpen'), 0);
});
