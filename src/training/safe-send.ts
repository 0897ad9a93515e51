// Sends a message on a link that may have closed meanwhile: a transfer's reply to a dead link
// is simply lost (the sender resumes on a new link and asks again), never a thrown error.
import type { Link, OutboundMessage } from '../transport/types.ts';

export function sendIfOpen(link: Link | undefined, msg: OutboundMessage): boolean {
  if (link === undefined || link.closed) return false;
  try {
    link.send(msg);
    return true;
  } catch {
    return false;
  }
}
