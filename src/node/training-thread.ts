// The training plane's thread (a worker thread named `sluice-training`, with its own V8 heap):
// the TensorTransfer service on its own listener (listeners.training, 8003), transfer state,
// the spool and sinks, chunk hashing and the training-segment links. It lowers its own CPU
// priority first thing (SCHED_IDLE, else nice 19), so the kernel runs bulk work only when the
// inference and control threads do not want the core. Hashing and sealing run here,
// synchronously, not in libuv's process-wide pool. The main thread keeps the security gates
// (one key store, one audit writer): each call's gate check crosses once. Inference latency
// arrives through a shared ring (src/scheduler/latency-sample-ring.ts), metrics leave on request.
// Health stays on the main thread too: this thread reports its training-peer links, and on a
// training-only node answers grpc.health.v1 on the gRPC port from a mirror the main thread feeds
// (TensorTransfer calls there get UNIMPLEMENTED with this listener's port: grpc-port-server.ts).
import { parentPort, workerData } from 'node:worker_threads';
import type * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { loadSegmentKey } from '../config/segment-key.ts';
import { loadNativeAddon } from '../crypto/native-addon.ts';
import { LatencySampleRing } from '../scheduler/latency-sample-ring.ts';
import { RingFedGovernor } from '../scheduler/ring-fed-governor.ts';
import { ClientCertAllowlist } from '../security/client-cert-allowlist.ts';
import type { SecurityEventSink } from '../security/events.ts';
import { defaultMethodGates, gatedTenantId, gateInterceptor } from '../security/grpc-gate-interceptor.ts';
import { serveGrpcOverTls } from '../security/grpc-tls.ts';
import { guardLink, guardListener } from '../security/link-guard.ts';
import { RemoteGates } from '../security/remote-gates.ts';
import { GrpcHealthService, HEALTH_SERVICE_NAME } from '../telemetry/grpc-health.ts';
import { HealthMirror } from '../telemetry/health-mirror.ts';
import type { Logger } from '../telemetry/logger.ts';
import { SluiceMetrics } from '../telemetry/metrics.ts';
import type { ListenerLimits } from '../net/connection-limits.ts';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from '../config/schema.ts';
import { dataOwnerNames } from '../security/at-rest/data-owner.ts';
import { openTenantKeys } from '../security/at-rest/open-tenant-keys.ts';
import { spooledTensorCheck } from '../security/threats/spooled-tensor-check.ts';
import { ThreatMonitor } from '../security/threats/threat-monitor.ts';
import { MAX_CHUNK_HEADER_BYTES } from '../training/peer-messages.ts';
import { ReceivePool } from '../wire/receive-pool.ts';
import { TrainingGrpcServer, type GrpcBinder } from '../training/grpc-server.ts';
import { TrainingGrpcPort } from '../training/grpc-port-server.ts';
import { PushBuffers } from '../training/push-buffers.ts';
import { TENSOR_TRANSFER_SERVICE } from '../training/proto.ts';
import { TrainingNode } from '../training/training-node.ts';
import type { Link, Listener } from '../transport/types.ts';
import { segmentTransportOptions } from './segment-transport-options.ts';
import { TRAINING_THREAD_NAME, type FromTrainingThread, type ThreadPriorityInfo, type ToTrainingThread, type TrainingThreadEndpoints, type TrainingThreadInit } from './training-thread-messages.ts';
import { defaultTransports } from './transports.ts';

/** Default of listeners.training when a training segment is configured without it. */
const DEFAULT_SERVICE_LISTENER = { host: '127.0.0.1', port: 8003, handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS, idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS, maxConnections: undefined };

const port = parentPort;
if (port === null) throw new Error('training-thread.ts runs as a worker thread (src/node/training-plane.ts starts it)');
const init = workerData as TrainingThreadInit;
const post = (m: FromTrainingThread): void => port.postMessage(m);

/** Names this thread and lowers its priority; never fatal (an old kernel, a missing addon). */
function claimThread(log: Logger): ThreadPriorityInfo {
  try {
    const addon = loadNativeAddon();
    addon.setThreadName(TRAINING_THREAD_NAME);
    const wanted = init.config.training.threadPriority;
    if (wanted === 'normal') return addon.threadPriority();
    return addon.lowerThreadPriority(wanted === 'idle');
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'the training thread keeps normal priority: cannot lower it');
    return { policy: 'unknown', nice: 0, tid: 0 };
  }
}

/** Log records go to the main thread's logger (one destination, one format). */
function threadLogger(): Logger {
  return pino({ level: init.config.log.level === 'silent' ? 'silent' : 'trace', base: undefined, timestamp: false }, { write: (line: string) => post({ type: 'log', line }) });
}

class TrainingThread {
  private readonly log = threadLogger();
  private readonly metrics = new SluiceMetrics({ processMetrics: false });
  private readonly gates = new RemoteGates(post);
  private readonly events: SecurityEventSink | undefined;
  private readonly threats: ThreatMonitor | undefined;
  private readonly links = new Set<Link>();
  private node: TrainingNode | undefined;
  private segmentListener: Listener | undefined;
  private server: TrainingGrpcServer | undefined;
  /** listeners.grpc on a training-only node. */
  private grpcPort: TrainingGrpcPort | undefined;
  private allowlist: ClientCertAllowlist | null = null;
  private stopping: Promise<void> | undefined;
  private stopGovernor: (() => void) | undefined;
  /** The node's service statuses, fed by the main thread (only when this thread serves the gRPC port). */
  private readonly healthMirror = init.health !== undefined ? new HealthMirror(init.health) : undefined;
  private readonly grpcHealth = this.healthMirror !== undefined ? new GrpcHealthService(this.healthMirror) : undefined;

  constructor() {
    const threats = init.config.security.threats;
    this.events = init.gated || init.tls !== undefined || threats.enabled ? { emit: (event) => post({ type: 'security-event', event }) } : undefined;
    // Poisoning checks on received tensors (security.threats.poisoning), on this thread: the
    // monitor's events reach the main thread's audit log and webhooks like the gates' do.
    if (threats.enabled && threats.poisoning.enabled && this.events !== undefined) {
      this.threats = new ThreatMonitor(threats, this.events, { onSignal: (signal, tenant) => this.metrics.threatSignals.inc(signal, tenant) });
    }
  }

  async start(): Promise<{ endpoints: TrainingThreadEndpoints; priority: ThreadPriorityInfo }> {
    const priority = claimThread(this.log);
    const { config } = init;
    const seg = config.segments.training!;
    const key = loadSegmentKey(seg, 'training', init.configDir);
    const sch = config.scheduling;
    const governor = new RingFedGovernor(new LatencySampleRing({ buffer: init.ring }), {
      targetMs: sch.latencyTargetMs,
      ...sch.bulk,
      ...(init.engineRing !== undefined ? { sources: [new LatencySampleRing({ buffer: init.engineRing })] } : {}),
    });
    this.stopGovernor = governor.tickEvery();
    const t = config.training;
    // Chunks are decrypted into these and return once written to the sink (docs/wire.md section 4).
    const receivePool = new ReceivePool({ slabBytes: t.maxChunkBytes + MAX_CHUNK_HEADER_BYTES, slabs: t.receiveBuffers });
    this.metrics.receivePool = receivePool;
    // A job's chunks are gathered into these and return once the peer acknowledged them.
    const pushBuffers = new PushBuffers({ maxChunkBytes: t.maxChunkBytes, slabs: t.pushBuffers });
    this.metrics.pushBuffers = pushBuffers;
    const options = segmentTransportOptions(config, 'training', governor, this.metrics);
    const transport = await defaultTransports(seg.transport, this.log, { ...options, link: { ...options.link, receivePool } });
    const events = this.events;
    // security.atRest: spooled tensors are sealed here, on this thread, under the sender's tenant key.
    const tenantKeys = openTenantKeys(config.security.atRest, init.configDir);
    this.node = new TrainingNode({
      nodeName: config.node.name,
      transport,
      segmentKey: key,
      peers: config.peers,
      spoolDir: t.spoolDir,
      maxMessageBytes: seg.maxMessageBytes,
      ...(seg.device !== undefined ? { device: seg.device } : {}),
      limits: { windowBytes: t.windowBytes, maxChunkBytes: t.maxChunkBytes, maxTensorBytes: t.maxTensorBytes, resumeTimeoutMs: t.resumeTimeoutMs, maxTransfers: t.maxTransfers },
      onAudit: (e) => {
        this.log.warn({ audit: e.action, detail: e.detail }, 'training refusal');
        // Cross-segment attempts are segment violations like the wire's; protocol faults keep their own type.
        const type = e.action === 'training.protocol.violation' ? e.action : e.action.startsWith('training.spool.') ? `at_rest.${e.action.slice('training.spool.'.length)}` : 'segment.violation';
        events?.emit({ type, tenant: null, requestId: null, actor: 'training', outcome: 'denied', reason: e.detail, detail: { action: e.action, segment: 'training' } });
      },
      onTransferEvent: (e) => {
        const level = e.event === 'failed' || e.event === 'quarantined' ? 'warn' : 'info';
        this.log[level]({ transfer: e }, `transfer ${e.event}`);
        if (e.direction === 'inbound' && e.status === 'DATA_LOSS' && e.name !== undefined) this.threats?.poisoning.digestMismatch(e.name, e.peer);
      },
      ...(this.threats !== undefined ? { inspectSpooled: spooledTensorCheck(this.threats, config.security.threats.poisoning.quarantine) } : {}),
      stats: this.metrics.training,
      ...(tenantKeys !== undefined ? { atRest: { keys: tenantKeys, tenantName: dataOwnerNames(config.security.tenants) } } : {}),
      onLink: (link, peer) => {
        this.metrics.links.add(link, peer);
        if (events !== undefined) guardLink(link, events);
        // A configured peer this node dialled: its health component (main thread) follows the link.
        if (peer !== undefined) {
          post({ type: 'peer-link', peer, up: true, detail: link.remoteAddress });
          link.once('close', () => post({ type: 'peer-link', peer, up: false, detail: 'link closed; redialled by the next transfer' }));
        }
      },
    });
    const node = this.node;
    this.metrics.training.setLiveSource(() => node.active());
    await this.node.start();
    const endpoints: TrainingThreadEndpoints = { service: '' };
    if (seg.listen !== undefined) {
      const l = await transport.listen({
        segment: 'training',
        host: seg.listen.host,
        port: seg.listen.port,
        segmentKey: key,
        maxMessageBytes: seg.maxMessageBytes,
        ...(seg.device !== undefined ? { device: seg.device } : {}),
        handshakeTimeoutMs: seg.listen.handshakeTimeoutMs,
        ...(seg.listen.maxConnections !== undefined ? { maxConnections: seg.listen.maxConnections } : {}),
      });
      this.segmentListener = l;
      this.metrics.links.watchListener(l, 'training');
      if (events !== undefined) guardListener(l, 'training', events);
      l.on('link', (link: Link) => {
        this.links.add(link);
        link.once('close', () => this.links.delete(link));
        this.node!.attachLink(link);
      });
      l.on('error', (err: Error) => this.log.error({ err: err.message }, 'training segment listener error'));
      endpoints.segment = `${l.address.host}:${l.address.port}`;
      this.log.info({ listener: 'segment', segment: 'training', transport: transport.kind, address: endpoints.segment }, 'listening');
    }

    const svc = config.listeners.training ?? DEFAULT_SERVICE_LISTENER;
    // The same connection limits as every client listener (handshake and idle deadlines, cap).
    const limitsOf = (name: string, l: { handshakeTimeoutMs: number; idleTimeoutMs: number; maxConnections?: number | undefined }): ListenerLimits => ({
      handshakeTimeoutMs: l.handshakeTimeoutMs,
      idleTimeoutMs: l.idleTimeoutMs,
      maxConnections: l.maxConnections,
      onRefused: (reason) => this.metrics.connectionRefusals.record(name, reason),
    });
    const binder = await this.tlsBinder();
    this.server = new TrainingGrpcServer(this.node, svc.host, svc.port, {
      limits: limitsOf('training', svc),
      pushBuffers,
      // Gated: a push carries its caller's tenant id on the training segment (the receiver seals by it).
      ...(init.gated ? { interceptors: [gateInterceptor(this.gates, defaultMethodGates)], authorize: (md: grpc.Metadata) => ({ tenant: gatedTenantId(md) }) } : {}),
      ...(binder !== undefined ? { binder: binder('training', limitsOf('training', svc)) } : {}),
      ...(this.grpcHealth !== undefined ? { addServices: (server: grpc.Server) => this.grpcHealth!.addTo(server) } : {}),
    });
    const trainingPort = await this.server.start();
    endpoints.service = `${svc.host}:${trainingPort}`;
    this.log.info({ listener: 'training', address: endpoints.service, services: [TENSOR_TRANSFER_SERVICE], tls: binder !== undefined }, 'listening');
    const grpcPort = config.listeners.grpc;
    if (init.serveGrpcPort && grpcPort !== undefined) {
      const limits = limitsOf('grpc', grpcPort);
      this.grpcPort = new TrainingGrpcPort({
        host: grpcPort.host,
        port: grpcPort.port,
        trainingPort,
        limits,
        ...(binder !== undefined ? { binder: binder('grpc', limits) } : {}),
        ...(this.grpcHealth !== undefined ? { addServices: (server: grpc.Server) => this.grpcHealth!.addTo(server) } : {}),
      });
      endpoints.grpc = `${grpcPort.host}:${await this.grpcPort.start()}`;
      this.log.info({ listener: 'grpc', address: endpoints.grpc, services: this.grpcHealth !== undefined ? [HEALTH_SERVICE_NAME] : [], tls: binder !== undefined }, 'listening');
    }
    return { endpoints, priority };
  }

  /** The TLS listener (and mTLS allowlist, loaded on this thread) when security.tls is on. */
  private async tlsBinder(): Promise<((name: string, limits: ListenerLimits) => GrpcBinder) | undefined> {
    const tls = init.tls;
    if (tls === undefined || !tls.enabled) return undefined;
    const cc = tls.clientCerts;
    if (cc.mode === 'require') this.allowlist = await ClientCertAllowlist.start({ file: cc.allowlistFile as string, reloadSeconds: cc.reloadSeconds, sighup: false });
    const allowlist = this.allowlist;
    const events = this.events ?? { emit() {} };
    return (name, limits) => (server, host, p) => serveGrpcOverTls(server, { name, host, port: p, tls, allowlist, events, limits });
  }

  handle(m: ToTrainingThread): void {
    if (this.gates.handle(m)) return;
    switch (m.type) {
      case 'metrics':
        void this.metrics.exportForMerge().then(
          (metrics) => post({ type: 'metrics', id: m.id, metrics }),
          () => post({ type: 'metrics', id: m.id, metrics: [] }),
        );
        return;
      case 'health':
        this.healthMirror?.apply(m.statuses);
        return;
      case 'drain':
        // The mirror already says NOT_SERVING (the main thread's drain change came first).
        this.grpcHealth?.endWatches();
        this.stopping ??= this.stopServers(m.graceMs);
        return;
      case 'close':
        void this.close().then(() => post({ type: 'closed' }));
        return;
    }
  }

  private async stopServers(graceMs: number): Promise<void> {
    await Promise.all([this.server?.stop(graceMs), this.grpcPort?.stop(graceMs)]);
  }

  private async close(): Promise<void> {
    this.stopping ??= this.stopServers(0);
    await this.stopping;
    this.gates.failAll('the training thread is stopping');
    this.stopGovernor?.();
    await this.node?.close();
    await this.segmentListener?.close();
    await Promise.allSettled([...this.links].map((l) => l.close('shutting down')));
    this.allowlist?.close();
    this.log.flush?.();
  }
}

const thread = new TrainingThread();
port.on('message', (m: ToTrainingThread) => thread.handle(m));
thread.start().then(
  ({ endpoints, priority }) => post({ type: 'ready', endpoints, priority }),
  (err: unknown) => {
    const e = err as { message?: string; code?: unknown };
    post({ type: 'failed', message: e?.message ?? String(err), ...(typeof e?.code === 'string' ? { code: e.code } : {}) });
  },
);
