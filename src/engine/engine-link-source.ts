// An engine's links as LinkTracker sources, read at scrape time: per peer (the TypeScript links'
// labels: the peer's name at an ingress, the remote host at an egress) from the engine's
// per-peer counter blocks (native/engine/engine.h PeerCounters; one addon call per peer and
// scrape), or the totals of its counters block under peer "engine".
import type { LinkTracker } from '../telemetry/link-tracker.ts';
import { ENGINE_COUNTER_NAMES, type EngineCounterName, type EngineCounters } from './engine-counters.ts';

type LinkSource = Parameters<LinkTracker['addSource']>[0];

function totals(get: (name: EngineCounterName) => number): ReturnType<LinkSource['read']> {
  return {
    stats: {
      framesSent: get('linkFramesSent'),
      framesReceived: get('linkFramesReceived'),
      bytesSent: get('linkBytesSent'),
      bytesReceived: get('linkBytesReceived'),
      messagesSent: get('linkMessagesSent'),
      messagesReceived: get('linkMessagesReceived'),
      queuedBytes: get('linkQueuedBytes'),
      rejectedFrames: get('linkRejectedFrames'),
      rekeys: get('linkRekeys'),
    },
    open: get('linksOpen'),
    opened: get('linksOpened'),
    closed: { local: get('linksClosedLocal'), peer: get('linksClosedPeer'), error: get('linksClosedError') },
  };
}

/** All of an engine's links as one series, peer "engine". */
export function engineLinkSource(c: EngineCounters): LinkSource {
  return { segment: 'inference', transport: 'tcp', peer: 'engine', read: () => totals((n) => c.get(n)) };
}

/** What reads one peer's block: NativeEngine.peerLinkCounters. */
export interface PeerCounterReader {
  peerLinkCounters(key: string): number[] | undefined;
}

/**
 * The links of one peer as a series labelled `peer`: `key` is "dialer:<id>" (the ingress's
 * dialer of that peer) or the remote host of accepted links (an egress).
 */
export function enginePeerLinkSource(engine: PeerCounterReader, key: string, peer: string): LinkSource {
  return {
    segment: 'inference',
    transport: 'tcp',
    peer,
    read: () => {
      const v = engine.peerLinkCounters(key);
      return totals((n) => (v === undefined ? 0 : (v[ENGINE_COUNTER_NAMES.indexOf(n)] ?? 0)));
    },
  };
}

/** The host of a link's remote address ("host:port", "[v6]:port"), as the engine keys accepted links. */
export function remoteHost(address: string): string {
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    return close < 0 ? address : address.slice(1, close);
  }
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}
