import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PeerProtocolError, TRANSFER_STATUSES } from '../../src/training/errors.ts';
import {
  NackReason,
  TrainingKind,
  decodePeerMessage,
  encodeAck,
  encodeCancel,
  encodeChunkHeader,
  encodeError,
  encodeFinish,
  encodeNack,
  encodeOpen,
  encodeOpened,
  encodeResult,
} from '../../src/training/peer-messages.ts';

const idArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const u53 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const sha = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));

test('every training message round-trips through encode and decode', () => {
  fc.assert(
    fc.property(
      idArb,
      u53,
      sha,
      fc.uint8Array({ maxLength: 300 }),
      fc.string({ maxLength: 200 }),
      fc.constantFrom(...TRANSFER_STATUSES),
      fc.record({
        name: fc.stringMatching(/^[A-Za-z0-9._:/-]{1,40}$/),
        datatype: fc.constantFrom('FP32', 'BF16', ''),
        shape: fc.array(fc.integer({ min: -1, max: 1 << 20 }), { maxLength: 4 }),
        attributes: fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,8}$/), fc.string({ maxLength: 16 }), { maxKeys: 4 }).map((d) => ({ ...d })),
      }).map((t) => ({ ...t })),
      (id, n, digest, data, text, status, tensor) => {
        const dec = (kind: number, b: Buffer) => decodePeerMessage(kind, b);
        assert.deepEqual(dec(TrainingKind.OPEN, encodeOpen({ id, total: n, sink: 'stream', resume: true, from: 'node-a', tensor })), {
          kind: TrainingKind.OPEN, id, total: n, sink: 'stream', resume: true, from: 'node-a', tensor,
        });
        assert.deepEqual(dec(TrainingKind.OPENED, encodeOpened(id, n, true)), { kind: TrainingKind.OPENED, id, offset: n, completed: true });
        const chunk = Buffer.concat([encodeChunkHeader(id, n, 0xdeadbeef), data]);
        assert.deepEqual(dec(TrainingKind.CHUNK, chunk), { kind: TrainingKind.CHUNK, id, offset: n, crc: 0xdeadbeef, data: Buffer.from(data) });
        assert.deepEqual(dec(TrainingKind.ACK, encodeAck(id, n)), { kind: TrainingKind.ACK, id, acked: n });
        assert.deepEqual(dec(TrainingKind.NACK, encodeNack(id, n, NackReason.GAP)), { kind: TrainingKind.NACK, id, expected: n, reason: NackReason.GAP });
        assert.deepEqual(dec(TrainingKind.FINISH, encodeFinish(id, n, digest)), { kind: TrainingKind.FINISH, id, total: n, sha256: digest });
        assert.deepEqual(dec(TrainingKind.RESULT, encodeResult(id, digest)), { kind: TrainingKind.RESULT, id, sha256: digest });
        const e = dec(TrainingKind.ERROR, encodeError(id, status, text));
        assert.equal(e.kind === TrainingKind.ERROR && e.status, status);
        const c = dec(TrainingKind.CANCEL, encodeCancel(id, text));
        assert.equal(c.kind === TrainingKind.CANCEL && c.reason, text);
      },
    ),
  );
});

test('arbitrary bytes decode to a message or a PeerProtocolError, nothing else', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0x3e, max: 0x4a }), fc.uint8Array({ maxLength: 200 }), (kind, bytes) => {
      try {
        decodePeerMessage(kind, Buffer.from(bytes));
      } catch (err) {
        assert.ok(err instanceof PeerProtocolError, String(err));
      }
    }),
    { numRuns: 3000 },
  );
});

test('mutated valid messages never crash the decoder', () => {
  fc.assert(
    fc.property(idArb, fc.nat({ max: 200 }), fc.integer({ min: 0, max: 255 }), (id, pos, byte) => {
      const msgs: [number, Buffer][] = [
        [TrainingKind.OPEN, encodeOpen({ id, total: 5, sink: 'spool', resume: false, from: 'a', tensor: { name: 'x', datatype: 'FP32', shape: [5], attributes: {} } })],
        [TrainingKind.NACK, encodeNack(id, 3, NackReason.BAD_CRC)],
        [TrainingKind.ERROR, encodeError(id, 'DATA_LOSS', 'bad')],
      ];
      for (const [kind, b] of msgs) {
        const m = Buffer.from(b);
        m[pos % m.length] = byte;
        for (const body of [m, m.subarray(0, pos % m.length)]) {
          try {
            decodePeerMessage(kind, body);
          } catch (err) {
            assert.ok(err instanceof PeerProtocolError, String(err));
          }
        }
      }
    }),
  );
});

test('decoder names what is wrong', () => {
  assert.throws(() => decodePeerMessage(TrainingKind.ACK, Buffer.from([1, 0x41])), /truncated reading acked/);
  assert.throws(() => decodePeerMessage(TrainingKind.ACK, Buffer.from([1, 0x2e, 0, 0, 0, 0, 0, 0, 0, 0])), /invalid transfer id/);
  assert.throws(() => decodePeerMessage(TrainingKind.ACK, Buffer.from([1, 0x41, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])), /exceeds 2\^53/);
  assert.throws(() => decodePeerMessage(0x99, encodeAck('a', 1)), /unknown training message kind 0x99/);
});
