// The config file's schema (YAML, validated at start-up). Each layer owns one section.
import { z } from 'zod';
import { parseSegmentKey } from './segment-key.ts';
import { atRestSchema } from '../security/at-rest/at-rest-config.ts';
import { PII_CLASSES } from '../security/pii/classes.ts';
import { threatsSchema } from '../security/threats/threat-config.ts';

const port = z.number().int().min(0).max(65535);
const hostPort = z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port });

/** Defaults of the per-listener connection limits (docs/operations.md, "Connection limits"). */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;

/**
 * How long a connection may take to say who it is, how long it may sit silent, and how many a
 * listener holds at once. The ingress engine reads the same keys for the ports it serves.
 */
export const connectionLimitsShape = {
  /** Time from accept to a finished TLS handshake and protocol preface (HTTP/2 preface and SETTINGS, segment handshake). */
  handshakeTimeoutMs: z.number().int().min(100).max(600_000).default(DEFAULT_HANDSHAKE_TIMEOUT_MS),
  /** A connection with nothing in flight and nothing received for this long is closed. */
  idleTimeoutMs: z.number().int().min(1000).max(86_400_000).default(DEFAULT_IDLE_TIMEOUT_MS),
  /** Connections held at once; more are closed on accept. Unset: no limit but the fd limit. */
  maxConnections: z.number().int().positive().max(1_000_000).optional(),
};

/** A client-facing listener: its address and its connection limits. */
const clientListener = (defaultPort: number) => hostPort.extend({ port: port.default(defaultPort), ...connectionLimitsShape });
/** A segment listener: the handshake bounds the time to authenticate; links then live as long as their peers keep them. */
const segmentListener = hostPort.extend({ handshakeTimeoutMs: connectionLimitsShape.handshakeTimeoutMs, maxConnections: connectionLimitsShape.maxConnections });

export const segmentSchema = z.strictObject({
  transport: z.enum(['tcp', 'rdma', 'auto']).default('tcp'),
  /** Address the back-end listener binds to (the RDMA connection exchange for rdma), and its connection limits. */
  listen: segmentListener.optional(),
  /** RDMA device name (rxe0, mlx5_0) or the netdev it sits on. */
  device: z.string().optional(),
  /** 32-byte segment key, hex or base64, or a file holding it (`keyFile`): exactly one of them. */
  key: z
    .string()
    .superRefine((v, ctx) => {
      const k = parseSegmentKey(v);
      if (typeof k === 'string') ctx.addIssue({ code: 'custom', message: k });
      else k.fill(0);
    })
    .optional(),
  keyFile: z.string().min(1).optional(),
  maxMessageBytes: z.number().int().positive().max(0xffff_ffff).default(128 * 1024 * 1024),
  /**
   * DSCP code point of the segment's packets (IP_TOS / IPV6_TCLASS = dscp << 2 on TCP links, the
   * GRH traffic class on RDMA). Default by segment: inference 34 (AF41), training 8 (CS1).
   */
  dscp: z.number().int().min(0).max(63).optional(),
  /** RDMA links of this segment in the native engine (docs/engine.md, "Verbs links"). */
  rdma: z
    .strictObject({
      /** Spin on the completion queue (up to busyPollUs) before arming it: lower latency, more CPU. */
      busyPoll: z.boolean().default(false),
      busyPollUs: z.number().int().min(1).max(10_000).default(50),
    })
    .optional(),
}).superRefine((seg, ctx) => {
  if (seg.key !== undefined && seg.keyFile !== undefined) ctx.addIssue({ code: 'custom', message: 'set key or keyFile, not both' });
  if (seg.key === undefined && seg.keyFile === undefined) ctx.addIssue({ code: 'custom', message: 'needs key or keyFile (the 32-byte segment key)' });
});

export const peerSchema = z.strictObject({
  name: z.string().min(1),
  segment: z.enum(['inference', 'training']),
  host: z.string().min(1),
  port,
});

export const upstreamSchema = z.strictObject({
  /** gRPC address of a KServe v2 model server (host:port). */
  address: z.string().min(1),
});

export const routeSchema = z.strictObject({
  /** Model name, or "*" for any. */
  model: z.string().min(1),
  /** Egress peers (by name) that serve this model over the inference segment. */
  peers: z.array(z.string()).default([]),
  /** Local upstream model servers (when this node is the egress for the model). */
  upstreams: z.array(upstreamSchema).default([]),
});

const protocolDatatype = z.enum(['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'BF16', 'FP32', 'FP64', 'BYTES']);

/** The reference model server (src/models): runs in this process when the section is present. */
export const referenceModelsSchema = z.strictObject({
  listen: hostPort.extend({ port: port.default(8100) }).default({ host: '127.0.0.1', port: 8100 }),
  models: z.array(z.enum(['simple', 'identity', 'dense'])).min(1).default(['simple', 'identity', 'dense']),
  dense: z
    .strictObject({
      k: z.number().int().positive().max(65536).default(64),
      n: z.number().int().positive().max(65536).default(32),
      seed: z.number().int().min(0).max(0xffffffff).default(1234),
      maxBatch: z.number().int().positive().default(4096),
    })
    .default({ k: 64, n: 32, seed: 1234, maxBatch: 4096 }),
  /**
   * `identity` declares `datatype` in its metadata and configuration (it takes any); each of
   * `variants` adds a model identity_<datatype> that takes exactly that datatype.
   */
  identity: z
    .object({
      datatype: protocolDatatype.default('FP32'),
      variants: z.array(protocolDatatype).default([]),
    })
    .default({ datatype: 'FP32', variants: [] }),
  /** Largest request or response message the model server takes or sends. */
  maxMessageBytes: z.number().int().positive().default(128 * 1024 * 1024),
  /** Cap on the `delay_ms` request parameter (a deliberately slow model). */
  maxDelayMs: z.number().int().min(0).default(60_000),
});

const KiB = 1024;
const MiB = 1024 * KiB;

/** Latency-aware scheduling (src/scheduler/): links' outbound order, bulk pacing, upstream choice. */
export const schedulingSchema = z.strictObject({
  /** Inference latency target (p99, milliseconds): bulk backs off as it is neared. */
  latencyTargetMs: z.number().positive().default(5),
  bulk: z
    .strictObject({
      /** Lowest share of a link the training class is cut to: bulk never starves. */
      minShare: z.number().gt(0).max(1).default(0.1),
      /** Multiplicative cut when inference p99 > target x highWater. */
      decrease: z.number().gt(0).lt(1).default(0.5),
      /** Additive growth per increase interval when inference p99 < target x lowWater. */
      increase: z.number().gt(0).max(1).default(0.05),
      highWater: z.number().gt(0).max(2).default(0.8),
      lowWater: z.number().gt(0).max(2).default(0.5),
      increaseIntervalMs: z.number().int().positive().default(100),
      decreaseIntervalMs: z.number().int().positive().default(250),
      /** Sliding window of the inference p99 that drives the cut. */
      windowMs: z.number().int().positive().default(1000),
      /**
       * How much bulk may slow inference relative to its p99 with no bulk running (measured
       * continuously while bulk is idle). Bulk is cut only when inference p99 exceeds both
       * latencyTargetMs x highWater and this multiple of that baseline: when the machine cannot
       * meet the target even without bulk, starving bulk would not help inference.
       */
      maxSlowdown: z.number().gt(1).max(10).default(1.25),
      /**
       * A series of cuts after which inference p99 was not a tenth under what bulk cost before
       * it bought nothing (the slowdown comes from elsewhere: the machine, the jobs): it is
       * undone, and bulk is not cut below that share again for this long, doubled for each such
       * series in a row up to 8x (then one cut probes again). docs/scheduling.md.
       */
      futileCutHoldMs: z.number().int().positive().default(10_000),
    })
    .prefault({}),
  chunk: z
    .strictObject({
      /** One bulk chunk may take this fraction of the latency target on the wire. */
      budgetFraction: z.number().gt(0).max(1).default(0.1),
      minBytes: z.number().int().min(1024).default(16 * KiB),
      /** Also the training frame size cap of the links. */
      maxBytes: z.number().int().min(1024).max(16 * MiB).default(256 * KiB),
    })
    .prefault({})
    .refine((c) => c.minBytes <= c.maxBytes, { message: 'minBytes must be <= maxBytes' }),
  /** DRR quantum (bytes of credit per flow per round) within a class. */
  quantumBytes: z.number().int().positive().default(256 * KiB),
  upstreams: z
    .strictObject({
      /** Peak-EWMA decay time constant of upstream latency. */
      decayMs: z.number().int().positive().default(10_000),
      consecutiveFailures: z.number().int().positive().default(5),
      baseEjectionMs: z.number().int().positive().default(1000),
      maxEjectionMs: z.number().int().positive().default(30_000),
      maxEjectedFraction: z.number().min(0).max(1).default(0.5),
    })
    .prefault({}),
  retries: z
    .strictObject({
      /** Attempts per request in total (2 = one retry), only for failures before the model. */
      maxAttempts: z.number().int().min(1).max(5).default(2),
      budgetRatio: z.number().min(0).max(1).default(0.2),
      minPerSec: z.number().min(0).default(10),
      minRemainingMs: z.number().int().min(0).default(5),
    })
    .prefault({}),
  shedding: z
    .strictObject({
      /** Requests the egress side serves at once (for the queue-delay estimate). */
      parallelism: z.number().int().positive().default(64),
      maxQueueDelayMs: z.number().int().positive().default(1000),
      maxInFlight: z.number().int().positive().default(4096),
    })
    .prefault({}),
});

/** Training transfers (src/training/): sluice.v1.TensorTransfer and the training segment. */
export const trainingSchema = z.strictObject({
  /** Where received tensors are written (SPOOL sink). */
  spoolDir: z.string().min(1).default('/var/lib/sluice/spool'),
  windowBytes: z.number().int().min(64 * KiB).default(8 * MiB),
  maxChunkBytes: z.number().int().min(4 * KiB).max(16 * MiB).default(MiB),
  maxTensorBytes: z.number().int().positive().default(1024 * MiB),
  resumeTimeoutMs: z.number().int().positive().default(60_000),
  maxTransfers: z.number().int().positive().default(64),
  /**
   * Pooled receive buffers of the training links (each maxChunkBytes plus a chunk header):
   * chunks are decrypted into them and they return once written to the sink. When all are
   * out, training links stop reading. Memory bound: receiveBuffers x (maxChunkBytes + 77 bytes).
   */
  receiveBuffers: z.number().int().min(2).max(4096).default(32),
  /**
   * Pooled buffers the chunks of Push calls (a job's bytes, 8003) are gathered into, each
   * maxChunkBytes plus 37 bytes; a chunk's buffer returns once the peer acknowledged it. When
   * all are out, a chunk gets a buffer of its own (counted); the transfer window bounds a job.
   * Allocated on first use. Memory bound: pushBuffers x (maxChunkBytes + 37 bytes).
   */
  pushBuffers: z.number().int().min(2).max(4096).default(32),
  /**
   * CPU priority of the training thread: `idle` (SCHED_IDLE, else nice 19: runs only when no
   * normal thread wants the core), `low` (nice 19: a small share even on a saturated machine),
   * `normal` (unchanged).
   */
  threadPriority: z.enum(['idle', 'low', 'normal']).default('idle'),
  /**
   * V8's old-generation growing factor for the whole process, as `--heap-growing-percent`
   * (limit = live x (1 + p/100) + new space), set when the training thread starts; 0 keeps V8's
   * own heuristics. Bulk passes through short-lived external buffers that V8 counts against the
   * old generation's slack, and with its own tight factor it marked the whole heap every 400 ms
   * (docs/training.md, "Memory").
   */
  heapGrowthPercent: z.number().int().min(0).max(1000).default(200),
});
/** Tenant names as they appear in keys, tokens and the audit log. */
export const tenantNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected a tenant name ([A-Za-z0-9._-], 1-63 chars)');
export const capabilitySchema = z.enum(['infer', 'train', 'admin']);

/** TLS 1.2 suites with forward secrecy and AEAD only (TLS 1.3 suites are always AEAD). */
export const DEFAULT_TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_AES_128_GCM_SHA256',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

const tenantLimitSchema = z.strictObject({
  /** Sustained request rate (token bucket refill per second). */
  requestsPerSecond: z.number().positive().optional(),
  /** Bucket size: how many requests may arrive at once. */
  burst: z.number().int().positive().optional(),
  /** Largest request body accepted for the tenant. */
  maxRequestBytes: z.number().int().positive().optional(),
});

export const securitySchema = z
  .strictObject({
    /** Recorded in every audit entry; bump it when you change this section. */
    policyVersion: z.string().min(1).default('1'),
    /** Tenant names and the u32 ids bound into back-end frames (0 is the system tenant). */
    tenants: z
      .array(
        z.strictObject({
          name: tenantNameSchema,
          id: z.number().int().min(1).max(0xffffffff),
          /** Models the tenant may use ("*" for any). */
          models: z.array(z.string().min(1)).default(['*']),
        }),
      )
      .default([]),
    audit: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** The serving process's log. */
        path: z.string().min(1).default('sluice-audit.jsonl'),
        /** Where `sluice keys ...` records key management (the server holds the main log's lock). */
        adminPath: z.string().min(1).default('sluice-admin-audit.jsonl'),
        checkpointEntries: z.number().int().positive().default(1000),
        checkpointSeconds: z.number().positive().default(300),
        /** FILE.anchor trails the durable head by at most this long (0: after every group commit). */
        anchorSeconds: z.number().min(0).max(3600).default(1),
        /** Also record every allowed request (refusals and admin actions are always recorded). */
        allowedRequests: z.boolean().default(true),
        /** Start a new segment file when the current one reaches either limit (0 / absent: never by that limit). */
        rotate: z
          .object({
            maxBytes: z.number().int().positive().optional(),
            maxAgeHours: z.number().positive().optional(),
          })
          .prefault({}),
        /** Closed segments older than this are deleted (the brief: seven years). The newest segment is never deleted. */
        retentionDays: z.number().int().positive().default(2557),
      })
      .prefault({}),
    /** Evidence packs (docs/security.md): the key POST /v2/sluice/evidence signs with (RSA or Ed25519 PEM). */
    evidence: z.object({ signingKeyFile: z.string().min(1).optional() }).prefault({}),
    /** PII policy on the inference path (docs/security.md). */
    pii: z
      .object({
        enabled: z.boolean().default(false),
        policies: z
          .array(
            z.object({
              /** A configured tenant name, or "*" for requests of tenants without a policy of their own (and unauthenticated ones). */
              tenant: z.union([tenantNameSchema, z.literal('*')]),
              mode: z.enum(['strict', 'reversible', 'flag']),
              classes: z.array(z.enum(PII_CLASSES)).min(1).default([...PII_CLASSES]),
              channels: z.array(z.enum(['request', 'response'])).min(1).default(['request', 'response']),
              minConfidence: z.number().min(0).max(1).default(0.5),
            }),
          )
          .default([]),
        /** Where reversible mode keeps originals (AES-256-GCM, a key per tenant derived from keyFile). */
        vault: z.object({ path: z.string().min(1), keyFile: z.string().min(1) }).optional(),
      })
      .prefault({}),
    apiKeys: z
      .strictObject({
        enabled: z.boolean().default(false),
        store: z.string().min(1).default('sluice-keys.json'),
        /** How often the store file is checked for changes (it is also watched). */
        reloadSeconds: z.number().positive().default(2),
      })
      .prefault({}),
    jwt: z
      .strictObject({
        enabled: z.boolean().default(false),
        jwksFile: z.string().min(1).optional(),
        jwksUrl: z.url().optional(),
        issuer: z.string().min(1).optional(),
        audience: z.string().min(1).optional(),
        clockSkewSeconds: z.number().int().min(0).max(120).default(30),
        /** exp - iat may not exceed this (the product allows at most 15 minutes). */
        maxLifetimeSeconds: z.number().int().positive().max(900).default(900),
      })
      .prefault({}),
    tls: z
      .strictObject({
        enabled: z.boolean().default(false),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
        ciphers: z.string().min(1).default(DEFAULT_TLS_CIPHERS),
        clientCerts: z
          .strictObject({
            /** off: no client certificates; require: mTLS, and the fingerprint must be allowlisted. */
            mode: z.enum(['off', 'require']).default('off'),
            /** CA bundle that client certificates must chain to. */
            caFile: z.string().min(1).optional(),
            /** SHA-256 fingerprints of allowed client certificates, one per line. */
            allowlistFile: z.string().min(1).optional(),
            reloadSeconds: z.number().positive().default(5),
          })
          .prefault({}),
      })
      .prefault({}),
    rateLimits: z
      .strictObject({
        enabled: z.boolean().default(false),
        default: z
          .strictObject({
            requestsPerSecond: z.number().positive().default(1000),
            burst: z.number().int().positive().default(2000),
            maxRequestBytes: z.number().int().positive().default(64 * 1024 * 1024),
          })
          .prefault({}),
        tenants: z.record(tenantNameSchema, tenantLimitSchema).default({}),
      })
      .prefault({}),
    webhooks: z
      .strictObject({
        endpoints: z
          .array(
            z.strictObject({
              url: z.url(),
              /** HMAC-SHA256 secret (or secretFile); at least 32 bytes. */
              secret: z.string().min(32).optional(),
              secretFile: z.string().min(1).optional(),
              /** Event types to send ("*" for all). */
              events: z.array(z.string().min(1)).default(['*']),
            }),
          )
          .default([]),
        maxQueue: z.number().int().positive().default(1000),
        maxAttempts: z.number().int().positive().max(20).default(8),
        timeoutMs: z.number().int().positive().default(5000),
      })
      .prefault({}),
    /** Threat detection on the tensors crossing the node (src/security/threats/threat-config.ts). */
    threats: threatsSchema,
    /** Per-tenant key wrapping for data at rest (src/security/at-rest/at-rest-config.ts). */
    atRest: atRestSchema,
  })
  .superRefine((s, ctx) => {
    const need = (cond: boolean, path: (string | number)[], message: string) => {
      if (!cond) ctx.addIssue({ code: 'custom', path, message });
    };
    if (s.tls.enabled) {
      need(s.tls.certFile !== undefined, ['tls', 'certFile'], 'required when security.tls.enabled is true');
      need(s.tls.keyFile !== undefined, ['tls', 'keyFile'], 'required when security.tls.enabled is true');
    }
    if (s.tls.clientCerts.mode === 'require') {
      need(s.tls.enabled, ['tls', 'enabled'], 'must be true when clientCerts.mode is "require"');
      need(s.tls.clientCerts.caFile !== undefined, ['tls', 'clientCerts', 'caFile'], 'required when clientCerts.mode is "require"');
      need(s.tls.clientCerts.allowlistFile !== undefined, ['tls', 'clientCerts', 'allowlistFile'], 'required when clientCerts.mode is "require"');
    }
    if (s.jwt.enabled) {
      need((s.jwt.jwksFile === undefined) !== (s.jwt.jwksUrl === undefined), ['jwt', 'jwksFile'], 'exactly one of jwksFile or jwksUrl is required when security.jwt.enabled is true');
    }
    s.webhooks.endpoints.forEach((e, i) => {
      need((e.secret === undefined) !== (e.secretFile === undefined), ['webhooks', 'endpoints', i, 'secret'], 'exactly one of secret or secretFile is required');
    });
    if ((s.apiKeys.enabled || s.jwt.enabled) && s.tenants.length === 0) {
      need(false, ['tenants'], 'at least one tenant is required when API keys or JWTs are enabled');
    }
    const policyTenants = new Set<string>();
    s.pii.policies.forEach((p, i) => {
      need(!policyTenants.has(p.tenant), ['pii', 'policies', i, 'tenant'], `duplicate PII policy for tenant "${p.tenant}"`);
      policyTenants.add(p.tenant);
      need(p.tenant === '*' || s.tenants.some((t) => t.name === p.tenant), ['pii', 'policies', i, 'tenant'], `no tenant named "${p.tenant}" in security.tenants`);
      need(p.mode !== 'reversible' || s.pii.vault !== undefined, ['pii', 'vault'], 'required when a PII policy uses mode "reversible"');
    });
    const ids = new Set<number>();
    const names = new Set<string>();
    s.tenants.forEach((t, i) => {
      need(!ids.has(t.id), ['tenants', i, 'id'], `duplicate tenant id ${t.id}`);
      need(!names.has(t.name), ['tenants', i, 'name'], `duplicate tenant name "${t.name}"`);
      ids.add(t.id);
      names.add(t.name);
    });
  })
  .prefault({});

export const configSchema = z.strictObject({
  node: z.strictObject({ name: z.string().default('sluice') }).default({ name: 'sluice' }),
  listeners: z
    .strictObject({
      http: clientListener(8000).optional(),
      grpc: clientListener(8001).optional(),
      metrics: clientListener(8002).optional(),
      /** sluice.v1.TensorTransfer, served by the training thread; opened whenever segments.training is set (default 127.0.0.1:8003). */
      training: clientListener(8003).optional(),
    })
    .default({}),
  segments: z
    .strictObject({
      inference: segmentSchema.optional(),
      training: segmentSchema.optional(),
    })
    .default({}),
  peers: z.array(peerSchema).default([]),
  routes: z.array(routeSchema).default([]),
  models: referenceModelsSchema.optional(),
  scheduling: schedulingSchema.prefault({}),
  training: trainingSchema.prefault({}),
  limits: z
    .strictObject({
      maxRequestBytes: z.number().int().positive().default(64 * 1024 * 1024),
      defaultTimeoutMs: z.number().int().positive().default(30_000),
    })
    .default({ maxRequestBytes: 64 * 1024 * 1024, defaultTimeoutMs: 30_000 }),
  /** Graceful drain (SIGTERM) timing; see docs/operations.md. Keep Kubernetes' terminationGracePeriodSeconds above delayMs + drainGraceMs + closeTimeoutMs. */
  lifecycle: z
    .strictObject({
      /** Time for in-flight requests to finish before they are handed back with a retryable error. */
      drainGraceMs: z.number().int().min(0).max(3_600_000).default(20_000),
      /** Time between readiness going false and listeners closing, so load balancers stop routing here first. */
      drainDelayMs: z.number().int().min(0).max(600_000).default(0),
      /** Time allowed after the grace period to flush the audit log and close links and servers. */
      closeTimeoutMs: z.number().int().positive().max(600_000).default(5_000),
    })
    .default({ drainGraceMs: 20_000, drainDelayMs: 0, closeTimeoutMs: 5_000 }),
  security: securitySchema,
  /** Access log and traces (docs/operations.md). */
  telemetry: z
    .strictObject({
      /** One JSON line per finished request at info (docs/operations.md, "Access log"). */
      accessLog: z.boolean().default(false),
      otlp: z
        .strictObject({
          /** OTLP/HTTP traces URL (e.g. http://otel-collector:4318/v1/traces); unset = no tracing. */
          endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
          serviceName: z.string().min(1).default('sluice'),
          /** Fraction of new traces sampled; a sampled incoming traceparent is always followed. */
          sampleRatio: z.number().min(0).max(1).default(1),
          headers: z.record(z.string(), z.string()).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
});

export type SluiceConfig = z.infer<typeof configSchema>;
export type SegmentConfig = z.infer<typeof segmentSchema>;
export type ReferenceModelsConfig = z.infer<typeof referenceModelsSchema>;
export type SchedulingConfig = z.infer<typeof schedulingSchema>;
export type TrainingConfig = z.infer<typeof trainingSchema>;
export type SecurityConfig = z.infer<typeof securitySchema>;
export type ClientListenerConfig = z.infer<ReturnType<typeof clientListener>>;
/** The connection limits every listener has (segment listeners: no idle timeout). */
export interface ConnectionLimits {
  handshakeTimeoutMs: number;
  idleTimeoutMs?: number;
  maxConnections?: number;
}
