// One running sluice: the parts the config asks for, started in dependency order (reference
// models, egress listener, ingress links, client listeners) and stopped in reverse.
//  - models:   `models` section present
//  - egress:   segments.inference.listen set (serves routes that have `upstreams`)
//  - ingress:  listeners.http or listeners.grpc set (forwards routes that have `peers`)
//  - training: segments.training set (TensorTransfer on listeners.training alone, the training
//              segment listener when segments.training.listen is set, transfers to training peers)
// Every link is scheduled by FairLinkScheduler; one BulkGovernor per node ties the inference
// latency measured at the ingress to the pace of training bulk on the training links.
import type * as grpc from '@grpc/grpc-js';
import type { ClientListenerConfig, SluiceConfig } from '../config/schema.ts';
import type { ListenerLimits } from '../net/connection-limits.ts';
import { segmentRefusalReason } from '../telemetry/connection-refusals.ts';
import { ConfigError } from '../config/load.ts';
import { EgressService } from '../egress/egress-service.ts';
import { loadEngineAddon } from '../engine/engine-addon.ts';
import { EngineEgress } from '../engine/engine-egress.ts';
import { EngineIngress } from '../engine/engine-ingress.ts';
import { engineRdmaOptions } from '../engine/engine-link-options.ts';
import { engineIngressRefusal } from '../engine/engine-ingress-choice.ts';
import type { EngineThreatTap } from '../engine/engine-threat-tap.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, resolveLinkTuning } from '../transport/link-tuning.ts';
import { UpstreamPool } from '../egress/upstream-pool.ts';
import { Http2GrpcIngress, type ConnectionBinder } from '../ingress/http2-grpc-ingress.ts';
import { unixSocketBinder } from '../ingress/unix-socket-binder.ts';
import { HookChain, type IngressHook } from '../ingress/hooks.ts';
import { HttpIngress } from '../ingress/http-ingress.ts';
import type { RequestHeaders } from '../ingress/request-context.ts';
import { InferenceGateway } from '../ingress/inference-gateway.ts';
import { PeerLinks } from '../ingress/peer-links.ts';
import { RouteTable } from '../ingress/route-table.ts';
import { SegmentForwarder } from '../ingress/segment-forwarder.ts';
import type { SegmentChannel } from '../ingress/segment-call.ts';
import { EngineSegmentChannel } from '../engine/engine-segment-channel.ts';
import { ModelServer } from '../models/model-server.ts';
import { GrpcHealthService } from '../telemetry/grpc-health.ts';
import { HealthModel, type HealthHandle } from '../telemetry/health.ts';
import { HealthProbe } from '../telemetry/health-probe.ts';
import type { Logger } from '../telemetry/logger.ts';
import { SluiceMetrics } from '../telemetry/metrics.ts';
import { MetricsServer } from '../telemetry/metrics-server.ts';
import type { Link, Listener, SegmentName, Transport, TransportOptions } from '../transport/types.ts';
import { BulkGovernor } from '../scheduler/bulk-governor.ts';
import { LatencySampleRing } from '../scheduler/latency-sample-ring.ts';
import { UpstreamPolicy } from '../ingress/upstream-policy.ts';
import { loadNativeAddon } from '../crypto/native-addon.ts';
import { segmentTransportOptions } from './segment-transport-options.ts';
import { TrainingHealth } from './training-health.ts';
import { TrainingPlane } from './training-plane.ts';
import { TENSOR_TRANSFER_SERVICE } from '../training/proto.ts';
import { endpointPort, notOnGrpcPortMessage, TENSOR_TRANSFER_PATH_PREFIX } from '../training/grpc-port-answer.ts';
import { defaultMethodGates, gateInterceptor } from '../security/grpc-gate-interceptor.ts';
import { loadSegmentKey } from '../config/segment-key.ts';
import { configParts, validateConfig } from '../config/validate.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { serveConnectionsOverTls } from '../security/grpc-tls.ts';
import { startHttpsFront, type HttpsFront } from '../security/https-front.ts';
import { egressTenantPolicy } from '../security/egress-policy.ts';
import { securityIngressHook } from '../security/ingress-gate-hook.ts';
import { guardLink, guardListener } from '../security/link-guard.ts';
import { evidenceRoute } from '../evidence/evidence-endpoint.ts';
import { PiiStage } from '../security/pii/pii-stage.ts';
import { type TenantNames, tenantNamesFrom, threatProfileHook, threatTap } from '../security/threats/threat-ingress.ts';
import { ThreatMonitor } from '../security/threats/threat-monitor.ts';
import { SecurityRuntime } from '../security/security-runtime.ts';
import { uwsSslOptions } from '../security/tls-options.ts';
import { discardEvents } from '../security/events.ts';
import { countingEventSink } from '../telemetry/security-event-metrics.ts';
import { accessLogHook, egressObserver, requestMetricsHook, tracingHook } from './node-telemetry.ts';
import { AccessLog } from '../telemetry/access-log.ts';
import { Tracing } from '../telemetry/tracing.ts';

export type TransportChoice = 'tcp' | 'rdma' | 'auto';

/** A segment listener's handshake deadline and connection cap, as ListenOptions. */
function segmentListenLimits(l: { handshakeTimeoutMs: number; maxConnections?: number | undefined }): { handshakeTimeoutMs: number; maxConnections?: number } {
  return { handshakeTimeoutMs: l.handshakeTimeoutMs, ...(l.maxConnections !== undefined ? { maxConnections: l.maxConnections } : {}) };
}
/** Creates the transport a segment's config names (src/transport/registry.ts in production). */
export type TransportResolver = (choice: TransportChoice, logger: Logger, opts?: TransportOptions) => Promise<Transport>;

/** The gRPC service names health checking knows (besides "" for the node as a whole). */
export const INFERENCE_SERVICE = 'inference.GRPCInferenceService';
export const TRAINING_SERVICE = TENSOR_TRANSFER_SERVICE;

export const SLUICE_VERSION = '0.1.0';
/** Event-loop delay probe period (ms) of a node whose inference calls all run in the native engine. */
const ENGINE_NODE_LOOP_PROBE_MS = 20;

export interface SluiceNodeOptions {
  config: SluiceConfig;
  logger: Logger;
  transports: TransportResolver;
  /** Directory a relative keyFile is resolved against (the config file's). */
  configDir?: string;
  /** Extra ingress hooks (auth, metrics) registered before start. */
  hooks?: readonly IngressHook[];
  /** Metrics registry (default: a new one, with process metrics). */
  metrics?: SluiceMetrics;
  /** Readiness model (default: a new one). */
  health?: HealthModel;
  /** How often upstream model servers are probed with ServerReady (default 2000 ms). */
  probeIntervalMs?: number;
}

export interface Endpoints {
  http?: string;
  grpc?: string;
  segment?: string;
  /** The training segment listener. */
  training?: string;
  /** The TensorTransfer listener of the training thread (listeners.training, 8003). */
  trainingService?: string;
  models?: string;
  metrics?: string;
}

export class SluiceNode {
  readonly endpoints: Endpoints = {};
  readonly hooks = new HookChain();
  readonly metrics: SluiceMetrics;
  readonly health: HealthModel;
  private readonly opts: SluiceNodeOptions;
  private opsServer: MetricsServer | undefined;
  private grpcHealth: GrpcHealthService | undefined;
  private readonly probes: HealthProbe[] = [];
  private grpcStopping: Promise<void> | undefined;
  private models: ModelServer | undefined;
  private listener: Listener | undefined;
  private egress: EgressService | undefined;
  /** The egress served by the native engine (TCP segments); `egress` is the TypeScript path. */
  private engineEgress: EngineEgress | undefined;
  /** With the engine's egress: the TypeScript clients that only probe the model servers. */
  private probeUpstreams: UpstreamPool | undefined;
  private peerLinks: PeerLinks | undefined;
  private gateway: InferenceGateway | undefined;
  private grpc: Http2GrpcIngress | undefined;
  /** listeners.grpc served by the native engine (the TypeScript server `grpc` then sits behind it). */
  private engineIngress: EngineIngress | undefined;
  private grpcSocketDir: string | undefined;
  private http: HttpIngress | undefined;
  private readonly egressLinks = new Set<Link>();
  private training: TrainingPlane | undefined;
  /** Inference samples for the training thread's governor (with a training segment only). */
  private readonly trainingRing: LatencySampleRing | undefined;
  /** Inference round trips of the engine's ingress (written by its loop thread, native/engine/latency_ring.h). */
  private readonly engineRing: LatencySampleRing;
  /** Ties inference latency to the bulk pace (exported for metrics and benchmarks). */
  readonly governor: BulkGovernor;
  private upstreamPolicy: UpstreamPolicy | undefined;
  private security: SecurityRuntime | undefined;
  /** The PII policy stage on the inference path (undefined: no policy). */
  private pii: PiiStage | undefined;
  /** Threat detection (security.threats): the monitor and tenant names for its events. */
  private threats: ThreatMonitor | undefined;
  private threatNames: TenantNames | undefined;
  private httpsFront: HttpsFront | undefined;
  private httpSocketDir: string | undefined;
  /** The access log (telemetry.accessLog), shared by the ingress hook and the egress observer. */
  private readonly accessLog: AccessLog | undefined;
  /** Traces (telemetry.otlp.endpoint set). */
  readonly tracing: Tracing | undefined;

  constructor(opts: SluiceNodeOptions) {
    this.opts = opts;
    this.metrics = opts.metrics ?? new SluiceMetrics({ version: SLUICE_VERSION });
    this.health = opts.health ?? new HealthModel();
    this.metrics.attachHealth(this.health);
    this.metrics.setInFlightSource('ingress', () => this.inflight.ingress);
    this.metrics.setInFlightSource('egress', () => this.egressInflight);
    this.metrics.bulkGovernor = () => this.trainingGovernor();
    const tel = opts.config.telemetry;
    if (tel.otlp.endpoint !== undefined) {
      this.tracing = new Tracing({ endpoint: tel.otlp.endpoint, serviceName: tel.otlp.serviceName, nodeName: opts.config.node.name, sampleRatio: tel.otlp.sampleRatio, headers: tel.otlp.headers });
      // First, so the span starts before any other hook (auth, rate limits) can refuse the request.
      this.hooks.add(tracingHook(this.tracing));
    }
    this.hooks.add(requestMetricsHook(this.metrics.requests));
    if (tel.accessLog) {
      this.accessLog = new AccessLog(opts.logger.child({ component: 'access' }));
      this.hooks.add(accessLogHook(this.accessLog));
    }
    for (const h of opts.hooks ?? []) this.hooks.add(h);
    const sch = opts.config.scheduling;
    this.trainingRing = opts.config.segments.training !== undefined ? new LatencySampleRing({ capacity: 4096 }) : undefined;
    // The engine ingress writes its calls' round trips here (made now: the training thread
    // starts before the engine); both governors read it.
    this.engineRing = new LatencySampleRing({ capacity: 4096 });
    this.governor = new BulkGovernor({ targetMs: sch.latencyTargetMs, ...sch.bulk, ...(this.trainingRing !== undefined ? { mirror: this.trainingRing } : {}), sources: [this.engineRing] });
  }

  /** The training thread's bulk governor state (share, p99, samples, decreases), without a training segment undefined. */
  trainingGovernor(): ReturnType<LatencySampleRing['published']> | undefined {
    return this.trainingRing?.published();
  }

  /** P2C, ejection, retry and shedding state of the ingress (undefined without an ingress). */
  get upstreams(): UpstreamPolicy | undefined {
    return this.upstreamPolicy;
  }

  /**
   * Link tuning of every transport this node creates: the fair, latency-aware scheduler,
   * instrumented so queue depth, delay and the bulk share show in the segment's metrics.
   */
  private transportOptions(segment: SegmentName): TransportOptions {
    return segmentTransportOptions(this.opts.config, segment, this.governor, this.metrics);
  }

  /**
   * The gate interceptor for sluice's own gRPC services (TensorTransfer as `train` on the
   * training segment, anything else as `admin`) when gates are on; inference calls are gated
   * by the gateway's hook, health checks by nobody.
   */
  private grpcGateOptions(): { interceptors?: grpc.ServerInterceptor[] } {
    const sec = this.security;
    const s = this.opts.config.security;
    if (sec === undefined || !(s.apiKeys.enabled || s.jwt.enabled || s.audit.enabled || s.rateLimits.enabled)) return {};
    const methods = (p: string) => (p.startsWith(`/${INFERENCE_SERVICE}/`) ? null : defaultMethodGates(p));
    return { interceptors: [gateInterceptor(sec.gates, methods)] };
  }

  get config(): SluiceConfig {
    return this.opts.config;
  }

  private get egressInflight(): number {
    return (this.egress?.inflight ?? 0) + (this.engineEgress?.inflight ?? 0);
  }

  /** Whether listeners.grpc is served by the native engine's ingress (false: the TypeScript ingress). */
  get grpcOnEngine(): boolean {
    return this.engineIngress !== undefined;
  }

  /** Calls the engine's gRPC ingress served natively and relayed to TypeScript (undefined: the TypeScript ingress serves). */
  get engineIngressCalls(): { fast: number; relayed: number } | undefined {
    const c = this.engineIngress?.engine.counters;
    return c === undefined ? undefined : { fast: c.ingress('ingressFastCalls'), relayed: c.ingress('ingressRelayedCalls') };
  }

  /** The engine's tensor tap for the threat detectors (security.threats with the engine ingress), else undefined. */
  get engineThreatTap(): EngineThreatTap | undefined {
    return this.engineIngress?.tensorTap;
  }

  /** Whether the egress runs in the native engine (false: the TypeScript path, or no egress). */
  get egressOnEngine(): boolean {
    return this.engineEgress !== undefined;
  }

  /** Requests in flight at the ingress and upstream calls in flight at the egress. */
  get inflight(): { ingress: number; egress: number } {
    return { ingress: (this.gateway?.inflight ?? 0) + (this.engineIngress?.inflight ?? 0), egress: this.egressInflight };
  }

  /** A client listener's connection limits, reporting into sluice_connections_refused_total{listener=name}. */
  private listenerLimits(name: string, l: ClientListenerConfig): ListenerLimits {
    return {
      handshakeTimeoutMs: l.handshakeTimeoutMs,
      idleTimeoutMs: l.idleTimeoutMs,
      maxConnections: l.maxConnections,
      onRefused: (reason) => this.metrics.connectionRefusals.record(name, reason),
    };
  }

  /** Counts a segment listener's refused connections (handshake timeouts, the connection cap, failed handshakes). */
  private countRefusals(listener: Listener, name: string): void {
    listener.on('rejected', (err: unknown) => {
      const reason = segmentRefusalReason(err);
      if (reason !== null) this.metrics.connectionRefusals.record(name, reason);
    });
  }

  private segmentKey(): Buffer {
    const seg = this.opts.config.segments.inference;
    if (seg === undefined) throw new ConfigError('segments.inference: required for the ingress and the egress');
    return loadSegmentKey(seg, 'inference', this.opts.configDir);
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    // The checks `sluice config check` runs, before anything binds.
    validateConfig(config, this.opts.configDir !== undefined ? { configDir: this.opts.configDir } : {});
    if (config.listeners.metrics !== undefined) {
      // First, so probes get an answer (not ready yet) while the rest starts.
      const l = config.listeners.metrics;
      this.opsServer = new MetricsServer({
        host: l.host,
        port: l.port,
        metrics: this.metrics,
        health: this.health,
        limits: this.listenerLimits('metrics', l),
        onError: (err) => logger.error({ err: (err as Error).message }, 'metrics collection failed'),
      });
      const a = await this.opsServer.listen();
      this.endpoints.metrics = `${l.host}:${a.port}`;
      logger.info({ listener: 'metrics', address: this.endpoints.metrics }, 'listening');
    }
    await this.startSecurity();
    await this.startParts();
    this.reportEngineThreads();
    if (this.inferenceOffTheJsLoop()) {
      // The JS loop carries no inference call here: its delay probe need not wake it 500 times
      // a second (idle, that alone cost each process 3% of a core on the 2-core bench machine).
      this.metrics.eventLoop.retune(ENGINE_NODE_LOOP_PROBE_MS);
    }
    this.health.markStarted();
  }

  /** Whether every inference call of this node runs in the native engine (none through a JS ingress front or egress). */
  private inferenceOffTheJsLoop(): boolean {
    const l = this.opts.config.listeners;
    if (this.engineIngress === undefined && this.engineEgress === undefined) return false;
    if (this.egress !== undefined || l.http !== undefined || this.opts.config.models !== undefined) return false;
    return l.grpc === undefined || this.engineIngress !== undefined;
  }

  /** The `security` section: off entirely in the embedded demo; docs/examples/secure.yaml turns it all on. */
  private async startSecurity(): Promise<void> {
    const { config, logger } = this.opts;
    if (!SecurityRuntime.wanted(config.security)) {
      if (config.listeners.http !== undefined || config.listeners.grpc !== undefined) {
        logger.warn('security gates are off: no TLS, no authentication, no audit log (fine for the embedded demo; see docs/examples/secure.yaml)');
      }
      return;
    }
    this.security = await SecurityRuntime.start({
      config: config.security,
      nodeName: config.node.name,
      logger: logger.child({ component: 'security' }),
      ...(this.opts.configDir !== undefined ? { baseDir: this.opts.configDir } : {}),
      observer: countingEventSink(this.metrics.rejections, discardEvents),
    });
    const s = config.security;
    if (s.apiKeys.enabled || s.jwt.enabled || s.audit.enabled || s.rateLimits.enabled) this.hooks.add(securityIngressHook(this.security.gates));
    let profiled: ((tenantId: number) => boolean) | undefined;
    if (s.threats.enabled) {
      const names = tenantNamesFrom(s.tenants);
      const m = this.metrics;
      const threats = new ThreatMonitor(s.threats, this.security, {
        onSignal: (signal, tenant) => m.threatSignals.inc(signal, tenant),
        onDropped: () => void m.threatTap.dropped++,
      });
      this.threats = threats;
      this.threatNames = names;
      this.hooks.add(threatProfileHook(threats, names, this.security, s.threats.profile.rateLimitPerSecond));
      // The stricter profile includes PII flag mode (pii-stage.ts).
      profiled = (id) => threats.profileOf(names(id)) !== undefined;
    }
    this.pii = (await PiiStage.create({ config: this.security.config, recorder: this.security, registry: this.metrics.registry, ...(profiled !== undefined ? { profiled } : {}) })) ?? undefined;
    logger.info(
      { pii_policies: this.pii?.table.policies.length ?? 0, audit: s.audit.enabled, api_keys: s.apiKeys.enabled, jwt: s.jwt.enabled, tls: s.tls.enabled, mtls: s.tls.clientCerts.mode, rate_limits: s.rateLimits.enabled, webhooks: s.webhooks.endpoints.length },
      'security gates',
    );
  }

  /** Starts the HTTP ingress: plain, native TLS (uWS SSLApp), or behind the mTLS front. */
  private async startHttp(common: Omit<ConstructorParameters<typeof HttpIngress>[0], 'host' | 'port' | 'logger'>, host: string, port: number): Promise<string> {
    const logger = this.opts.logger.child({ component: 'http' });
    const sec = this.security;
    const l = this.opts.config.listeners.http!;
    common = {
      ...common,
      // uWS counts whole seconds and takes 8 s at least (it pings live streams before then).
      wsIdleTimeoutSeconds: Math.min(960, Math.max(8, Math.round(l.idleTimeoutMs / 1000))),
      ...(sec !== undefined ? { checkUpgrade: (headers: RequestHeaders) => sec.gates.credentialProblem(headers) } : {}),
    };
    if (l.maxConnections !== undefined && !(sec?.config.tls.enabled === true && uwsSslOptions(sec.config.tls) === null)) {
      // uWS (plain or its own TLS) has no accept cap; only the node:tls front (mTLS) applies one.
      logger.warn({ maxConnections: l.maxConnections }, 'listeners.http.maxConnections is enforced only behind the mTLS front; uWS serves this port without a cap (its own 10 s timeout closes connections that never send a request)');
    }
    if (sec === undefined || !sec.config.tls.enabled) {
      this.http = new HttpIngress({ ...common, host, port, logger });
      return `${host}:${await this.http.start()}`;
    }
    const ssl = uwsSslOptions(sec.config.tls);
    if (ssl !== null) {
      this.http = new HttpIngress({ ...common, host, port, logger, ssl });
      return `${host}:${await this.http.start()}`;
    }
    // mTLS (or a TLS 1.3 floor): node:tls in front, the app on a unix socket only this user can reach.
    this.httpSocketDir = mkdtempSync(path.join(tmpdir(), 'sluice-http-'));
    const socketPath = path.join(this.httpSocketDir, 'http.sock');
    this.http = new HttpIngress({ ...common, host, port: 0, unixPath: socketPath, logger });
    await this.http.start();
    this.httpsFront = await startHttpsFront({ name: 'http', host, port, tls: sec.config.tls, allowlist: sec.allowlist, events: sec, limits: this.listenerLimits('http', l) }, { path: socketPath });
    return `${host}:${this.httpsFront.listener.address.port}`;
  }

  /**
   * Whether the egress runs in the native engine: yes (TCP or RDMA segments) when the addon has
   * it; otherwise the TypeScript path, said loudly (SLUICE_ENGINE=0 asks for the TypeScript path).
   */
  private egressEngineChoice(): boolean {
    const { logger } = this.opts;
    if (process.env.SLUICE_ENGINE === '0') {
      logger.warn({ segment: 'inference' }, 'SLUICE_ENGINE=0: the egress runs on the TypeScript path, not the native engine');
      return false;
    }
    try {
      loadEngineAddon();
      return true;
    } catch (err) {
      logger.warn({ segment: 'inference', err: (err as Error).message }, 'native engine unavailable: the egress runs on the TypeScript path');
      return false;
    }
  }

  /**
   * Starts the engine's gRPC ingress on listeners.grpc when it can serve this config, and says
   * which path the port takes; undefined (logged at warn with the reason) keeps the TypeScript
   * ingress on the port.
   */
  private async startEngineIngress(transportKind: string, key: Uint8Array, maxMessageBytes: number, limits: ListenerLimits): Promise<{ relayPath: string } | undefined> {
    const { config, logger } = this.opts;
    const refusal = engineIngressRefusal({
      config,
      transport: transportKind,
      engineEnv: process.env.SLUICE_ENGINE,
      ingressEnv: process.env.SLUICE_ENGINE_INGRESS,
      tracing: this.tracing !== undefined,
      accessLog: this.accessLog !== undefined,
      hooks: this.hooks.names,
    });
    if (refusal !== null) {
      logger.warn({ listener: 'grpc', path: 'typescript', reason: refusal }, `gRPC ingress on the TypeScript path: ${refusal}`);
      return undefined;
    }
    const sec = this.security;
    this.grpcSocketDir = mkdtempSync(path.join(tmpdir(), 'sluice-grpc-'));
    const relayPath = path.join(this.grpcSocketDir, 'grpc.sock');
    try {
      this.engineIngress = await EngineIngress.start({
        config,
        segmentKey: key,
        tuning: resolveLinkTuning(undefined, maxMessageBytes),
        handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
        ...(transportKind === 'rdma' ? { rdma: engineRdmaOptions(config) } : {}),
        relayPath,
        requests: this.metrics.requests,
        links: this.metrics.links,
        schedulingDelay: this.metrics,
        ...(this.accessLog !== undefined ? { accessLog: this.accessLog } : {}),
        ...(this.tracing !== undefined ? { tracing: this.tracing } : {}),
        refusals: this.metrics.connectionRefusals,
        logger: logger.child({ component: 'grpc', engine: true }),
        ...(this.security !== undefined ? { security: this.security } : {}),
        ...(limits.onRefused !== undefined ? { onRefused: limits.onRefused } : {}),
        // security.tls: the engine terminates TLS with the TypeScript listener's files, allowlist and events.
        ...(sec !== undefined && sec.config.tls.enabled ? { tls: { name: 'grpc', tls: sec.config.tls, allowlist: sec.allowlist, events: sec } } : {}),
        latencyRing: this.engineRing,
        // security.threats: the engine's sampled tensor tap feeds the detectors; profiled tenants take the slow path.
        ...(this.threats !== undefined && this.threatNames !== undefined
          ? { threats: { monitor: this.threats, names: this.threatNames, sampleRate: config.security.threats.sampleRate, ringBytes: config.security.threats.engineTapBytes, onDropped: (n: number) => void (this.metrics.threatTap.dropped += n) } }
          : {}),
      });
    } catch (err) {
      rmSync(this.grpcSocketDir, { recursive: true, force: true });
      this.grpcSocketDir = undefined;
      const reason = `native engine unavailable: ${(err as Error).message}`;
      logger.warn({ listener: 'grpc', path: 'typescript', reason }, `gRPC ingress on the TypeScript path: ${reason}`);
      return undefined;
    }
    logger.info({ listener: 'grpc', path: 'engine', relay: relayPath }, 'gRPC ingress on the native engine (ModelInfer/ModelStreamInfer in C++; other methods relayed to the TypeScript server)');
    return { relayPath };
  }

  private async startParts(): Promise<void> {
    const { config, logger } = this.opts;
    const seg = config.segments.inference;
    const { inferenceIngress, egress: serveEgress } = configParts(config);
    if (config.models !== undefined) {
      const m = config.models;
      this.models = new ModelServer({
        host: m.listen.host,
        port: m.listen.port,
        models: m.models,
        dense: m.dense,
        identity: m.identity,
        maxMessageBytes: m.maxMessageBytes,
        maxDelayMs: m.maxDelayMs,
        logger: logger.child({ component: 'models' }),
      });
      this.endpoints.models = `${m.listen.host}:${await this.models.start()}`;
    }
    if (config.segments.training !== undefined) await this.startTraining(inferenceIngress);
    if (!inferenceIngress && !serveEgress) return;
    if (seg === undefined) throw new ConfigError('segments.inference: required for the ingress and the egress');
    // Only a node that serves inference reports the inference service (a training-only node's
    // grpc.health.v1 answers NOT_FOUND for it rather than a SERVING it cannot back).
    this.health.defineService(INFERENCE_SERVICE);
    const key = this.segmentKey();
    const transport = await this.opts.transports(seg.transport, logger, this.transportOptions('inference'));

    if (serveEgress) {
      // validateConfig made sure there is at least one.
      const upstreamRoutes = config.routes.filter((r) => r.upstreams.length > 0);
      // Model servers are probed from here either way (ServerReady over the TypeScript client).
      const upstreams = new UpstreamPool(upstreamRoutes, seg.maxMessageBytes);
      const onEngine = this.egressEngineChoice();
      // Ready while at least one model server answers ServerReady; each is shown on its own.
      const names = upstreams.all.map((u) => `upstream:${u.address}`);
      const anyUpstream = this.health.register('upstreams', { kind: 'upstream', services: [INFERENCE_SERVICE] });
      const recompute = (): void => {
        const up = names.filter((n) => this.health.component(n)?.up === true);
        if (up.length > 0) anyUpstream.up(`${up.length} of ${names.length} up`);
        else anyUpstream.down(`no model server is ready (${names.map((n) => `${n.slice(9)}: ${this.health.component(n)?.detail ?? '?'}`).join('; ')})`);
      };
      this.health.on('change', recompute);
      for (const u of upstreams.all) {
        const handle = this.health.register(`upstream:${u.address}`, { kind: 'upstream', services: [INFERENCE_SERVICE], critical: false });
        const probe = new HealthProbe(handle, (signal) => u.serverReady(Date.now() + (signal.aborted ? 0 : 1000)), {
          intervalMs: this.opts.probeIntervalMs ?? 2000,
          timeoutMs: Math.min(1000, this.opts.probeIntervalMs ?? 2000),
        });
        this.probes.push(probe);
        await probe.runOnce();
        probe.start({ immediate: false });
      }
      const listen = seg.listen!;
      if (onEngine) {
        this.probeUpstreams = upstreams;
        this.engineEgress = await EngineEgress.start({
          host: listen.host,
          port: listen.port,
          segmentKey: key,
          tuning: resolveLinkTuning(undefined, seg.maxMessageBytes),
          handshakeTimeoutMs: listen.handshakeTimeoutMs,
          ...(seg.dscp !== undefined ? { dscp: seg.dscp } : {}),
          ...(transport.kind === 'rdma' ? { rdma: engineRdmaOptions(config) } : {}),
          routes: upstreamRoutes,
          ...(this.security !== undefined ? { security: { config: this.security.config, events: this.security } } : {}),
          links: this.metrics.links,
          schedulingDelay: this.metrics,
          rejections: this.metrics.rejections,
          upstreamCalls: this.metrics.upstreamCalls,
          ...(this.tracing !== undefined ? { tracing: this.tracing } : {}),
          ...(this.accessLog !== undefined ? { accessLog: this.accessLog } : {}),
          logger: logger.child({ component: 'egress', engine: true }),
          // The bulk governor paces training transfers: without a training segment there is
          // nothing to pace, and the poll would only wake the idle JS thread 50 times a second.
          ...(config.segments.training !== undefined ? { onInference: () => this.governor.noteInference(performance.now()) } : {}),
        });
        this.engineEgress.engine.on('rejected', (err: unknown) => {
          const reason = segmentRefusalReason(err);
          if (reason !== null) this.metrics.connectionRefusals.record('segment:inference', reason);
        });
        const a = this.engineEgress.address;
        this.endpoints.segment = `${a.host}:${a.port}`;
        this.health.register('segment:inference', { kind: 'segment', services: [INFERENCE_SERVICE], up: true });
        logger.info({ listener: 'segment', segment: 'inference', transport: transport.kind, engine: true, address: this.endpoints.segment }, 'listening');
      } else {
        const authorizeCall = this.security === undefined ? null : egressTenantPolicy(this.security.config, this.security);
        this.egress = new EgressService({
          upstreams,
          logger: logger.child({ component: 'egress' }),
          observer: egressObserver({ upstreamCalls: this.metrics.upstreamCalls, ...(this.accessLog !== undefined ? { accessLog: this.accessLog } : {}), ...(this.tracing !== undefined ? { tracing: this.tracing } : {}) }),
          ...(authorizeCall !== null ? { authorizeCall } : {}),
        });
        this.listener = await transport.listen({
          segment: 'inference',
          host: listen.host,
          port: listen.port,
          segmentKey: key,
          maxMessageBytes: seg.maxMessageBytes,
          ...(seg.device !== undefined ? { device: seg.device } : {}),
          ...segmentListenLimits(listen),
        });
        this.metrics.links.watchListener(this.listener, 'inference');
        this.countRefusals(this.listener, 'segment:inference');
        if (this.security !== undefined) guardListener(this.listener, 'inference', this.security);
        this.listener.on('link', (link: Link) => {
          this.metrics.links.add(link);
          this.egressLinks.add(link);
          link.once('close', () => this.egressLinks.delete(link));
          // The egress has no round trip to give the governor, but its training links must know
          // that inference is passing through (bulk then works in short slices, see turnBytes).
          link.on('message', () => this.governor.noteInference(performance.now()));
          this.egress!.attach(link);
        });
        this.listener.on('error', (err: Error) => logger.error({ err: err.message }, 'inference segment listener error'));
        const a = this.listener.address;
        this.endpoints.segment = `${a.host}:${a.port}`;
        this.health.register('segment:inference', { kind: 'segment', services: [INFERENCE_SERVICE], up: true });
        logger.info({ listener: 'segment', segment: 'inference', transport: transport.kind, address: this.endpoints.segment }, 'listening');
      }
    }

    if (inferenceIngress) {
      const routes = new RouteTable(config.routes);
      const peerNames = new Set(config.routes.flatMap((r) => r.peers));
      const peers = config.peers.filter((p) => p.segment === 'inference' && peerNames.has(p.name));
      // The engine owns listeners.grpc's TCP port when it can. Its links then carry every call of
      // this ingress (REST/WebSocket and the gRPC methods it relays to TypeScript too): one link
      // set per egress peer. Otherwise the TypeScript links (PeerLinks) do.
      const engineFront = config.listeners.grpc !== undefined ? await this.startEngineIngress(transport.kind, key, seg.maxMessageBytes, this.listenerLimits('grpc', config.listeners.grpc)) : undefined;
      let channel: SegmentChannel | PeerLinks;
      if (this.engineIngress !== undefined) {
        channel = this.engineIngress.segment;
        this.watchPeers(this.engineIngress.segment);
      } else {
        this.peerLinks = new PeerLinks({
          transport,
          peers,
          segmentKey: key,
          maxMessageBytes: seg.maxMessageBytes,
          logger: logger.child({ component: 'links' }),
        });
        channel = this.peerLinks;
        this.watchPeers(this.peerLinks);
        this.peerLinks.start();
      }
      this.upstreamPolicy = new UpstreamPolicy({ peers: peers.map((p) => p.name), scheduling: config.scheduling, governor: this.governor });
      this.metrics.attachAdmission(this.upstreamPolicy);
      const forwarder = new SegmentForwarder(channel, logger.child({ component: 'forwarder' }), this.upstreamPolicy);
      this.gateway = new InferenceGateway({
        routes,
        forwarder,
        hooks: this.hooks,
        logger: logger.child({ component: 'ingress' }),
        defaultTimeoutMs: config.limits.defaultTimeoutMs,
        isReady: () => this.health.ready(INFERENCE_SERVICE),
        ...(this.pii !== undefined ? { stage: this.pii } : {}),
        ...(this.threats !== undefined && this.threatNames !== undefined ? { tap: threatTap(this.threats, this.threatNames) } : {}),
      });
      const common = {
        gateway: this.gateway,
        serverName: config.node.name,
        serverVersion: SLUICE_VERSION,
        maxRequestBytes: config.limits.maxRequestBytes,
      };
      if (config.listeners.grpc !== undefined) {
        const l = config.listeners.grpc;
        this.grpcHealth = new GrpcHealthService(this.health);
        const grpcHealth = this.grpcHealth;
        const sec = this.security;
        const grpcLimits = this.listenerLimits('grpc', l);
        // With the engine on the TCP port, the TypeScript server sits behind it on a private unix
        // socket and serves every call the engine relays.
        let binder: ConnectionBinder | undefined;
        if (engineFront !== undefined) binder = unixSocketBinder(engineFront.relayPath, 'grpc-relay');
        else if (sec?.config.tls.enabled === true) {
          binder = (accept, host, port) => serveConnectionsOverTls(accept, { name: 'grpc', host, port, tls: sec.config.tls, allowlist: sec.allowlist, events: sec, limits: grpcLimits });
        }
        this.grpc = new Http2GrpcIngress({
          limits: grpcLimits,
          ...common,
          host: l.host,
          port: l.port,
          logger: logger.child({ component: 'grpc' }),
          maxResponseBytes: seg.maxMessageBytes,
          addServices: (server) => {
            grpcHealth.addTo(server);
          },
          // TensorTransfer is served on listeners.training alone (the engine relays such calls here too).
          servedElsewhere: [{ prefix: TENSOR_TRANSFER_PATH_PREFIX, message: notOnGrpcPortMessage(this.training !== undefined ? endpointPort(this.training.endpoints.service) : undefined) }],
          ...this.grpcGateOptions(),
          ...(binder !== undefined ? { binder } : {}),
        });
        const tsPort = await this.grpc.start();
        if (this.engineIngress !== undefined) {
          const a = this.engineIngress.address;
          this.endpoints.grpc = `${a.host}:${a.port}`;
          // Shed and retry counts: the engine's fast path and the TypeScript path (relayed calls, HTTP), summed at scrape time.
          const engineIngress = this.engineIngress;
          const policy = this.upstreamPolicy!;
          this.metrics.attachAdmission({
            get shed() {
              const e = engineIngress.admission.shed;
              return Object.fromEntries(Object.entries(policy.shed).map(([cause, n]) => [cause, n + (e[cause] ?? 0)]));
            },
            get retries() {
              return policy.retries + engineIngress.admission.retries;
            },
            get retriesDenied() {
              return policy.retriesDenied + engineIngress.admission.retriesDenied;
            },
          });
          logger.info({ listener: 'grpc', address: this.endpoints.grpc, engine: true, path: 'engine' }, 'listening');
        } else {
          this.endpoints.grpc = `${l.host}:${tsPort}`;
        }
      }
      if (config.listeners.http !== undefined) {
        const l = config.listeners.http;
        const sec = this.security;
        const adminRoutes = sec === undefined ? [] : [evidenceRoute({ config, security: sec, metricsText: () => this.metrics.registry.metrics() })];
        this.endpoints.http = await this.startHttp({ ...common, adminRoutes }, l.host, l.port);
      }
      // Give the first links a moment so the first requests do not race the handshakes.
      await (this.engineIngress?.segment ?? this.peerLinks)?.waitForFirstAttempts(3000);
    }
  }

  /**
   * The training plane on its own thread: TensorTransfer on listeners.training (8003), the
   * training segment's listener and links, transfers and the spool. Without inference routes it
   * serves listeners.grpc too (grpc.health.v1, and TensorTransfer's UNIMPLEMENTED answer).
   */
  private async startTraining(inferenceIngress: boolean): Promise<void> {
    const { config, logger } = this.opts;
    const s = config.security;
    const health = new TrainingHealth(this.health, config);
    this.training = await TrainingPlane.start({
      config,
      ...(this.opts.configDir !== undefined ? { configDir: this.opts.configDir } : {}),
      logger: logger.child({ component: 'training' }),
      ring: this.trainingRing!,
      engineRing: this.engineRing,
      metrics: this.metrics,
      ...(this.security !== undefined ? { security: this.security } : {}),
      gated: this.security !== undefined && (s.apiKeys.enabled || s.jwt.enabled || s.audit.enabled || s.rateLimits.enabled),
      serveGrpcPort: !inferenceIngress,
      // The thread answers grpc.health.v1 on the gRPC port it serves from this model's statuses.
      health: this.health,
      onPeerLink: (peer, up, detail) => health.peerLink(peer, up, detail),
      onUnexpectedExit: (reason) => health.threadExited(reason),
    });
    health.threadReady(this.training.endpoints);
    const e = this.training.endpoints;
    this.endpoints.trainingService = e.service;
    if (e.segment !== undefined) this.endpoints.training = e.segment;
    if (e.grpc !== undefined) this.endpoints.grpc = e.grpc;
    this.logThreadPriorities();
  }

  /** The engine loop threads' scheduling (their slice: engine-thread-slice.ts), in the log and sluice_thread_* metrics. */
  private reportEngineThreads(): void {
    for (const [role, engine] of [['ingress', this.engineIngress?.engine], ['egress', this.engineEgress?.engine]] as const) {
      if (engine === undefined) continue;
      const t = engine.threadSchedule;
      this.metrics.setThreadPriority(`sluice-infer/${role}`, t);
      if (t.error !== undefined) this.opts.logger.warn({ thread: `sluice-infer/${role}`, ...t }, 'the engine thread keeps the kernel\'s default slice');
      else this.opts.logger.info({ thread: `sluice-infer/${role}`, ...t }, 'engine thread schedule');
    }
  }

  /** Which CPU priority each thread runs at (inference and control: normal; training: lowered). */
  private logThreadPriorities(): void {
    let main: { policy: string; nice: number; tid: number } = { policy: 'unknown', nice: 0, tid: process.pid };
    try {
      main = loadNativeAddon().threadPriority();
    } catch {
      // without the addon the main thread's policy is not readable; it was never changed
    }
    this.metrics.setThreadPriority('main', main);
    const training = this.training?.priority;
    this.opts.logger.info({ threads: { main, ...(training !== undefined ? { 'sluice-training': training } : {}) } }, 'thread priorities');
  }

  /**
   * Readiness of the ingress' side of the segment: at least one egress peer linked. Each peer is
   * also a component of its own, shown but not gating (one dead peer of several must not take
   * the node out of load balancing; per-model readiness is ModelReady's job).
   */
  private watchPeers(peerLinks: PeerLinks | EngineSegmentChannel): void {
    const segment = this.health.register('peers:inference', { kind: 'segment', services: [INFERENCE_SERVICE] });
    const perPeer = new Map<string, HealthHandle>();
    for (const name of peerLinks.names) perPeer.set(name, this.health.register(`peer:${name}`, { kind: 'peer', services: [INFERENCE_SERVICE], critical: false }));
    const update = (): void => {
      const up = peerLinks.names.filter((n) => peerLinks.isUp(n));
      if (up.length > 0) segment.up(`${up.length} of ${peerLinks.names.length} peers linked`);
      else segment.down('no link to any egress peer');
    };
    if (peerLinks instanceof EngineSegmentChannel) {
      // Engine links: counted in the link metrics from the engine's per-peer counters. A link
      // that came up while the engine started (before this subscription) is shown up now.
      for (const name of peerLinks.names) if (peerLinks.isUp(name)) perPeer.get(name)?.up('linked');
      peerLinks.on('link', (name: string, remoteAddress: string) => {
        perPeer.get(name)?.up(remoteAddress);
        update();
      });
      peerLinks.on('link-down', (name: string) => {
        perPeer.get(name)?.down('link closed; reconnecting');
        update();
      });
    } else {
      peerLinks.on('link', (name: string, link: Link) => {
        this.metrics.links.add(link, name);
        if (this.security !== undefined) guardLink(link, this.security);
        perPeer.get(name)?.up(link.remoteAddress);
        update();
        link.once('close', () => {
          perPeer.get(name)?.down('link closed; reconnecting');
          update();
        });
      });
    }
    peerLinks.on('connect-error', (name: string, err: unknown) => {
      this.metrics.links.connectFailed('inference', err);
      perPeer.get(name)?.down((err as Error).message);
    });
    update();
  }

  /**
   * Drain, step 1: readiness off, refuse new requests (HTTP 503 / gRPC UNAVAILABLE; the egress
   * answers new calls from peers with UNAVAILABLE so their ingress can go elsewhere), stop
   * accepting connections, end health watches and start the gRPC server's graceful shutdown.
   */
  /**
   * SIGHUP: re-reads the API-key store and the JWKS file now. A change republishes the engine's
   * policy table (SecurityRuntime.onCredentialsChanged), as the watchers' own polls do.
   */
  async reloadCredentials(): Promise<void> {
    await this.security?.reloadCredentials();
  }

  beginDrain(graceMs: number): void {
    this.health.startDraining();
    this.gateway?.beginDrain();
    this.egress?.beginShutdown();
    this.engineEgress?.beginShutdown();
    this.http?.stop();
    this.httpsFront?.listener.stopAccepting();
    this.grpcHealth?.endWatches();
    this.engineIngress?.beginDrain();
    this.grpcStopping ??= this.grpc?.stop(graceMs);
    this.training?.beginDrain(graceMs);
  }

  /** Work the drain waits for: calls in flight both ways, and answers decided but not yet written. */
  private get unfinished(): { ingress: number; egress: number; unsentAnswers: number } {
    return { ...this.inflight, unsentAnswers: this.http?.unsentAnswers ?? 0 };
  }

  /**
   * Drain, step 2: resolves true when nothing is in flight, false when `signal` aborts (grace
   * over) with work still in flight (logged with the counts: those calls will be cut).
   */
  async waitIdle(signal: AbortSignal): Promise<boolean> {
    for (;;) {
      const left = this.unfinished;
      if (left.ingress === 0 && left.egress === 0 && left.unsentAnswers === 0) return true;
      if (signal.aborted) {
        this.opts.logger.warn(left, 'drain grace over with work in flight: those calls are cut');
        return false;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Drain, step 3: close everything. Calls still in flight are handed back: the egress cancels
   * its upstream calls, whose callers get UNAVAILABLE; the ingress' pending requests fail with
   * a retryable error when their links close.
   */
  async close(): Promise<void> {
    const { logger } = this.opts;
    for (const p of this.probes) p.stop();
    this.egress?.beginShutdown();
    this.engineEgress?.beginShutdown();
    await this.grpcStopping;
    this.engineIngress?.close();
    if (this.grpcSocketDir !== undefined) rmSync(this.grpcSocketDir, { recursive: true, force: true });
    await this.peerLinks?.close();
    this.egress?.close();
    this.engineEgress?.close();
    this.probeUpstreams?.close();
    await this.listener?.close();
    await Promise.allSettled([...this.egressLinks].map((l) => l.close('shutting down')));
    await this.training?.close();
    await this.models?.stop(0);
    await this.httpsFront?.close();
    if (this.httpSocketDir !== undefined) rmSync(this.httpSocketDir, { recursive: true, force: true });
    await this.opsServer?.close();
    // Spans of the last requests go out before the process ends (bounded by the exporter's timeout).
    await this.tracing?.shutdown().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'trace export on shutdown failed'));
    // Last: everything above may still report security events.
    await this.security?.close();
    logger.info('stopped');
  }

  /** Graceful stop in one call: drain for up to graceMs, then close. */
  async stop(graceMs = 5000): Promise<void> {
    this.beginDrain(graceMs);
    await this.waitIdle(AbortSignal.timeout(Math.max(0, graceMs)));
    await this.close();
  }
}
