// The decoder opens frames in place when consecutive reads land next to each other in one
// buffer (a read arena), and gathers them only when they do not; either way the frames and
// messages are the same.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrameDecoder } from '../../src/wire/frame-decoder.ts';
import { HEADER_BYTES } from '../../src/wire/frame-header.ts';
import { makeFramePair } from './frame-fixture.ts';

const LIMITS = { segment: 'training', maxFramePayload: 64 * 1024, maxMessageBytes: 1024 * 1024 } as const;

function sealedStream(bodies: Buffer[], frameBytes: number): Buffer {
  const pair = makeFramePair();
  return Buffer.concat(bodies.flatMap((body, i) => pair.seal({ cls: 'training', streamId: 1 + i, body }, frameBytes)));
}

test('a frame split across adjacent reads of one buffer is handed over as a view of that buffer', () => {
  const arena = sealedStream([Buffer.alloc(10_000, 7)], 64 * 1024);
  const seen: Uint8Array[] = [];
  const decoder = new FrameDecoder(LIMITS, (_h, _hb, sealed) => seen.push(sealed));
  decoder.push(arena.subarray(0, 3000));
  decoder.push(arena.subarray(3000, 7000));
  decoder.push(arena.subarray(7000));
  assert.equal(seen.length, 1);
  const sealed = seen[0] as Uint8Array;
  assert.equal(sealed.buffer, arena.buffer, 'opened in place, not gathered');
  assert.equal(sealed.byteOffset, arena.byteOffset + HEADER_BYTES);
  assert.equal(decoder.bufferedBytes, 0);
});

test('reads in separate buffers are gathered (a copy), with the same bytes', () => {
  const stream = sealedStream([Buffer.alloc(10_000, 7)], 64 * 1024);
  const seen: Uint8Array[] = [];
  const decoder = new FrameDecoder(LIMITS, (_h, _hb, sealed) => seen.push(Buffer.from(sealed)));
  decoder.push(Buffer.from(stream.subarray(0, 3000)));
  decoder.push(Buffer.from(stream.subarray(3000)));
  assert.equal(seen.length, 1);
  assert.ok(Buffer.from(seen[0] as Uint8Array).equals(stream.subarray(HEADER_BYTES)));
});

test('any cuts, adjacent views or copies: the messages sealed, in order', () => {
  const bodyArb = fc.uint8Array({ maxLength: 20_000 }).map((u) => Buffer.from(u));
  const cutArb = fc.array(fc.tuple(fc.integer({ min: 1, max: 9000 }), fc.boolean()), { maxLength: 30 });
  fc.assert(
    fc.property(fc.array(bodyArb, { minLength: 1, maxLength: 5 }), cutArb, fc.integer({ min: 1, max: 8192 }), (bodies, cuts, frameBytes) => {
      const pair = makeFramePair();
      const arena = Buffer.concat(bodies.flatMap((body, i) => pair.seal({ cls: 'training', streamId: 1 + (i % 2), body }, frameBytes)));
      let off = 0;
      for (const [n, copy] of cuts) {
        if (off >= arena.byteLength) break;
        const view = arena.subarray(off, off + n);
        pair.receiver.push(copy ? Buffer.from(view) : view);
        off += view.byteLength;
      }
      if (off < arena.byteLength) pair.receiver.push(arena.subarray(off));
      pair.receiver.end();
      assert.equal(pair.messages.length, bodies.length);
      pair.messages.forEach((m, i) => assert.ok(m.body.equals(bodies[i] as Buffer), `message ${i}`));
    }),
    { numRuns: 150 },
  );
});
