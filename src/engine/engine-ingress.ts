// The node's gRPC listener served by the native engine: ModelInfer and ModelStreamInfer run on
// the engine thread (scan, gates over the policy table, CALL on the engine's own links to the
// egress peers, REPLY back) and every other call is relayed as raw HTTP/2 to the TypeScript
// gRPC server on a private unix socket. This is the control-plane half: it dials the peers,
// compiles and publishes the policy table (again whenever the key store or the JWKS changes),
// feeds the engine's token cache with the bearer tokens the TypeScript gates verified (a token
// the engine does not know is relayed to them once), records the engine's gate decisions
// through the SecurityRuntime (releasing the answers that wait for their audit entry), starts
// and drains the listener, and reads the request metrics from the engine's tally when they are
// scraped (a successful call costs no event and no JavaScript unless the access log wants it).
// Its `segment` channel carries the TypeScript gateway's calls (REST/WebSocket, relayed gRPC
// methods) on the same engine links, so the node keeps one link set to each egress peer.
import type { SluiceConfig } from '../config/schema.ts';
import type { ConnectionRefusalReason } from '../telemetry/connection-refusals.ts';
import { InferenceErrorCode } from '../kserve/inference-error.ts';
import { grpcStatusName } from '../kserve/status.ts';
import { type AccessLog, roundMs } from '../telemetry/access-log.ts';
import type { LatencySampleRing } from '../scheduler/latency-sample-ring.ts';
import type { ConnectionRefusals } from '../telemetry/connection-refusals.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { AdmissionSource } from '../telemetry/metrics.ts';
import type { LinkTracker } from '../telemetry/link-tracker.ts';
import type { RequestStats } from '../telemetry/request-stats.ts';
import type { ResolvedLinkTuning } from '../transport/link-tuning.ts';
import { forwardEngineLogs } from './engine-log.ts';
import { engineLinkOptions } from './engine-link-options.ts';
import type { EngineRdmaLinkOptions } from './engine-addon.ts';
import { enginePeerLinkSource } from './engine-link-source.ts';
import { addEngineSchedulingDelay, type SchedulingDelaySink } from './engine-scheduling-delay.ts';
import { LATENCY_BUCKETS_SECONDS } from '../telemetry/bucket-histogram.ts';
import { NativeEngine, type EngineRequestDone } from './native-engine.ts';
import { createHash } from 'node:crypto';
import type { SecurityRuntime } from '../security/security-runtime.ts';
import { EngineGateRecorder } from './engine-gate-events.ts';
import { EngineSpans, type EngineSpanRecord } from './engine-spans.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import { capBits, compilePolicyTable, NO_TENANT } from './policy-compiler.ts';
import { EngineTlsControl, engineTlsConfig, type EngineTlsOptions } from './engine-tls.ts';
import { type EnginePeer, EngineSegmentChannel } from './engine-segment-channel.ts';
import { slowPathSet } from './engine-slow-path.ts';
import { SharedRateBuckets } from '../security/shared-rate-buckets.ts';
import { type EngineThreatsOptions, EngineThreatTap } from './engine-threat-tap.ts';

export interface EngineIngressOptions {
  config: SluiceConfig;
  segmentKey: Uint8Array;
  tuning: ResolvedLinkTuning;
  handshakeTimeoutMs: number;
  /** The inference segment runs over RDMA: the engine dials its egress peers' RDMA listeners. */
  rdma?: EngineRdmaLinkOptions;
  /** The TypeScript gRPC server every non-fast-path call is relayed to. */
  relayPath: string;
  requests: RequestStats;
  /** The engine's own links to the egress peers are added to the link metrics (by peer name). */
  links: LinkTracker;
  /** sluice_scheduling_delay_seconds: the engine's links' delays are added at scrape time. */
  schedulingDelay?: SchedulingDelaySink;
  /** telemetry.accessLog: one line per fast-path call, from the engine's batched records. */
  accessLog?: AccessLog;
  /** telemetry.otlp: the `ingress` and `link` spans of sampled fast-path calls, from the engine's span records. */
  tracing?: Tracing;
  logger: Logger;
  /** The node's security runtime (API keys, JWTs, rate limits, audit); absent: security is off. */
  security?: SecurityRuntime;
  /** security.tls on: the engine terminates TLS on the port (certificates, mTLS allowlist, audit). */
  tls?: EngineTlsOptions;
  /** Connections the listener closed before they did useful work (sluice_connections_refused_total). */
  onRefused?: (reason: ConnectionRefusalReason) => void;
  /** sluice_connections_refused_total: the engine's refusals on listeners.grpc are read from its counters at scrape time. */
  refusals?: ConnectionRefusals;
  /** Where the engine writes its answered calls' round trips for the bulk governors (src/scheduler/latency-sample-ring.ts). */
  latencyRing?: LatencySampleRing;
  /** security.threats: the engine's tensor tap feeds the monitor; profiled tenants take the slow path. */
  threats?: EngineThreatsOptions;
}

export class EngineIngress {
  readonly engine: NativeEngine;
  readonly address: { host: string; port: number };
  /** The TypeScript gateway's way to the egress peers: the engine's links. */
  readonly segment: EngineSegmentChannel;
  readonly #config: SluiceConfig;
  /** Peer name -> the engine dialer that keeps its link up. */
  readonly #dialers: ReadonlyMap<string, number>;
  readonly #security: SecurityRuntime | undefined;
  #generation = 0;
  readonly #unsubscribe: (() => void)[] = [];
  #tls: EngineTlsControl | undefined;
  #removeSources: (() => void) | undefined;
  #requests: RequestStats | undefined;
  #threats: EngineThreatsOptions | undefined;
  #threatTap: EngineThreatTap | undefined;
  /** One rate-limit bucket per tenant for the engine's calls and TypeScript's (security.rateLimits on). */
  #buckets: SharedRateBuckets | undefined;

  private constructor(engine: NativeEngine, address: { host: string; port: number }, config: SluiceConfig, peers: readonly EnginePeer[], logger: Logger, security: SecurityRuntime | undefined) {
    this.engine = engine;
    // The ingress's logger already says engine: true (a second binding would repeat the key).
    this.segment = new EngineSegmentChannel(engine, peers, logger.child({ component: 'links' }));
    const dialers = new Map(peers.map((p) => [p.name, p.dialer]));
    this.address = address;
    this.#config = config;
    this.#dialers = dialers;
    this.#security = security;
  }

  /** Wires the engine to the security runtime: republish on credential changes, the token cache, gate events. */
  #wireSecurity(sec: SecurityRuntime, logger: Logger): void {
    this.#unsubscribe.push(
      sec.onCredentialsChanged(() => {
        try {
          this.publishPolicy();
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'engine ingress: policy table not republished (the previous one stays in force)');
        }
      }),
    );
    const tenantIndex = new Map(this.#config.security.tenants.map((t, i) => [t.name, i]));
    // jwt.ts accepts a token until exp plus the clock skew; so does the engine's cache.
    const skewMs = this.#config.security.jwt.clockSkewSeconds * 1000;
    this.#unsubscribe.push(
      sec.gates.onTokenVerified((token, principal, actor) => {
        const digest = createHash('sha256').update(token).digest();
        this.engine.addVerifiedToken(digest, tenantIndex.get(principal.tenant) ?? NO_TENANT, capBits(principal.caps), principal.expiresAtMs + skewMs, actor);
      }),
    );
    if (sec.limiter !== null) {
      const buckets = (this.#buckets = new SharedRateBuckets());
      this.engine.shareRateBuckets(buckets.view);
      sec.limiter.shareBuckets(buckets);
    }
    const recorder = new EngineGateRecorder(this.engine, sec, sec.gates);
    this.engine.on('gate', (d) => recorder.onDecision(d));
  }

  static async start(o: EngineIngressOptions): Promise<EngineIngress> {
    const l = o.config.listeners.grpc;
    if (l === undefined) throw new RangeError('EngineIngress needs listeners.grpc');
    const engine = new NativeEngine('sluice-infer');
    if (engine.requestBoundsUs.length !== LATENCY_BUCKETS_SECONDS.length || engine.requestBoundsUs.some((us, i) => us !== Math.round(LATENCY_BUCKETS_SECONDS[i]! * 1e6))) {
      engine.stop();
      throw new RangeError('the engine\'s request latency buckets differ from LATENCY_BUCKETS_SECONDS: rebuild the addon');
    }
    // Dialer id -> peer name, for the access records and log lines (filled once the dialers exist).
    const peerNames = new Map<number, string>();
    forwardEngineLogs(engine, o.logger, (d) => peerNames.get(d));
    if (o.tracing !== undefined) {
      const spans = new EngineSpans(o.tracing, { peer: (d) => peerNames.get(d) ?? String(d) });
      engine.on('span', (r: EngineSpanRecord) => spans.record(r));
      engine.setTracing(true, o.tracing.sampleRatio);
    }
    engine.on('request-done', (r: EngineRequestDone) => {
      // The access line of the TypeScript ingress (node-telemetry.ts accessLogHook), same fields:
      // one per ModelInfer call and one per ModelStreamInfer message, whose request context is
      // a ModelInfer one there (http2-grpc-ingress.ts stream()), so the method is ModelInfer.
      o.accessLog?.write({
        request_id: r.requestId,
        tenant: r.tenant,
        model: r.model,
        protocol: 'grpc',
        method: 'ModelInfer',
        status: r.status,
        code: grpcStatusName(r.status),
        bytes_in: r.bytesIn,
        bytes_out: r.bytesOut,
        total_ms: roundMs(r.durationSeconds * 1000),
        queue_ms: roundMs(r.queueSeconds * 1000),
        upstream_ms: roundMs(r.upstreamSeconds * 1000),
        ...(r.attempts > 0 ? { peer: peerNames.get(r.peer) ?? String(r.peer), attempts: r.attempts } : {}),
        ...(r.traceId !== undefined ? { trace_id: r.traceId } : {}),
      });
      // The failed-request line of the TypeScript gateway (inference-gateway.ts finish()).
      if (r.status !== 0) {
        const level = r.code === InferenceErrorCode.INTERNAL ? 'error' : 'info';
        o.logger[level](
          { request_id: r.requestId, protocol: 'grpc', method: 'ModelInfer', model: r.model, code: r.code, grpc_status: r.status, duration_ms: Math.round(r.durationSeconds * 1e6) / 1000, err: r.err },
          'request failed',
        );
      }
    });
    if (o.onRefused !== undefined) {
      const onRefused = o.onRefused;
      engine.on('connection-refused', (reason: string) => onRefused(reason as ConnectionRefusalReason));
    }
    let control: EngineTlsControl | undefined;
    engine.on('dial-failed', (dialer: number, err: Error) => o.logger.debug({ dialer, err: err.message }, 'engine ingress: egress peer not reachable (retrying)'));
    try {
      const linkOptions = engineLinkOptions(o.segmentKey, o.tuning, {
        handshakeTimeoutMs: o.handshakeTimeoutMs,
        ...(o.config.segments.inference?.dscp !== undefined ? { dscp: o.config.segments.inference.dscp } : {}),
        ...(o.rdma !== undefined ? { rdma: o.rdma } : {}),
      });
      const used = new Set(o.config.routes.flatMap((r) => r.peers));
      const peers: EnginePeer[] = [];
      for (const p of o.config.peers) {
        if (p.segment !== 'inference' || !used.has(p.name) || peers.some((x) => x.name === p.name)) continue;
        peers.push({ name: p.name, dialer: engine.dial(p.host, p.port, linkOptions), address: p.host.includes(':') ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}` });
      }
      for (const p of peers) peerNames.set(p.dialer, p.name);
      const ingress = new EngineIngress(engine, { host: l.host, port: 0 }, o.config, peers, o.logger, o.security);
      if (o.security !== undefined) ingress.#wireSecurity(o.security, o.logger);
      if (o.latencyRing !== undefined) engine.feedLatencyRing(o.latencyRing);
      ingress.#threats = o.threats;
      // Tables first: without them the engine relays every call (correct, only slower).
      ingress.publishPolicy();
      if (o.threats !== undefined) ingress.#threatTap = new EngineThreatTap(engine, o.threats, () => ingress.publishPolicy(), o.logger);
      const tls = o.tls !== undefined ? await engineTlsConfig(o.tls) : undefined;
      // Subscribed before the port opens: the first handshakes' audit records are not lost.
      if (o.tls !== undefined) control = ingress.#tls = new EngineTlsControl(engine, o.tls);
      const bound = await engine.startIngress({
        host: l.host,
        port: l.port,
        relayPath: o.relayPath,
        maxRequestMessageBytes: o.config.limits.maxRequestBytes,
        defaultTimeoutMs: o.config.limits.defaultTimeoutMs,
        // listeners.grpc's connection limits, as the TypeScript listener applies them.
        handshakeTimeoutMs: l.handshakeTimeoutMs,
        idleTimeoutMs: l.idleTimeoutMs,
        ...(l.maxConnections !== undefined ? { maxConnections: l.maxConnections } : {}),
        ...(tls !== undefined ? { tls } : {}),
        // The TypeScript ingress's UpstreamPolicy keys: same shedding, P2C, ejection and retries.
        upstreamPolicy: { ...o.config.scheduling.upstreams, ...o.config.scheduling.retries, ...o.config.scheduling.shedding },
        // Without an access log only failed calls need an event (their log line).
        everyCallEvent: o.accessLog !== undefined,
      });
      (ingress.address as { port: number }).port = bound.port;
      // The engine's links by peer name, as the TypeScript links label them.
      const removePeers = peers.map((p) => o.links.addSource(enginePeerLinkSource(engine, `dialer:${p.dialer}`, p.name)));
      const removeLinks = (): void => {
        for (const r of removePeers) r();
      };
      const c = engine.counters;
      const removeRefusals = o.refusals?.addSource('grpc', () => ({
        max_connections: c.ingress('ingressRefusedMaxConnections'),
        handshake_timeout: c.ingress('ingressRefusedHandshakeTimeout'),
        idle_timeout: c.ingress('ingressRefusedIdleTimeout'),
        protocol_error: c.ingress('ingressRefusedProtocolError'),
      }));
      ingress.#requests = o.requests;
      const removeRequests = o.requests.addSource(() => ingress.#takeRequestTally());
      const removeDelay = o.schedulingDelay === undefined ? undefined : addEngineSchedulingDelay(c, o.schedulingDelay);
      ingress.#removeSources = () => {
        removeLinks();
        removeDelay?.();
        removeRefusals?.();
        removeRequests();
      };
      return ingress;
    } catch (err) {
      control?.detach();
      engine.stop();
      throw err;
    }
  }

  /** Compiles the policy table from the config, the routes and the key store and swaps it in (atomically, in the engine). */
  publishPolicy(): void {
    const routes = this.#config.routes
      .filter((r) => r.peers.length > 0)
      .map((r) => ({ model: r.model, peers: r.peers.map((name) => this.#dialers.get(name)).filter((d): d is number => d !== undefined) }));
    const apiKeys = this.#security?.apiKeyRecords() ?? [];
    const slow = slowPathSet(this.#config, this.#threats?.monitor);
    // A tenant keeps its slot (and its tokens) across republishes while its limits stay the same.
    const limiter = this.#security?.limiter ?? null;
    const buckets = this.#buckets;
    const bucketSlots = buckets !== undefined && limiter !== null ? new Map(this.#config.security.tenants.map((t) => [t.name, buckets.assign(t.name, limiter.limitsFor(t.name))])) : undefined;
    this.engine.publishPolicy(
      compilePolicyTable({
        generation: ++this.#generation,
        security: this.#config.security,
        apiKeys,
        routes,
        slowPathTenants: slow.tenants,
        noTenantSlowPath: slow.noTenant,
        bucketSlots,
      }),
    );
  }

  /** The tensor tap's ring (security.threats), for its counters. */
  get tensorTap(): EngineThreatTap | undefined {
    return this.#threatTap;
  }

  /** Generation of the policy table published last (tests: a republish happened). */
  get policyGeneration(): number {
    return this.#generation;
  }

  /** Shed and retry counts of the fast path, read from the counters block (sluice_requests_shed_total, sluice_retries_total). */
  get admission(): AdmissionSource {
    const c = this.engine.counters;
    return {
      shed: { in_flight: c.ingress('ingressShedInFlight'), queue_delay: c.ingress('ingressShedQueueDelay'), deadline: c.ingress('ingressShedDeadline') },
      retries: c.ingress('ingressRetries'),
      retriesDenied: c.ingress('ingressRetriesDenied'),
    };
  }

  /** Fast-path calls open now. */
  get inflight(): number {
    return this.engine.ingressInflight;
  }

  /** Stop accepting clients; GOAWAY to each connection (open calls finish). */
  beginDrain(): void {
    this.engine.drainIngress();
  }

  close(): void {
    this.#tls?.detach();
    this.#threatTap?.close();
    this.segment.close();
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#removeSources?.();
    this.engine.stop();
    // What the last calls counted stays in the metrics.
    this.#takeRequestTally();
  }

  /** Adds the engine's fast-path calls since the last take to the request metrics. */
  #takeRequestTally(): void {
    if (this.#requests === undefined) return;
    for (const s of this.engine.takeRequestTally()) {
      this.#requests.recordCounts('grpc', 'inference', s.model, grpcStatusName(s.status), s.counts, s.sumUs / 1e6);
    }
  }
}
