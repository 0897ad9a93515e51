// Counts the security layer's refusals into the rejection metrics, then passes every event on.
// Back-end link and handshake refusals (`segment.violation`, `link.*`) are already counted by
// the LinkTracker from the links themselves, so they are not counted again here. Labels are
// short constant words derived from stable codes and event types, never client text.
import { discardEvents, type SecurityEvent, type SecurityEventSink } from '../security/events.ts';
import type { AuthMethod, RejectionStats } from './rejection-stats.ts';

/** SLUICE_ERR_PERMISSION_DENIED -> permission_denied; anything else -> the fallback. */
function shortCode(v: unknown, fallback: string): string {
  return typeof v === 'string' && /^SLUICE_ERR_[A-Z0-9_]+$/.test(v) ? v.slice('SLUICE_ERR_'.length).toLowerCase() : fallback;
}

/** The kind of credential the gates saw (`detail.credential`); 'none' when there was none. */
function methodOf(e: SecurityEvent): AuthMethod {
  const c = e.detail?.credential;
  return c === 'api_key' || c === 'jwt' ? c : 'none';
}

/** A rate-limited listener reports bad handshakes in summaries: count the ones it held back too. */
function suppressedToo(e: SecurityEvent): number {
  const n = e.detail?.suppressed_since_last;
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? 1 + n : 1;
}

export function countingEventSink(rejections: RejectionStats, next: SecurityEventSink = discardEvents): SecurityEventSink {
  return {
    emit(e: SecurityEvent): void {
      if (e.outcome === 'denied') {
        if (e.type === 'auth.failed') rejections.auth(methodOf(e), shortCode(e.detail?.code, 'failed'));
        else if (e.type === 'policy.denied') {
          // The egress re-checks the tenant bound into inference frames; the gates check clients.
          rejections.policy(e.detail?.gate === 'egress' ? 'inference' : 'client', shortCode(e.detail?.code, 'denied'));
        } else if (e.type === 'ratelimit.exceeded') rejections.policy('client', 'rate_limited');
        else if (e.type.startsWith('tls.')) rejections.authRejections.inc('mtls', e.type.slice('tls.'.length), suppressedToo(e));
      }
      next.emit(e);
    },
  };
}
