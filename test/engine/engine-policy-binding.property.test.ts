// Property tests of the bytes and records that cross the binding for the ingress's gates: a
// policy blob (publishPolicy parses it in C++: random bytes, truncations and single-byte
// mutations of a real blob are refused with SLUICE_ERR_ENGINE_POLICY or accepted, never a
// crash, and the engine keeps publishing), a verified-token digest (addVerifiedToken: anything
// but 32 bytes is a RangeError), and the GATE_DECISION record decoded on the JS side.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { securitySchema } from '../../src/config/schema.ts';
import { EngineEventType } from '../../src/engine/engine-events.ts';
import { decodeGateDecision, NativeEngine } from '../../src/engine/native-engine.ts';
import { compilePolicyTable } from '../../src/engine/policy-compiler.ts';
import { generateApiKey } from '../../src/security/api-keys.ts';

let engine: NativeEngine;
before(() => {
  engine = new NativeEngine('sluice-policy-pt');
});
after(() => engine.stop());

const security = securitySchema.parse({
  tenants: [
    { name: 'acme', id: 7, models: ['simple'] },
    { name: 'globex', id: 9 },
  ],
  apiKeys: { enabled: true },
  rateLimits: { enabled: true },
  audit: { enabled: true, path: '/nonexistent/audit.jsonl' },
});
const records = [generateApiKey('acme', ['infer']).record, generateApiKey('globex', ['infer', 'admin']).record];
const good = compilePolicyTable({
  generation: 1,
  security,
  apiKeys: records,
  routes: [{ model: '*', peers: [1, 2] }],
  verifiedTokens: [{ digest: new Uint8Array(32).fill(3), tenant: 'acme', caps: ['infer'], expMs: Date.now() + 60_000, actor: 'jwt:x' }],
});

function publish(blob: Uint8Array): 'ok' | 'refused' {
  try {
    engine.publishPolicy(blob);
    return 'ok';
  } catch (err) {
    assert.equal((err as { code?: string }).code, 'SLUICE_ERR_ENGINE_POLICY', (err as Error).message);
    return 'refused';
  }
}

test('publishPolicy: random bytes, truncations and mutations of a real blob are refused or accepted, never a crash', () => {
  assert.equal(publish(good), 'ok');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      publish(bytes);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.nat({ max: good.length - 1 }), (cut) => {
      assert.equal(publish(good.subarray(0, cut)), 'refused', `cut at ${cut}`);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
      const b = Buffer.from(good);
      b[at]! ^= xor;
      publish(b);
    }),
    { numRuns: 3000 },
  );
  // Still the engine it was: a real table is taken.
  assert.equal(publish(good), 'ok');
});

test('addVerifiedToken: a digest of any length but 32 is a RangeError; 32 bytes are taken', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), fc.nat(), fc.double({ noNaN: true }), fc.string({ maxLength: 700 }), (digest, tenant, caps, exp, actor) => {
      if (digest.length === 32) engine.addVerifiedToken(digest, tenant, caps, exp, actor);
      else assert.throws(() => engine.addVerifiedToken(digest, tenant, caps, exp, actor), RangeError);
    }),
    { numRuns: 1000 },
  );
});

test('GATE_DECISION records decode to the fields the engine encoded', () => {
  fc.assert(
    fc.property(
      fc.record({
        ticket: fc.nat(),
        bytes: fc.nat(),
        credential: fc.constantFrom(0, 1, 2),
        allowed: fc.boolean(),
        throttled: fc.boolean(),
        streaming: fc.boolean(),
        status: fc.integer({ min: 0, max: 16 }),
        tenant: fc.option(fc.string({ minLength: 1 }), { nil: undefined }),
      }),
      (f) => {
        const c = f.credential | (f.allowed ? 4 : 0) | (f.throttled ? 8 : 0) | (f.streaming ? 16 : 0) | (f.status << 8);
        const d = decodeGateDecision({ type: EngineEventType.GATE_DECISION, link: 0, a: f.ticket, b: f.bytes, c, requestId: 'r', err: 'identity', extra: 'key:x', ...(f.tenant !== undefined ? { tenantName: f.tenant } : {}) });
        assert.deepEqual(
          [d.ticket, d.bytes, d.credential, d.allowed, d.throttled, d.streaming, d.status, d.tenant],
          [f.ticket, f.bytes, ['none', 'api_key', 'jwt'][f.credential], f.allowed, f.throttled, f.streaming, f.status, f.tenant ?? null],
        );
      },
    ),
    { numRuns: 500 },
  );
});
