// Sends a message whose loss is already handled elsewhere (a reply or cancel on a link that may
// be closing: the peer learns of the close from the link itself). Returns false when not sent.
import type { Link, OutboundMessage } from './types.ts';

export function sendQuietly(link: Link, msg: OutboundMessage): boolean {
  if (link.closed) return false;
  try {
    link.send(msg);
    return true;
  } catch {
    return false;
  }
}
