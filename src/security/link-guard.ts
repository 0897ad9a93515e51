// Turns what the back-end links refuse into audited security events. The wire layer already
// enforces segment policy and frame integrity at both ends (a sender cannot queue a class its
// segment may not carry; a receiver drops the link on a frame of the wrong segment or class, a
// replay, a gap, a bad nonce, key or tag); this makes each refusal visible in the audit log
// and to webhook subscribers.
import { peerRefusal } from '../transport/errors.ts';
import type { Link, LinkCloseInfo, Listener, SegmentName } from '../transport/types.ts';
import type { SecurityEventSink } from './events.ts';

/** Event type for a refusal code, or null when the code is not a security matter. */
export function violationType(code: string | undefined): string | null {
  const r = peerRefusal(code);
  if (r === undefined) return null;
  if (r.kind === 'policy') return 'segment.violation';
  return r.reason === 'handshake_auth' ? 'link.handshake_refused' : 'link.frame_rejected';
}

/** Audits the frames a link refuses (it closes itself; this records why). */
export function guardLink(link: Link, events: SecurityEventSink): void {
  link.once('close', (info: LinkCloseInfo | undefined) => {
    const err = info?.error as (Error & { code?: string }) | undefined;
    if (info?.by !== 'error' || err === undefined) return;
    const type = violationType(err.code);
    if (type === null) return;
    events.emit({
      type,
      tenant: null,
      requestId: null,
      actor: `peer:${link.remoteAddress}`,
      outcome: 'denied',
      detail: { segment: link.segment, transport: link.transport, link: link.id, code: err.code, error: err.message.slice(0, 300) },
    });
  });
}

/** Audits handshakes a back-end listener refuses (wrong segment key, wrong segment). */
export function guardListener(listener: Listener, segment: SegmentName, events: SecurityEventSink): void {
  listener.on('rejected', (err: Error & { code?: string }, remote: string) => {
    const type = violationType(err.code);
    if (type === null) return;
    events.emit({ type, tenant: null, requestId: null, actor: `peer:${remote}`, outcome: 'denied', detail: { segment, code: err.code, error: err.message.slice(0, 300) } });
  });
  listener.on('link', (link: Link) => guardLink(link, events));
}
