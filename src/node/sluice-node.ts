// One running sluice: the parts the config asks for, started in dependency order (reference
// models, egress listener, ingress links, client listeners) and stopped in reverse.
//  - models:   `models` section present
//  - egress:   segments.inference.listen set (serves routes that have `upstreams`)
//  - ingress:  listeners.http or listeners.grpc set (forwards routes that have `peers`)
//  - training: segments.training set (TensorTransfer on the gRPC port, the training listener
//              when segments.training.listen is set, transfers to training peers)
// Every link is scheduled by FairLinkScheduler; one BulkGovernor per node ties the inference
// latency measured at the ingress to the pace of training bulk on the training links.
import type { SluiceConfig } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';
import { EgressService } from '../egress/egress-service.ts';
import { UpstreamPool } from '../egress/upstream-pool.ts';
import { GrpcIngress } from '../ingress/grpc-ingress.ts';
import { HookChain, type IngressHook } from '../ingress/hooks.ts';
import { HttpIngress } from '../ingress/http-ingress.ts';
import { InferenceGateway } from '../ingress/inference-gateway.ts';
import { PeerLinks } from '../ingress/peer-links.ts';
import { RouteTable } from '../ingress/route-table.ts';
import { SegmentForwarder } from '../ingress/segment-forwarder.ts';
import { ModelServer } from '../models/model-server.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { Link, Listener, Transport, TransportOptions } from '../transport/types.ts';
import { BulkGovernor } from '../scheduler/bulk-governor.ts';
import { fairLinkSchedulerFactory } from '../scheduler/fair-link-scheduler.ts';
import { UpstreamPolicy } from '../ingress/upstream-policy.ts';
import { addTensorTransferService } from '../training/grpc-service.ts';
import { TrainingGrpcServer } from '../training/grpc-server.ts';
import { TrainingNode } from '../training/training-node.ts';
import { loadSegmentKey } from '../config/segment-key.ts';

export type TransportChoice = 'tcp' | 'rdma' | 'auto';
/** Creates the transport a segment's config names (src/transport/registry.ts in production). */
export type TransportResolver = (choice: TransportChoice, logger: Logger, opts?: TransportOptions) => Promise<Transport>;

export const SLUICE_VERSION = '0.1.0';

export interface SluiceNodeOptions {
  config: SluiceConfig;
  logger: Logger;
  transports: TransportResolver;
  /** Directory a relative keyFile is resolved against (the config file's). */
  configDir?: string;
  /** Extra ingress hooks (auth, metrics) registered before start. */
  hooks?: readonly IngressHook[];
}

export interface Endpoints {
  http?: string;
  grpc?: string;
  segment?: string;
  /** The training segment listener. */
  training?: string;
  models?: string;
}

export class SluiceNode {
  readonly endpoints: Endpoints = {};
  readonly hooks = new HookChain();
  private readonly opts: SluiceNodeOptions;
  private models: ModelServer | undefined;
  private listener: Listener | undefined;
  private egress: EgressService | undefined;
  private peerLinks: PeerLinks | undefined;
  private gateway: InferenceGateway | undefined;
  private grpc: GrpcIngress | undefined;
  private http: HttpIngress | undefined;
  private readonly egressLinks = new Set<Link>();
  private training: TrainingNode | undefined;
  private trainingListener: Listener | undefined;
  private trainingGrpc: TrainingGrpcServer | undefined;
  private readonly trainingLinks = new Set<Link>();
  /** Ties inference latency to the bulk pace (exported for metrics and benchmarks). */
  readonly governor: BulkGovernor;
  private upstreamPolicy: UpstreamPolicy | undefined;

  constructor(opts: SluiceNodeOptions) {
    this.opts = opts;
    for (const h of opts.hooks ?? []) this.hooks.add(h);
    const sch = opts.config.scheduling;
    this.governor = new BulkGovernor({ targetMs: sch.latencyTargetMs, ...sch.bulk });
  }

  /** The training transfer node, when segments.training is configured. */
  get trainingNode(): TrainingNode | undefined {
    return this.training;
  }

  /** P2C, ejection, retry and shedding state of the ingress (undefined without an ingress). */
  get upstreams(): UpstreamPolicy | undefined {
    return this.upstreamPolicy;
  }

  /** Link tuning of every transport this node creates: the fair, latency-aware scheduler. */
  private transportOptions(): TransportOptions {
    const sch = this.opts.config.scheduling;
    return {
      link: {
        frameBytes: { training: sch.chunk.maxBytes },
        scheduler: fairLinkSchedulerFactory({
          governor: this.governor,
          latencyTargetMs: sch.latencyTargetMs,
          chunkBudgetFraction: sch.chunk.budgetFraction,
          minChunkBytes: sch.chunk.minBytes,
          quantumBytes: sch.quantumBytes,
        }),
      },
    };
  }

  get config(): SluiceConfig {
    return this.opts.config;
  }

  /** Requests in flight at the ingress and upstream calls in flight at the egress. */
  get inflight(): { ingress: number; egress: number } {
    return { ingress: this.gateway?.inflight ?? 0, egress: this.egress?.inflight ?? 0 };
  }

  private segmentKey(): Buffer {
    const seg = this.opts.config.segments.inference;
    if (seg === undefined) throw new ConfigError('segments.inference: required for the ingress and the egress');
    return loadSegmentKey(seg, 'inference', this.opts.configDir);
  }

  async start(): Promise<void> {
    const { config, logger } = this.opts;
    const seg = config.segments.inference;
    const serveIngress = config.listeners.http !== undefined || config.listeners.grpc !== undefined;
    const serveEgress = seg?.listen !== undefined;
    if (config.models !== undefined) {
      const m = config.models;
      this.models = new ModelServer({
        host: m.listen.host,
        port: m.listen.port,
        models: m.models,
        dense: m.dense,
        maxMessageBytes: m.maxMessageBytes,
        maxDelayMs: m.maxDelayMs,
        logger: logger.child({ component: 'models' }),
      });
      this.endpoints.models = `${m.listen.host}:${await this.models.start()}`;
    }
    if (config.segments.training !== undefined) await this.startTraining();
    const inferenceIngress = serveIngress && (config.segments.training === undefined || config.routes.some((r) => r.peers.length > 0));
    if (!inferenceIngress && !serveEgress) {
      await this.startTrainingGrpc();
      return;
    }
    if (seg === undefined) throw new ConfigError('segments.inference: required for the ingress and the egress');
    const key = this.segmentKey();
    const transport = await this.opts.transports(seg.transport, logger, this.transportOptions());

    if (serveEgress) {
      const upstreamRoutes = config.routes.filter((r) => r.upstreams.length > 0);
      if (upstreamRoutes.length === 0) {
        throw new ConfigError('routes: the inference segment listens, but no route has upstreams for it to serve');
      }
      this.egress = new EgressService({
        upstreams: new UpstreamPool(upstreamRoutes, seg.maxMessageBytes),
        logger: logger.child({ component: 'egress' }),
      });
      const listen = seg.listen!;
      this.listener = await transport.listen({
        segment: 'inference',
        host: listen.host,
        port: listen.port,
        segmentKey: key,
        maxMessageBytes: seg.maxMessageBytes,
        ...(seg.device !== undefined ? { device: seg.device } : {}),
      });
      this.listener.on('link', (link: Link) => {
        this.egressLinks.add(link);
        link.once('close', () => this.egressLinks.delete(link));
        this.egress!.attach(link);
      });
      this.listener.on('error', (err: Error) => logger.error({ err: err.message }, 'inference segment listener error'));
      const a = this.listener.address;
      this.endpoints.segment = `${a.host}:${a.port}`;
      logger.info({ service: 'segment', segment: 'inference', transport: transport.kind, address: this.endpoints.segment }, 'listening');
    }

    if (!inferenceIngress) await this.startTrainingGrpc();
    if (inferenceIngress) {
      const routes = new RouteTable(config.routes);
      if (routes.empty) throw new ConfigError('routes: the ingress listens, but no route names egress peers');
      const peerNames = new Set(config.routes.flatMap((r) => r.peers));
      const peers = config.peers.filter((p) => p.segment === 'inference' && peerNames.has(p.name));
      for (const name of peerNames) {
        if (!peers.some((p) => p.name === name)) throw new ConfigError(`routes: peer '${name}' is not in peers (segment inference)`);
      }
      this.peerLinks = new PeerLinks({
        transport,
        peers,
        segmentKey: key,
        maxMessageBytes: seg.maxMessageBytes,
        logger: logger.child({ component: 'links' }),
      });
      this.upstreamPolicy = new UpstreamPolicy({ peers: peers.map((p) => p.name), scheduling: config.scheduling, governor: this.governor });
      const forwarder = new SegmentForwarder(this.peerLinks, logger.child({ component: 'forwarder' }), this.upstreamPolicy);
      this.peerLinks.start();
      this.gateway = new InferenceGateway({
        routes,
        forwarder,
        hooks: this.hooks,
        logger: logger.child({ component: 'ingress' }),
        defaultTimeoutMs: config.limits.defaultTimeoutMs,
        isReady: () => peers.some((p) => this.peerLinks!.isUp(p.name)),
      });
      const common = {
        gateway: this.gateway,
        serverName: config.node.name,
        serverVersion: SLUICE_VERSION,
        maxRequestBytes: config.limits.maxRequestBytes,
      };
      if (config.listeners.grpc !== undefined) {
        const l = config.listeners.grpc;
        const training = this.training;
        this.grpc = new GrpcIngress({
          ...common,
          host: l.host,
          port: l.port,
          logger: logger.child({ component: 'grpc' }),
          maxResponseBytes: seg.maxMessageBytes,
          ...(training !== undefined ? { extraServices: (server) => addTensorTransferService(server, training) } : {}),
        });
        this.endpoints.grpc = `${l.host}:${await this.grpc.start()}`;
      }
      if (config.listeners.http !== undefined) {
        const l = config.listeners.http;
        this.http = new HttpIngress({ ...common, host: l.host, port: l.port, logger: logger.child({ component: 'http' }) });
        this.endpoints.http = `${l.host}:${await this.http.start()}`;
      }
      // Give the first links a moment so the first requests do not race the handshakes.
      await this.peerLinks.waitForFirstAttempts(3000);
    }
  }

  /** The training node, its training-segment listener (if `listen` is set). */
  private async startTraining(): Promise<void> {
    const { config, logger } = this.opts;
    const seg = config.segments.training!;
    const key = loadSegmentKey(seg, 'training', this.opts.configDir);
    const transport = await this.opts.transports(seg.transport, logger, this.transportOptions());
    const t = config.training;
    const log = logger.child({ component: 'training' });
    this.training = new TrainingNode({
      nodeName: config.node.name,
      transport,
      segmentKey: key,
      peers: config.peers,
      spoolDir: t.spoolDir,
      maxMessageBytes: seg.maxMessageBytes,
      ...(seg.device !== undefined ? { device: seg.device } : {}),
      limits: { windowBytes: t.windowBytes, maxChunkBytes: t.maxChunkBytes, maxTensorBytes: t.maxTensorBytes, resumeTimeoutMs: t.resumeTimeoutMs, maxTransfers: t.maxTransfers },
      onAudit: (e) => log.warn({ audit: e.action, detail: e.detail }, 'training refusal'),
    });
    await this.training.start();
    if (seg.listen !== undefined) {
      this.trainingListener = await transport.listen({
        segment: 'training',
        host: seg.listen.host,
        port: seg.listen.port,
        segmentKey: key,
        maxMessageBytes: seg.maxMessageBytes,
        ...(seg.device !== undefined ? { device: seg.device } : {}),
      });
      this.trainingListener.on('link', (link: Link) => {
        this.trainingLinks.add(link);
        link.once('close', () => this.trainingLinks.delete(link));
        this.training!.attachLink(link);
      });
      this.trainingListener.on('error', (err: Error) => logger.error({ err: err.message }, 'training segment listener error'));
      const a = this.trainingListener.address;
      this.endpoints.training = `${a.host}:${a.port}`;
      logger.info({ service: 'segment', segment: 'training', transport: transport.kind, address: this.endpoints.training }, 'listening');
    }
  }

  /** TensorTransfer on its own gRPC server, for a node whose gRPC port serves no inference. */
  private async startTrainingGrpc(): Promise<void> {
    const l = this.opts.config.listeners.grpc;
    if (this.training === undefined || l === undefined) return;
    this.trainingGrpc = new TrainingGrpcServer(this.training, l.host, l.port);
    this.endpoints.grpc = `${l.host}:${await this.trainingGrpc.start()}`;
    this.opts.logger.info({ service: 'grpc', address: this.endpoints.grpc, services: ['sluice.v1.TensorTransfer'] }, 'listening');
  }

  /**
   * Graceful stop: refuse new requests, let those in flight finish for up to graceMs, then
   * close links, listeners and the model server.
   */
  async stop(graceMs = 5000): Promise<void> {
    const { logger } = this.opts;
    this.gateway?.beginDrain();
    this.http?.stop();
    const grpcStopped = this.grpc?.stop(graceMs);
    const until = Date.now() + graceMs;
    while (Date.now() < until && (this.inflight.ingress > 0 || this.inflight.egress > 0)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.egress?.beginShutdown();
    await grpcStopped;
    await this.peerLinks?.close();
    this.egress?.close();
    await this.listener?.close();
    await Promise.allSettled([...this.egressLinks].map((l) => l.close('shutting down')));
    await this.trainingGrpc?.stop(Math.max(0, until - Date.now()));
    await this.training?.close();
    await this.trainingListener?.close();
    await Promise.allSettled([...this.trainingLinks].map((l) => l.close('shutting down')));
    await this.models?.stop(Math.max(0, until - Date.now()));
    logger.info('stopped');
  }
}
