// The handshake records are parsed before the peer is authenticated: property tests that
// any bytes give a record, "need more", or a WireError, and never anything else.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { WireError } from '../../src/wire/errors.ts';
import {
  HANDSHAKE_MAGIC,
  HelloRole,
  RecordType,
  decodeHello,
  decodeProof,
  decodeReject,
  encodeHello,
  encodeReject,
  readRecord,
} from '../../src/wire/handshake-record.ts';

function onlyWireErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
  }
}

function decodeAll(bytes: Buffer): void {
  const rec = readRecord(bytes);
  if (rec === undefined) return;
  assert.ok(rec.raw.byteLength <= bytes.byteLength);
  if (rec.type === RecordType.HELLO) decodeHello(rec.body);
  else if (rec.type === RecordType.PROOF) decodeProof(rec.body);
  else decodeReject(rec.body);
}

test('a hello round-trips', () => {
  const nonce = randomBytes(32);
  const raw = encodeHello({ role: HelloRole.ACCEPTOR, minVersion: 1, maxVersion: 3, selectedVersion: 2, nonce, segment: 'training' });
  const rec = readRecord(raw);
  assert.equal(rec?.type, RecordType.HELLO);
  assert.deepEqual(decodeHello(rec?.body as Buffer), { role: HelloRole.ACCEPTOR, minVersion: 1, maxVersion: 3, selectedVersion: 2, nonce, segment: 'training' });
  assert.equal(readRecord(raw.subarray(0, raw.byteLength - 1)), undefined);
  assert.deepEqual(decodeReject(readRecord(encodeReject(1, 'nope'))?.body as Buffer), { code: 1, reason: 'nope' });
});

test('arbitrary bytes: a record, "need more", or a WireError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 700 }), (bytes) => onlyWireErrors(() => decodeAll(Buffer.from(bytes)))),
    { numRuns: 500 },
  );
});

test('arbitrary bodies behind a valid record header: a record or a WireError', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 600 }), (type, body) => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(HANDSHAKE_MAGIC, 0);
      head[4] = 1;
      head[5] = type;
      head.writeUInt16BE(body.byteLength, 6);
      onlyWireErrors(() => decodeAll(Buffer.concat([head, body])));
    }),
    { numRuns: 500 },
  );
});

test('mutated hellos: a valid hello or a WireError', () => {
  const hello = encodeHello({ role: HelloRole.INITIATOR, minVersion: 1, maxVersion: 1, selectedVersion: 0, nonce: randomBytes(32), segment: 'inference' });
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(hello.byteLength - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
      const b = Buffer.from(hello);
      for (const [at, v] of edits) b[at] = v;
      onlyWireErrors(() => decodeAll(b));
    }),
    { numRuns: 500 },
  );
});
