// Property test of the credential-header rules (untrusted header text): never a throw; one
// credential passes, a repeated or contradicting one is BAD_REQUEST, none is UNAUTHENTICATED.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../src/config/load.ts';
import { InferenceError, InferenceErrorCode } from '../../src/kserve/inference-error.ts';
import type { ApiKeyWatcher } from '../../src/security/api-key-watcher.ts';
import { SecurityGates } from '../../src/security/gates.ts';

const gates = new SecurityGates({
  config: parseConfig({ security: { tenants: [{ name: 'acme', id: 1 }], apiKeys: { enabled: true } } }).security,
  // credentialProblem only reads headers; no key is looked up.
  apiKeys: {} as ApiKeyWatcher,
  jwt: null,
  limiter: null,
  recorder: { record: () => undefined },
});

const token = fc.stringMatching(/^[A-Za-z0-9_.~+/=-]{1,60}$/);

test('arbitrary header text: a typed answer, never a throw', () => {
  fc.assert(
    fc.property(fc.option(fc.string({ maxLength: 200 }), { nil: undefined }), fc.option(fc.string({ maxLength: 200 }), { nil: undefined }), (auth, key) => {
      const p = gates.credentialProblem({ authorization: auth, 'x-api-key': key });
      if (p !== null) {
        assert.ok(p instanceof InferenceError);
        assert.ok(p.code === InferenceErrorCode.BAD_REQUEST || p.code === InferenceErrorCode.UNAUTHENTICATED);
      }
    }),
    { numRuns: 2000 },
  );
});

test('one credential passes; the same one in both headers passes; different ones are BAD_REQUEST', () => {
  fc.assert(
    fc.property(token, token, (a, b) => {
      assert.equal(gates.credentialProblem({ authorization: `Bearer ${a}` }), null);
      assert.equal(gates.credentialProblem({ 'x-api-key': a }), null);
      const both = gates.credentialProblem({ authorization: `Bearer ${a}`, 'x-api-key': b });
      if (a === b) assert.equal(both, null);
      else assert.equal(both?.code, InferenceErrorCode.BAD_REQUEST);
    }),
    { numRuns: 1000 },
  );
});

test('a repeated header (joined with ", " by the ingress) is BAD_REQUEST whatever the values', () => {
  fc.assert(
    fc.property(token, token, (a, b) => {
      assert.equal(gates.credentialProblem({ authorization: `Bearer ${a}, Bearer ${b}` })?.code, InferenceErrorCode.BAD_REQUEST);
      assert.equal(gates.credentialProblem({ 'x-api-key': `${a}, ${b}` })?.code, InferenceErrorCode.BAD_REQUEST);
    }),
    { numRuns: 500 },
  );
  assert.equal(gates.credentialProblem({})?.code, InferenceErrorCode.UNAUTHENTICATED);
});
