// The inference messages between ingress and egress: round trips, and typed rejection of any
// malformed body (the egress decodes what arrives from a peer).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { InferenceError } from '../../src/kserve/inference-error.ts';
import {
  CancelReason,
  decodeCall,
  decodeCancel,
  decodeReply,
  encodeCallHeader,
  encodeCancel,
  encodeReplyHeader,
  replyError,
  replyFromV1Peer,
  TRACE_CONTEXT_BYTES,
} from '../../src/wire/inference-envelope.ts';
import * as v1 from '../fixtures/inference-envelope-v1.ts';

const rid = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,40}$/);

test('call header round trip keeps every field and the payload bytes', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 3, 4, 5, 6) as fc.Arbitrary<1 | 2 | 3 | 4 | 5 | 6>,
      fc.integer({ min: 1, max: 0xffffffff }),
      rid,
      fc.string({ maxLength: 50 }),
      fc.string({ maxLength: 10 }),
      fc.uint8Array({ maxLength: 64 }),
      (method, timeoutMs, requestId, model, version, payload) => {
        const header = encodeCallHeader({ method, timeoutMs, requestId, model, version });
        const d = decodeCall(Buffer.concat([header, payload]));
        assert.equal(d.envelopeVersion, method <= 3 ? 1 : 2);
        assert.deepEqual(
          { method: d.method, timeoutMs: d.timeoutMs, requestId: d.requestId, model: d.model, version: d.version },
          { method, timeoutMs, requestId, model, version },
        );
        assert.deepEqual([...d.payload], [...payload]);
      },
    ),
  );
});

test('reply round trip, OK and error, rebuilds the same error code and status', () => {
  const ok = decodeReply(Buffer.concat([encodeReplyHeader({ status: 0, code: '', message: '', requestId: 'r-1' }), Buffer.from('resp')]));
  assert.equal(ok.status, 0);
  assert.equal(ok.payload.toString(), 'resp');
  const bad = decodeReply(encodeReplyHeader({ status: 5, code: 'SLUICE_ERR_MODEL_NOT_FOUND', message: "unknown model 'x'", requestId: 'r-2' }));
  const e = replyError(bad);
  assert.equal(e.code, 'SLUICE_ERR_MODEL_NOT_FOUND');
  assert.equal(e.grpcStatus, 5);
  assert.equal(e.httpStatus, 404);
  assert.equal(e.message, "unknown model 'x'");
  assert.equal(decodeCancel(encodeCancel(CancelReason.DEADLINE)), CancelReason.DEADLINE);
});

test('timeouts are clamped to at least 1 ms (a call never goes out without a deadline)', () => {
  assert.equal(decodeCall(encodeCallHeader({ method: 1, timeoutMs: 0.2, requestId: 'a', model: 'm', version: '' })).timeoutMs, 1);
});

test('arbitrary and mutated bodies are rejected with a typed error, never a crash', () => {
  const valid = [
    encodeCallHeader({ method: 1, timeoutMs: 100, requestId: 'abc', model: 'simple', version: '1' }),
    encodeReplyHeader({ status: 14, code: 'SLUICE_ERR_UPSTREAM_UNAVAILABLE', message: 'down', requestId: 'abc' }),
    encodeCallHeader({ method: 5, timeoutMs: 100, requestId: 'abc', model: 'simple', version: '1', traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01` }),
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 2 }), (bytes, pos, byte, which) => {
      const mutated = Buffer.from(valid[which]!);
      mutated[pos % mutated.length] = byte;
      for (const body of [Buffer.from(bytes), mutated]) {
        for (const decode of [decodeCall, decodeReply, decodeCancel]) {
          try {
            decode(body);
          } catch (err) {
            assert.ok(err instanceof InferenceError, String(err));
          }
        }
      }
    }),
    { numRuns: 3000 },
  );
});

const hex = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).filter((b) => b.some((x) => x !== 0)).map((b) => Buffer.from(b).toString('hex'));

test('v2: the trace context travels as 26 bytes and comes back as the same traceparent', () => {
  fc.assert(
    fc.property(fc.constantFrom(1, 2, 3, 4, 5, 6) as fc.Arbitrary<1 | 2 | 3 | 4 | 5 | 6>, hex(16), hex(8), fc.nat({ max: 255 }), rid, fc.uint8Array({ maxLength: 32 }), (method, traceId, parentId, flags, requestId, payload) => {
      const traceparent = `00-${traceId}-${parentId}-${flags.toString(16).padStart(2, '0')}`;
      const plain = encodeCallHeader({ method, timeoutMs: 5, requestId, model: 'm', version: '' });
      const header = encodeCallHeader({ method, timeoutMs: 5, requestId, model: 'm', version: '', traceparent });
      assert.equal(header.length, plain.length + TRACE_CONTEXT_BYTES);
      assert.equal(header[0], 2);
      assert.equal(header.readUInt16BE(2), 1);
      const d = decodeCall(Buffer.concat([header, payload]));
      assert.equal(d.traceparent, traceparent);
      assert.equal(d.envelopeVersion, 2);
      assert.deepEqual([...d.payload], [...payload]);
    }),
  );
});

test('v2: an invalid traceparent is not carried (the call stays version 1)', () => {
  for (const bad of ['', 'junk', `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01`, `00-${'1'.repeat(32)}-${'0'.repeat(16)}-01`, `ff-${'1'.repeat(32)}-${'1'.repeat(16)}-01`, `00-${'1'.repeat(32)}-${'1'.repeat(16)}-01-extra`]) {
    const h = encodeCallHeader({ method: 1, timeoutMs: 5, requestId: 'r', model: 'm', version: '', traceparent: bad });
    assert.equal(h[0], 1, bad);
    assert.equal(decodeCall(h).traceparent, undefined);
  }
  // A later traceparent version keeps its first four fields, carried as version 00.
  const later = `01-${'a'.repeat(32)}-${'b'.repeat(16)}-01-more`;
  assert.equal(decodeCall(encodeCallHeader({ method: 1, timeoutMs: 5, requestId: 'r', model: 'm', version: '', traceparent: later })).traceparent, `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`);
});

test('v1 compatibility: a v1 peer reads every call v2 writes without v2 additions, byte for byte', () => {
  fc.assert(
    fc.property(fc.constantFrom(1, 2, 3) as fc.Arbitrary<1 | 2 | 3>, fc.integer({ min: 1, max: 0xffffffff }), rid, fc.string({ maxLength: 30 }), fc.string({ maxLength: 8 }), (method, timeoutMs, requestId, model, version) => {
      const h = { method, timeoutMs, requestId, model, version };
      const mine = encodeCallHeader(h);
      assert.deepEqual(mine, v1.encodeCallHeader(h));
      const theirs = v1.decodeCall(mine);
      assert.deepEqual({ ...theirs, payload: [...theirs.payload] }, { ...h, payload: [] });
      // And the other way: what a v1 ingress writes, this node reads.
      const back = decodeCall(v1.encodeCallHeader(h));
      assert.equal(back.envelopeVersion, 1);
      assert.equal(back.traceparent, undefined);
    }),
  );
  const reply = { status: 5, code: 'SLUICE_ERR_MODEL_NOT_FOUND', message: 'no', requestId: 'r-1' } as const;
  assert.deepEqual(encodeReplyHeader(reply, 1), v1.encodeReplyHeader(reply));
  assert.equal(v1.decodeReply(encodeReplyHeader(reply, 1)).message, 'no');
  assert.equal(decodeReply(v1.encodeReplyHeader(reply)).envelopeVersion, 1);
  assert.deepEqual(encodeCancel(CancelReason.CALLER, 1), v1.encodeCancel(CancelReason.CALLER));
  assert.equal(decodeCancel(v1.encodeCancel(CancelReason.DEADLINE)), CancelReason.DEADLINE);
});

test('v1 compatibility: a v1 peer refuses a v2 call unread, and its answer says so', () => {
  const call = encodeCallHeader({ method: 4, timeoutMs: 5, requestId: 'r-9', model: 'simple', version: '' });
  assert.throws(() => v1.decodeCall(call), /unsupported version 2/);
  // What a v1 egress sends back (egress-service answers an unreadable call this way).
  const answer = decodeReply(v1.encodeReplyHeader({ status: 13, code: 'SLUICE_ERR_INTERNAL', message: 'bad inference envelope: unsupported version 2', requestId: 'invalid' }));
  assert.equal(replyFromV1Peer(2, answer), true);
  assert.equal(replyFromV1Peer(1, answer), false);
  assert.equal(replyFromV1Peer(2, decodeReply(encodeReplyHeader({ status: 0, code: '', message: '', requestId: 'r' }, 2))), false);
  // A v1 method cannot be written above v1 on purpose, nor a v2 method at v1.
  assert.throws(() => encodeCallHeader({ method: 5, timeoutMs: 5, requestId: 'r', model: 'm', version: '' }, 1), /needs envelope version 2/);
  // Version 1 never has v2 methods or flags.
  const forged = Buffer.from(encodeCallHeader({ method: 1, timeoutMs: 5, requestId: 'r', model: 'm', version: '' }));
  forged[1] = 4;
  assert.throws(() => decodeCall(forged), /unknown method 4/);
  forged[1] = 1;
  forged.writeUInt16BE(1, 2);
  assert.throws(() => decodeCall(forged), /unknown flags/);
});
