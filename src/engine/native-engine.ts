// The TypeScript face of the native engine (native/engine/engine.h): starts its I/O thread,
// hands it listeners, peers and the egress's upstreams, and turns its batched events into
// EventEmitter events. Nothing here runs per inference call: calls arriving on engine links
// are served inside the engine; only link lifecycle, refusals, logs and messages the engine
// does not consume itself (the slow path) come up as events.
import { EventEmitter } from 'node:events';
import { SluiceError } from '../errors.ts';
import { CloseCode } from '../wire/close-frame.ts';
import { loadEngineAddon, type EngineEgressConfig, type EngineIngressConfig, type EngineEventRecord, type EngineLinkOptions, type EngineRequestTallySeries, type EngineTlsMaterial, type NativeEngineHandle } from './engine-addon.ts';
import type { LatencySampleRing } from '../scheduler/latency-sample-ring.ts';
import { EngineCounters } from './engine-counters.ts';
import { decodeSpanRecord, SPAN_RECORD_BYTES } from './engine-spans.ts';
import { applyEngineSlice, engineSliceUs, type EngineThreadSchedule } from './engine-thread-slice.ts';
import { CLOSED_BY, EngineEventType, type FrontOutcome, GateDecisionBits } from './engine-events.ts';

export interface EngineLinkInfo {
  /** The engine's number for the link (send(), closeLink(), events). */
  id: number;
  /** Hex prefix of the handshake transcript: the same on both ends (the TS link's `id`). */
  linkId: string;
  remoteAddress: string;
  role: 'initiator' | 'acceptor';
  /** The dialer that made it (0 for accepted links). */
  dialer: number;
}

/** What the engine reports about a link's carrier (queryLink); empty for a TCP link. */
export interface EngineLinkStats {
  /** The queue pair's GRH traffic class read back with ibv_query_qp (-1 unreadable). */
  trafficClass?: number;
  /** Send work requests posted, those signalled, those inline, and ibv_post_send calls. */
  requests?: number;
  signalled?: number;
  inlined?: number;
  postCalls?: number;
  /** Completion channel events taken, and busy-poll spins that found completions. */
  cqEvents?: number;
  /** Busy-poll spins done, and those that found completions. */
  busySpins?: number;
  busyHits?: number;
  maxInline?: number;
}

export interface EngineLinkClose {
  by: (typeof CLOSED_BY)[number];
  code: number;
  reason: string;
  /** Set when by === 'error': the stable code (SLUICE_ERR_WIRE_*, SLUICE_ERR_TRANSPORT_*). */
  error?: SluiceError;
}

export interface EngineInbound {
  cls: number;
  kind: number;
  streamId: number;
  tenant: number;
  body: Buffer;
}

export interface EnginePolicyDenial {
  tenantId: number;
  tenantName: string | null;
  requestId: string;
  model: string;
  reason: string;
}

/** A gate decision of the engine's ingress, for TypeScript to record (see engine-gate-events.ts). */
export interface EngineGateDecision {
  /** Non-zero: the client's answer waits for releaseAudit([ticket], durable). */
  ticket: number;
  allowed: boolean;
  /** A rate-limit refusal (summarised per tenant and second, never held). */
  throttled: boolean;
  streaming: boolean;
  credential: 'api_key' | 'jwt' | 'none';
  /** identity | tenant | isolation | policy ('' when allowed). */
  gate: string;
  actor: string;
  tenant: string | null;
  requestId: string;
  model: string;
  /** gRPC status of a refusal (0 when allowed), its SLUICE_ERR_* code and message. */
  status: number;
  code: string;
  message: string;
  bytes: number;
}

const CREDENTIALS = ['none', 'api_key', 'jwt', 'none'] as const;

/** Decodes a GATE_DECISION record (event_channel.h documents the fields). */
export function decodeGateDecision(e: EngineEventRecord): EngineGateDecision {
  const c = e.c;
  return {
    ticket: e.a,
    allowed: (c & GateDecisionBits.ALLOWED) !== 0,
    throttled: (c & GateDecisionBits.THROTTLED) !== 0,
    streaming: (c & GateDecisionBits.STREAMING) !== 0,
    credential: CREDENTIALS[c & GateDecisionBits.CREDENTIAL_MASK] ?? 'none',
    gate: e.err ?? '',
    actor: e.extra ?? 'unauthenticated',
    tenant: e.tenantName ?? null,
    requestId: e.requestId ?? '',
    model: e.model ?? '',
    status: Math.floor(c / 2 ** GateDecisionBits.STATUS_SHIFT) & 0xff,
    code: e.code ?? '',
    message: e.text ?? '',
    bytes: e.b,
  };
}

/** A fast-path gRPC call the ingress finished: every failed call, and every call when startIngress asked for everyCallEvent (the access log); the metrics come from takeRequestTally. */
export interface EngineRequestDone {
  model: string;
  requestId: string;
  /** Failed calls: the stable SLUICE_ERR_* code ('' when the engine had none) and the message. */
  code?: string;
  err?: string;
  /** gRPC status code. */
  status: number;
  durationSeconds: number;
  /**
   * One message of a ModelStreamInfer stream (request id `<stream's id>:<n>`): each message is a
   * request with its own record, as on the TypeScript ingress; the stream itself has none.
   */
  streaming: boolean;
  /** The access record's numbers (src/telemetry/access-log.ts); a stream message's are its own. */
  tenant: number;
  /** Dialer id of the egress peer that answered last (0: none was called). */
  peer: number;
  attempts: number;
  bytesIn: number;
  bytesOut: number;
  /** Arrival until the first CALL went out. */
  queueSeconds: number;
  /** The last CALL until its reply. */
  upstreamSeconds: number;
  /** The trace id of the context the call carried to the egress (tracing on), for the access line. */
  traceId?: string;
}

/** A model-server call of the egress ended (configureEgress accessRecords: the access log). */
export interface EngineEgressCallDone {
  /** The engine link the CALL came in on. */
  link: number;
  requestId: string;
  model: string;
  tenant: number;
  /** The CALL's method (src/wire/inference-envelope.ts CallMethod). */
  method: number;
  /** gRPC status the model server, the deadline or a cancel ended the call with. */
  status: number;
  /** The model server called ('' when the model had no route). */
  upstream: string;
  bytesIn: number;
  bytesOut: number;
  /** CALL arrival to the answer. */
  durationSeconds: number;
  /** CALL arrival until the model server was called. */
  queueSeconds: number;
  /** The model server's time. */
  upstreamSeconds: number;
  /** The trace id of the context sent to the model server (tracing on, or the CALL carried one). */
  traceId?: string;
}

/** A call sent with frontCall() ended: the REPLY envelope, or why there is none. */
export interface EngineFrontCallDone {
  slot: number;
  /** The slot's submission count (mod 0x8000) when the call was sent: tells a late event apart. */
  generation: number;
  outcome: FrontOutcome;
  /** REPLY: the reply envelope. */
  body: Buffer | undefined;
  /** SEND_FAILED / LINK_CLOSED: the stable code, when there is one. */
  code: string | undefined;
  text: string;
}

/** A TLS security event of the gRPC ingress (native/engine/event_channel.h kTlsAudit). */
export interface EngineTlsAudit {
  type: 'tls.handshake_failed' | 'tls.client_refused' | 'tls.client_revoked';
  /** "address:port" of the client ('' for a revocation). */
  remote: string;
  /** The failure's message, or why a certificate was refused. */
  message: string;
  /** handshake_failed: the TLS error code (node's ERR_SSL_* spelling). */
  code: string | null;
  /** handshake_failed: failures not audited since the last record; client_revoked: connections closed. */
  count: number;
  cert: { fingerprint: string; subject: string | null; issuer: string | null; serial: string | null } | null;
}

export interface EngineLogRecord {
  level: number;
  msg: string;
  code?: string;
  request_id?: string;
  model?: string;
  err?: string;
}

/**
 * Events: 'link' (EngineLinkInfo), 'close' (id, EngineLinkClose), 'message' (id, EngineInbound),
 * 'drain' (id), 'rejected' (SluiceError, remote) for a refused handshake at a listener,
 * 'dial-failed' (dialer, SluiceError), 'policy-denied' (EnginePolicyDenial), 'log' (EngineLogRecord),
 * 'request-done' (EngineRequestDone) for each failed fast-path call of the gRPC ingress (each call with everyCallEvent),
 * 'front-done' (EngineFrontCallDone) for each call sent with frontCall(), 'gate'
 * (EngineGateDecision) for each gate decision TypeScript records (refusals; audited allowed calls),
 * 'connection-refused' (reason) when the ingress closes a connection before it did useful work,
 * 'tls-audit' (EngineTlsAudit) for its TLS security events, 'tensor-tap' when the tensor tap's
 * ring has records to drain (once per drain, not per sample), 'span' (EngineSpanRecord) for a
 * sampled call's span record (setTracing), 'egress-call-done' (EngineEgressCallDone) for each
 * model-server call of the egress (configureEgress accessRecords).
 */
export class NativeEngine extends EventEmitter {
  readonly counters: EngineCounters;
  /** The loop thread's scheduling after start (its slice: engine-thread-slice.ts). */
  readonly threadSchedule: EngineThreadSchedule;
  /** Upper bounds (us) of the latency buckets takeRequestTally counts in. */
  readonly requestBoundsUs: readonly number[];
  readonly #handle: NativeEngineHandle;
  readonly #links = new Map<number, EngineLinkInfo>();
  #listens: { resolve: (a: { host: string; port: number }) => void; reject: (e: Error) => void }[] = [];
  readonly #linkQueries = new Map<number, ((s: EngineLinkStats) => void)[]>();
  #ingressListens: { resolve: (a: { host: string; port: number }) => void; reject: (e: Error) => void }[] = [];
  #stopped = false;
  readonly #lastPeerCounters = new Map<string, number[]>();
  readonly #peerKeys = new Set<string>();

  /** constructor(threadName, sliceUs): the slice (engine-thread-slice.ts) defaults to SLUICE_ENGINE_SLICE_US or DEFAULT_ENGINE_SLICE_US. */
  constructor(threadName = 'sluice-infer', sliceUs = engineSliceUs()) {
    super();
    const addon = loadEngineAddon();
    this.#handle = new addon.Engine((batch) => this.#onBatch(batch));
    this.#handle.start(threadName);
    this.threadSchedule = applyEngineSlice(this.#handle, sliceUs);
    this.counters = new EngineCounters(this.#handle.counters());
    this.requestBoundsUs = addon.engineRequestBoundsUs;
  }

  /** Links open now. */
  get links(): ReadonlyMap<number, EngineLinkInfo> {
    return this.#links;
  }

  /** Upstream calls in flight at the engine's egress (an atomic read of the counters block). */
  get egressInflight(): number {
    return this.counters.get('egressCallsInflight');
  }

  /** Listens for inference-segment links; resolves with the bound address. */
  listen(host: string, port: number, opts: EngineLinkOptions): Promise<{ host: string; port: number }> {
    this.#check();
    return new Promise((resolve, reject) => {
      this.#listens.push({ resolve, reject });
      this.#handle.listen(host, port, opts);
    });
  }

  /** Keeps a link to host:port up (reconnecting with backoff); returns the dialer id. */
  dial(host: string, port: number, opts: EngineLinkOptions): number {
    this.#check();
    return this.#handle.dial(host, port, opts);
  }

  /** Starts the gRPC ingress (one per engine); resolves with the bound address. */
  startIngress(config: EngineIngressConfig): Promise<{ host: string; port: number }> {
    this.#check();
    return new Promise((resolve, reject) => {
      this.#ingressListens.push({ resolve, reject });
      this.#handle.startIngress(config);
    });
  }

  /** Swaps the ingress's policy table (a blob from compilePolicyTable). */
  publishPolicy(blob: Uint8Array): void {
    this.#check();
    this.#handle.publishPolicy(blob);
  }

  /** The ingress takes its tenants' rate-limit tokens from these slots (src/security/shared-rate-buckets.ts); once per engine. */
  shareRateBuckets(view: BigInt64Array): void {
    this.#check();
    this.#handle.setRateBuckets(view);
  }

  /** A bearer token TypeScript verified joins the ingress's token cache (digest: SHA-256 of the token). */
  addVerifiedToken(digest: Uint8Array, tenantIndex: number, caps: number, expMs: number, actor: string): void {
    if (!this.#stopped) this.#handle.addVerifiedToken(digest, tenantIndex, caps, expMs, actor);
  }

  /** Audited gate decisions TypeScript recorded (durable) or could not (their calls fail AUDIT_UNAVAILABLE). */
  releaseAudit(tickets: number[], durable: boolean): void {
    if (!this.#stopped && tickets.length > 0) this.#handle.releaseAudit(tickets, durable);
  }

  /**
   * The bulk governor's signal: the engine writes the round trip of every answered fast-path
   * call into `ring` (the governors drain it on their own ticks; no JavaScript per call).
   * One ring per engine, and the engine is its only writer.
   */
  feedLatencyRing(ring: LatencySampleRing): void {
    this.#check();
    this.#handle.setLatencyRing(new Int32Array(ring.buffer), performance.timeOrigin + performance.now());
  }

  /**
   * The threat detectors' tap: a sample (`sampleRate`, as threat-monitor.ts shouldSample) of
   * fast-path ModelInfer calls copy their numeric inputs into `view` (an EngineTensorTapRing's
   * memory); a 'tensor-tap' event says the ring has records again. One ring per engine.
   */
  feedTensorTap(view: Uint8Array, sampleRate: number): void {
    this.#check();
    this.#handle.setTensorTap(view, sampleRate);
  }

  /** The ingress's request metrics since the last take (one call per scrape, not one event per call). */
  takeRequestTally(): EngineRequestTallySeries[] {
    return this.#handle.takeRequestTally();
  }

  /** The link counters of one peer's links ("dialer:<id>" or a remote host), undefined before its first link or once stopped. */
  peerLinkCounters(key: string): number[] | undefined {
    this.#peerKeys.add(key);
    return this.#stopped ? this.#lastPeerCounters.get(key) : this.#rememberPeer(key, this.#handle.peerLinkCounters(key));
  }

  #rememberPeer(key: string, v: number[] | undefined): number[] | undefined {
    // Kept so a scrape after stop() still reads the final totals.
    if (v !== undefined) this.#lastPeerCounters.set(key, v);
    return v;
  }

  /** The egress's model-server calls since the last take (per model and status; one call per scrape). */
  takeUpstreamTally(): EngineRequestTallySeries[] {
    return this.#handle.takeUpstreamTally();
  }

  /**
   * Tracing on (telemetry.otlp): the ingress and egress put W3C trace context on the wire and
   * queue a 'span' event (EngineSpanRecord) for each sampled call; `sampleRatio` samples new
   * traces as the node's tracer does. Set before calls arrive.
   */
  setTracing(enabled: boolean, sampleRatio: number): void {
    this.#check();
    this.#handle.setTracing(enabled, sampleRatio);
  }

  /** Drain: the ingress stops accepting and sends GOAWAY; open calls finish. */
  drainIngress(): void {
    if (!this.#stopped) this.#handle.drainIngress();
  }

  /** New TLS material for the ingress's new handshakes (certificate rotation); throws on bad material. */
  reloadTls(material: EngineTlsMaterial): void {
    this.#check();
    this.#handle.reloadTls(material);
  }

  /** Replaces the ingress's mTLS allowlist; live connections of removed certificates are closed. */
  setClientAllowlist(fingerprints: string[]): void {
    if (!this.#stopped) this.#handle.setClientAllowlist(fingerprints);
  }

  /** Fast-path calls the ingress has open now (an atomic read of the counters block). */
  get ingressInflight(): number {
    return this.counters.ingress('ingressCallsInflight');
  }

  configureEgress(config: EngineEgressConfig): void {
    this.#check();
    this.#handle.configureEgress(config);
  }

  /** Drain: the egress answers new calls UNAVAILABLE; calls in flight finish. */
  beginShutdown(): void {
    if (!this.#stopped) this.#handle.beginShutdown();
  }

  /** Sends a message on an engine link (the slow path: the bytes are copied now). */
  send(link: number, msg: { cls: number; kind: number; streamId: number; tenant?: number; body: Uint8Array }): void {
    this.#check();
    this.#handle.send(link, msg.cls, msg.kind, msg.streamId, msg.tenant ?? 0, msg.body);
  }

  /**
   * Sends a CALL (header + payload: the bytes are copied now) on the link `dialer` keeps up, in
   * request slot `slot` (the caller's, free until its 'front-done' event). The engine cancels it
   * at `timeoutMs` (CANCEL DEADLINE to the egress).
   */
  frontCall(slot: number, dialer: number, tenant: number, timeoutMs: number, header: Uint8Array, payload: Uint8Array): void {
    this.#check();
    this.#handle.frontCall(slot, dialer, tenant, timeoutMs, header, payload);
  }

  /** CANCEL(CALLER) for the call in `slot` if it is still out (its 'front-done' then says CANCELLED). */
  cancelFrontCall(slot: number): void {
    if (!this.#stopped) this.#handle.cancelFrontCall(slot);
  }

  closeLink(link: number, reason = 'closed by the application', code: number = CloseCode.NORMAL): void {
    if (!this.#stopped) this.#handle.closeLink(link, code, reason);
  }

  /** The link's carrier statistics (a verbs link's traffic class and send counts; {} for TCP). */
  queryLink(link: number): Promise<EngineLinkStats> {
    this.#check();
    return new Promise((resolve) => {
      const waiting = this.#linkQueries.get(link) ?? [];
      waiting.push(resolve);
      this.#linkQueries.set(link, waiting);
      this.#handle.queryLink(link);
    });
  }

  /** Stops the engine thread (links get GOING_AWAY); pending events are delivered first. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const k of this.#peerKeys) this.#rememberPeer(k, this.#handle.peerLinkCounters(k));
    this.#handle.stop();
    const rest = this.#handle.drain();
    if (rest.length > 0) this.#onBatch(rest);
    for (const l of [...this.#listens, ...this.#ingressListens]) l.reject(new SluiceError('SLUICE_ERR_ENGINE_STOPPED', 'engine stopped'));
    this.#listens = [];
    this.#ingressListens = [];
  }

  #check(): void {
    if (this.#stopped) throw new SluiceError('SLUICE_ERR_ENGINE_STOPPED', 'engine stopped');
  }

  #onBatch(batch: EngineEventRecord[]): void {
    for (const e of batch) this.#onEvent(e);
  }

  #onEvent(e: EngineEventRecord): void {
    switch (e.type) {
      case EngineEventType.LINK_OPENED: {
        const text = e.text ?? '';
        const cut = text.lastIndexOf(' ');
        const info: EngineLinkInfo = {
          id: e.link,
          remoteAddress: text.slice(0, cut),
          linkId: text.slice(cut + 1),
          role: e.b === 1 ? 'initiator' : 'acceptor',
          dialer: e.a,
        };
        this.#links.set(e.link, info);
        this.emit('link', info);
        return;
      }
      case EngineEventType.LINK_CLOSED: {
        this.#links.delete(e.link);
        const by = CLOSED_BY[e.b] ?? 'error';
        const info: EngineLinkClose = { by, code: e.a, reason: e.text ?? '' };
        if (by === 'error') info.error = new SluiceError(e.code ?? 'SLUICE_ERR_TRANSPORT_PEER_GONE', e.text ?? 'link failed');
        this.emit('close', e.link, info);
        return;
      }
      case EngineEventType.MESSAGE:
        this.emit('message', e.link, { cls: Math.floor(e.a / 65536), kind: e.a % 65536, streamId: e.b, tenant: e.c, body: e.body ?? Buffer.alloc(0) });
        return;
      case EngineEventType.DRAIN:
        this.emit('drain', e.link);
        return;
      case EngineEventType.HANDSHAKE_FAILED: {
        const text = e.text ?? '';
        this.emit('rejected', new SluiceError(e.code ?? 'SLUICE_ERR_HANDSHAKE_PROTOCOL', text), remoteOf(text));
        return;
      }
      case EngineEventType.DIAL_FAILED:
        this.emit('dial-failed', e.link, new SluiceError(e.code ?? 'SLUICE_ERR_TRANSPORT_CONNECT', e.text ?? 'dial failed'));
        return;
      case EngineEventType.LISTENING:
        (e.b === INGRESS_LISTENER ? this.#ingressListens : this.#listens).shift()?.resolve({ host: e.text ?? '', port: e.a });
        return;
      case EngineEventType.LISTEN_FAILED:
        (e.b === INGRESS_LISTENER ? this.#ingressListens : this.#listens).shift()?.reject(new SluiceError(e.code ?? 'SLUICE_ERR_ENGINE_SYSTEM', e.text ?? 'listen failed'));
        return;
      case EngineEventType.POLICY_DENIED:
        this.emit('policy-denied', {
          tenantId: e.c,
          tenantName: e.b === 1 ? (e.extra ?? '') : null,
          requestId: e.code ?? '',
          model: e.body?.toString('utf8') ?? '',
          reason: e.text ?? '',
        } satisfies EnginePolicyDenial);
        return;
      case EngineEventType.REQUEST_DONE:
        this.emit('request-done', {
          ...accessNumbers(e),
          streaming: e.c === 1,
          peer: e.peer ?? 0,
          attempts: e.attempts ?? 0,
          ...(e.a !== 0 ? { code: e.code ?? '', err: e.err ?? '' } : {}),
        } satisfies EngineRequestDone);
        return;
      case EngineEventType.EGRESS_CALL_DONE:
        this.emit('egress-call-done', { ...accessNumbers(e), link: e.link, method: e.c, upstream: e.text ?? '' } satisfies EngineEgressCallDone);
        return;
      case EngineEventType.SPAN:
        if (e.body !== undefined && e.body.length === SPAN_RECORD_BYTES) this.emit('span', decodeSpanRecord(e.body, e.requestId ?? '', e.model ?? '', e.err ?? ''));
        return;
      case EngineEventType.CONNECTION_REFUSED:
        for (let i = 0; i < Math.max(1, e.a); i++) this.emit('connection-refused', e.text ?? '');
        return;
      case EngineEventType.TLS_AUDIT: {
        const type = e.code as EngineTlsAudit['type'];
        const withCert = type !== 'tls.handshake_failed' && e.extra !== undefined;
        this.emit('tls-audit', {
          type,
          remote: e.text ?? '',
          message: e.err ?? '',
          code: withCert ? null : (e.extra ?? null),
          count: e.c,
          cert: withCert ? { fingerprint: e.extra!, subject: e.model ?? null, issuer: e.requestId ?? null, serial: e.body !== undefined && e.body.length > 0 ? e.body.toString('latin1') : null } : null,
        } satisfies EngineTlsAudit);
        return;
      }
      case EngineEventType.TENSOR_TAP:
        this.emit('tensor-tap');
        return;
      case EngineEventType.FRONT_CALL_DONE:
        this.emit('front-done', { slot: e.a, generation: e.c, outcome: e.b as FrontOutcome, body: e.body, code: e.code, text: e.text ?? '' } satisfies EngineFrontCallDone);
        return;
      case EngineEventType.LINK_STATS: {
        const waiting = this.#linkQueries.get(e.link);
        const resolve = waiting?.shift();
        if (waiting !== undefined && waiting.length === 0) this.#linkQueries.delete(e.link);
        resolve?.(JSON.parse(e.text ?? '{}') as EngineLinkStats);
        return;
      }
      case EngineEventType.GATE_DECISION:
        this.emit('gate', decodeGateDecision(e));
        return;
      case EngineEventType.LOG:
      default:
        this.emit('log', {
          level: e.a,
          msg: e.text ?? '',
          ...(e.code !== undefined ? { code: e.code } : {}),
          ...(e.requestId !== undefined ? { request_id: e.requestId } : {}),
          ...(e.model !== undefined ? { model: e.model } : {}),
          ...(e.err !== undefined ? { err: e.err } : {}),
        } satisfies EngineLogRecord);
    }
  }
}

/** LISTENING / LISTEN_FAILED `b` of the gRPC ingress (not a link listener). */
const INGRESS_LISTENER = 3;

/** "127.0.0.1:5000: reason" -> "127.0.0.1:5000" (IPv6 "::1:5000: reason" too). */
function remoteOf(text: string): string {
  const i = text.indexOf(': ');
  return i < 0 ? text : text.slice(0, i);
}

/** The numbers REQUEST_DONE and EGRESS_CALL_DONE records share (their access lines' fields). */
function accessNumbers(e: EngineEventRecord) {
  return {
    model: e.model ?? '',
    requestId: e.requestId ?? '',
    status: e.a,
    durationSeconds: e.b / 1e6,
    tenant: e.tenant ?? 0,
    bytesIn: e.bytesIn ?? 0,
    bytesOut: e.bytesOut ?? 0,
    queueSeconds: (e.queueUs ?? 0) / 1e6,
    upstreamSeconds: (e.upstreamUs ?? 0) / 1e6,
    ...(e.extra !== undefined ? { traceId: e.extra } : {}),
  };
}
