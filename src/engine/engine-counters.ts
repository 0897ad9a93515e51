import { QUEUE_DELAY_BUCKETS_SECONDS } from '../telemetry/bucket-histogram.ts';

// The engine's counters, read straight from native memory (native/engine/counters.h): a scrape
// reads a BigUint64Array view, no call into the addon. The names are the ABI: same order as the
// Counter enum.
export const ENGINE_COUNTER_NAMES = [
  'linkFramesSent',
  'linkFramesReceived',
  'linkBytesSent',
  'linkBytesReceived',
  'linkMessagesSent',
  'linkMessagesReceived',
  'linkQueuedBytes',
  'linkRejectedFrames',
  'linkRekeys',
  'linksOpen',
  'linksOpened',
  'linksClosedLocal',
  'linksClosedPeer',
  'linksClosedError',
  'handshakesInProgress',
  'handshakesFailed',
  'keepaliveTimeouts',
  'egressCallsInflight',
  'egressCalls',
  'egressCallsCancelled',
  'egressUpstreamConnects',
  'egressUpstreamConnectFailures',
  'egressUpstreamSessionsOpen',
  'egressBadEnvelopes',
] as const;

export type EngineCounterName = (typeof ENGINE_COUNTER_NAMES)[number];

const STATUS_BASE = ENGINE_COUNTER_NAMES.length;
const STATUS_COUNT = 17;
const EVENTS_DROPPED = STATUS_BASE + STATUS_COUNT;
/** Slots in the block: the named counters, replies by gRPC status, dropped events. */
/** After the dropped events: the gRPC ingress's slots (counters.h kIngress*). */
const INGRESS_SLOTS = [
  'ingressCallsInflight',
  'ingressFastCalls',
  'ingressRelayedCalls',
  // Admission and retries of the fast path (native/engine/upstream_policy.h).
  'ingressShedInFlight',
  'ingressShedQueueDelay',
  'ingressShedDeadline',
  'ingressRetries',
  'ingressRetriesDenied',
  'ingressPeersEjected',
  // gRPC connections refused or closed early, by reason (grpc_ingress.h RefusalReason).
  'ingressRefusedMaxConnections',
  'ingressRefusedHandshakeTimeout',
  'ingressRefusedIdleTimeout',
  'ingressRefusedProtocolError',
] as const;
export type EngineIngressCounterName = (typeof INGRESS_SLOTS)[number];
/** After the ingress slots: the links' scheduling delay (counters.h kSchedDelay*), per class the QUEUE_DELAY_BUCKETS_SECONDS buckets (+Inf last) and the summed nanoseconds. */
const SCHED_DELAY_BASE = EVENTS_DROPPED + 1 + INGRESS_SLOTS.length;
const SCHED_DELAY_BUCKETS = QUEUE_DELAY_BUCKETS_SECONDS.length + 1;
const SCHED_DELAY_CLASSES = ['control', 'inference'] as const;
export type EngineDelayClass = (typeof SCHED_DELAY_CLASSES)[number];
export const ENGINE_COUNTER_SLOTS = SCHED_DELAY_BASE + SCHED_DELAY_CLASSES.length * (SCHED_DELAY_BUCKETS + 1);

export class EngineCounters {
  readonly #view: BigUint64Array;

  constructor(view: BigUint64Array) {
    if (view.length !== ENGINE_COUNTER_SLOTS) {
      throw new RangeError(`engine counter block has ${view.length} slots, this build of sluice expects ${ENGINE_COUNTER_SLOTS}`);
    }
    this.#view = view;
  }

  get(name: EngineCounterName): number {
    return Number(this.#view[ENGINE_COUNTER_NAMES.indexOf(name)]);
  }

  /** Replies sent by the egress with gRPC status `status` (0..16). */
  replies(status: number): number {
    return Number(this.#view[STATUS_BASE + status]);
  }

  get eventsDropped(): number {
    return Number(this.#view[EVENTS_DROPPED]);
  }

  /** The gRPC ingress's counters (fast-path calls in flight, calls per path). */
  ingress(name: EngineIngressCounterName): number {
    return Number(this.#view[EVENTS_DROPPED + 1 + INGRESS_SLOTS.indexOf(name)]);
  }

  /** Messages the engine's links sent of class `cls`, counted per scheduling-delay bucket (+Inf last), and their summed delay in nanoseconds. Cumulative. */
  schedulingDelay(cls: EngineDelayClass): { counts: number[]; sumNs: number } {
    const base = SCHED_DELAY_BASE + SCHED_DELAY_CLASSES.indexOf(cls) * (SCHED_DELAY_BUCKETS + 1);
    const counts = new Array<number>(SCHED_DELAY_BUCKETS);
    for (let i = 0; i < SCHED_DELAY_BUCKETS; i++) counts[i] = Number(this.#view[base + i]);
    return { counts, sumNs: Number(this.#view[base + SCHED_DELAY_BUCKETS]) };
  }

  /** Every named counter at once (one pass over the view). */
  snapshot(): Record<EngineCounterName, number> {
    const out = {} as Record<EngineCounterName, number>;
    ENGINE_COUNTER_NAMES.forEach((name, i) => {
      out[name] = Number(this.#view[i]);
    });
    return out;
  }
}
