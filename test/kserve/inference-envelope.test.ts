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
} from '../../src/wire/inference-envelope.ts';

const rid = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,40}$/);

test('call header round trip keeps every field and the payload bytes', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 3) as fc.Arbitrary<1 | 2 | 3>,
      fc.integer({ min: 1, max: 0xffffffff }),
      rid,
      fc.string({ maxLength: 50 }),
      fc.string({ maxLength: 10 }),
      fc.uint8Array({ maxLength: 64 }),
      (method, timeoutMs, requestId, model, version, payload) => {
        const header = encodeCallHeader({ method, timeoutMs, requestId, model, version });
        const d = decodeCall(Buffer.concat([header, payload]));
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
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.nat({ max: 255 }), fc.nat({ max: 1 }), (bytes, pos, byte, which) => {
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
