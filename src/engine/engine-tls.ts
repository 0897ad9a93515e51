// TLS on the engine's gRPC listener, the control-plane half: the material the engine's TLS
// context is built from (the same files and policy as src/security/secure-listener.ts), its
// reload on SIGHUP, the mTLS allowlist pushed to the engine on every change (the engine closes
// live connections of removed certificates), and the engine's TLS events turned into the
// security events the TypeScript listener emits (audit entries, webhooks).
import type { ClientCertAllowlist } from '../security/client-cert-allowlist.ts';
import type { SecurityEventSink } from '../security/events.ts';
import { loadTlsMaterial, type TlsConfig } from '../security/tls-options.ts';
import type { EngineIngressConfig } from './engine-addon.ts';
import type { EngineTlsAudit, NativeEngine } from './native-engine.ts';

export interface EngineTlsOptions {
  tls: TlsConfig;
  /** Required when tls.clientCerts.mode is "require". */
  allowlist: ClientCertAllowlist | null;
  events: SecurityEventSink;
  /** Label in events ("grpc"). */
  name: string;
}

/** The `tls` part of the engine's ingress config; throws SLUICE_ERR_TLS_CONFIG when a file cannot be read. */
export async function engineTlsConfig(o: EngineTlsOptions): Promise<NonNullable<EngineIngressConfig['tls']>> {
  const material = await loadTlsMaterial(o.tls);
  if (material.requireClientCert && o.allowlist === null) throw new RangeError('mTLS requires a client certificate allowlist');
  return { ...material, allowlist: o.allowlist?.fingerprints() ?? [] };
}

/** Keeps a running engine's TLS current and reports its TLS events; detach() on close. */
export class EngineTlsControl {
  readonly #engine: NativeEngine;
  readonly #o: EngineTlsOptions;
  readonly #onHup = () => void this.reloadCertificates();
  readonly #onAllowlist = () => this.#engine.setClientAllowlist(this.#o.allowlist?.fingerprints() ?? []);
  readonly #onAudit = (a: EngineTlsAudit) => this.#report(a);

  constructor(engine: NativeEngine, o: EngineTlsOptions) {
    this.#engine = engine;
    this.#o = o;
    engine.on('tls-audit', this.#onAudit);
    o.allowlist?.on('reload', this.#onAllowlist);
    process.on('SIGHUP', this.#onHup);
  }

  /** Re-reads the certificate and key (rotation without restart); new handshakes use them. */
  async reloadCertificates(): Promise<void> {
    try {
      const material = await loadTlsMaterial(this.#o.tls);
      this.#engine.reloadTls(material);
    } catch (err) {
      this.#o.events.emit({ type: 'tls.reload_failed', tenant: null, requestId: null, actor: `listener:${this.#o.name}`, outcome: 'failure', detail: { error: (err as Error).message } });
    }
  }

  detach(): void {
    process.off('SIGHUP', this.#onHup);
    this.#o.allowlist?.off('reload', this.#onAllowlist);
    this.#engine.off('tls-audit', this.#onAudit);
  }

  /** The records secure-listener.ts writes for the same events. */
  #report(a: EngineTlsAudit): void {
    const listener = this.#o.name;
    const base = { tenant: null, requestId: null, outcome: 'denied' as const };
    switch (a.type) {
      case 'tls.handshake_failed':
        this.#o.events.emit({ ...base, type: a.type, actor: `remote:${a.remote}`, detail: { listener, code: a.code, error: a.message, ...(a.count > 0 ? { suppressed_since_last: a.count } : {}) } });
        return;
      case 'tls.client_refused': {
        const fp = a.cert?.fingerprint ?? null;
        this.#o.events.emit({
          ...base,
          type: a.type,
          actor: fp === null ? `remote:${a.remote}` : `cert:${fp}`,
          detail: { listener, remote: a.remote, subject: a.cert?.subject ?? null, issuer: a.cert?.issuer ?? null, serial: a.cert?.serial ?? null, reason: a.message },
        });
        return;
      }
      case 'tls.client_revoked':
        this.#o.events.emit({ ...base, type: a.type, actor: `cert:${a.cert?.fingerprint ?? '?'}`, detail: { listener, connections_closed: a.count } });
        return;
    }
  }
}
