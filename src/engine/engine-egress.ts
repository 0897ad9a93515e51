// The egress role served by the native engine: the inference-segment listener, the CALL ->
// model server -> REPLY path and the upstream HTTP/2 pool all run on the engine's thread. This
// is the control-plane half: it hands the engine its config, and turns the engine's batched
// events into what the TypeScript egress produced (logs, access lines, link and refusal metrics,
// audited security events), reading link totals from the shared counters block at scrape time.
import type { SecurityConfig } from '../config/schema.ts';
import { InferenceErrorCode } from '../kserve/inference-error.ts';
import type { SecurityEventSink } from '../security/events.ts';
import { violationType } from '../security/link-guard.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { LinkTracker } from '../telemetry/link-tracker.ts';
import type { RejectionStats } from '../telemetry/rejection-stats.ts';
import type { RequestStats } from '../telemetry/request-stats.ts';
import type { Tracing } from '../telemetry/tracing.ts';
import { grpcStatusName } from '../kserve/status.ts';
import { EngineSpans, type EngineSpanRecord } from './engine-spans.ts';
import type { UpstreamRoute } from '../egress/upstream-pool.ts';
import type { ResolvedLinkTuning } from '../transport/link-tuning.ts';
import type { EngineRdmaLinkOptions } from './engine-addon.ts';
import type { AccessLog } from '../telemetry/access-log.ts';
import { writeEngineEgressAccess } from './engine-egress-access.ts';
import { forwardEngineLogs } from './engine-log.ts';
import { enginePeerLinkSource, remoteHost } from './engine-link-source.ts';
import { addEngineSchedulingDelay, type SchedulingDelaySink } from './engine-scheduling-delay.ts';
import { engineLinkOptions } from './engine-link-options.ts';
import { NativeEngine, type EngineLinkClose, type EngineLinkInfo, type EnginePolicyDenial } from './native-engine.ts';

export interface EngineEgressOptions {
  host: string;
  port: number;
  segmentKey: Uint8Array;
  tuning: ResolvedLinkTuning;
  handshakeTimeoutMs: number;
  dscp?: number;
  /** The inference segment runs over RDMA (engineRdmaOptions). */
  rdma?: EngineRdmaLinkOptions;
  routes: readonly UpstreamRoute[];
  /** The security config when gates are on: its tenants become the egress tenant policy. */
  security?: { config: SecurityConfig; events: SecurityEventSink };
  links: LinkTracker;
  /** sluice_scheduling_delay_seconds: the engine's links' delays are added at scrape time. */
  schedulingDelay?: SchedulingDelaySink;
  rejections: RejectionStats;
  /** sluice_upstream_request_duration_seconds: the engine's tally, taken at scrape time. */
  upstreamCalls?: RequestStats;
  /** telemetry.otlp: the `egress` and `upstream` spans of sampled calls, from the engine's span records. */
  tracing?: Tracing;
  /** telemetry.accessLog: one line per model-server call, from the engine's batched records. */
  accessLog?: AccessLog;
  logger: Logger;
  /** Called (at most every 20 ms) while calls arrive: the bulk governor's inference signal. */
  onInference?: () => void;
}

const INFERENCE_POLL_MS = 20;
const MAX_PEER_SERIES = 1024;

export class EngineEgress {
  readonly engine: NativeEngine;
  readonly address: { host: string; port: number };
  readonly #removeSource: () => void;
  readonly #poll: NodeJS.Timeout | undefined;

  private constructor(engine: NativeEngine, address: { host: string; port: number }, removeSource: () => void, poll: NodeJS.Timeout | undefined) {
    this.engine = engine;
    this.address = address;
    this.#removeSource = removeSource;
    this.#poll = poll;
  }

  static async start(o: EngineEgressOptions): Promise<EngineEgress> {
    const engine = new NativeEngine('sluice-infer');
    const log = o.logger;
    forwardEngineLogs(engine, log);
    engine.on('rejected', (err: Error & { code: string }, remote: string) => {
      o.links.handshakeFailures.inc('inference', err.code.replace(/^SLUICE_ERR_HANDSHAKE_/, '').toLowerCase());
      o.rejections.peerError('inference', err);
      const type = violationType(err.code);
      if (type !== null && o.security !== undefined) {
        o.security.events.emit({ type, tenant: null, requestId: null, actor: `peer:${remote}`, outcome: 'denied', detail: { segment: 'inference', code: err.code, error: err.message.slice(0, 300) } });
      }
    });
    const remotes = new Map<number, EngineLinkInfo>();
    // The link metrics by remote host, as the TypeScript egress labels accepted links.
    const peerSources = new Map<string, () => void>();
    engine.on('link', (l: EngineLinkInfo) => {
      remotes.set(l.id, l);
      const host = remoteHost(l.remoteAddress);
      // The engine keeps at most MAX_PEER_SERIES hosts apart (native/engine/engine.h kMaxPeerBlocks).
      if (!peerSources.has(host) && peerSources.size < MAX_PEER_SERIES) peerSources.set(host, o.links.addSource(enginePeerLinkSource(engine, host, host)));
    });
    engine.on('close', (id: number, why: EngineLinkClose) => {
      const l = remotes.get(id);
      remotes.delete(id);
      if (why.by !== 'error' || why.error === undefined) return;
      o.rejections.peerError('inference', why.error);
      const type = violationType(why.error.code);
      if (type === null || o.security === undefined) return;
      o.security.events.emit({
        type,
        tenant: null,
        requestId: null,
        actor: `peer:${l?.remoteAddress ?? '?'}`,
        outcome: 'denied',
        detail: { segment: 'inference', transport: 'tcp', link: l?.linkId ?? String(id), code: why.error.code, error: why.error.message.slice(0, 300) },
      });
    });
    engine.on('policy-denied', (d: EnginePolicyDenial) => {
      o.security?.events.emit({
        type: 'policy.denied',
        tenant: d.tenantName,
        requestId: d.requestId,
        actor: `tenant-id:${d.tenantId}`,
        outcome: 'denied',
        reason: d.reason,
        detail: { gate: 'egress', code: InferenceErrorCode.TENANT_DENIED, model: d.model, tenant_id: d.tenantId },
      });
    });
    if (o.tracing !== undefined) {
      const spans = new EngineSpans(o.tracing, { peer: String });
      engine.on('span', (r: EngineSpanRecord) => spans.record(r));
      engine.setTracing(true, o.tracing.sampleRatio);
    }
    if (o.accessLog !== undefined) writeEngineEgressAccess(engine, o.accessLog, (link) => remotes.get(link)?.remoteAddress);
    // Messages the engine does not serve (not CALL/CANCEL) have no one to go to at an egress.
    engine.on('message', (id: number, m: { kind: number }) => log.debug({ link: id, kind: m.kind }, 'engine link: message of no service here dropped'));
    engine.configureEgress({
      routes: o.routes.map((r) => ({ model: r.model, addresses: r.upstreams.map((u) => u.address) })),
      tenants: o.security === undefined ? [] : o.security.config.tenants.map((t) => ({ id: t.id, name: t.name, models: [...t.models] })),
      maxMessageBytes: o.tuning.maxMessageBytes,
      connectTimeoutMs: 3000,
      accessRecords: o.accessLog !== undefined,
    });
    let address: { host: string; port: number };
    try {
      address = await engine.listen(o.host, o.port, engineLinkOptions(o.segmentKey, o.tuning, { handshakeTimeoutMs: o.handshakeTimeoutMs, ...(o.dscp !== undefined ? { dscp: o.dscp } : {}), ...(o.rdma !== undefined ? { rdma: o.rdma } : {}) }));
    } catch (err) {
      engine.stop();
      throw err;
    }
    const c = engine.counters;
    const removeLinks = (): void => {
      for (const r of peerSources.values()) r();
    };
    // The model-server calls per model and status, counted on the engine thread (no event per call).
    const upstreamCalls = o.upstreamCalls;
    const takeUpstream = (): void => {
      if (upstreamCalls === undefined) return;
      for (const s of engine.takeUpstreamTally()) upstreamCalls.recordCounts('grpc', 'inference', s.model, grpcStatusName(s.status), s.counts, s.sumUs / 1e6);
    };
    const removeUpstream = upstreamCalls?.addSource(takeUpstream);
    const removeDelay = o.schedulingDelay === undefined ? undefined : addEngineSchedulingDelay(c, o.schedulingDelay);
    const removeSource = (): void => {
      removeLinks();
      removeDelay?.();
      removeUpstream?.();
      takeUpstream(); // what the last calls counted stays in the metrics
    };
    let poll: NodeJS.Timeout | undefined;
    if (o.onInference !== undefined) {
      const note = o.onInference;
      let seen = c.get('egressCalls');
      poll = setInterval(() => {
        const now = c.get('egressCalls');
        if (now !== seen) note();
        seen = now;
      }, INFERENCE_POLL_MS);
      poll.unref();
    }
    return new EngineEgress(engine, address, removeSource, poll);
  }

  /** Upstream calls in flight (the ops drain waits on it). */
  get inflight(): number {
    return this.engine.egressInflight;
  }

  /** Refuses new calls with UNAVAILABLE; calls in flight finish. */
  beginShutdown(): void {
    this.engine.beginShutdown();
  }

  /** Closes every link (GOING_AWAY) and stops the engine thread. */
  close(): void {
    clearInterval(this.#poll);
    this.engine.stop(); // every link gets CLOSE(GOING_AWAY, "shutting down") first
    this.#removeSource();
  }
}
