import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { nodeCryptoAeadFactory } from '../../src/crypto/aead-factory.ts';
import { checkKeyLimits } from '../../src/crypto/key-limits.ts';
import {
  DirectionId,
  deriveHandshakeAuthKey,
  deriveLinkSecrets,
  nextTrafficSecret,
  trafficKey,
  transcriptHash,
  type HandshakeInputs,
} from '../../src/crypto/key-schedule.ts';
import { NonceSequence } from '../../src/crypto/nonce-sequence.ts';
import { TrafficKeys } from '../../src/crypto/traffic-keys.ts';

function inputs(over: Partial<HandshakeInputs> = {}): HandshakeInputs {
  const initiatorNonce = randomBytes(32);
  const acceptorNonce = randomBytes(32);
  return {
    segmentKey: randomBytes(32),
    segment: 'training',
    initiatorNonce,
    acceptorNonce,
    transcriptHash: transcriptHash([initiatorNonce, acceptorNonce]),
    ...over,
  };
}

describe('key schedule', () => {
  test('the two ends agree; the two directions differ', () => {
    const i = inputs();
    const a = deriveLinkSecrets(i, 'acceptor');
    const b = deriveLinkSecrets(i, 'initiator');
    assert.ok(a.send.equals(b.receive));
    assert.ok(a.receive.equals(b.send));
    assert.ok(!a.send.equals(a.receive));
    assert.equal(b.sendDirection, DirectionId.INITIATOR_TO_ACCEPTOR);
    assert.equal(a.sendDirection, DirectionId.ACCEPTOR_TO_INITIATOR);
  });

  test('no two links share a key: every input changes every key', () => {
    const base = inputs();
    const variants: HandshakeInputs[] = [
      { ...base, initiatorNonce: randomBytes(32) },
      { ...base, acceptorNonce: randomBytes(32) },
      { ...base, segmentKey: randomBytes(32) },
      { ...base, segment: 'inference' },
      { ...base, transcriptHash: randomBytes(32) },
    ];
    const all = [base, ...variants].flatMap((v) => {
      const s = deriveLinkSecrets(v, 'initiator');
      return [s.send, s.receive, deriveHandshakeAuthKey(v)].map((k) => k.toString('hex'));
    });
    assert.equal(new Set(all).size, all.length);
  });

  test('the ratchet is deterministic, one-way in appearance, and epoch keys are not the secrets', () => {
    const s0 = deriveLinkSecrets(inputs(), 'initiator').send;
    const s1 = nextTrafficSecret(s0);
    assert.ok(s1.equals(nextTrafficSecret(s0)));
    assert.ok(!s1.equals(s0));
    assert.ok(!trafficKey(s0).equals(s0));
    assert.ok(!trafficKey(s0).equals(trafficKey(s1)));
    assert.equal(s1.byteLength, 32);
  });

  test('inputs of the wrong size are refused with exact messages', () => {
    assert.throws(() => deriveLinkSecrets(inputs({ segmentKey: randomBytes(31) }), 'initiator'), /segment key must be 32 bytes, got 31/);
    assert.throws(() => deriveLinkSecrets(inputs({ acceptorNonce: randomBytes(8) }), 'initiator'), /acceptorNonce must be 32 bytes, got 8/);
  });
});

describe('nonce sequence', () => {
  test('96 bits: the 32-bit direction id, then a 64-bit big-endian counter', () => {
    const seq = new NonceSequence(DirectionId.ACCEPTOR_TO_INITIATOR);
    const n = Buffer.alloc(12);
    seq.next(n);
    assert.equal(n.toString('hex'), '00000002' + '0000000000000000');
    seq.next(n);
    assert.equal(n.toString('hex'), '00000002' + '0000000000000001');
    const rx = new NonceSequence(DirectionId.ACCEPTOR_TO_INITIATOR);
    assert.equal(rx.matches(Buffer.from('000000020000000000000000', 'hex')), true);
    assert.equal(rx.matches(Buffer.from('000000010000000000000000', 'hex')), false);
    rx.consume();
    assert.equal(rx.matches(Buffer.from('000000020000000000000001', 'hex')), true);
  });
});

describe('traffic keys', () => {
  test('rekey is due before either limit, a fresh key always takes a frame', () => {
    const keys = new TrafficKeys(randomBytes(32), 1, nodeCryptoAeadFactory, { maxFramesPerKey: 4, maxBytesPerKey: 10_000 });
    const n = Buffer.alloc(12);
    assert.equal(keys.rekeyDue(50_000, 72), false); // fresh key
    keys.nonces.next(n);
    keys.account(100);
    assert.equal(keys.rekeyDue(100, 72), false);
    keys.nonces.next(n);
    keys.account(100);
    // 2 frames sealed, limit 4: the next data frame plus the REKEY frame would make 4: allowed.
    assert.equal(keys.rekeyDue(100, 72), false);
    keys.nonces.next(n);
    assert.equal(keys.rekeyDue(100, 72), true); // 3 sealed: only room left for the REKEY frame
    keys.advance();
    assert.equal(keys.epoch, 1);
    assert.equal(keys.framesUnderKey, 0);
    keys.nonces.next(n);
    keys.account(9_000);
    assert.equal(keys.rekeyDue(1_000, 72), true); // bytes would pass 10 000
  });

  test('limits above the safe defaults or below one frame plus a rekey are refused', () => {
    assert.throws(() => checkKeyLimits({ maxFramesPerKey: 2 ** 33, maxBytesPerKey: 2 ** 30 }), /maxFramesPerKey must be an integer in \[2, 2\^32\]/);
    assert.throws(() => checkKeyLimits({ maxFramesPerKey: 1, maxBytesPerKey: 2 ** 30 }), /maxFramesPerKey/);
    assert.throws(() => checkKeyLimits({ maxFramesPerKey: 10, maxBytesPerKey: 2 ** 37 }), /maxBytesPerKey must be an integer in \[4096, 2\^36\]/);
  });
});
