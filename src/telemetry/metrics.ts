// sluice's Prometheus registry. Every value is kept as plain numbers by the part that updates it
// (RequestStats, LinkStats, RejectionStats, scheduler queues, RDMA counters) and read here at
// scrape time through collect() callbacks, so the data path never calls into prom-client.
// docs/operations.md lists every metric; keep it in step with this file.
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { SegmentName, TrafficClass } from '../transport/types.ts';
import { BucketHistogram, QUEUE_DELAY_BUCKETS_SECONDS } from './bucket-histogram.ts';
import { ConnectionRefusals } from './connection-refusals.ts';
import { EventLoopDelayMonitor } from './event-loop-delay.ts';
import type { HealthModel } from './health.ts';
import { HistogramCollector, type HistogramSeries } from './histogram-collector.ts';
import { LinkTracker } from './link-tracker.ts';
import { PairCounter, RejectionStats } from './rejection-stats.ts';
import { allRdmaDeviceStats } from './rdma-stats.ts';
import { RequestStats } from './request-stats.ts';
import { SegmentQueueStats } from './scheduler-telemetry.ts';
import { oldNameOf, RENAMED_METRICS } from './metric-names.ts';
import { TrainingStats } from './training-stats.ts';
import type { QueueSource, RdmaSnapshot, RdmaSource, ReloadStats } from './stat-sources.ts';
import type { ReceivePool } from '../wire/receive-pool.ts';
import type { PushBuffers } from '../training/push-buffers.ts';
import type { GovernorStats } from '../scheduler/latency-sample-ring.ts';

export const METRIC_PREFIX = 'sluice_';

/** Metric families another thread's registry exports (exportForMerge); summed per label set. */
const MERGED_FAMILIES = ['link_', 'links_', 'queue_', 'scheduling_delay', 'bulk_share', 'crypto_rejections', 'policy_rejections', 'handshake_failures', 'rdma_', 'training_', 'connections_refused', 'threat_'].map(
  (n) => METRIC_PREFIX + n,
);

/** Metric families as prom-client's getMetricsAsJSON() gives them (structured-clone safe). */
export type RemoteMetrics = MetricObjectWithValues<MetricValue<string>>[];

type Sample<L extends string> = readonly [Readonly<Record<L, string>>, number];

export interface MetricsOptions {
  /** sluice version for sluice_build_info. */
  version?: string;
  /** Process metrics (CPU, memory, event loop lag, GC) under the sluice_ prefix. Default true. */
  processMetrics?: boolean;
  /** Cap on distinct model label values (beyond it: "_other"). */
  maxModels?: number;
}

interface RdmaTotals {
  completions: Map<string, number>;
  completionErrors: Map<string, number>;
}

export class SluiceMetrics {
  readonly registry = new Registry();
  readonly requests: RequestStats;
  readonly rejections = new RejectionStats();
  /** Connections listeners refused or closed (limits, timeouts, protocol errors). */
  readonly connectionRefusals = new ConnectionRefusals();
  readonly links = new LinkTracker(this.rejections);
  readonly reloads: ReloadStats = { success: 0, failure: 0, lastSuccessSeconds: 0 };
  /** Calls from the egress to model servers, by model and gRPC status name (their duration is model time). */
  readonly upstreamCalls: RequestStats;
  /** Training transfers (bytes, starts, resumes, endings, failures). */
  readonly training = new TrainingStats();
  /** Threat detection signals by (signal, tenant), and tensor-tap copies dropped (queue full). */
  readonly threatSignals = new PairCounter();
  readonly threatTap = { dropped: 0 };
  /** Event-loop delay of this process (running unless processMetrics is false). */
  readonly eventLoop = new EventLoopDelayMonitor();

  private readonly delay = new Map<string, { segment: SegmentName; cls: TrafficClass; histogram: BucketHistogram }>();
  private readonly queueSources = new Set<QueueSource>();
  private readonly delaySources = new Set<() => void>();
  private readonly segmentQueueStats = new Map<SegmentName, SegmentQueueStats>();
  private readonly rdmaSources = new Set<RdmaSource>();
  /** Counters of RDMA sources that went away, so the totals stay monotonic. */
  private readonly rdmaRetired = new Map<string, RdmaTotals>();
  private readonly inFlightSources = new Map<string, () => number>();
  private readonly remoteSources = new Set<() => Promise<RemoteMetrics>>();
  private readonly threads = new Map<string, { policy: string; nice: number }>();
  private health: HealthModel | undefined;
  /** The training thread's receive pool (src/wire/receive-pool.ts), when it has one. */
  receivePool: ReceivePool | undefined;
  /** The training thread's pooled Push buffers (src/training/push-buffers.ts), when it has them. */
  pushBuffers: PushBuffers | undefined;
  /** The training thread's bulk governor as it last published itself (src/scheduler/ring-fed-governor.ts). */
  bulkGovernor: (() => GovernorStats | undefined) | undefined;
  private admission: AdmissionSource | undefined;

  constructor(opts: MetricsOptions = {}) {
    this.requests = new RequestStats(opts.maxModels === undefined ? {} : { maxModels: opts.maxModels });
    this.upstreamCalls = new RequestStats(opts.maxModels === undefined ? {} : { maxModels: opts.maxModels });
    const r = this.registry;
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: r, prefix: METRIC_PREFIX });
      this.eventLoop.start();
      renamePrefabGauges(r);
    }
    // prom-client's nodejs_eventloop_lag_* gauges reset at every scrape and sample every 10 ms;
    // this histogram is cumulative (rate() works, several scrapers do not disturb each other).
    new HistogramCollector('sluice_event_loop_delay_seconds', 'How late the event loop ran a timer due every 2 ms (20 ms where the native engine carries all inference calls): the wait of any ready work (an inference request) behind synchronous work (sealing, decrypting, hashing bulk).', [], () => [
      { labels: {}, histogram: this.eventLoop.histogram },
    ]).register(r);
    gauge(r, 'event_loop_delay_max_seconds', 'Largest event-loop delay over the last 10 to 20 seconds.', [], () => [[{}, this.eventLoop.maxSeconds()]]);

    gauge(r, 'build_info', 'Always 1; labels carry the sluice and Node.js versions.', ['version', 'node_version'], () => [
      [{ version: opts.version ?? 'unknown', node_version: process.versions.node }, 1],
    ]);

    // Requests (recorded by the ingress as each request finishes).
    counter(r, 'requests_total', 'Client requests finished, by protocol, traffic class, model and result code.', ['protocol', 'class', 'model', 'code'], () =>
      map(this.requests.all(), (s) => [{ protocol: s.protocol, class: s.cls, model: s.model, code: s.code }, s.latency.count]),
    );
    new HistogramCollector('sluice_request_duration_seconds', 'Client request latency from first byte in to last byte out.', ['protocol', 'class', 'model', 'code'], () =>
      map(this.requests.all(), (s): HistogramSeries<'protocol' | 'class' | 'model' | 'code'> => ({
        labels: { protocol: s.protocol, class: s.cls, model: s.model, code: s.code },
        histogram: s.latency,
      })),
    ).register(r);
    gauge(r, 'requests_in_flight', 'Requests accepted and not yet answered, by where they wait: ingress (client requests crossing the segment) or egress (calls to model servers).', ['stage'], () =>
      map(this.inFlightSources, ([stage, read]) => [{ stage }, read()]),
    );

    new HistogramCollector(
      'sluice_upstream_request_duration_seconds',
      'Calls from the egress to model servers, from the call to the answer: model time. sluice\'s own overhead is request duration minus this.',
      ['model', 'code'],
      () => map(this.upstreamCalls.all(), (s): HistogramSeries<'model' | 'code'> => ({ labels: { model: s.model, code: s.code }, histogram: s.latency })),
    ).register(r);
    counter(r, 'requests_shed_total', 'Requests refused at admission (RESOURCE_EXHAUSTED / 429) by the load shedder, by cause (in_flight, queue_delay, deadline).', ['cause'], () =>
      this.admission === undefined ? [] : Object.entries(this.admission.shed).map(([cause, n]): Sample<'cause'> => [{ cause }, n]),
    );
    counter(r, 'request_retries_total', 'Failed segment calls, by outcome: retried on another egress peer, or denied (no retry budget, time or attempts left, or the failure happened at the model).', ['outcome'], () =>
      this.admission === undefined
        ? []
        : [
            [{ outcome: 'retried' }, this.admission.retries],
            [{ outcome: 'denied' }, this.admission.retriesDenied],
          ],
    );

    // Training transfers.
    counter(r, 'training_bytes_total', 'Tensor bytes of training transfers: acknowledged by the receiver (outbound) or written to the sink (inbound); a resume counts only what it moves.', ['direction'], () =>
      Object.entries(this.training.bytes()).map(([direction, n]): Sample<'direction'> => [{ direction }, n]),
    );
    counter(r, 'training_transfers_started_total', 'Training transfers begun, by direction.', ['direction'], () =>
      Object.entries(this.training.started).map(([direction, n]): Sample<'direction'> => [{ direction }, n]),
    );
    gauge(r, 'training_transfers', 'Training transfers in progress, by direction and state (connecting, sending, resuming, verifying, receiving).', ['direction', 'state'], () =>
      map(this.training.active().values(), (e): Sample<'direction' | 'state'> => [{ direction: e.direction, state: e.state }, e.n]),
    );
    counter(r, 'training_transfers_ended_total', 'Training transfers finished, by direction and final state (completed, failed, cancelled).', ['direction', 'state'], () =>
      map(this.training.ended.values(), (e): Sample<'direction' | 'state'> => [{ direction: e.direction, state: e.state }, e.n]),
    );
    counter(r, 'training_resumes_total', 'Training transfers continued from an acknowledged offset after a broken link or producer, by direction.', ['direction'], () =>
      Object.entries(this.training.resumes).map(([direction, n]): Sample<'direction'> => [{ direction }, n]),
    );
    counter(r, 'training_failures_total', 'Training transfers that failed or were cancelled, by direction and status (DATA_LOSS, UNAVAILABLE, ABORTED, CANCELLED, ...).', ['direction', 'status'], () =>
      map(this.training.failures.values(), (e): Sample<'direction' | 'status'> => [{ direction: e.direction, status: e.status }, e.n]),
    );

    // Back-end links (LinkStats read at scrape time; closed links folded into totals).
    const linkDirectional = (name: string, help: string, tx: (s: LinkTotalsStats) => number, rx: (s: LinkTotalsStats) => number): void => {
      counter(r, name, help, ['segment', 'direction', 'transport', 'peer'], () => {
        const out: Sample<'segment' | 'direction' | 'transport' | 'peer'>[] = [];
        for (const t of this.links.totals()) {
          out.push([{ segment: t.segment, direction: 'tx', transport: t.transport, peer: t.peer }, tx(t.stats)]);
          out.push([{ segment: t.segment, direction: 'rx', transport: t.transport, peer: t.peer }, rx(t.stats)]);
        }
        return out;
      });
    };
    linkDirectional('link_bytes_total', 'Bytes on back-end links (sealed frames, as on the wire), by segment, direction (tx/rx) and transport.', (s) => s.bytesSent, (s) => s.bytesReceived);
    linkDirectional('link_frames_total', 'Frames on back-end links, by segment, direction and transport.', (s) => s.framesSent, (s) => s.framesReceived);
    linkDirectional('link_messages_total', 'Whole messages on back-end links, by segment, direction and transport.', (s) => s.messagesSent, (s) => s.messagesReceived);
    gauge(r, 'link_queued_bytes', 'Bytes accepted for sending on back-end links and not yet on the wire.', ['segment', 'transport', 'peer'], () =>
      this.links.totals().map((t) => [{ segment: t.segment, transport: t.transport, peer: t.peer }, t.stats.queuedBytes]),
    );
    gauge(r, 'links_open', 'Open back-end links (connections to peers), by segment and transport.', ['segment', 'transport', 'peer'], () =>
      this.links.totals().map((t) => [{ segment: t.segment, transport: t.transport, peer: t.peer }, t.open]),
    );
    counter(r, 'link_connects_total', 'Back-end links established, by segment and transport.', ['segment', 'transport', 'peer'], () =>
      this.links.totals().map((t) => [{ segment: t.segment, transport: t.transport, peer: t.peer }, t.opened]),
    );
    counter(r, 'link_closes_total', 'Back-end links closed, by segment, transport and who ended them (local, peer, error).', ['segment', 'transport', 'peer', 'by'], () =>
      this.links.totals().flatMap((t) =>
        (['local', 'peer', 'error'] as const).map((by): Sample<'segment' | 'transport' | 'peer' | 'by'> => [{ segment: t.segment, transport: t.transport, peer: t.peer, by }, t.closed[by]]),
      ),
    );
    counter(r, 'link_rekeys_total', 'Traffic key changes on back-end links (both directions).', ['segment', 'transport', 'peer'], () =>
      this.links.totals().map((t) => [{ segment: t.segment, transport: t.transport, peer: t.peer }, t.stats.rekeys]),
    );
    counter(r, 'handshake_failures_total', 'Back-end handshakes that failed, by segment and code (auth, segment, version, protocol, timeout, closed, busy).', ['segment', 'code'], () =>
      map(this.links.handshakeFailures.all(), (e) => [{ segment: e.a, code: e.b }, e.value]),
    );
    counter(r, 'link_rejected_frames_total', 'Inbound frames a link dropped (failed authentication, replayed, malformed).', ['segment', 'transport', 'peer'], () =>
      this.links.totals().map((t) => [{ segment: t.segment, transport: t.transport, peer: t.peer }, t.stats.rejectedFrames]),
    );

    // Scheduler queues.
    gauge(r, 'queue_depth', 'Messages waiting in link schedulers, by segment and traffic class.', ['segment', 'class'], () => this.queueSamples('depth'));
    gauge(r, 'queue_bytes', 'Bytes waiting in link schedulers, by segment and traffic class.', ['segment', 'class'], () => this.queueSamples('bytes'));
    new HistogramCollector('sluice_scheduling_delay_seconds', 'Time a message waited in a link scheduler before its first frame was sent.', ['segment', 'class'], () => {
      for (const pull of this.delaySources) pull();
      return map(this.delay.values(), (d): HistogramSeries<'segment' | 'class'> => ({ labels: { segment: d.segment, class: d.cls }, histogram: d.histogram }));
    }).register(r);
    gauge(r, 'bulk_share_ratio', 'Fraction (0..1) of link send capacity granted to training bulk right now (mean over the segment\'s links).', ['segment'], () => {
      const acc = new Map<SegmentName, { sum: number; n: number }>();
      for (const s of this.queueSources) {
        const share = s.snapshot().bulkShare;
        if (share === undefined) continue;
        const a = acc.get(s.segment) ?? { sum: 0, n: 0 };
        a.sum += share;
        a.n++;
        acc.set(s.segment, a);
      }
      return map(acc.entries(), ([segment, a]) => [{ segment }, a.sum / a.n]);
    });

    // Refusals.
    const pairs = (c: Pick<PairCounter, 'all'>, a: string, b: string): (() => Iterable<Sample<string>>) => () =>
      map(c.all(), (e) => [{ [a]: e.a, [b]: e.b }, e.value]);
    counter(r, 'crypto_rejections_total', 'Back-end frames refused by the crypto layer (bad tag, replayed or stale nonce), by segment and reason.', ['segment', 'reason'], pairs(this.rejections.cryptoRejections, 'segment', 'reason'));
    counter(r, 'policy_rejections_total', 'Traffic refused by policy (cross-segment, wrong class, tenant not allowed), by segment and reason.', ['segment', 'reason'], pairs(this.rejections.policyRejections, 'segment', 'reason'));
    counter(r, 'threat_signals_total', 'Threat detection signals (extraction, adversarial, poisoning), by signal and tenant (docs/security.md, "Threat detection").', ['signal', 'tenant'], pairs(this.threatSignals, 'signal', 'tenant'));
    counter(r, 'threat_tap_dropped_total', 'Tapped inference calls the threat detectors never saw because their queue was full (the calls themselves went on).', [], () => [[{}, this.threatTap.dropped]]);
    counter(r, 'connections_refused_total', 'Connections a listener refused or closed before they did useful work (max_connections, handshake_timeout, tls_handshake_failed, handshake_failed, idle_timeout, protocol_error, unresponsive), by listener and reason.', ['listener', 'reason'], pairs(this.connectionRefusals, 'listener', 'reason'));
    counter(r, 'auth_rejections_total', 'Client credentials refused, by method (mtls, jwt, api_key, none) and reason.', ['method', 'reason'], pairs(this.rejections.authRejections, 'method', 'reason'));

    // RDMA.
    counter(r, 'rdma_completions_total', 'RDMA work completions, by device and opcode.', ['device', 'opcode'], () => this.rdmaCounter('completions'));
    counter(r, 'rdma_completion_errors_total', 'RDMA work completions with an error status, by device and status.', ['device', 'status'], () => this.rdmaCounter('completionErrors'));
    gauge(r, 'rdma_registered_bytes', 'Bytes of memory registered with an RDMA device right now.', ['device'], () =>
      map(this.rdmaLive(), (s) => [{ device: s.device }, s.snapshot().registeredBytes]),
    );
    gauge(r, 'rdma_queue_pairs', 'RDMA queue pairs connected right now.', ['device'], () => map(this.rdmaLive(), (s) => [{ device: s.device }, s.snapshot().queuePairs]));

    // Health and lifecycle.
    gauge(r, 'ready', '1 when the node is ready to take traffic (all upstreams and segments up, not draining).', [], () =>
      this.health === undefined ? [] : [[{}, this.health.ready() ? 1 : 0]],
    );
    gauge(r, 'draining', '1 while a graceful drain is in progress.', [], () => (this.health === undefined ? [] : [[{}, this.health.draining ? 1 : 0]]));
    gauge(r, 'component_up', '1 when a health component (upstream, segment, peer, listener) is up.', ['component', 'kind'], () =>
      this.health === undefined ? [] : this.health.snapshot().components.map((c) => [{ component: c.name, kind: c.kind }, c.up ? 1 : 0]),
    );
    counter(r, 'config_reloads_total', 'Configuration reloads (SIGHUP), by result.', ['result'], () => [
      [{ result: 'success' }, this.reloads.success],
      [{ result: 'failure' }, this.reloads.failure],
    ]);
    gauge(r, 'thread_sched_policy', 'Always 1 per thread; the policy label is its scheduling policy (other: normal, idle: SCHED_IDLE). The training thread lowers its own priority.', ['thread', 'policy'], () =>
      map(this.threads, ([thread, t]) => [{ thread, policy: t.policy }, 1]),
    );
    gauge(r, 'thread_nice', 'Nice value of each sluice thread (19: lowest priority).', ['thread'], () => map(this.threads, ([thread, t]) => [{ thread }, t.nice]));
    // What the training bulk governor decides on: with these, an operator can tell a governor
    // that holds bulk back from one that finds cutting it futile (the slowdown is elsewhere).
    const governor = (pick: (g: GovernorStats) => number): (() => Iterable<Sample<string>>) => () => {
      const g = this.bulkGovernor?.();
      if (g === undefined) return [];
      const v = pick(g);
      return Number.isFinite(v) ? [[{ segment: 'training' }, v]] : [];
    };
    gauge(r, 'bulk_governor_p99_seconds', 'Inference p99 over the bulk governor\'s sliding window, as the governor sees it (the engine and TypeScript ingress round trips); absent with too few samples.', ['segment'], governor((g) => g.p99Ms / 1000));
    gauge(r, 'bulk_governor_baseline_p99_seconds', 'Inference p99 measured while no bulk ran: the governor cuts bulk only above maxSlowdown times this.', ['segment'], governor((g) => g.baselineP99Ms / 1000));
    counter(r, 'bulk_governor_cuts_total', 'Cuts of the bulk share because inference p99 rose above its limit.', ['segment'], governor((g) => g.decreases));
    counter(r, 'bulk_governor_futile_cuts_total', 'Cuts undone because inference p99 did not drop after them (the slowdown did not come from bulk).', ['segment'], governor((g) => g.futileCuts));
    gauge(r, 'training_receive_buffers', 'Pooled receive buffers of training links, by state (in_use: lent to a message not yet released; free: allocated or allocatable).', ['state'], () => {
      const p = this.receivePool;
      return p === undefined ? [] : [[{ state: 'in_use' }, p.inUse], [{ state: 'free' }, p.available]];
    });
    counter(r, 'training_receive_buffer_oneoff_total', 'Training messages larger than a pooled receive buffer, which got a buffer of their own.', [], () =>
      this.receivePool === undefined ? [] : [[{}, this.receivePool.oneOffAllocations]],
    );
    counter(r, 'training_receive_buffer_exhausted_total', 'Times a training link found the receive pool empty and stopped reading until a buffer came back.', [], () =>
      this.receivePool === undefined ? [] : [[{}, this.receivePool.exhaustions]],
    );
    gauge(r, 'training_push_buffers', 'Pooled buffers the chunks of Push calls are gathered into, by state (in_use: holding a chunk not yet acknowledged by the peer; free: allocated or allocatable).', ['state'], () => {
      const p = this.pushBuffers?.pool;
      return p === undefined ? [] : [[{ state: 'in_use' }, p.inUse], [{ state: 'free' }, p.available]];
    });
    counter(r, 'training_push_buffer_oneoff_total', 'Push chunks that found every pooled buffer out (or did not fit one) and got a buffer of their own.', [], () =>
      this.pushBuffers === undefined ? [] : [[{}, this.pushBuffers.oneOffAllocations]],
    );
    gauge(r, 'config_last_reload_success_timestamp_seconds', 'Unix time of the last successful configuration reload (0 = never).', [], () => [[{}, this.reloads.lastSuccessSeconds]]);
  }

  /** The shared histogram a scheduler records queueing delay of one class on one segment into. */
  schedulingDelay(segment: SegmentName, cls: TrafficClass): BucketHistogram {
    const key = `${segment}/${cls}`;
    let d = this.delay.get(key);
    if (d === undefined) {
      d = { segment, cls, histogram: new BucketHistogram(QUEUE_DELAY_BUCKETS_SECONDS) };
      this.delay.set(key, d);
    }
    return d.histogram;
  }

  /**
   * Adds a source that records into schedulingDelay() what it counted elsewhere since its last
   * call (the native engine's links), whenever the histograms are read. Returns its removal.
   */
  addDelaySource(pull: () => void): () => void {
    this.delaySources.add(pull);
    return () => void this.delaySources.delete(pull);
  }

  /**
   * The shared queue counters of one segment's link schedulers (registered as a queue source on
   * first use); wrap the segment transport's scheduler factory with instrumentScheduler(f, this).
   */
  segmentQueues(segment: SegmentName): SegmentQueueStats {
    let q = this.segmentQueueStats.get(segment);
    if (q === undefined) {
      q = new SegmentQueueStats(segment, {
        control: this.schedulingDelay(segment, 'control'),
        inference: this.schedulingDelay(segment, 'inference'),
        training: this.schedulingDelay(segment, 'training'),
      });
      this.segmentQueueStats.set(segment, q);
      this.addQueueSource(q);
    }
    return q;
  }

  /** Adds a scheduler's queues; call the returned function when the scheduler goes away. */
  addQueueSource(source: QueueSource): () => void {
    this.queueSources.add(source);
    return () => void this.queueSources.delete(source);
  }

  /** Adds an RDMA device's counters; on removal its last counts are kept so totals stay monotonic. */
  addRdmaSource(source: RdmaSource): () => void {
    this.rdmaSources.add(source);
    return () => {
      if (!this.rdmaSources.delete(source)) return;
      const last = source.snapshot();
      const t = this.rdmaTotals(this.rdmaRetired, source.device);
      addInto(t.completions, last.completions);
      addInto(t.completionErrors, last.completionErrors);
    };
  }

  /** Reports requests in flight at one stage ("ingress", "egress") at scrape time. */
  setInFlightSource(stage: 'ingress' | 'egress', read: () => number): void {
    this.inFlightSources.set(stage, read);
  }

  /** Reads shed and retry counts of the ingress' admission and retry policy at scrape time. */
  attachAdmission(source: AdmissionSource): void {
    this.admission = source;
  }

  /** Exposes readiness, draining and per-component state. */
  attachHealth(health: HealthModel): void {
    this.health = health;
  }

  /** Records a thread's scheduling policy and nice value (sluice_thread_sched_policy, sluice_thread_nice). */
  setThreadPriority(thread: string, p: { policy: string; nice: number }): void {
    this.threads.set(thread, { policy: p.policy, nice: p.nice });
  }

  /**
   * Adds metrics kept by another thread (the training thread's links and queues), merged into
   * every scrape under the same names; the returned function removes the source.
   */
  addRemoteSource(read: () => Promise<RemoteMetrics>): () => void {
    this.remoteSources.add(read);
    return () => void this.remoteSources.delete(read);
  }

  /** This thread's link, queue and RDMA families, for a scrape merged on another thread. */
  async exportForMerge(): Promise<RemoteMetrics> {
    const all = await this.registry.getMetricsAsJSON();
    return all.filter((m) => MERGED_FAMILIES.some((p) => m.name.startsWith(p))) as RemoteMetrics;
  }

  /** The exposition text for a scrape. */
  async render(): Promise<string> {
    if (this.remoteSources.size === 0) return this.registry.metrics();
    const own = (await this.registry.getMetricsAsJSON()) as RemoteMetrics;
    // A source that cannot answer (its thread is stopping) leaves its families out of this scrape.
    const remote = await Promise.all([...this.remoteSources].map((read) => read().catch((): RemoteMetrics => [])));
    // Families both threads keep are summed per label set; the rest pass through as they are
    // (aggregation would drop or average some process metrics).
    const shared = new Set(remote.flat().map((m) => m.name));
    const merged = AggregatorRegistry.aggregate([own.filter((m) => shared.has(m.name)), ...remote]);
    for (const m of own) if (!shared.has(m.name)) merged.registerMetric(Object.assign({ get: () => m }, m) as unknown as Parameters<Registry['registerMetric']>[0]);
    return merged.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private queueSamples(field: 'depth' | 'bytes'): Sample<'segment' | 'class'>[] {
    const acc = new Map<string, { segment: SegmentName; cls: string; n: number }>();
    for (const s of this.queueSources) {
      const snap = s.snapshot()[field];
      for (const [cls, n] of Object.entries(snap)) {
        const key = `${s.segment}/${cls}`;
        const a = acc.get(key) ?? { segment: s.segment, cls, n: 0 };
        a.n += n ?? 0;
        acc.set(key, a);
      }
    }
    return [...acc.values()].map((a) => [{ segment: a.segment, class: a.cls }, a.n]);
  }

  /** Added sources, then the process-wide blocks the verbs channels keep (src/telemetry/rdma-stats.ts). */
  private *rdmaLive(): Generator<RdmaSource> {
    yield* this.rdmaSources;
    for (const d of allRdmaDeviceStats()) yield { device: d.device, snapshot: () => d };
  }

  private rdmaTotals(into: Map<string, RdmaTotals>, device: string): RdmaTotals {
    let t = into.get(device);
    if (t === undefined) {
      t = { completions: new Map(), completionErrors: new Map() };
      into.set(device, t);
    }
    return t;
  }

  private rdmaCounter(field: 'completions' | 'completionErrors'): Sample<string>[] {
    const sums = new Map<string, RdmaTotals>();
    for (const [device, t] of this.rdmaRetired) {
      const s = this.rdmaTotals(sums, device);
      addInto(s.completions, Object.fromEntries(t.completions));
      addInto(s.completionErrors, Object.fromEntries(t.completionErrors));
    }
    for (const src of this.rdmaLive()) {
      const snap: RdmaSnapshot = src.snapshot();
      const s = this.rdmaTotals(sums, src.device);
      addInto(s.completions, snap.completions);
      addInto(s.completionErrors, snap.completionErrors);
    }
    const label = field === 'completions' ? 'opcode' : 'status';
    const out: Sample<string>[] = [];
    for (const [device, t] of sums) for (const [k, v] of t[field]) out.push([{ device, [label]: k }, v]);
    return out;
  }
}

/** What the shed and retry counters read (UpstreamPolicy satisfies it). */
export interface AdmissionSource {
  readonly shed: Readonly<Record<string, number>>;
  readonly retries: number;
  readonly retriesDenied: number;
}

type LinkTotalsStats = ReturnType<LinkTracker['totals']>[number]['stats'];

function addInto(into: Map<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(from)) into.set(k, (into.get(k) ?? 0) + v);
}

function* map<T, U>(it: Iterable<T>, f: (t: T) => U): Generator<U> {
  for (const t of it) yield f(t);
}

function counter<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], read: () => Iterable<Sample<L>>): void {
  const old = oldNameOf(METRIC_PREFIX + name);
  if (old !== undefined) counter(registry, old.slice(METRIC_PREFIX.length), `Deprecated: renamed ${METRIC_PREFIX + name} (docs/operations.md). ${help}`, labelNames, read);
  new Counter<L>({
    name: METRIC_PREFIX + name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) {
        if (labelNames.length === 0) this.inc(value);
        else this.inc(labels as Partial<Record<L, string>>, value);
      }
    },
  });
}

function gauge<L extends string>(registry: Registry, name: string, help: string, labelNames: readonly L[], read: () => Iterable<Sample<L>>): void {
  const old = oldNameOf(METRIC_PREFIX + name);
  if (old !== undefined) gauge(registry, old.slice(METRIC_PREFIX.length), `Deprecated: renamed ${METRIC_PREFIX + name} (docs/operations.md). ${help}`, labelNames, read);
  new Gauge<L>({
    name: METRIC_PREFIX + name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) {
        if (labelNames.length === 0) this.set(value);
        else this.set(labels as Partial<Record<L, string>>, value);
      }
    },
  });
}

/**
 * prom-client's process gauges named *_total get their right name too (same labels and values,
 * read from the prefab gauge at scrape time); the old names stay for one release.
 */
function renamePrefabGauges(registry: Registry): void {
  for (const { old, current } of RENAMED_METRICS) {
    const source = registry.getSingleMetric(old);
    if (source === undefined || registry.getSingleMetric(current) !== undefined) continue;
    new Gauge({
      name: current,
      help: `${(source as unknown as { help: string }).help} (was ${old})`,
      labelNames: (source as unknown as { labelNames: string[] }).labelNames,
      registers: [registry],
      async collect() {
        this.reset();
        const { values } = await source.get();
        for (const v of values) this.set(v.labels as Record<string, string>, v.value);
      },
    });
  }
}
