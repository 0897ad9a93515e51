// The gate pipeline every client request passes, in order:
//   1. identity      an API key or an RS256 token (Authorization: Bearer ..., or x-api-key)
//   2. tenant token  the credential's tenant is a configured tenant; a request naming another
//                    tenant (x-sluice-tenant) is refused unless an admin breaks glass
//   3. isolation     the tenant may use the model; the action travels only on its own segment
//   4. policy        the capability the action needs; per-tenant rate and size limits
//   5. audit         the decision is appended to the audit log; an allowed request's answer is
//                    held until its entry is durable (GateDecision.durable), a refusal is
//                    answered once its entry is durable
// Refusals are InferenceErrors with stable codes (401/403/413/429/503 on HTTP, the matching
// gRPC status), the same type the ingress already turns into RFC 7807 problems.
import type { SecurityConfig } from '../config/schema.ts';
import { InferenceError, InferenceErrorCode } from '../kserve/inference-error.ts';
import type { SegmentName } from '../transport/types.ts';
import type { ApiKeyWatcher } from './api-key-watcher.ts';
import { looksLikeApiKey } from './api-keys.ts';
import type { Capability } from './capabilities.ts';
import type { SecurityEvent } from './events.ts';
import type { JwtPrincipal, JwtVerifier } from './jwt.ts';
import { ANONYMOUS, type Principal } from './principal.ts';
import type { TenantRateLimiter } from './rate-limiter.ts';

export const TENANT_HEADER = 'x-sluice-tenant';
export const BREAK_GLASS_HEADER = 'x-sluice-break-glass';
export const API_KEY_HEADER = 'x-api-key';
const MIN_BREAK_GLASS_REASON = 8;

/** The segment each capability's traffic belongs on (admin calls use none). */
const SEGMENT_OF: Record<Capability, SegmentName | null> = { infer: 'inference', train: 'training', admin: null };

export interface GateRequest {
  requestId: string;
  action: Capability;
  /** The segment the request would travel on (null: it stays on this node). */
  segment: SegmentName | null;
  model: string | null;
  bytes: number;
  /** Lower-case header (HTTP) or metadata (gRPC) names. */
  headers: Readonly<Record<string, string | undefined>>;
  protocol: string;
}

export interface GateDecision {
  principal: Principal;
  tenant: { name: string | null; id: number };
  /** Resolves once the request's audit entry is on disk: hold the answer until then. */
  durable: Promise<unknown> | undefined;
}

/** What runs the gates for a call: SecurityGates here, or the main thread's seen from the training thread. */
export interface GateChecker {
  check(req: GateRequest): Promise<GateDecision>;
}

/** Where gate decisions go (see security-runtime.ts). */
export interface GateRecorder {
  /**
   * Appends the event to the audit log and tells webhook subscribers. Resolves when the entry
   * is durable; undefined when the audit log is off.
   */
  record(e: SecurityEvent): Promise<unknown> | undefined;
  /** Sees a refusal that is counted but not recorded one by one (throttled requests). */
  observe?(e: SecurityEvent): void;
}

export interface SecurityGatesOptions {
  config: SecurityConfig;
  apiKeys: ApiKeyWatcher | null;
  jwt: JwtVerifier | null;
  limiter: TenantRateLimiter | null;
  recorder: GateRecorder;
}

/** What kind of credential a request carried (for the audit entry and metrics of a refusal). */
function credentialKind(headers: GateRequest['headers']): 'api_key' | 'jwt' | 'none' {
  if (headers[API_KEY_HEADER] !== undefined) return 'api_key';
  const m = headers.authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization);
  if (m === null) return 'none';
  return looksLikeApiKey(m[1] as string) ? 'api_key' : 'jwt';
}

/** What a refusal's security event says; the engine's ingress reports the same fields (src/engine/engine-gate-events.ts). */
export interface GateRefusal {
  requestId: string;
  gate: string;
  code: string;
  message: string;
  actor: string;
  tenant: string | null;
  credential: 'api_key' | 'jwt' | 'none';
  action: Capability;
  model: string | null;
  protocol: string;
}

/** The audit event of a refusal: auth.failed at the identity gate, policy.denied after it. */
export function refusalEvent(r: GateRefusal): SecurityEvent {
  return {
    type: r.gate === 'identity' ? 'auth.failed' : 'policy.denied',
    tenant: r.tenant,
    requestId: r.requestId,
    actor: r.actor,
    outcome: 'denied',
    reason: r.message,
    detail: { gate: r.gate, code: r.code, credential: r.credential, action: r.action, model: r.model, protocol: r.protocol },
  };
}

/** The audit event of an allowed request (audit.allowedRequests, or break-glass with its reason). */
export function allowedEvent(a: { requestId: string; action: Capability; tenant: string | null; actor: string; model: string | null; protocol: string; bytes: number; breakGlass?: string }): SecurityEvent {
  return {
    type: `${a.action}.request`,
    tenant: a.tenant,
    requestId: a.requestId,
    actor: a.actor,
    outcome: 'success',
    ...(a.breakGlass !== undefined ? { reason: a.breakGlass } : {}),
    detail: { model: a.model, protocol: a.protocol, bytes: a.bytes },
  };
}

/** A bearer token the gates verified: the engine's ingress caches it (its next calls stay native). */
export type TokenVerifiedListener = (token: string, principal: JwtPrincipal, actor: string) => void;

function refuse(code: InferenceErrorCode, message: string): InferenceError {
  return new InferenceError(code, message);
}

/** The one credential a request carries, or why it cannot be used (missing, repeated, contradicting). */
function credentialHeaders(headers: GateRequest['headers']): { credential: string; problem: null } | { credential: null; problem: InferenceError } {
  const auth = headers.authorization;
  const apiKey = headers[API_KEY_HEADER];
  const bad = (code: InferenceErrorCode, message: string) => ({ credential: null, problem: refuse(code, message) });
  if (auth !== undefined && auth.includes(',')) return bad(InferenceErrorCode.BAD_REQUEST, 'more than one Authorization header');
  if (apiKey !== undefined && apiKey.includes(',')) return bad(InferenceErrorCode.BAD_REQUEST, `more than one ${API_KEY_HEADER} header`);
  let bearer: string | undefined;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m === null) return bad(InferenceErrorCode.UNAUTHENTICATED, 'the Authorization header must be "Bearer <token or API key>"');
    bearer = m[1];
  }
  if (bearer !== undefined && apiKey !== undefined && bearer !== apiKey) {
    return bad(InferenceErrorCode.BAD_REQUEST, `Authorization and ${API_KEY_HEADER} name different credentials; send one`);
  }
  const credential = apiKey ?? bearer;
  if (credential === undefined || credential === '') {
    return bad(InferenceErrorCode.UNAUTHENTICATED, 'credentials required: send "Authorization: Bearer <token or API key>"');
  }
  return { credential, problem: null };
}

export class SecurityGates implements GateChecker {
  private readonly opts: SecurityGatesOptions;
  private readonly tenants: Map<string, { id: number; models: ReadonlySet<string> | null }>;
  private readonly authRequired: boolean;
  /** Rate-limit refusals are summarised per tenant and second, not audited one by one. */
  private readonly throttled = new Map<string, { windowStart: number; count: number }>();
  private readonly tokenListeners = new Set<TokenVerifiedListener>();

  constructor(opts: SecurityGatesOptions) {
    this.opts = opts;
    this.authRequired = opts.apiKeys !== null || opts.jwt !== null;
    this.tenants = new Map(opts.config.tenants.map((t) => [t.name, { id: t.id, models: t.models.includes('*') ? null : new Set(t.models) }]));
  }

  async check(req: GateRequest): Promise<GateDecision> {
    const principal = await this.identify(req);
    const breakGlass = req.headers[BREAK_GLASS_HEADER];
    if (breakGlass !== undefined) await this.checkBreakGlass(req, principal, breakGlass);
    const tenant = await this.bindTenant(req, principal, breakGlass !== undefined);
    await this.isolate(req, principal, tenant.name);
    await this.authorize(req, principal, tenant.name);
    const durable =
      this.opts.config.audit.allowedRequests || breakGlass !== undefined
        ? this.opts.recorder.record(
            allowedEvent({
              requestId: req.requestId,
              action: req.action,
              tenant: tenant.name,
              actor: principal.actor,
              model: req.model,
              protocol: req.protocol,
              bytes: req.bytes,
              ...(breakGlass !== undefined ? { breakGlass } : {}),
            }),
          )
        : undefined;
    return { principal, tenant, durable };
  }

  /** Records a refusal (durably, when audit is on) and reports it; then throws `err`. */
  private async deny(req: GateRequest, principal: Principal | null, gate: string, err: InferenceError, tenant: string | null = principal?.tenant ?? null): Promise<never> {
    const event = refusalEvent({
      requestId: req.requestId,
      gate,
      code: err.code,
      message: err.message,
      actor: principal?.actor ?? 'unauthenticated',
      tenant,
      credential: credentialKind(req.headers),
      action: req.action,
      model: req.model,
      protocol: req.protocol,
    });
    const durable = this.opts.recorder.record(event);
    if (durable !== undefined) {
      try {
        await durable;
      } catch {
        throw refuse(InferenceErrorCode.AUDIT_UNAVAILABLE, 'the audit log cannot record this request');
      }
    }
    throw err;
  }

  /**
   * Whether the request's credential headers can be used as sent, before any is verified (also
   * run on a WebSocket upgrade, so an upgrade without credentials is refused before the 101).
   * Header maps join a repeated field with ", " (RFC 9110 section 5.3) and neither a token nor
   * an API key contains a comma, so a comma means the header came more than once: which of the
   * credentials the request means is ambiguous, a malformed request (400 / INVALID_ARGUMENT).
   */
  credentialProblem(headers: GateRequest['headers']): InferenceError | null {
    if (!this.authRequired) return null;
    return credentialHeaders(headers).problem;
  }

  private async identify(req: GateRequest): Promise<Principal> {
    if (!this.authRequired) return ANONYMOUS;
    const { credential, problem } = credentialHeaders(req.headers);
    if (problem !== null) return this.deny(req, null, 'identity', problem);
    const keys = this.opts.apiKeys;
    if (looksLikeApiKey(credential)) {
      if (keys === null) return this.deny(req, null, 'identity', refuse(InferenceErrorCode.UNAUTHENTICATED, 'API keys are not accepted here'));
      const r = keys.keys.check(credential);
      if (!r.ok) {
        const who = r.keyId === null ? null : ({ ...ANONYMOUS, kind: 'api-key', actor: `key:${r.keyId}`, caps: [] } as Principal);
        const msg = r.reason === 'expired' ? 'the API key is revoked or expired' : 'the API key is not valid';
        return this.deny(req, who, 'identity', refuse(InferenceErrorCode.UNAUTHENTICATED, msg));
      }
      return { kind: 'api-key', actor: `key:${r.principal.keyId}`, tenant: r.principal.tenant, caps: r.principal.caps };
    }
    const jwt = this.opts.jwt;
    if (jwt === null) return this.deny(req, null, 'identity', refuse(InferenceErrorCode.UNAUTHENTICATED, 'bearer tokens are not accepted here; use an API key'));
    const r = await jwt.verify(credential);
    if (!r.ok) {
      const code =
        r.reason === 'expired' ? InferenceErrorCode.TOKEN_EXPIRED : r.reason === 'keys-unavailable' ? InferenceErrorCode.AUTH_UNAVAILABLE : InferenceErrorCode.UNAUTHENTICATED;
      return this.deny(req, null, 'identity', refuse(code, r.message));
    }
    const p = r.principal;
    const actor = `jwt:${p.subject ?? p.keyId ?? 'unknown'}`;
    for (const listener of this.tokenListeners) listener(credential, p, actor);
    return { kind: 'jwt', actor, tenant: p.tenant, caps: p.caps };
  }

  private async checkBreakGlass(req: GateRequest, principal: Principal, reason: string): Promise<void> {
    if (!principal.caps.includes('admin')) {
      await this.deny(req, principal, 'policy', refuse(InferenceErrorCode.PERMISSION_DENIED, 'break-glass needs the admin capability'));
    }
    if (reason.trim().length < MIN_BREAK_GLASS_REASON) {
      await this.deny(req, principal, 'policy', refuse(InferenceErrorCode.BAD_REQUEST, `break-glass needs a reason of at least ${MIN_BREAK_GLASS_REASON} characters in ${BREAK_GLASS_HEADER}`));
    }
    this.opts.recorder.record({ type: 'admin.break_glass', tenant: principal.tenant, requestId: req.requestId, actor: principal.actor, outcome: 'success', reason, detail: { action: req.action, model: req.model, as_tenant: req.headers[TENANT_HEADER] ?? null } })?.catch(() => undefined);
  }

  private async bindTenant(req: GateRequest, principal: Principal, breakGlass: boolean): Promise<{ name: string | null; id: number }> {
    if (principal.tenant === null) return { name: null, id: 0 };
    const asked = req.headers[TENANT_HEADER];
    let name = principal.tenant;
    if (asked !== undefined && asked !== principal.tenant) {
      if (!breakGlass) {
        return this.deny(req, principal, 'tenant', refuse(InferenceErrorCode.TENANT_DENIED, `credentials of tenant "${principal.tenant}" cannot act for tenant "${asked.slice(0, 64)}"`));
      }
      name = asked;
    }
    const t = this.tenants.get(name);
    if (t === undefined) return this.deny(req, principal, 'tenant', refuse(InferenceErrorCode.TENANT_DENIED, `tenant "${name.slice(0, 64)}" is not configured`), name);
    return { name, id: t.id };
  }

  private async isolate(req: GateRequest, principal: Principal, tenant: string | null): Promise<void> {
    const want = SEGMENT_OF[req.action];
    if (req.segment !== null && want !== req.segment) {
      await this.deny(req, principal, 'isolation', refuse(InferenceErrorCode.SEGMENT_POLICY, `${req.action} traffic may not travel on the ${req.segment} segment`), tenant);
    }
    // Break-glass acts as the tenant, within the tenant's own permissions (the egress checks them too).
    if (tenant === null || req.model === null) return;
    const models = this.tenants.get(tenant)?.models;
    if (models !== null && models !== undefined && !models.has(req.model)) {
      await this.deny(req, principal, 'isolation', refuse(InferenceErrorCode.TENANT_DENIED, `tenant "${tenant}" may not use model "${req.model.slice(0, 128)}"`), tenant);
    }
  }

  private async authorize(req: GateRequest, principal: Principal, tenant: string | null): Promise<void> {
    if (!principal.caps.includes(req.action)) {
      await this.deny(req, principal, 'policy', refuse(InferenceErrorCode.PERMISSION_DENIED, `the credentials lack the "${req.action}" capability`), tenant);
    }
    const limiter = this.opts.limiter;
    if (limiter === null || tenant === null) return;
    const limits = limiter.limitsFor(tenant);
    if (req.bytes > limits.maxRequestBytes) {
      await this.deny(req, principal, 'policy', refuse(InferenceErrorCode.TOO_LARGE, `request of ${req.bytes} bytes exceeds tenant "${tenant}"'s limit of ${limits.maxRequestBytes}`), tenant);
    }
    const waitMs = limiter.take(tenant);
    if (waitMs > 0) {
      this.noteThrottled(req, principal, tenant);
      throw refuse(InferenceErrorCode.RATE_LIMITED, `tenant "${tenant}" is over its rate limit of ${limits.requestsPerSecond}/s; retry in ${waitMs} ms`);
    }
  }

  /** Tells `listener` of every bearer token verified from now on; returns the unsubscribe. */
  onTokenVerified(listener: TokenVerifiedListener): () => void {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  /**
   * One audited summary per tenant and second: a flood of refusals must not become a flood of
   * fsyncs. Public for the engine's ingress, whose rate-limit refusals come here too.
   */
  noteThrottled(req: Pick<GateRequest, 'requestId' | 'action'>, principal: Pick<Principal, 'actor'>, tenant: string): void {
    const now = Date.now();
    const w = this.throttled.get(tenant);
    const event: SecurityEvent = { type: 'ratelimit.exceeded', tenant, requestId: req.requestId, actor: principal.actor, outcome: 'denied' };
    if (w !== undefined && now - w.windowStart < 1000) {
      w.count++;
      this.opts.recorder.observe?.(event);
      return;
    }
    const previous = w?.count ?? 0;
    this.throttled.set(tenant, { windowStart: now, count: 1 });
    event.detail = { gate: 'policy', code: InferenceErrorCode.RATE_LIMITED, action: req.action, refused_in_previous_window: previous };
    this.opts.recorder.record(event)?.catch(() => undefined);
  }
}
