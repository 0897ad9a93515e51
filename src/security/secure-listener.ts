// A TLS listener for client traffic that sluice terminates itself (node:tls), so every step is
// in reach: the cipher allowlist and version floor, client certificates chained to the CA and
// then pinned by fingerprint against the allowlist, audited refusals (unknown or revoked
// certificates, failed handshakes), live connections of a revoked certificate dropped at once,
// and the server certificate reloaded on SIGHUP. Accepted sockets are handed on ('connection')
// to the gRPC server (connection injector) or to the HTTP front.
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { ClientCertAllowlist } from './client-cert-allowlist.ts';
import { normalizeFingerprint } from './client-cert-allowlist.ts';
import type { SecurityEventSink } from './events.ts';
import { loadTlsMaterial, secureContextOptions, tlsServerOptions, type TlsConfig, type TlsMaterial } from './tls-options.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from '../config/schema.ts';
import { capConnections, type ListenerLimits } from '../net/connection-limits.ts';

export interface PeerIdentity {
  /** SHA-256 of the client certificate (lowercase hex), or null without mTLS. */
  fingerprint: string | null;
  subject: string | null;
}

export interface SecureListenerOptions {
  /** Label in events: "grpc" or "http". */
  name: string;
  host: string;
  port: number;
  tls: TlsConfig;
  alpn: string[];
  /** Required when tls.clientCerts.mode is "require". */
  allowlist: ClientCertAllowlist | null;
  events: SecurityEventSink;
  /** Handshake-failure events per second before they are summarised (default 20). */
  handshakeEventsPerSecond?: number;
  /** The listener's connection limits: the TLS handshake must finish within handshakeTimeoutMs. */
  limits?: ListenerLimits;
}

/** Events: 'connection' (socket: TLSSocket, peer: PeerIdentity), 'error' (Error). */
export class SecureListener extends EventEmitter {
  readonly name: string;
  private readonly server: Server;
  private readonly opts: SecureListenerOptions;
  private readonly byFingerprint = new Map<string, Set<TLSSocket>>();
  private readonly sockets = new Set<TLSSocket>();
  private readonly onRevoked: (change: { removed: string[] }) => void;
  private readonly onHup = () => void this.reloadCertificates();
  private failureWindow = { start: 0, count: 0, suppressed: 0 };

  private constructor(opts: SecureListenerOptions, material: TlsMaterial) {
    super();
    this.name = opts.name;
    this.opts = opts;
    if (material.requireClientCert && opts.allowlist === null) throw new RangeError('mTLS requires a client certificate allowlist');
    // Node's default is 120 s, and a failed handshake's socket stays open unless closed here.
    this.server = createServer({ ...tlsServerOptions(material, opts.alpn), handshakeTimeout: opts.limits?.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS });
    if (opts.limits !== undefined) capConnections(this.server, opts.limits);
    this.server.on('secureConnection', (socket) => this.accept(socket));
    this.server.on('tlsClientError', (err, socket) => this.handshakeFailed(err, socket));
    this.server.on('error', (err) => this.emit('error', err));
    this.onRevoked = ({ removed }) => this.dropRevoked(removed);
    opts.allowlist?.on('reload', this.onRevoked);
    process.on('SIGHUP', this.onHup);
  }

  static async listen(opts: SecureListenerOptions): Promise<SecureListener> {
    const l = new SecureListener(opts, await loadTlsMaterial(opts.tls));
    await new Promise<void>((resolve, reject) => {
      l.server.once('error', reject);
      l.server.listen(opts.port, opts.host, () => {
        l.server.off('error', reject);
        resolve();
      });
    });
    return l;
  }

  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  /** Re-reads the server certificate and key (rotation without restart); new handshakes use them. */
  async reloadCertificates(): Promise<void> {
    try {
      this.server.setSecureContext(secureContextOptions(await loadTlsMaterial(this.opts.tls)));
    } catch (err) {
      this.opts.events.emit({ type: 'tls.reload_failed', tenant: null, requestId: null, actor: `listener:${this.name}`, outcome: 'failure', detail: { error: (err as Error).message } });
    }
  }

  /** Stops accepting new connections; live ones stay until close(). */
  stopAccepting(): void {
    if (this.server.listening) this.server.close();
  }

  async close(): Promise<void> {
    this.opts.allowlist?.off('reload', this.onRevoked);
    process.off('SIGHUP', this.onHup);
    const closed = this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private accept(socket: TLSSocket): void {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    let peer: PeerIdentity = { fingerprint: null, subject: null };
    const allowlist = this.opts.allowlist;
    if (allowlist !== null) {
      const cert = socket.getPeerCertificate();
      const fp = cert.fingerprint256 !== undefined ? normalizeFingerprint(cert.fingerprint256) : null;
      peer = { fingerprint: fp, subject: typeof cert.subject?.CN === 'string' ? cert.subject.CN : null };
      if (fp === null || !socket.authorized || !allowlist.has(fp)) {
        this.opts.events.emit({
          type: 'tls.client_refused',
          tenant: null,
          requestId: null,
          actor: fp === null ? `remote:${remote}` : `cert:${fp}`,
          outcome: 'denied',
          detail: { listener: this.name, remote, subject: peer.subject, issuer: cert.issuer?.CN ?? null, serial: cert.serialNumber ?? null, reason: fp === null ? 'no certificate' : 'certificate not in allowlist' },
        });
        socket.destroy();
        return;
      }
      let set = this.byFingerprint.get(fp);
      if (set === undefined) this.byFingerprint.set(fp, (set = new Set()));
      set.add(socket);
      socket.once('close', () => {
        set.delete(socket);
        if (set.size === 0) this.byFingerprint.delete(fp);
      });
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    this.emit('connection', socket, peer);
  }

  private dropRevoked(removed: string[]): void {
    for (const fp of removed) {
      const live = this.byFingerprint.get(fp);
      if (live === undefined) continue;
      this.opts.events.emit({ type: 'tls.client_revoked', tenant: null, requestId: null, actor: `cert:${fp}`, outcome: 'denied', detail: { listener: this.name, connections_closed: live.size } });
      for (const s of live) s.destroy();
    }
  }

  private handshakeFailed(err: Error & { code?: string }, socket: TLSSocket): void {
    // With a 'tlsClientError' listener Node leaves the socket to us: close it, or it stays.
    socket.destroy();
    this.opts.limits?.onRefused?.(err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake_timeout' : 'tls_handshake_failed');
    const limit = this.opts.handshakeEventsPerSecond ?? 20;
    const now = Date.now();
    const w = this.failureWindow;
    if (now - w.start >= 1000) {
      w.start = now;
      w.count = 0;
    }
    if (w.count >= limit) {
      // A flood of bad handshakes must not turn into a flood of fsyncs: count, report later.
      w.suppressed++;
      return;
    }
    w.count++;
    const suppressed = w.suppressed;
    w.suppressed = 0;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.opts.events.emit({
      type: 'tls.handshake_failed',
      tenant: null,
      requestId: null,
      actor: `remote:${remote}`,
      outcome: 'denied',
      detail: { listener: this.name, code: err.code ?? null, error: err.message.slice(0, 200), ...(suppressed > 0 ? { suppressed_since_last: suppressed } : {}) },
    });
  }
}
