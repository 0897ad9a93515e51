// Tenant tokens: RS256 JWTs verified against a JWKS (a file, reloaded when it changes, or a URL
// fetched by jose with refresh on an unknown `kid`). Only RS256 is accepted, so `none`, HS*
// and key confusion (an HMAC keyed with the public key) fail the algorithm check before any
// key is used. `exp` and `iat` are required, the lifetime exp - iat is capped (15 minutes),
// and `tenant_id` and `caps` claims are required.
import { EventEmitter } from 'node:events';
import { readFile, stat } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWK, type JWTVerifyGetKey } from 'jose';
import { tenantNameSchema } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';
import { parseCapabilities, type Capability } from './capabilities.ts';

export const JWT_ALGORITHM = 'RS256';
/** Tokens longer than this are refused unparsed. */
export const MAX_TOKEN_CHARS = 8192;

export interface JwtPrincipal {
  kind: 'jwt';
  subject: string | null;
  tenant: string;
  caps: readonly Capability[];
  keyId: string | null;
  /** exp, in ms since the epoch. */
  expiresAtMs: number;
}

export type JwtRejectReason =
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'unknown-key'
  | 'expired'
  | 'not-yet-valid'
  | 'lifetime'
  | 'claims'
  | 'keys-unavailable';

export type JwtCheck = { ok: true; principal: JwtPrincipal } | { ok: false; reason: JwtRejectReason; message: string };

export interface JwtVerifierOptions {
  jwksFile?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  clockSkewSeconds?: number;
  maxLifetimeSeconds?: number;
  /** How often a JWKS file is checked for changes (default 5 s). */
  reloadSeconds?: number;
  /** Remote JWKS: minimum time between refetches on an unknown kid (default 30 s). */
  remoteCooldownSeconds?: number;
  /** Verified tokens remembered until their exp (default 10000). */
  cacheEntries?: number;
}

export class JwksError extends SluiceError {
  constructor(message: string) {
    super('SLUICE_ERR_JWKS', message);
  }
}

/** Accepts only public RSA signing keys usable with RS256; refuses anything else in the set. */
export function validateJwks(doc: unknown, source: string): { keys: JWK[] } {
  const keys = (doc as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new JwksError(`${source}: expected {"keys": [...]} with at least one key`);
  keys.forEach((k: unknown, i) => {
    const jwk = k as JWK;
    const where = `${source}: keys[${i}]${typeof jwk?.kid === 'string' ? ` (kid ${jwk.kid})` : ''}`;
    if (typeof jwk !== 'object' || jwk === null) throw new JwksError(`${where}: not an object`);
    if (jwk.kty !== 'RSA') throw new JwksError(`${where}: kty must be "RSA" (only RS256 is accepted)`);
    if (jwk.alg !== undefined && jwk.alg !== JWT_ALGORITHM) throw new JwksError(`${where}: alg must be RS256 or absent`);
    if (jwk.use !== undefined && jwk.use !== 'sig') throw new JwksError(`${where}: use must be "sig" or absent`);
    if (jwk.d !== undefined || jwk.p !== undefined) throw new JwksError(`${where}: is a private key; publish only public keys`);
    if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') throw new JwksError(`${where}: missing n or e`);
    if (Buffer.from(jwk.n, 'base64url').length < 256) throw new JwksError(`${where}: RSA modulus below 2048 bits`);
  });
  const kids = keys.map((k: JWK) => k.kid).filter((k): k is string => typeof k === 'string');
  if (new Set(kids).size !== kids.length) throw new JwksError(`${source}: duplicate kid`);
  return { keys: (keys as JWK[]).map((k) => ({ ...k, alg: JWT_ALGORITHM })) };
}

function reject(reason: JwtRejectReason, message: string): JwtCheck {
  return { ok: false, reason, message };
}

function classify(err: unknown): JwtCheck {
  const code = (err as { code?: string }).code;
  const msg = (err as Error).message;
  switch (code) {
    case joseErrors.JWTExpired.code:
      return reject('expired', 'token expired');
    case joseErrors.JOSEAlgNotAllowed.code:
      return reject('algorithm', 'only RS256 tokens are accepted');
    case joseErrors.JWSSignatureVerificationFailed.code:
      return reject('signature', 'token signature does not verify');
    case joseErrors.JWKSNoMatchingKey.code:
    case joseErrors.JWKSMultipleMatchingKeys.code:
      return reject('unknown-key', 'no published key matches the token (kid)');
    case joseErrors.JWKSTimeout.code:
    case joseErrors.JWKSInvalid.code:
      return reject('keys-unavailable', `token keys unavailable: ${msg}`);
    case joseErrors.JWTClaimValidationFailed.code: {
      const claim = (err as { claim?: string }).claim;
      if ((claim === 'nbf' || claim === 'iat') && /check failed/.test(msg)) return reject('not-yet-valid', `token not yet valid (${claim})`);
      return reject('claims', `token claim ${claim ?? ''} invalid: ${msg}`);
    }
    case joseErrors.JOSENotSupported.code:
      return reject('algorithm', 'token uses an unsupported algorithm or key');
    default:
      if (code === 'ERR_JWKS_NO_MATCHING_KEY') return reject('unknown-key', msg);
      return reject('malformed', 'token is not a valid JWS/JWT');
  }
}

/** Events: 'reload' ({ keys }), 'error' (Error) — a JWKS file that fails to load keeps the last good set. */
export class JwtVerifier extends EventEmitter {
  private getKey: JWTVerifyGetKey;
  private readonly opts: Required<Pick<JwtVerifierOptions, 'clockSkewSeconds' | 'maxLifetimeSeconds' | 'cacheEntries'>> & JwtVerifierOptions;
  private readonly cache = new Map<string, JwtPrincipal>();
  private signature = '';
  private timer: NodeJS.Timeout | null = null;

  private constructor(opts: JwtVerifierOptions, getKey: JWTVerifyGetKey) {
    super();
    this.opts = { clockSkewSeconds: 30, maxLifetimeSeconds: 900, cacheEntries: 10_000, ...opts };
    if (this.opts.maxLifetimeSeconds > 900) throw new RangeError('maxLifetimeSeconds may not exceed 900 (15 minutes)');
    this.getKey = getKey;
  }

  static async create(opts: JwtVerifierOptions): Promise<JwtVerifier> {
    if ((opts.jwksFile === undefined) === (opts.jwksUrl === undefined)) throw new JwksError('exactly one of jwksFile or jwksUrl is required');
    if (opts.jwksUrl !== undefined) {
      const url = new URL(opts.jwksUrl);
      const loopback = ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw new JwksError(`${opts.jwksUrl}: a JWKS URL must be https (http only on loopback)`);
      const remote = createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: (opts.remoteCooldownSeconds ?? 30) * 1000, cacheMaxAge: 10 * 60_000 });
      return new JwtVerifier(opts, remote);
    }
    const file = opts.jwksFile as string;
    const { set, signature } = await JwtVerifier.loadFile(file);
    const v = new JwtVerifier(opts, set);
    v.signature = signature;
    v.timer = setInterval(() => void v.reload(), (opts.reloadSeconds ?? 5) * 1000);
    v.timer.unref();
    return v;
  }

  private static async loadFile(file: string): Promise<{ set: JWTVerifyGetKey; signature: string; keys: number }> {
    const s = await stat(file).catch(() => null);
    if (s === null) throw new JwksError(`${file}: JWKS file not found`);
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      throw new JwksError(`${file}: JWKS file is not valid JSON`);
    }
    const jwks = validateJwks(doc, file);
    return { set: createLocalJWKSet(jwks), signature: `${s.ino}:${s.size}:${s.mtimeMs}`, keys: jwks.keys.length };
  }

  /** Re-reads a JWKS file if it changed (rotation by kid: publish the new key, then retire the old). */
  async reload(): Promise<void> {
    const file = this.opts.jwksFile;
    if (file === undefined) return;
    try {
      const s = await stat(file);
      if (`${s.ino}:${s.size}:${s.mtimeMs}` === this.signature) return;
      const loaded = await JwtVerifier.loadFile(file);
      this.getKey = loaded.set;
      this.signature = loaded.signature;
      // A retired key must stop working at once, even for tokens verified before.
      this.cache.clear();
      this.emit('reload', { keys: loaded.keys });
    } catch (err) {
      this.emit('error', err);
    }
  }

  async verify(token: string, nowMs = Date.now()): Promise<JwtCheck> {
    const cached = this.cache.get(token);
    if (cached !== undefined) {
      if (nowMs < cached.expiresAtMs + this.opts.clockSkewSeconds * 1000) return { ok: true, principal: cached };
      this.cache.delete(token);
      return reject('expired', 'token expired');
    }
    if (token.length > MAX_TOKEN_CHARS) return reject('malformed', `token longer than ${MAX_TOKEN_CHARS} characters`);
    let payload: Record<string, unknown>;
    let kid: string | undefined;
    try {
      const res = await jwtVerify(token, this.getKey, {
        algorithms: [JWT_ALGORITHM],
        clockTolerance: this.opts.clockSkewSeconds,
        maxTokenAge: this.opts.maxLifetimeSeconds,
        requiredClaims: ['exp', 'iat', 'tenant_id', 'caps'],
        currentDate: new Date(nowMs),
        ...(this.opts.issuer !== undefined ? { issuer: this.opts.issuer } : {}),
        ...(this.opts.audience !== undefined ? { audience: this.opts.audience } : {}),
      });
      payload = res.payload as Record<string, unknown>;
      kid = res.protectedHeader.kid;
    } catch (err) {
      return classify(err);
    }
    const { exp, iat } = payload as { exp: number; iat: number };
    // The clock skew forgives our clock, not a token that was never valid: jose accepts an exp
    // up to the skew in the past, so without this an exp < iat token passes while both are recent.
    if (exp < iat) return reject('lifetime', `token expires (exp ${exp}) before it was issued (iat ${iat})`);
    if (exp - iat > this.opts.maxLifetimeSeconds) {
      return reject('lifetime', `token lifetime ${exp - iat}s exceeds ${this.opts.maxLifetimeSeconds}s`);
    }
    if (iat * 1000 > nowMs + this.opts.clockSkewSeconds * 1000) return reject('not-yet-valid', 'token issued in the future (iat)');
    const tenant = payload.tenant_id;
    if (typeof tenant !== 'string' || !tenantNameSchema.safeParse(tenant).success) return reject('claims', 'tenant_id claim is not a tenant name');
    let caps: Capability[];
    try {
      if (!Array.isArray(payload.caps)) throw new Error('not an array');
      caps = parseCapabilities(payload.caps);
    } catch {
      return reject('claims', 'caps claim must be a non-empty array of infer, train, admin');
    }
    const principal: JwtPrincipal = Object.freeze({
      kind: 'jwt' as const,
      subject: typeof payload.sub === 'string' ? payload.sub : null,
      tenant,
      caps: Object.freeze(caps),
      keyId: kid ?? null,
      expiresAtMs: exp * 1000,
    });
    if (this.cache.size >= this.opts.cacheEntries) {
      // Map iteration is insertion order: drop the oldest.
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(token, principal);
    return { ok: true, principal };
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.cache.clear();
  }
}
