// Security events: what the gates, listeners and stores report. The runtime turns each one into
// an audit entry and, for the types subscribers asked for, a signed webhook delivery.
import type { AuditOutcome } from '../audit/entry.ts';

export interface SecurityEvent {
  /** Dotted type, also the audit action: `tls.client_refused`, `policy.denied`, `audit.failure`... */
  type: string;
  tenant: string | null;
  requestId: string | null;
  /** Who: key id, token subject, certificate fingerprint, remote address, or a component. */
  actor: string;
  outcome: AuditOutcome;
  reason?: string;
  detail?: Record<string, unknown>;
}

export interface SecurityEventSink {
  /** Never throws and never blocks the caller; delivery is the sink's business. */
  emit(event: SecurityEvent): void;
}

/** A sink that drops events (security off, or in units tested without a runtime). */
export const discardEvents: SecurityEventSink = { emit() {} };
