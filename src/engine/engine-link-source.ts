// An engine's links as one LinkTracker source: the totals of its counters block, read at scrape
// time (one series, peer "engine": the block sums every link, not one per remote host).
import type { LinkTracker } from '../telemetry/link-tracker.ts';
import type { EngineCounters } from './engine-counters.ts';

export function engineLinkSource(c: EngineCounters): Parameters<LinkTracker['addSource']>[0] {
  return {
    segment: 'inference',
    transport: 'tcp',
    peer: 'engine',
    read: () => ({
      stats: {
        framesSent: c.get('linkFramesSent'),
        framesReceived: c.get('linkFramesReceived'),
        bytesSent: c.get('linkBytesSent'),
        bytesReceived: c.get('linkBytesReceived'),
        messagesSent: c.get('linkMessagesSent'),
        messagesReceived: c.get('linkMessagesReceived'),
        queuedBytes: c.get('linkQueuedBytes'),
        rejectedFrames: c.get('linkRejectedFrames'),
        rekeys: c.get('linkRekeys'),
      },
      open: c.get('linksOpen'),
      opened: c.get('linksOpened'),
      closed: { local: c.get('linksClosedLocal'), peer: c.get('linksClosedPeer'), error: c.get('linksClosedError') },
    }),
  };
}
