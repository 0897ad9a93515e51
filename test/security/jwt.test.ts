import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { createPublicKey, generateKeyPairSync, type JsonWebKeyInput } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { JwtVerifier, validateJwks } from '../../src/security/jwt.ts';
import { tempDir } from '../helpers/temp-dir.ts';

interface Signer {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function signer(kid: string, alg = 'RS256'): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, use: 'sig' } };
}

const now = () => Math.floor(Date.now() / 1000);

async function token(s: Signer, claims: Record<string, unknown> = {}, opts: { iat?: number; exp?: number | null; alg?: string; kid?: string; key?: CryptoKey | Uint8Array } = {}): Promise<string> {
  const iat = opts.iat ?? now();
  const jwt = new SignJWT({ tenant_id: 'acme', caps: ['infer'], sub: 'job-7', ...claims })
    .setProtectedHeader({ alg: opts.alg ?? 'RS256', kid: opts.kid ?? s.kid })
    .setIssuedAt(iat);
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? iat + 300);
  return jwt.sign(opts.key ?? s.privateKey);
}

let k1: Signer;
let k2: Signer;
const jwksFile = path.join(tempDir(), 'jwks.json');
let verifier: JwtVerifier;

before(async () => {
  k1 = await signer('k1');
  k2 = await signer('k2');
  writeFileSync(jwksFile, JSON.stringify({ keys: [k1.jwk] }));
  verifier = await JwtVerifier.create({ jwksFile, clockSkewSeconds: 30, reloadSeconds: 3600 });
});
after(() => verifier.close());

async function reasonOf(t: string): Promise<string> {
  const r = await verifier.verify(t);
  return r.ok ? 'ok' : r.reason;
}

test('a valid RS256 token yields its tenant, capabilities, subject and kid', async () => {
  const r = await verifier.verify(await token(k1, { caps: ['train', 'infer'] }));
  assert.ok(r.ok);
  assert.equal(r.principal.tenant, 'acme');
  assert.deepEqual(r.principal.caps, ['infer', 'train']);
  assert.equal(r.principal.subject, 'job-7');
  assert.equal(r.principal.keyId, 'k1');
});

test('expired and not-yet-valid tokens are refused (with the configured skew)', async () => {
  assert.equal(await reasonOf(await token(k1, {}, { iat: now() - 400, exp: now() - 60 })), 'expired');
  assert.equal(await reasonOf(await token(k1, {}, { iat: now() - 400, exp: now() - 10 })), 'ok', 'within 30 s of skew');
  assert.equal(await reasonOf(await token(k1, { nbf: now() + 600 })), 'not-yet-valid');
  assert.equal(await reasonOf(await token(k1, {}, { iat: now() + 600, exp: now() + 800 })), 'not-yet-valid');
});

test('wrong algorithms are refused: none, HS256 keyed with the public key (key confusion), PS256, ES256', async () => {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const none = `${b64({ alg: 'none', kid: 'k1' })}.${b64({ tenant_id: 'acme', caps: ['infer'], iat: now(), exp: now() + 60 })}.`;
  assert.notEqual(await reasonOf(none), 'ok');
  // The classic confusion: the verifier's public key, as PEM or as JWK text, used as an HMAC secret.
  const publicPem = createPublicKey({ key: k1.jwk as JsonWebKeyInput['key'], format: 'jwk' }).export({ type: 'spki', format: 'pem' });
  assert.equal(await reasonOf(await token(k1, {}, { alg: 'HS256', key: new TextEncoder().encode(publicPem.toString()) })), 'algorithm');
  assert.equal(await reasonOf(await token(k1, {}, { alg: 'HS256', key: new TextEncoder().encode(JSON.stringify(k1.jwk)) })), 'algorithm');
  const ps = await generateKeyPair('PS256', { extractable: true });
  assert.equal(await reasonOf(await token(k1, {}, { alg: 'PS256', key: ps.privateKey })), 'algorithm');
  const es = await signer('k1', 'ES256');
  assert.equal(await reasonOf(await token(es, {}, { alg: 'ES256' })), 'algorithm');
});

test('a token signed by the wrong key, or naming an unpublished kid, is refused', async () => {
  assert.equal(await reasonOf(await token(k2, {}, { kid: 'k1' })), 'signature');
  assert.equal(await reasonOf(await token(k2)), 'unknown-key');
});

test('missing or malformed claims are refused', async () => {
  assert.equal(await reasonOf(await token(k1, { tenant_id: undefined })), 'claims');
  assert.equal(await reasonOf(await token(k1, { caps: undefined })), 'claims');
  assert.equal(await reasonOf(await token(k1, { caps: [] })), 'claims');
  assert.equal(await reasonOf(await token(k1, { caps: ['root'] })), 'claims');
  assert.equal(await reasonOf(await token(k1, { caps: 'infer' })), 'claims');
  assert.equal(await reasonOf(await token(k1, { tenant_id: '../etc' })), 'claims');
  assert.equal(await reasonOf(await token(k1, {}, { exp: null })), 'claims');
  const noIat = await new SignJWT({ tenant_id: 'acme', caps: ['infer'] }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setExpirationTime(now() + 60).sign(k1.privateKey);
  assert.equal(await reasonOf(noIat), 'claims');
});

test('a token that expires before it was issued is refused, even inside the clock skew', async () => {
  // exp < iat, both within the 30 s skew of now: never a valid token.
  assert.equal(await reasonOf(await token(k1, {}, { iat: now(), exp: now() - 5 })), 'lifetime');
  assert.equal(await reasonOf(await token(k1, {}, { iat: now() - 2, exp: now() - 3 })), 'lifetime');
  assert.equal(await reasonOf(await token(k1, {}, { iat: now() - 2, exp: now() - 2 + 1 })), 'ok');
});

test('a lifetime over 15 minutes is refused even while fresh', async () => {
  assert.equal(await reasonOf(await token(k1, {}, { iat: now(), exp: now() + 901 })), 'lifetime');
  assert.equal(await reasonOf(await token(k1, {}, { iat: now(), exp: now() + 900 })), 'ok');
});

test('kid rotation from a file: a new key works after reload, a retired key stops at once (even cached)', async () => {
  const old = await token(k1);
  assert.equal(await reasonOf(old), 'ok');
  writeFileSync(jwksFile, JSON.stringify({ keys: [k1.jwk, k2.jwk] }));
  await verifier.reload();
  assert.equal(await reasonOf(await token(k2)), 'ok');
  writeFileSync(jwksFile, JSON.stringify({ keys: [k2.jwk] }));
  await verifier.reload();
  assert.equal(await reasonOf(old), 'unknown-key');
  writeFileSync(jwksFile, '{not json');
  let reported: unknown = null;
  verifier.once('error', (e) => (reported = e));
  await verifier.reload();
  assert.match(String(reported), /not valid JSON/);
  assert.equal(await reasonOf(await token(k2)), 'ok', 'a bad JWKS file keeps the last good keys');
  writeFileSync(jwksFile, JSON.stringify({ keys: [k1.jwk] }));
  await verifier.reload();
});

test('kid rotation from a URL: an unknown kid triggers a refetch', async () => {
  let keys = [k1.jwk];
  let fetches = 0;
  const server = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as { port: number }).port;
    const remote = await JwtVerifier.create({ jwksUrl: `http://127.0.0.1:${port}/jwks.json`, remoteCooldownSeconds: 0 });
    assert.equal((await remote.verify(await token(k1))).ok, true);
    assert.equal((await remote.verify(await token(k2))).ok, false);
    keys = [k1.jwk, k2.jwk];
    const r = await remote.verify(await token(k2));
    assert.equal(r.ok, true, r.ok ? '' : r.message);
    assert.ok(fetches >= 2);
    remote.close();
  } finally {
    server.close();
  }
  await assert.rejects(JwtVerifier.create({ jwksUrl: 'http://example.invalid/jwks.json' }), /must be https/);
});

test('JWKS files with private, symmetric or short keys are refused', async () => {
  const priv = await exportJWK(k1.privateKey);
  assert.throws(() => validateJwks({ keys: [{ ...priv, kid: 'x' }] }, 'f'), /private key/);
  assert.throws(() => validateJwks({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }, 'f'), /kty must be "RSA"/);
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.throws(() => validateJwks({ keys: [publicKey.export({ format: 'jwk' })] }, 'f'), /below 2048 bits/);
  assert.throws(() => validateJwks({ keys: [{ ...k1.jwk, alg: 'HS256' }] }, 'f'), /alg must be RS256/);
  assert.throws(() => validateJwks({ keys: [k1.jwk, k1.jwk] }, 'f'), /duplicate kid/);
});

test('property: arbitrary strings never throw and never verify', async () => {
  const valid = await token(k1);
  const [h, p] = valid.split('.');
  const jwtish = fc.tuple(fc.constantFrom(h as string, 'eyJhbGciOiJub25lIn0'), fc.string(), fc.base64String()).map(([a, b, c]) => `${a}.${Buffer.from(b).toString('base64url')}.${c}`);
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.string(), jwtish, fc.constant(`${h}.${p}.`)), async (s) => !(await verifier.verify(s)).ok),
    { numRuns: 300 },
  );
});
