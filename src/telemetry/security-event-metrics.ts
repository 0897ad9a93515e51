// Counts the security layer's refusals into the rejection metrics, then passes every event on
// (to the audit log and webhooks). Back-end link and handshake refusals are already counted by
// the LinkTracker from the links themselves, so `link.*`/`handshake.*` events are not counted
// again here.
import type { SecurityEvent, SecurityEventSink } from '../security/events.ts';
import type { AuthMethod, RejectionStats } from './rejection-stats.ts';

/** Auth refusals by event type prefix: mTLS at the TLS layer, tokens and keys at the gates. */
const AUTH_METHOD: ReadonlyArray<readonly [string, AuthMethod]> = [
  ['tls.', 'mtls'],
  ['jwt.', 'jwt'],
  ['apikey.', 'api_key'],
  ['api_key.', 'api_key'],
  ['webhook.', 'webhook'],
  ['auth.', 'none'],
];

function reasonOf(e: SecurityEvent): string {
  // A short stable word: the event's own name (client_refused, expired, ...), never client text.
  const last = e.type.slice(e.type.lastIndexOf('.') + 1);
  return last.replace(/[^a-z0-9_]/g, '_').slice(0, 40) || 'denied';
}

export function countingEventSink(rejections: RejectionStats, next: SecurityEventSink): SecurityEventSink {
  return {
    emit(e: SecurityEvent): void {
      if (e.outcome === 'denied') {
        if (e.type.startsWith('policy.')) {
          rejections.policy('client', reasonOf(e));
        } else {
          const m = AUTH_METHOD.find(([prefix]) => e.type.startsWith(prefix));
          if (m !== undefined) {
            const method = m[1] === 'none' && typeof e.detail?.method === 'string' ? (e.detail.method as AuthMethod) : m[1];
            rejections.auth(method, reasonOf(e));
          }
        }
      }
      next.emit(e);
    },
  };
}
