// Keeps the set of live back-end links so the metrics registry can read their LinkStats at
// scrape time (a plain object per link, no native call per counter), and folds the final
// stats of closed links into per-(segment, transport) totals so counters never go backwards.
import type { Link, LinkStats, SegmentName, TransportKind } from '../transport/types.ts';

export interface LinkTotals {
  readonly segment: SegmentName;
  readonly transport: TransportKind;
  /** Monotonic counters summed over open and closed links; queuedBytes over open links only. */
  readonly stats: LinkStats;
  readonly open: number;
  readonly opened: number;
  readonly closed: number;
  /** Closed with an error (as opposed to a clean close by either side). */
  readonly failed: number;
}

interface Bucket {
  segment: SegmentName;
  transport: TransportKind;
  retired: LinkStats;
  open: Set<Link>;
  opened: number;
  closed: number;
  failed: number;
}

export function emptyLinkStats(): LinkStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    queuedBytes: 0,
    rejectedFrames: 0,
  };
}

function addMonotonic(into: LinkStats, s: LinkStats): void {
  into.framesSent += s.framesSent;
  into.framesReceived += s.framesReceived;
  into.bytesSent += s.bytesSent;
  into.bytesReceived += s.bytesReceived;
  into.messagesSent += s.messagesSent;
  into.messagesReceived += s.messagesReceived;
  into.rejectedFrames += s.rejectedFrames;
}

export class LinkTracker {
  private readonly buckets = new Map<string, Bucket>();

  private bucket(segment: SegmentName, transport: TransportKind): Bucket {
    const key = `${segment}/${transport}`;
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { segment, transport, retired: emptyLinkStats(), open: new Set(), opened: 0, closed: 0, failed: 0 };
      this.buckets.set(key, b);
    }
    return b;
  }

  /** Starts tracking a link; it is dropped (its stats folded in) when it emits 'close'. */
  add(link: Link): void {
    const b = this.bucket(link.segment, link.transport);
    if (b.open.has(link)) return;
    b.opened++;
    if (link.closed) {
      this.retire(b, link, undefined);
      return;
    }
    b.open.add(link);
    link.once('close', (err?: Error) => this.retire(b, link, err));
  }

  private retire(b: Bucket, link: Link, err: Error | undefined): void {
    b.open.delete(link);
    addMonotonic(b.retired, link.stats());
    b.closed++;
    if (err !== undefined && err !== null) b.failed++;
  }

  /** Declares a (segment, transport) pair so its series exist at zero before any link opens. */
  declare(segment: SegmentName, transport: TransportKind): void {
    this.bucket(segment, transport);
  }

  /** Live links on a segment (any transport). */
  openLinks(segment?: SegmentName): Link[] {
    const out: Link[] = [];
    for (const b of this.buckets.values()) {
      if (segment !== undefined && b.segment !== segment) continue;
      for (const l of b.open) out.push(l);
    }
    return out;
  }

  totals(): LinkTotals[] {
    const out: LinkTotals[] = [];
    for (const b of this.buckets.values()) {
      const stats = emptyLinkStats();
      addMonotonic(stats, b.retired);
      for (const l of b.open) {
        const s = l.stats();
        addMonotonic(stats, s);
        stats.queuedBytes += s.queuedBytes;
      }
      out.push({ segment: b.segment, transport: b.transport, stats, open: b.open.size, opened: b.opened, closed: b.closed, failed: b.failed });
    }
    return out;
  }
}
