// AES-256-GCM: known-answer vectors, agreement between the native addon and node:crypto on
// random inputs, rejection of tampered input, argument checks, and a bounded leak check.
// Every contract test runs against both Aead implementations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setImmediate as nextTurn } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, type Aead } from '../../src/crypto/aead.ts';
import { CryptoError, CryptoErrorCode } from '../../src/crypto/errors.ts';
import { NativeAead } from '../../src/crypto/native-aead.ts';
import { NodeCryptoAead } from '../../src/crypto/node-aead.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Vector {
  name: string;
  key: string;
  iv: string;
  aad: string;
  plaintext: string;
  ciphertext: string;
  tag: string;
}
const { vectors } = JSON.parse(readFileSync(path.join(root, 'test/fixtures/aes-gcm-256.json'), 'utf8')) as {
  vectors: Vector[];
};
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

const implementations: { name: string; create: (key: Uint8Array) => Aead }[] = [
  { name: 'NativeAead', create: (key) => new NativeAead(key) },
  { name: 'NodeCryptoAead', create: (key) => new NodeCryptoAead(key) },
];

/** Deterministic bytes of any size from a seed (fast, unlike per-byte arbitraries). */
function bytesFrom(seed: number, size: number): Buffer {
  return createHash('shake256', { outputLength: size }).update(`sluice-${seed}`).digest();
}

function seal(aead: Aead, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  const out = Buffer.alloc(plaintext.byteLength + TAG_BYTES);
  aead.seal(nonce, aad, plaintext, out);
  return out;
}

/** Opens into a buffer prefilled with 0xa5, so "left zeroed" is observable. */
function open(aead: Aead, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): { ok: boolean; out: Buffer } {
  const out = Buffer.alloc(sealed.byteLength - TAG_BYTES, 0xa5);
  const ok = aead.open(nonce, aad, sealed, out);
  return { ok, out };
}

function assertCryptoError(fn: () => unknown, code: CryptoErrorCode, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CryptoError, `expected CryptoError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

// Random message shape: sizes cover empty, sub-block, exact blocks and multi-chunk inputs.
const messageArb = fc.record({
  keySeed: fc.integer(),
  nonceSeed: fc.integer(),
  aadSize: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 4096 })),
  size: fc.oneof(fc.constantFrom(0, 1, 15, 16, 17, 4096, 65536), fc.integer({ min: 0, max: 70000 })),
});
type MessageShape = { keySeed: number; nonceSeed: number; aadSize: number; size: number };
function messageOf(m: MessageShape): { key: Buffer; nonce: Buffer; aad: Buffer; plaintext: Buffer } {
  return {
    key: bytesFrom(m.keySeed, KEY_BYTES),
    nonce: bytesFrom(m.nonceSeed, NONCE_BYTES),
    aad: bytesFrom(m.nonceSeed ^ 0x5a5a, m.aadSize),
    plaintext: bytesFrom(m.keySeed ^ m.nonceSeed ^ m.size, m.size),
  };
}

for (const impl of implementations) {
  describe(`${impl.name}: AES-256-GCM contract`, () => {
    test('known-answer vectors (GCM spec test cases 13-16, NIST CAVP)', () => {
      for (const v of vectors) {
        const aead = impl.create(hex(v.key));
        const sealed = seal(aead, hex(v.iv), hex(v.aad), hex(v.plaintext));
        assert.equal(sealed.toString('hex'), v.ciphertext + v.tag, v.name);
        const opened = open(aead, hex(v.iv), hex(v.aad), hex(v.ciphertext + v.tag));
        assert.equal(opened.ok, true, v.name);
        assert.equal(opened.out.toString('hex'), v.plaintext, v.name);
        aead.destroy();
      }
    });

    test('known-answer vectors through sealv, split at every byte', () => {
      for (const v of vectors) {
        const aead = impl.create(hex(v.key));
        const plaintext = hex(v.plaintext);
        for (let cut = 0; cut <= plaintext.length; cut++) {
          const out = Buffer.alloc(plaintext.length + TAG_BYTES);
          aead.sealv(hex(v.iv), hex(v.aad), [plaintext.subarray(0, cut), plaintext.subarray(cut)], out);
          assert.equal(out.toString('hex'), v.ciphertext + v.tag, `${v.name} cut ${cut}`);
        }
        aead.destroy();
      }
    });

    test('sealv with random splits equals seal', () => {
      fc.assert(
        fc.property(messageArb, fc.array(fc.nat(), { maxLength: 12 }), (m, cuts) => {
          const { key, nonce, aad, plaintext } = messageOf(m);
          const aead = impl.create(key);
          const points = cuts.map((c) => (plaintext.length === 0 ? 0 : c % (plaintext.length + 1))).sort((a, b) => a - b);
          const parts: Buffer[] = [];
          let from = 0;
          for (const p of points) {
            parts.push(plaintext.subarray(from, p));
            from = p;
          }
          parts.push(plaintext.subarray(from));
          const out = Buffer.alloc(plaintext.length + TAG_BYTES);
          aead.sealv(nonce, aad, parts, out);
          assert.deepEqual(out, seal(aead, nonce, aad, plaintext));
          aead.destroy();
        }),
        { numRuns: 40 },
      );
    });

    test('rejects a flipped bit in ciphertext, tag, aad or nonce, leaving out zeroed', () => {
      fc.assert(
        fc.property(
          messageArb,
          fc.constantFrom('ciphertext', 'tag', 'aad', 'nonce'),
          fc.nat(),
          (m, where, bit) => {
            const { key, nonce, aad, plaintext } = messageOf(m);
            const aead = impl.create(key);
            const sealed = seal(aead, nonce, aad, plaintext);
            const target =
              where === 'ciphertext'
                ? sealed.subarray(0, plaintext.length)
                : where === 'tag'
                  ? sealed.subarray(plaintext.length)
                  : where === 'aad'
                    ? aad
                    : nonce;
            fc.pre(target.length > 0);
            const at = bit % (target.length * 8);
            target[at >> 3] = (target[at >> 3] ?? 0) ^ (1 << (at & 7));
            const { ok, out } = open(aead, nonce, aad, sealed);
            assert.equal(ok, false);
            assert.ok(out.every((b) => b === 0), 'out must be zeroed after a failed open');
            aead.destroy();
          },
        ),
        { numRuns: 60 },
      );
    });

    test('rejects the wrong key and truncated or extended sealed input', () => {
      const key = randomBytes(KEY_BYTES);
      const nonce = randomBytes(NONCE_BYTES);
      const aad = Buffer.from('header');
      const plaintext = randomBytes(1000);
      const aead = impl.create(key);
      const sealed = seal(aead, nonce, aad, plaintext);
      assert.equal(open(aead, nonce, aad, sealed).ok, true);

      const wrongKey = Buffer.from(key);
      wrongKey[0] = (wrongKey[0] ?? 0) ^ 1;
      const other = impl.create(wrongKey);
      assert.equal(open(other, nonce, aad, sealed).ok, false);
      other.destroy();

      for (const cut of [1, 15, 16, 17, 999]) {
        assert.equal(open(aead, nonce, aad, sealed.subarray(0, sealed.length - cut)).ok, false, `tail cut ${cut}`);
        assert.equal(open(aead, nonce, aad, sealed.subarray(cut)).ok, false, `head cut ${cut}`);
      }
      assert.equal(open(aead, nonce, aad, Buffer.concat([sealed, Buffer.alloc(1)])).ok, false);
      assert.equal(open(aead, nonce, Buffer.alloc(0), sealed).ok, false);
      // Still usable after failures: a failed open leaves no state behind.
      assert.deepEqual(open(aead, nonce, aad, sealed).out, plaintext);
      aead.destroy();
    });

    test('seals and opens in place (out starting where the input starts)', () => {
      const aead = impl.create(randomBytes(KEY_BYTES));
      const nonce = randomBytes(NONCE_BYTES);
      const plaintext = randomBytes(5000);
      const expected = seal(aead, nonce, Buffer.alloc(0), plaintext);
      const work = Buffer.alloc(plaintext.length + TAG_BYTES);
      plaintext.copy(work);
      aead.seal(nonce, Buffer.alloc(0), work.subarray(0, plaintext.length), work);
      assert.deepEqual(work, expected);
      assert.equal(aead.open(nonce, Buffer.alloc(0), work, work.subarray(0, plaintext.length)), true);
      assert.deepEqual(work.subarray(0, plaintext.length), plaintext);
      aead.destroy();
    });

    test('argument checks throw CryptoError with exact messages', () => {
      const arg = CryptoErrorCode.ARG;
      assertCryptoError(() => impl.create(Buffer.alloc(31)), arg, 'key must be 32 bytes');
      assertCryptoError(() => impl.create('k'.repeat(32) as unknown as Uint8Array), arg, 'key must be a Uint8Array');
      const aead = impl.create(Buffer.alloc(KEY_BYTES));
      const n = Buffer.alloc(NONCE_BYTES);
      const e = Buffer.alloc(0);
      const pt = Buffer.alloc(10);
      assertCryptoError(() => aead.seal(Buffer.alloc(8), e, pt, Buffer.alloc(26)), arg, 'nonce must be 12 bytes');
      assertCryptoError(() => aead.seal(n, 'x' as unknown as Uint8Array, pt, Buffer.alloc(26)), arg, 'aad must be a Uint8Array');
      assertCryptoError(() => aead.seal(n, e, pt, Buffer.alloc(25)), arg, 'out must be plaintext.byteLength + 16 bytes');
      assertCryptoError(() => aead.seal(n, e, new Uint16Array(5) as unknown as Uint8Array, Buffer.alloc(26)), arg, 'plaintext must be a Uint8Array');
      assertCryptoError(() => aead.sealv(n, e, [pt, 7 as unknown as Uint8Array], Buffer.alloc(26)), arg, 'parts[1] must be a Uint8Array');
      assertCryptoError(() => aead.sealv(n, e, pt as unknown as Uint8Array[], Buffer.alloc(26)), arg, 'parts must be an array of Uint8Array');
      assertCryptoError(() => aead.sealv(n, e, [pt, pt], Buffer.alloc(26)), arg, "out must be the sum of parts' byteLength + 16 bytes");
      assertCryptoError(() => aead.open(n, e, Buffer.alloc(15), Buffer.alloc(0)), arg, 'sealed must be at least 16 bytes');
      assertCryptoError(() => aead.open(n, e, Buffer.alloc(20), Buffer.alloc(5)), arg, 'out must be sealed.byteLength - 16 bytes');
      const shared = Buffer.alloc(100);
      assertCryptoError(() => aead.seal(n, e, shared.subarray(1, 11), shared.subarray(0, 26)), arg, 'out must not partially overlap plaintext');
      assertCryptoError(() => aead.open(n, e, shared.subarray(0, 26), shared.subarray(5, 15)), arg, 'out must not partially overlap sealed');
      aead.destroy();
    });

    test('use after destroy() throws; destroy() twice is harmless', () => {
      const aead = impl.create(Buffer.alloc(KEY_BYTES));
      aead.destroy();
      aead.destroy();
      const n = Buffer.alloc(NONCE_BYTES);
      const e = Buffer.alloc(0);
      const destroyed = CryptoErrorCode.DESTROYED;
      assertCryptoError(() => aead.seal(n, e, e, Buffer.alloc(16)), destroyed, 'AEAD used after destroy()');
      assertCryptoError(() => aead.sealv(n, e, [e], Buffer.alloc(16)), destroyed, 'AEAD used after destroy()');
      assertCryptoError(() => aead.open(n, e, Buffer.alloc(16), e), destroyed, 'AEAD used after destroy()');
    });
  });
}

describe('NativeAead agrees with node:crypto', () => {
  test('random key, nonce, aad and plaintext (0..70000 bytes), both directions', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const { key, nonce, aad, plaintext } = messageOf(m);
        const native = new NativeAead(key);
        const node = new NodeCryptoAead(key);
        const sealedNative = seal(native, nonce, aad, plaintext);
        const sealedNode = seal(node, nonce, aad, plaintext);
        assert.deepEqual(sealedNative, sealedNode);
        const byNode = open(node, nonce, aad, sealedNative);
        assert.equal(byNode.ok, true);
        assert.deepEqual(byNode.out, plaintext);
        const byNative = open(native, nonce, aad, sealedNode);
        assert.equal(byNative.ok, true);
        assert.deepEqual(byNative.out, plaintext);
        native.destroy();
        node.destroy();
      }),
      { numRuns: 150 },
    );
  });

  test('one context seals many messages under changing nonces, as a link does', () => {
    const key = randomBytes(KEY_BYTES);
    const native = new NativeAead(key);
    const node = new NodeCryptoAead(key);
    const nonce = Buffer.alloc(NONCE_BYTES);
    for (let i = 0; i < 300; i++) {
      nonce.writeUInt32BE(i, 8);
      const plaintext = bytesFrom(i, (i * 977) % 9000);
      const aad = bytesFrom(-i, i % 40);
      const sealed = seal(native, nonce, aad, plaintext);
      assert.deepEqual(sealed, seal(node, nonce, aad, plaintext), `message ${i}`);
      assert.deepEqual(open(native, nonce, aad, sealed).out, plaintext);
    }
    native.destroy();
    node.destroy();
  });
});

describe('native addon loading', () => {
  test('a missing addon fails with a message that says how to build it', () => {
    const script = "import('./src/crypto/native-aead.ts').then(m => new m.NativeAead(new Uint8Array(32)))";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: root,
      env: { ...process.env, SLUICE_NATIVE_ADDON: path.join(root, 'build', 'nonexistent.node') },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /sluice native addon not found at .*nonexistent\.node: run `npm run build:native`/);
    assert.match(r.stderr, /SLUICE_ERR_NATIVE_ADDON/);
  });
});

describe('NativeAead memory', () => {
  // Under AddressSanitizer (scripts/test-native-asan.sh) freed memory sits in ASan's quarantine,
  // so RSS is no measure there; ASan itself checks for leaks and overruns in that run.
  const asan = process.env.SLUICE_SANITIZED === '1' ? 'RSS is not bounded under ASan (quarantine); ASan checks memory there' : false;
  test('many messages and many contexts do not grow RSS without bound', { skip: asan }, async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const settle = async (): Promise<number> => {
      for (let i = 0; i < 3; i++) {
        gc();
        // N-API finalizers of dropped contexts run after the collection.
        await nextTurn();
      }
      return process.memoryUsage().rss;
    };
    const key = randomBytes(KEY_BYTES);
    const nonce = Buffer.alloc(NONCE_BYTES);
    const aad = Buffer.alloc(24, 1);
    const plaintext = randomBytes(256);
    const sealed = Buffer.alloc(plaintext.length + TAG_BYTES);
    const opened = Buffer.alloc(plaintext.length);
    const churn = (messages: number, contexts: number): void => {
      const aead = new NativeAead(key);
      for (let i = 0; i < messages; i++) {
        nonce.writeUInt32BE(i, 8);
        aead.seal(nonce, aad, plaintext, sealed);
        assert.ok(aead.open(nonce, aad, sealed, opened));
        if (i % 2 === 0) sealed[0] = (sealed[0] ?? 0) ^ 1;
        if (i % 2 === 0) assert.equal(aead.open(nonce, aad, sealed, opened), false);
      }
      aead.destroy();
      // Half destroyed explicitly, half left to the garbage collector.
      for (let i = 0; i < contexts; i++) {
        const context = new NativeAead(key);
        if (i % 2 === 0) context.destroy();
      }
    };
    // The first round takes the process to its peak (malloc keeps freed memory, and dropped
    // contexts live until a collection and their deferred finalizers); repeating the same work,
    // settled after each round, must then cost nothing more. A leaked context pair (~2 KiB) or
    // 32 B per message would add 20+ MiB over the measured rounds.
    churn(200_000, 20_000);
    const before = await settle();
    let after = before;
    for (let round = 0; round < 3; round++) {
      churn(200_000, 20_000);
      after = await settle();
    }
    const growth = (after - before) / 2 ** 20;
    assert.ok(growth < 12, `RSS grew by ${growth.toFixed(1)} MiB over 3 rounds of the same work`);
  });
});
