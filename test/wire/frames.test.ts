import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { WireError, WireErrorCode } from '../../src/wire/errors.ts';
import {
  FRAME_MAGIC,
  FrameFlags,
  FrameType,
  HEADER_BYTES,
  MAX_FRAME_PAYLOAD,
  decodeFrameHeader,
  encodeFrameHeader,
  type FrameHeader,
  type HeaderLimits,
} from '../../src/wire/frame-header.ts';
import { CloseCode } from '../../src/wire/close-frame.ts';
import { makeFramePair } from './frame-fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof WireError, `expected a WireError, got ${String(err)}`);
    return err.code;
  }
}

/** Splits bytes into chunks of pseudo-random sizes, as TCP would. */
function chunked(buf: Buffer, seed: number, max = 70_000): Buffer[] {
  const out: Buffer[] = [];
  let x = seed;
  for (let off = 0; off < buf.byteLength; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = Math.min(buf.byteLength - off, 1 + (x % max));
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

describe('frame header', () => {
  const limits: HeaderLimits = { segment: 'training', maxFramePayload: MAX_FRAME_PAYLOAD, maxMessageBytes: 16 * MiB };
  const base: FrameHeader = {
    type: FrameType.DATA,
    cls: 'training',
    segment: 'training',
    flags: FrameFlags.FIRST,
    streamId: 0xfedc_ba98,
    kind: 0x1234,
    tenant: 0x0102_0304,
    payloadLength: 1000,
    messageLength: 5000,
    keyId: 7,
    sequence: 2 ** 40 + 5,
    nonce: Buffer.from('000102030405060708090a0b', 'hex'),
  };
  const encode = (h: Partial<FrameHeader> = {}): Buffer => {
    const b = Buffer.alloc(HEADER_BYTES);
    encodeFrameHeader(b, 0, { ...base, ...h });
    return b;
  };

  test('round-trips every field; the layout is the documented one', () => {
    const b = encode();
    const h = decodeFrameHeader(b, limits);
    assert.deepEqual({ ...h, nonce: Buffer.from(h.nonce) }, { ...base, nonce: Buffer.from(base.nonce) });
    assert.equal(b.readUInt16BE(0), FRAME_MAGIC);
    assert.equal(b.toString('ascii', 0, 2), 'SL');
    assert.equal(b[2], 1);
    assert.equal(b.readUInt32BE(8), 0xfedc_ba98);
    assert.equal(b.readUInt32BE(16), 0x0102_0304);
    assert.equal(b.readUInt32BE(32) * 2 ** 32 + b.readUInt32BE(36), 2 ** 40 + 5);
    assert.equal(b.subarray(40, 52).toString('hex'), '000102030405060708090a0b');
  });

  const cases: [string, (b: Buffer) => void, string, HeaderLimits?][] = [
    ['bad magic', (b) => b.writeUInt16BE(0x4854, 0), WireErrorCode.BAD_MAGIC],
    ['unknown version', (b) => (b[2] = 2), WireErrorCode.VERSION],
    ['unknown type', (b) => (b[3] = 9), WireErrorCode.MALFORMED],
    ['unknown class', (b) => (b[4] = 3), WireErrorCode.MALFORMED],
    ['unknown segment', (b) => (b[5] = 0), WireErrorCode.MALFORMED],
    ['other segment', (b) => (b[5] = 1), WireErrorCode.SEGMENT],
    ['class not allowed on the segment', (b) => (b[4] = 1), WireErrorCode.CLASS],
    ['unknown flag', (b) => (b[6] = 0x05), WireErrorCode.MALFORMED],
    ['reserved byte 7', (b) => (b[7] = 1), WireErrorCode.MALFORMED],
    ['reserved bytes 14-15', (b) => b.writeUInt16BE(1, 14), WireErrorCode.MALFORMED],
    ['payload over the frame limit', (b) => b.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 20), WireErrorCode.OVERSIZE],
    ['message over the message limit', (b) => b.writeUInt32BE(16 * MiB + 1, 24), WireErrorCode.OVERSIZE],
    ['payload longer than its message', (b) => b.writeUInt32BE(10, 24), WireErrorCode.MALFORMED],
    ['single frame with lengths that differ', (b) => (b[6] = FrameFlags.FIRST | FrameFlags.LAST), WireErrorCode.MALFORMED],
    ['sequence beyond 2^53', (b) => b.writeUInt32BE(0x0020_0000, 32), WireErrorCode.MALFORMED],
    ['close frame on a data stream', (b) => (b[3] = FrameType.CLOSE), WireErrorCode.MALFORMED],
    ['empty fragment that is not the last', (b) => b.writeUInt32BE(0, 20), WireErrorCode.MALFORMED],
  ];
  for (const [name, mutate, code] of cases) {
    test(`rejects ${name} with ${code}`, () => {
      const b = encode();
      mutate(b);
      assert.equal(codeOf(() => decodeFrameHeader(b, limits)), code);
    });
  }

  test('rejects a short header with TRUNCATED', () => {
    assert.equal(codeOf(() => decodeFrameHeader(encode().subarray(0, HEADER_BYTES - 1), limits)), WireErrorCode.TRUNCATED);
  });
});

describe('sealed frames', () => {
  test('messages of many sizes survive any chunking of the stream', () => {
    const pair = makeFramePair();
    const sizes = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, MiB + 3];
    const bodies = sizes.map(() => Buffer.alloc(0)).map((_, i) => randomBytes(sizes[i] as number));
    const wire = Buffer.concat(bodies.flatMap((body, i) => pair.seal({ cls: 'training', streamId: i + 1, kind: i, tenant: 42, body })));
    for (const chunk of chunked(wire, 7)) pair.receiver.push(chunk);
    pair.receiver.end();
    assert.equal(pair.messages.length, sizes.length);
    pair.messages.forEach((m, i) => {
      assert.ok(m.body.equals(bodies[i] as Buffer));
      assert.equal(m.streamId, i + 1);
      assert.equal(m.kind, i);
      assert.equal(m.tenant, 42);
    });
  });

  test('one byte at a time works too', () => {
    const pair = makeFramePair();
    const body = randomBytes(3000);
    const wire = Buffer.concat(pair.seal({ cls: 'training', body }, 1000));
    for (let i = 0; i < wire.byteLength; i++) pair.receiver.push(wire.subarray(i, i + 1));
    assert.ok(pair.messages[0]?.body.equals(body));
  });

  test('fragments of different streams may interleave', () => {
    const pair = makeFramePair({ segment: 'inference' });
    const a = randomBytes(200 * KiB);
    const b = randomBytes(130 * KiB);
    // Seal alternately, as a scheduler interleaving two messages would.
    const fa = pair.seal({ cls: 'inference', streamId: 1, body: a.subarray(0, 64 * KiB) }, 64 * KiB);
    assert.equal(fa.length, 1);
    const frames: Buffer[] = [];
    const cut = (body: Buffer, streamId: number, from: number, to: number, total: number): Buffer =>
      pair.sealer.seal({
        type: FrameType.DATA,
        cls: 'inference',
        flags: (from === 0 ? FrameFlags.FIRST : 0) | (to === total ? FrameFlags.LAST : 0),
        streamId,
        kind: 1,
        tenant: 0,
        messageLength: total,
        parts: [body.subarray(from, to)],
        payloadLength: to - from,
      });
    // `fa` above was a separate whole message of 64 KiB on stream 1; now interleave 1 and 2.
    frames.push(...fa);
    frames.push(cut(a, 3, 0, 100 * KiB, a.byteLength));
    frames.push(cut(b, 4, 0, 65 * KiB, b.byteLength));
    frames.push(cut(a, 3, 100 * KiB, a.byteLength, a.byteLength));
    frames.push(cut(b, 4, 65 * KiB, b.byteLength, b.byteLength));
    for (const f of frames) pair.receiver.push(f);
    assert.deepEqual(
      pair.messages.map((m) => m.streamId),
      [1, 3, 4],
    );
    assert.ok(pair.messages[1]?.body.equals(a));
    assert.ok(pair.messages[2]?.body.equals(b));
  });

  test('every single-bit flip anywhere in a frame is rejected; payload and tag flips with _AUTH', () => {
    const pair = makeFramePair();
    const [frame] = pair.seal({ cls: 'training', body: randomBytes(100) });
    assert.ok(frame !== undefined);
    const seen = new Set<string>();
    for (let bit = 0; bit < frame.byteLength * 8; bit++) {
      const bad = Buffer.from(frame);
      bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7));
      const end = pair.freshReceiver();
      const code = codeOf(() => {
        end.receiver.push(bad);
        end.receiver.end();
      });
      assert.ok(code !== undefined, `flip of bit ${bit} was accepted`);
      assert.equal(end.messages.length, 0);
      if (bit >= HEADER_BYTES * 8) assert.equal(code, WireErrorCode.AUTH, `bit ${bit}`);
      seen.add(code);
    }
    // The unflipped frame is fine for a fresh receiver.
    const ok = pair.freshReceiver();
    ok.receiver.push(frame);
    assert.equal(ok.messages.length, 1);
    for (const c of [WireErrorCode.AUTH, WireErrorCode.BAD_MAGIC, WireErrorCode.KEY, WireErrorCode.NONCE, WireErrorCode.REPLAY]) {
      assert.ok(seen.has(c), `no flip produced ${c}`);
    }
  });

  test('a replayed frame is rejected with _REPLAY, a removed frame with _SEQUENCE_GAP', () => {
    const pair = makeFramePair();
    const frames = [1, 2, 3].flatMap((i) => pair.seal({ cls: 'training', streamId: i, body: Buffer.from(`m${i}`) }));
    pair.receiver.push(frames[0] as Buffer);
    pair.receiver.push(frames[1] as Buffer);
    assert.equal(codeOf(() => pair.receiver.push(frames[0] as Buffer)), WireErrorCode.REPLAY);
    const dup = pair.freshReceiver();
    dup.receiver.push(frames[0] as Buffer);
    assert.equal(codeOf(() => dup.receiver.push(frames[0] as Buffer)), WireErrorCode.REPLAY);
    const gap = pair.freshReceiver();
    gap.receiver.push(frames[0] as Buffer);
    assert.equal(codeOf(() => gap.receiver.push(frames[2] as Buffer)), WireErrorCode.SEQUENCE_GAP);
    assert.equal(gap.messages.length, 1);
  });

  test('a stream cut anywhere inside a frame ends with _TRUNCATED', () => {
    const pair = makeFramePair();
    const [frame] = pair.seal({ cls: 'training', body: randomBytes(300) });
    assert.ok(frame !== undefined);
    for (let cut = 1; cut < frame.byteLength; cut++) {
      const end = pair.freshReceiver();
      end.receiver.push(frame.subarray(0, cut));
      assert.equal(
        codeOf(() => end.receiver.end()),
        WireErrorCode.TRUNCATED,
        `cut at ${cut}`,
      );
    }
    const whole = pair.freshReceiver();
    whole.receiver.push(frame);
    whole.receiver.end();
    assert.equal(whole.messages.length, 1);
  });

  test('frames of another link (another key) fail with _AUTH', () => {
    const pair = makeFramePair({ otherLink: true });
    const [frame] = pair.seal({ cls: 'training', body: Buffer.from('secret') });
    assert.equal(codeOf(() => pair.receiver.push(frame as Buffer)), WireErrorCode.AUTH);
  });

  test('a frame naming another segment fails with _SEGMENT', () => {
    const pair = makeFramePair({ segment: 'training', sealerSegment: 'inference' });
    const [frame] = pair.seal({ cls: 'control', body: Buffer.from('x') });
    assert.equal(codeOf(() => pair.receiver.push(frame as Buffer)), WireErrorCode.SEGMENT);
  });

  test('rekey: keys change before the frame limit, nonces never repeat under a key, data intact', () => {
    const limits = { maxFramesPerKey: 4, maxBytesPerKey: 2 ** 36 };
    const pair = makeFramePair({ keyLimits: limits });
    const bodies = Array.from({ length: 40 }, (_, i) => randomBytes((i * 997) % 5000));
    const frames = bodies.flatMap((body) => pair.seal({ cls: 'training', body }, 1024));
    const perKey = new Map<number, Set<string>>();
    for (const f of frames) {
      const keyId = f.readUInt32BE(28);
      const nonces = perKey.get(keyId) ?? new Set<string>();
      const nonce = f.subarray(40, 52).toString('hex');
      assert.ok(!nonces.has(nonce), `nonce ${nonce} repeated under key ${keyId}`);
      nonces.add(nonce);
      perKey.set(keyId, nonces);
    }
    for (const [keyId, nonces] of perKey) assert.ok(nonces.size <= limits.maxFramesPerKey, `key ${keyId} sealed ${nonces.size} frames`);
    assert.ok(pair.sealer.rekeys >= 10);
    for (const chunk of chunked(Buffer.concat(frames), 3, 3000)) pair.receiver.push(chunk);
    assert.equal(pair.receiver.rekeys, pair.sealer.rekeys);
    pair.messages.forEach((m, i) => assert.ok(m.body.equals(bodies[i] as Buffer)));
  });

  test('rekey: keys change before the byte limit; an old-key frame after a rekey is refused', () => {
    const pair = makeFramePair({ keyLimits: { maxFramesPerKey: 2 ** 32, maxBytesPerKey: 200 * KiB } });
    const frames = pair.seal({ cls: 'training', body: randomBytes(MiB) }, 64 * KiB);
    assert.ok(pair.sealer.rekeys >= 4, `rekeys ${pair.sealer.rekeys}`);
    const rekeyAt = frames.findIndex((f) => f[3] === FrameType.REKEY);
    for (let i = 0; i <= rekeyAt; i++) pair.receiver.push(frames[i] as Buffer);
    // Re-sending a frame sealed under key 0 now that the receiver is at key 1:
    assert.equal(codeOf(() => pair.receiver.push(frames[0] as Buffer)), WireErrorCode.KEY);
  });

  test('a close frame carries its code and reason; nothing after it is read', () => {
    const pair = makeFramePair();
    const close = pair.sealClose(CloseCode.GOING_AWAY, 'node draining: é'.repeat(3));
    const after = pair.seal({ cls: 'training', body: Buffer.from('late') });
    pair.receiver.push(Buffer.concat([close, ...after]));
    assert.deepEqual(pair.closes, [{ code: CloseCode.GOING_AWAY, reason: 'node draining: é'.repeat(3) }]);
    assert.equal(pair.messages.length, 0);
  });

  test('fragments out of place fail with _FRAGMENT', () => {
    const pair = makeFramePair();
    const cont = pair.sealer.seal({
      type: FrameType.DATA,
      cls: 'training',
      flags: FrameFlags.LAST,
      streamId: 1,
      kind: 1,
      tenant: 0,
      messageLength: 10,
      parts: [Buffer.alloc(10)],
      payloadLength: 10,
    });
    assert.equal(codeOf(() => pair.receiver.push(cont)), WireErrorCode.FRAGMENT);

    const restart = makeFramePair();
    const first = (len: number): Buffer =>
      restart.sealer.seal({
        type: FrameType.DATA,
        cls: 'training',
        flags: FrameFlags.FIRST,
        streamId: 1,
        kind: 1,
        tenant: 0,
        messageLength: len,
        parts: [Buffer.alloc(5)],
        payloadLength: 5,
      });
    restart.receiver.push(first(10));
    assert.equal(codeOf(() => restart.receiver.push(first(10))), WireErrorCode.FRAGMENT);
  });

  test('partly received messages are bounded: over the reassembly limit fails with _OVERSIZE', () => {
    const pair = makeFramePair({ maxMessageBytes: MiB, maxReassemblyBytes: 2 * MiB });
    const first = (streamId: number): Buffer =>
      pair.sealer.seal({
        type: FrameType.DATA,
        cls: 'training',
        flags: FrameFlags.FIRST,
        streamId,
        kind: 1,
        tenant: 0,
        messageLength: MiB,
        parts: [Buffer.alloc(1)],
        payloadLength: 1,
      });
    pair.receiver.push(first(1));
    pair.receiver.push(first(2));
    assert.equal(codeOf(() => pair.receiver.push(first(3))), WireErrorCode.OVERSIZE);
    assert.ok(pair.receiver.heldBytes <= 2 * MiB + 64 * KiB);
  });
});
