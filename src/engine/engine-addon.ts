// The engine part of the native addon (native/engine/*, bound in native/binding.cc): its types
// and its loader. The addon is the same file the AEAD uses (src/crypto/native-addon.ts).
import type { SchedulingConfig } from '../config/schema.ts';
import { SluiceError } from '../errors.ts';
import { loadNativeAddon, NATIVE_ADDON_ERROR } from '../crypto/native-addon.ts';

/** Link options the engine takes (native/engine/inference_link.h LinkOptions); validated in TS. */
export interface EngineLinkOptions {
  segment: 'inference';
  key: Uint8Array;
  maxMessageBytes: number;
  highWaterBytes: number;
  frameBytesInference: number;
  frameBytesControl: number;
  maxReassemblyBytes: number;
  sealAheadBytes: number;
  closeTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxHandshakes: number;
  keepaliveTimeoutMs: number;
  /** TCP links: after this many ms without sending, one REKEY frame as tail witness (0 = off; src/transport/link-base.ts). */
  tailWitnessMs?: number;
  dscp: number;
  maxFramesPerKey: number;
  maxBytesPerKey: number;
  /** Present: links over RDMA queue pairs after the TCP handshake (native/engine/verbs_link.h). */
  rdma?: EngineRdmaLinkOptions;
}

/** Queue pair sizing of engine RDMA links: the TypeScript RDMA transport's (rdma-transport.ts). */
export interface EngineRdmaLinkOptions {
  /** Device name, netdev, GID or IPv4 (segments.<name>.device); unset: by the side channel's address. */
  device?: string;
  sendSlots: number;
  recvWindow: number;
  ackTimeout: number;
  retryCount: number;
  /** segments.inference.rdma.busyPoll: spin on the completion queue before arming it. */
  busyPoll: boolean;
  busyPollUs: number;
}

export interface EngineEgressConfig {
  routes: { model: string; addresses: string[] }[];
  tenants: { id: number; name: string; models: string[] }[];
  maxMessageBytes: number;
  connectTimeoutMs: number;
  /** An EGRESS_CALL_DONE record per model-server call (telemetry.accessLog). */
  accessRecords?: boolean;
}

/** The gRPC ingress's listener (native/engine/grpc_ingress.h IngressConfig). */
export interface EngineIngressConfig {
  host: string;
  port: number;
  /** Unix socket of the TypeScript gRPC server that serves every call the engine relays. */
  relayPath: string;
  maxRequestMessageBytes: number;
  defaultTimeoutMs: number;
  maxConnections?: number;
  /** No HTTP/2 preface + SETTINGS within this long: closed (0: off). */
  handshakeTimeoutMs?: number;
  /** No stream and no bytes for this long: GOAWAY and close (0: off). */
  idleTimeoutMs?: number;
  /** Admission, P2C, ejection and retries (native/engine/upstream_policy.h): config scheduling.{upstreams,retries,shedding}. */
  upstreamPolicy?: EngineUpstreamPolicyConfig;
  /** TLS on the listener (security.tls): the TLS handshake must also finish within handshakeTimeoutMs. */
  tls?: EngineTlsMaterial & { allowlist: string[] };
  /** A REQUEST_DONE event for every fast-path call (the access log), not only for failed ones. */
  everyCallEvent?: boolean;
}

/** The listener's TLS material (src/security/tls-options.ts TlsMaterial): PEM bytes and the policy. */
export interface EngineTlsMaterial {
  cert: Uint8Array;
  key: Uint8Array;
  ca: Uint8Array | null;
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  ciphers: string;
  requireClientCert: boolean;
}

/** scheduling.upstreams, scheduling.retries and scheduling.shedding, flattened. */
export type EngineUpstreamPolicyConfig = SchedulingConfig['upstreams'] & SchedulingConfig['retries'] & SchedulingConfig['shedding'];

/** One record of an event batch (native/engine/event_channel.h EngineEvent). */
export interface EngineEventRecord {
  type: number;
  link: number;
  a: number;
  b: number;
  c: number;
  code?: string;
  text?: string;
  extra?: string;
  /** Log records: the request's fields. */
  requestId?: string;
  model?: string;
  err?: string;
  /** GATE_DECISION: the audit entry's tenant. */
  tenantName?: string;
  body?: Buffer;
  /** REQUEST_DONE and EGRESS_CALL_DONE: the access record's numbers (durations in microseconds; peer: a dialer id). */
  tenant?: number;
  peer?: number;
  attempts?: number;
  bytesIn?: number;
  bytesOut?: number;
  queueUs?: number;
  upstreamUs?: number;
}

export interface NativeEngineHandle {
  start(threadName: string): void;
  stop(): void;
  counters(): BigUint64Array;
  listen(host: string, port: number, opts: EngineLinkOptions): void;
  dial(host: string, port: number, opts: EngineLinkOptions): number;
  configureEgress(config: EngineEgressConfig): void;
  beginShutdown(): void;
  send(link: number, cls: number, kind: number, stream: number, tenant: number, body: Uint8Array): void;
  closeLink(link: number, code: number, reason: string): void;
  /** A LINK_STATS event answers (native/engine/event_channel.h kLinkStats). */
  queryLink(link: number): void;
  drain(): EngineEventRecord[];
  startIngress(config: EngineIngressConfig): void;
  /** Parses and swaps in a policy table (src/engine/policy-compiler.ts); throws on a bad blob. */
  publishPolicy(blob: Uint8Array): void;
  addVerifiedToken(digest: Uint8Array, tenantIndex: number, caps: number, expMs: number, actor: string): void;
  /** The per-tenant rate-limit buckets shared with TypeScript's limiter (native/engine/shared_rate_buckets.h). */
  setRateBuckets(view: BigInt64Array): void;
  releaseAudit(tickets: number[], durable: boolean): void;
  drainIngress(): void;
  /** New TLS material for new handshakes (throws SLUICE_ERR_TLS_CONFIG on bad material). */
  reloadTls(material: EngineTlsMaterial): void;
  /** The mTLS allowlist (SHA-256 hex); live connections of removed certificates are closed. */
  setClientAllowlist(fingerprints: string[]): void;
  /** A CALL on the dialer's link in request slot `slot` (bytes copied now); one FRONT_CALL_DONE event answers. */
  frontCall(slot: number, dialer: number, tenant: number, timeoutMs: number, header: Uint8Array, payload: Uint8Array): void;
  cancelFrontCall(slot: number): void;
  /** The LatencySampleRing the loop thread writes answered calls' round trips into (native/engine/latency_ring.h). */
  setLatencyRing(view: Int32Array, nowMs: number): void;
  /** The tensor tap's ring (native/engine/tensor_tap.h): a sample of fast-path ModelInfer calls copy their numeric inputs into it. */
  setTensorTap(view: Uint8Array, sampleRate: number): void;
  /** The ingress's request metrics since the last take (native/engine/request_tally.h). */
  takeRequestTally(): EngineRequestTallySeries[];
  /** The egress's model-server calls since the last take (sluice_upstream_request_duration_seconds). */
  takeUpstreamTally(): EngineRequestTallySeries[];
  /** telemetry.otlp: span records of sampled calls (SPAN events), the node's sample ratio for new traces. */
  setTracing(enabled: boolean, sampleRatio: number): void;
  /** One peer's link counters (the first 14 counters' order), undefined before its first link. */
  peerLinkCounters(key: string): number[] | undefined;
  /** The loop thread's EEVDF slice (engine-thread-slice.ts); throws SLUICE_ERR_THREAD_PRIORITY when refused. */
  setThreadSlice(us: number): EngineLoopThread;
  threadSchedule(): EngineLoopThread;
}

/** The engine's loop thread as the kernel schedules it (sliceUs 0: the kernel reports no slice). */
export interface EngineLoopThread {
  tid: number;
  policy: string;
  nice: number;
  sliceUs: number;
}

/** Fast-path calls of one (model, gRPC status) since the last take. */
export interface EngineRequestTallySeries {
  model: string;
  status: number;
  /** Calls per latency bucket (engineRequestBoundsUs, then +Inf). */
  counts: number[];
  sumUs: number;
}

export interface EngineAddon {
  Engine: new (onEvents: (batch: EngineEventRecord[]) => void) => NativeEngineHandle;
  engineCounterCount: number;
  /** Upper bounds (us) of the request tally's latency buckets. */
  engineRequestBoundsUs: number[];
}

export function loadEngineAddon(): EngineAddon {
  const addon = loadNativeAddon() as unknown as Partial<EngineAddon>;
  if (typeof addon.Engine !== 'function' || typeof addon.engineCounterCount !== 'number') {
    throw new SluiceError(NATIVE_ADDON_ERROR, 'sluice native addon has no engine: run `npm run build:native`');
  }
  return addon as EngineAddon;
}
