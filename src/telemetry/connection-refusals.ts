// Connections a listener refused or closed before they did any work: over the connection limit,
// no TLS handshake or protocol preface in time, idle too long, a connection-level protocol error,
// a peer that stopped answering. Counted as sluice_connections_refused_total{listener,reason};
// the ingress engine reports into the same counter with the same labels.
import { PairCounter, type CountedPair } from './rejection-stats.ts';

/** Metric label values: short constants, never client text. */
export const ConnectionRefusalReason = {
  /** listeners.*.maxConnections (or the segment listener's handshakes in progress) reached. */
  MAX_CONNECTIONS: 'max_connections',
  /** No finished TLS handshake / HTTP/2 preface and SETTINGS / segment handshake within handshakeTimeoutMs. */
  HANDSHAKE_TIMEOUT: 'handshake_timeout',
  /** The TLS handshake failed (bad ClientHello, protocol or cipher mismatch, refused client certificate). */
  TLS_HANDSHAKE_FAILED: 'tls_handshake_failed',
  /** The segment handshake failed (wrong key, wrong segment, garbage). */
  HANDSHAKE_FAILED: 'handshake_failed',
  /** Nothing in flight and nothing received for idleTimeoutMs. */
  IDLE_TIMEOUT: 'idle_timeout',
  /** An HTTP/2 connection error: GOAWAY was sent, then the connection closed. */
  PROTOCOL_ERROR: 'protocol_error',
  /** An HTTP/2 peer that did not answer a PING within handshakeTimeoutMs. */
  UNRESPONSIVE: 'unresponsive',
} as const;
export type ConnectionRefusalReason = (typeof ConnectionRefusalReason)[keyof typeof ConnectionRefusalReason];

/** Where a listener reports (listener names: http, grpc, metrics, segment:inference, segment:training). */
export type ConnectionRefusalSink = (listener: string, reason: ConnectionRefusalReason) => void;

/** Counts kept elsewhere (the native engine's counters block), read at scrape time. */
export type ConnectionRefusalSource = () => Partial<Record<ConnectionRefusalReason, number>>;

export class ConnectionRefusals {
  readonly counts = new PairCounter();
  private readonly sources = new Map<ConnectionRefusalSource, string>();
  /** Bound, so listeners can take it as a plain callback. */
  readonly record: ConnectionRefusalSink = (listener, reason) => this.counts.inc(listener, reason);

  /** Adds a listener's counts read from elsewhere (the engine's ingress); the returned function removes it, keeping what it counted. */
  addSource(listener: string, read: ConnectionRefusalSource): () => void {
    this.sources.set(read, listener);
    return () => {
      for (const [reason, n] of Object.entries(read())) if (n !== undefined && n > 0) this.counts.inc(listener, reason, n);
      this.sources.delete(read);
    };
  }

  get(listener: string, reason: ConnectionRefusalReason): number {
    let n = this.counts.get(listener, reason);
    for (const [read, l] of this.sources) if (l === listener) n += read()[reason] ?? 0;
    return n;
  }

  /** Every (listener, reason) count: recorded ones plus the sources' (for the metric). */
  all(): IterableIterator<CountedPair> {
    const merged = new PairCounter();
    for (const e of this.counts.all()) merged.inc(e.a, e.b, e.value);
    for (const [read, listener] of this.sources) for (const [reason, n] of Object.entries(read())) if (n !== undefined) merged.inc(listener, reason, n);
    return merged.all();
  }
}

/** The refusal reason of a segment listener's 'rejected' error (handshake error codes), or null for a peer that just left. */
export function segmentRefusalReason(err: unknown): ConnectionRefusalReason | null {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'SLUICE_ERR_HANDSHAKE_TIMEOUT':
      return ConnectionRefusalReason.HANDSHAKE_TIMEOUT;
    case 'SLUICE_ERR_HANDSHAKE_BUSY':
      return ConnectionRefusalReason.MAX_CONNECTIONS;
    case 'SLUICE_ERR_HANDSHAKE_CLOSED':
      return null;
    default:
      return ConnectionRefusalReason.HANDSHAKE_FAILED;
  }
}
