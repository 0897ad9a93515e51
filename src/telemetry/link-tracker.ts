// Keeps the set of live back-end links so the metrics registry can read their LinkStats at
// scrape time (a plain object per link, no native call per counter), and folds the final
// stats of closed links into per-(segment, transport) totals so counters never go backwards.
// Also counts why links and handshakes ended: crypto and policy refusals into RejectionStats,
// other handshake failures by code.
import type { Link, LinkCloseInfo, LinkStats, Listener, SegmentName, TransportKind } from '../transport/types.ts';
import { PairCounter, type RejectionStats } from './rejection-stats.ts';

export type CloseBy = LinkCloseInfo['by'];

export interface LinkTotals {
  readonly segment: SegmentName;
  readonly transport: TransportKind;
  /** The configured peer name of a dialled link, the remote host of an accepted one. */
  readonly peer: string;
  /** Monotonic counters summed over open and closed links; queuedBytes over open links only. */
  readonly stats: LinkStats;
  readonly open: number;
  readonly opened: number;
  /** Closed links by who ended them: here ('local'), the peer ('peer'), or a failure ('error'). */
  readonly closed: Readonly<Record<CloseBy, number>>;
}

interface Bucket {
  segment: SegmentName;
  transport: TransportKind;
  peer: string;
  retired: LinkStats;
  open: Set<Link>;
  opened: number;
  closed: Record<CloseBy, number>;
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
    rekeys: 0,
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
  into.rekeys += s.rekeys;
}

/** "10.0.0.5:41234" -> "10.0.0.5", "[::1]:41234" -> "::1" (the port changes on every reconnect). */
export function remoteHost(address: string): string {
  const m = /^\[(.*)\]:\d+$/.exec(address) ?? /^([^:]*):\d+$/.exec(address);
  return m?.[1] ?? address;
}

/** Last path part of a stable error code, lower-cased: SLUICE_ERR_HANDSHAKE_TIMEOUT -> timeout. */
function shortCode(err: unknown, prefix: string): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'unknown';
  return (code.startsWith(prefix) ? code.slice(prefix.length) : code).toLowerCase();
}

/** Totals kept elsewhere (the native engine's counters block), read at scrape time. */
export interface LinkTotalsSource {
  readonly segment: SegmentName;
  readonly transport: TransportKind;
  /** The peer label of the series (the engine counts its links together: "engine"). */
  readonly peer: string;
  read(): { stats: LinkStats; open: number; opened: number; closed: Readonly<Record<CloseBy, number>> };
}

export class LinkTracker {
  private readonly buckets = new Map<string, Bucket>();
  private readonly sources = new Set<LinkTotalsSource>();
  /** (segment, code) of handshakes a listener refused. */
  readonly handshakeFailures = new PairCounter();

  constructor(private readonly rejections?: RejectionStats) {}

  private bucket(segment: SegmentName, transport: TransportKind, peer: string): Bucket {
    const key = `${segment}/${transport}/${peer}`;
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { segment, transport, peer, retired: emptyLinkStats(), open: new Set(), opened: 0, closed: { local: 0, peer: 0, error: 0 } };
      this.buckets.set(key, b);
    }
    return b;
  }

  /**
   * Starts tracking a link; it is dropped (its stats folded in) when it emits 'close'. `peer` is
   * the configured peer name of a link this node dialled; accepted links are labelled with the
   * remote host (no port, so reconnects of one peer share a series).
   */
  add(link: Link, peer?: string): void {
    const b = this.bucket(link.segment, link.transport, peer ?? remoteHost(link.remoteAddress));
    if (b.open.has(link)) return;
    b.opened++;
    if (link.closed) {
      this.retire(b, link, undefined);
      return;
    }
    b.open.add(link);
    link.once('close', (info?: LinkCloseInfo) => this.retire(b, link, info));
  }

  /** Counts a listener's refused handshakes (by code) and crypto/policy refusals among them. */
  watchListener(listener: Listener, segment: SegmentName): void {
    listener.on('rejected', (err: unknown) => {
      this.handshakeFailures.inc(segment, shortCode(err, 'SLUICE_ERR_HANDSHAKE_'));
      this.rejections?.peerError(segment, err);
    });
  }

  /** Counts a failed outgoing connect() (its handshake refused or timed out). */
  connectFailed(segment: SegmentName, err: unknown): void {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('SLUICE_ERR_HANDSHAKE_')) {
      this.handshakeFailures.inc(segment, shortCode(err, 'SLUICE_ERR_HANDSHAKE_'));
      this.rejections?.peerError(segment, err);
    }
  }

  private retire(b: Bucket, link: Link, info: LinkCloseInfo | undefined): void {
    b.open.delete(link);
    addMonotonic(b.retired, link.stats());
    b.closed[info?.by ?? 'error']++;
    if (info?.error !== undefined) this.rejections?.peerError(link.segment, info.error);
  }

  /** Adds links that live outside this process' JS (the engine) to the totals; returns a remover. */
  addSource(source: LinkTotalsSource): () => void {
    this.declare(source.segment, source.transport, source.peer);
    this.sources.add(source);
    return () => {
      // Keep what the source counted so the totals never go backwards.
      const b = this.bucket(source.segment, source.transport, source.peer);
      const last = source.read();
      addMonotonic(b.retired, last.stats);
      b.opened += last.opened;
      for (const k of Object.keys(b.closed) as CloseBy[]) b.closed[k] += last.closed[k];
      this.sources.delete(source);
    };
  }

  /** Declares a (segment, transport, peer) so its series exist at zero before any link opens. */
  declare(segment: SegmentName, transport: TransportKind, peer: string): void {
    this.bucket(segment, transport, peer);
  }

  /** Live links, optionally of one segment. */
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
      let open = b.open.size;
      let opened = b.opened;
      const closed = { ...b.closed };
      for (const src of this.sources) {
        if (src.segment !== b.segment || src.transport !== b.transport || src.peer !== b.peer) continue;
        const r = src.read();
        addMonotonic(stats, r.stats);
        stats.queuedBytes += r.stats.queuedBytes;
        open += r.open;
        opened += r.opened;
        for (const k of Object.keys(closed) as CloseBy[]) closed[k] += r.closed[k];
      }
      out.push({ segment: b.segment, transport: b.transport, peer: b.peer, stats, open, opened, closed });
    }
    return out;
  }
}
