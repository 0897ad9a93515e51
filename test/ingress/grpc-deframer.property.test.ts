// Property tests of the gRPC ingress's parsers of untrusted bytes: the message deframer and
// grpc-timeout. Framed messages split at any points come back whole and in order; arbitrary
// bytes give messages or a typed GrpcFramingError, never anything else; a length over the
// limit is refused whatever follows.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { unframe } from '../../src/egress/http2-grpc-client.ts';
import { framedMessage, GrpcDeframer, GrpcFramingError } from '../../src/ingress/grpc-deframer.ts';
import { parseGrpcTimeout } from '../../src/ingress/grpc-timeout.ts';
import { GrpcStatus } from '../../src/kserve/status.ts';

const MAX = 4096;

/** Splits `buf` at the given cut points (any order, duplicates allowed). */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

test('framed messages split anywhere come back whole and in order', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (msgs, cuts) => {
      const wire = Buffer.concat(msgs.map((m) => framedMessage(Buffer.from(m))));
      const d = new GrpcDeframer(MAX);
      const got: Buffer[] = [];
      for (const chunk of splitAt(wire, cuts)) d.push(chunk, (m) => got.push(Buffer.from(m)));
      assert.equal(d.atBoundary, true);
      assert.deepEqual(
        got.map((b) => b.toString('hex')),
        msgs.map((m) => Buffer.from(m).toString('hex')),
      );
    }),
    { numRuns: 300 },
  );
});

test('arbitrary bytes: messages within the limit or a typed framing error, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
      const d = new GrpcDeframer(MAX);
      let total = 0;
      try {
        for (const chunk of splitAt(Buffer.from(bytes), cuts)) {
          d.push(chunk, (m) => {
            assert.ok(m.length <= MAX);
            total += 5 + m.length;
          });
        }
      } catch (err) {
        assert.ok(err instanceof GrpcFramingError, String(err));
        assert.ok(([GrpcStatus.RESOURCE_EXHAUSTED, GrpcStatus.INTERNAL] as number[]).includes(err.status));
        return;
      }
      assert.ok(total <= bytes.length);
    }),
    { numRuns: 500 },
  );
});

test('a length over the limit is refused at the prefix, before its bytes arrive', () => {
  fc.assert(
    fc.property(fc.integer({ min: MAX + 1, max: 0xffffffff }), fc.integer({ min: 0, max: 5 }), (len, split) => {
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(len, 1);
      const d = new GrpcDeframer(MAX);
      assert.throws(
        () => {
          d.push(prefix.subarray(0, split), () => assert.fail('no message'));
          d.push(prefix.subarray(split), () => assert.fail('no message'));
        },
        (e: unknown) => e instanceof GrpcFramingError && e.status === GrpcStatus.RESOURCE_EXHAUSTED,
      );
    }),
  );
});

test('grpc-timeout: 1-8 digits and a unit parse exactly; anything else is malformed', () => {
  const units: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 99_999_999 }), fc.constantFrom(...Object.keys(units)), (n, unit) => {
      assert.equal(parseGrpcTimeout(`${n}${unit}`), n * units[unit]!);
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 12 }), (s) => {
      const r = parseGrpcTimeout(s);
      if (/^\d{1,8}[HMSmun]$/.test(s)) assert.equal(typeof r, 'number');
      else assert.equal(r, null);
    }),
  );
  assert.equal(parseGrpcTimeout(undefined), undefined);
  assert.equal(parseGrpcTimeout('123456789m'), null);
  assert.equal(parseGrpcTimeout(['1m', '2m']), null);
});

test('egress response unframing: the parts are the message whatever the chunking; bad frames are refused', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), fc.array(fc.nat(), { maxLength: 12 }), (msg, cuts) => {
      const chunks = splitAt(framedMessage(Buffer.from(msg)), cuts).filter((c) => c.length > 0);
      const r = unframe(chunks, msg.length + 5);
      assert.ok(typeof r !== 'string', String(r));
      assert.equal(r.length, msg.length);
      assert.ok(Buffer.concat(r.parts as Buffer[]).equals(Buffer.from(msg)));
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 40 }), { maxLength: 6 }), (arrays) => {
      const chunks = arrays.map((a) => Buffer.from(a));
      const received = chunks.reduce((n, c) => n + c.length, 0);
      const r = unframe(chunks, received);
      if (typeof r === 'string') return;
      const all = Buffer.concat(chunks);
      assert.equal(all[0], 0);
      assert.equal(all.readUInt32BE(1), received - 5);
      assert.ok(Buffer.concat(r.parts as Buffer[]).equals(all.subarray(5)));
    }),
  );
});
