// Everything `security` config turns on, in one object owned by the node: the audit log, the
// key store watcher, the JWT verifier, the client-certificate allowlist, rate limits, the gate
// pipeline and webhooks. It is the sink of every security event: each one becomes an audit
// entry (when the log is on) and a webhook delivery (for subscribed types).
import type { AuditEntry } from '../audit/entry.ts';
import { AuditLog } from '../audit/log.ts';
import type { SecurityConfig } from '../config/schema.ts';
import type { Logger } from '../telemetry/logger.ts';
import { ApiKeyWatcher } from './api-key-watcher.ts';
import type { ApiKeyRecord } from './api-keys.ts';
import { ClientCertAllowlist } from './client-cert-allowlist.ts';
import type { SecurityEvent, SecurityEventSink } from './events.ts';
import { SecurityGates, type GateRecorder } from './gates.ts';
import { JwtVerifier } from './jwt.ts';
import { TenantRateLimiter } from './rate-limiter.ts';
import { resolveSecurityPaths, webhookSecret } from './security-paths.ts';
import { WebhookDispatcher } from './webhooks.ts';

export interface SecurityRuntimeOptions {
  config: SecurityConfig;
  nodeName: string;
  logger: Logger;
  /** Relative paths in the config are resolved against this (the config file's directory). */
  baseDir?: string;
  /** Sees every event first (the metrics registry counts refusals from it); must not throw. */
  observer?: SecurityEventSink;
}

/** Routine allowed requests are audited but not sent to webhooks. */
function isRoutine(e: SecurityEvent): boolean {
  return e.outcome === 'success' && e.type.endsWith('.request');
}

export class SecurityRuntime implements SecurityEventSink, GateRecorder {
  readonly config: SecurityConfig;
  readonly gates: SecurityGates;
  /** The tenants' rate limits (null: security.rateLimits off); the engine's ingress shares its buckets. */
  readonly limiter: TenantRateLimiter | null;
  readonly audit: AuditLog | null;
  readonly allowlist: ClientCertAllowlist | null;
  private readonly observer: SecurityEventSink | undefined;
  private readonly logger: Logger;
  private readonly webhooks: WebhookDispatcher | null;
  private readonly apiKeys: ApiKeyWatcher | null;
  private readonly jwt: JwtVerifier | null;

  private constructor(
    opts: SecurityRuntimeOptions,
    config: SecurityConfig,
    parts: { audit: AuditLog | null; webhooks: WebhookDispatcher | null; apiKeys: ApiKeyWatcher | null; jwt: JwtVerifier | null; allowlist: ClientCertAllowlist | null },
  ) {
    this.config = config;
    this.logger = opts.logger;
    this.observer = opts.observer;
    this.audit = parts.audit;
    this.webhooks = parts.webhooks;
    this.apiKeys = parts.apiKeys;
    this.jwt = parts.jwt;
    this.allowlist = parts.allowlist;
    this.limiter = config.rateLimits.enabled ? new TenantRateLimiter(config.rateLimits) : null;
    this.gates = new SecurityGates({
      config,
      apiKeys: parts.apiKeys,
      jwt: parts.jwt,
      limiter: this.limiter,
      recorder: this,
    });
  }

  /** True when the config turns on anything at all (the embedded demo turns on nothing). */
  static wanted(s: SecurityConfig): boolean {
    return s.audit.enabled || s.apiKeys.enabled || s.jwt.enabled || s.tls.enabled || s.rateLimits.enabled || s.webhooks.endpoints.length > 0 || s.pii.enabled || s.threats.enabled;
  }

  static async start(opts: SecurityRuntimeOptions): Promise<SecurityRuntime> {
    const config = resolveSecurityPaths(opts.config, opts.baseDir);
    const started: { close(): unknown }[] = [];
    try {
      const webhooks =
        config.webhooks.endpoints.length === 0
          ? null
          : new WebhookDispatcher({
              endpoints: config.webhooks.endpoints.map((e) => ({ url: e.url, secret: webhookSecret(e), events: e.events })),
              node: opts.nodeName,
              maxQueue: config.webhooks.maxQueue,
              maxAttempts: config.webhooks.maxAttempts,
              timeoutMs: config.webhooks.timeoutMs,
            });
      if (webhooks !== null) started.push(webhooks);
      const audit = config.audit.enabled
        ? await AuditLog.open({
            path: config.audit.path,
            policyVersion: config.policyVersion,
            checkpointEntries: config.audit.checkpointEntries,
            checkpointSeconds: config.audit.checkpointSeconds,
            anchorSeconds: config.audit.anchorSeconds,
            rotate: { maxBytes: config.audit.rotate.maxBytes, maxAgeMs: config.audit.rotate.maxAgeHours === undefined ? undefined : config.audit.rotate.maxAgeHours * 3_600_000 },
            retentionDays: config.audit.retentionDays,
            actor: `node:${opts.nodeName}`,
          })
        : null;
      if (audit !== null) started.push(audit);
      const apiKeys = config.apiKeys.enabled ? await ApiKeyWatcher.start({ file: config.apiKeys.store, reloadSeconds: config.apiKeys.reloadSeconds }) : null;
      if (apiKeys !== null) started.push(apiKeys);
      const jwt = config.jwt.enabled
        ? await JwtVerifier.create({
            ...(config.jwt.jwksFile !== undefined ? { jwksFile: config.jwt.jwksFile } : {}),
            ...(config.jwt.jwksUrl !== undefined ? { jwksUrl: config.jwt.jwksUrl } : {}),
            ...(config.jwt.issuer !== undefined ? { issuer: config.jwt.issuer } : {}),
            ...(config.jwt.audience !== undefined ? { audience: config.jwt.audience } : {}),
            clockSkewSeconds: config.jwt.clockSkewSeconds,
            maxLifetimeSeconds: config.jwt.maxLifetimeSeconds,
          })
        : null;
      if (jwt !== null) started.push(jwt);
      const cc = config.tls.clientCerts;
      const allowlist =
        config.tls.enabled && cc.mode === 'require' ? await ClientCertAllowlist.start({ file: cc.allowlistFile as string, reloadSeconds: cc.reloadSeconds }) : null;
      const rt = new SecurityRuntime(opts, config, { audit, webhooks, apiKeys, jwt, allowlist });
      rt.wire();
      return rt;
    } catch (err) {
      for (const s of started.reverse()) await s.close();
      throw err;
    }
  }

  private wire(): void {
    this.audit?.on('failure', (err: Error) => {
      this.logger.error({ err: err.message }, 'audit log failed: refusing requests until restarted');
      this.webhooks?.dispatch({ type: 'audit.failure', tenant: null, requestId: null, actor: 'audit', outcome: 'failure', reason: err.message });
    });
    this.audit?.on('checkpoint', (cp: AuditEntry) => {
      this.webhooks?.dispatch({ type: 'audit.checkpoint', tenant: null, requestId: null, actor: 'audit', outcome: 'success', detail: { seq: cp.seq, hash: cp.hash, ...cp.checkpoint } });
    });
    this.apiKeys?.on('reload', (r: { keys: number }) => this.emit({ type: 'keys.reloaded', tenant: null, requestId: null, actor: 'keystore', outcome: 'success', detail: r }));
    this.apiKeys?.on('error', (err: Error) => this.emit({ type: 'keys.reload_failed', tenant: null, requestId: null, actor: 'keystore', outcome: 'failure', reason: err.message }));
    this.jwt?.on('reload', (r: { keys: number }) => this.emit({ type: 'jwks.reloaded', tenant: null, requestId: null, actor: 'jwks', outcome: 'success', detail: r }));
    this.jwt?.on('error', (err: Error) => this.emit({ type: 'jwks.reload_failed', tenant: null, requestId: null, actor: 'jwks', outcome: 'failure', reason: err.message }));
    this.allowlist?.on('reload', (r: { added: string[]; removed: string[] }) =>
      this.emit({ type: 'tls.allowlist_reloaded', tenant: null, requestId: null, actor: 'allowlist', outcome: 'success', detail: r }),
    );
    this.allowlist?.on('error', (err: Error) => this.emit({ type: 'tls.allowlist_reload_failed', tenant: null, requestId: null, actor: 'allowlist', outcome: 'failure', reason: err.message }));
  }

  /** The API-key records in force (hashes only; empty when API keys are off). */
  apiKeyRecords(): ApiKeyRecord[] {
    return this.apiKeys?.keys.records() ?? [];
  }

  /**
   * Calls `listener` whenever the credentials the gates accept changed: the key store was
   * reloaded (a key added, rotated or revoked) or the JWKS was (a retired signing key stops at
   * once). The engine's ingress republishes its policy table from here. Returns the unsubscribe.
   */
  onCredentialsChanged(listener: () => void): () => void {
    this.apiKeys?.on('reload', listener);
    this.jwt?.on('reload', listener);
    return () => {
      this.apiKeys?.off('reload', listener);
      this.jwt?.off('reload', listener);
    };
  }

  /** Re-reads the key store and the JWKS file now (SIGHUP), rather than at the next poll. */
  async reloadCredentials(): Promise<void> {
    await Promise.all([this.apiKeys?.poll(), this.jwt?.reload()]);
  }

  observe(e: SecurityEvent): void {
    this.observer?.emit(e);
  }

  record(e: SecurityEvent): Promise<unknown> | undefined {
    this.observer?.emit(e);
    if (!isRoutine(e)) {
      this.webhooks?.dispatch(e);
      if (e.outcome !== 'success') this.logger.info({ event: e.type, tenant: e.tenant, request_id: e.requestId, actor: e.actor, reason: e.reason }, 'security event');
    }
    if (this.audit === null) return undefined;
    return this.audit.append({
      tenant: e.tenant,
      requestId: e.requestId,
      actor: e.actor,
      action: e.type,
      outcome: e.outcome,
      ...(e.reason !== undefined ? { reason: e.reason } : {}),
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
    });
  }

  emit(e: SecurityEvent): void {
    this.record(e)?.catch(() => undefined);
  }

  async close(): Promise<void> {
    this.apiKeys?.close();
    this.jwt?.close();
    this.allowlist?.close();
    await this.audit?.close();
    if (this.webhooks !== null) {
      // Give queued deliveries a moment; a dead subscriber must not hold up shutdown.
      await Promise.race([this.webhooks.idle(), new Promise((r) => setTimeout(r, 1000).unref())]);
      this.webhooks.close();
    }
  }
}
