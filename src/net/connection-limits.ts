// The connection limits every client listener applies (listeners.*: handshakeTimeoutMs,
// idleTimeoutMs, maxConnections) and the two helpers node:net servers share: the accept cap,
// and a deadline for the first sign of life of a connection.
import type net from 'node:net';
import type { ConnectionRefusalReason } from '../telemetry/connection-refusals.ts';

export interface ListenerLimits {
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections?: number | undefined;
  /** Told about every connection refused or closed by these limits (the metric). */
  onRefused?: ((reason: ConnectionRefusalReason) => void) | undefined;
}

/** Connections over `max` are closed on accept by Node itself (server.maxConnections); each is reported. */
export function capConnections(server: net.Server, limits: Pick<ListenerLimits, 'maxConnections' | 'onRefused'>): void {
  if (limits.maxConnections === undefined) return;
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => limits.onRefused?.('max_connections'));
}

/**
 * Destroys `socket` unless `done()` is called within `ms` (a client that connects and says
 * nothing, or half of what it must). Returns `done`.
 */
export function handshakeDeadline(socket: net.Socket, ms: number, onExpired: () => void): () => void {
  const timer = setTimeout(() => {
    if (socket.destroyed) return;
    onExpired();
    socket.destroy();
  }, ms);
  timer.unref();
  const done = (): void => clearTimeout(timer);
  socket.once('close', done);
  return done;
}
