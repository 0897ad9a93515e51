// The config file's schema (YAML, validated at start-up). Each layer owns one section.
import { z } from 'zod';
import { parseSegmentKey } from './segment-key.ts';

const port = z.number().int().min(0).max(65535);
const hostPort = z.object({ host: z.string().min(1).default('127.0.0.1'), port });

export const segmentSchema = z.object({
  transport: z.enum(['tcp', 'rdma', 'auto']).default('tcp'),
  /** Address the back-end listener binds to (the RDMA connection exchange for rdma). */
  listen: hostPort.optional(),
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
}).superRefine((seg, ctx) => {
  if (seg.key !== undefined && seg.keyFile !== undefined) ctx.addIssue({ code: 'custom', message: 'set key or keyFile, not both' });
  if (seg.key === undefined && seg.keyFile === undefined) ctx.addIssue({ code: 'custom', message: 'needs key or keyFile (the 32-byte segment key)' });
});

export const peerSchema = z.object({
  name: z.string().min(1),
  segment: z.enum(['inference', 'training']),
  host: z.string().min(1),
  port,
});

export const upstreamSchema = z.object({
  /** gRPC address of a KServe v2 model server (host:port). */
  address: z.string().min(1),
});

export const routeSchema = z.object({
  /** Model name, or "*" for any. */
  model: z.string().min(1),
  /** Egress peers (by name) that serve this model over the inference segment. */
  peers: z.array(z.string()).default([]),
  /** Local upstream model servers (when this node is the egress for the model). */
  upstreams: z.array(upstreamSchema).default([]),
});

/** The reference model server (src/models): runs in this process when the section is present. */
export const referenceModelsSchema = z.object({
  listen: hostPort.extend({ port: port.default(8100) }).default({ host: '127.0.0.1', port: 8100 }),
  models: z.array(z.enum(['simple', 'identity', 'dense'])).min(1).default(['simple', 'identity', 'dense']),
  dense: z
    .object({
      k: z.number().int().positive().max(65536).default(64),
      n: z.number().int().positive().max(65536).default(32),
      seed: z.number().int().min(0).max(0xffffffff).default(1234),
      maxBatch: z.number().int().positive().default(4096),
    })
    .default({ k: 64, n: 32, seed: 1234, maxBatch: 4096 }),
  /** Largest request or response message the model server takes or sends. */
  maxMessageBytes: z.number().int().positive().default(128 * 1024 * 1024),
  /** Cap on the `delay_ms` request parameter (a deliberately slow model). */
  maxDelayMs: z.number().int().min(0).default(60_000),
});

const KiB = 1024;
const MiB = 1024 * KiB;

/** Latency-aware scheduling (src/scheduler/): links' outbound order, bulk pacing, upstream choice. */
export const schedulingSchema = z.object({
  /** Inference latency target (p99, milliseconds): bulk backs off as it is neared. */
  latencyTargetMs: z.number().positive().default(5),
  bulk: z
    .object({
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
    })
    .prefault({}),
  chunk: z
    .object({
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
    .object({
      /** Peak-EWMA decay time constant of upstream latency. */
      decayMs: z.number().int().positive().default(10_000),
      consecutiveFailures: z.number().int().positive().default(5),
      baseEjectionMs: z.number().int().positive().default(1000),
      maxEjectionMs: z.number().int().positive().default(30_000),
      maxEjectedFraction: z.number().min(0).max(1).default(0.5),
    })
    .prefault({}),
  retries: z
    .object({
      /** Attempts per request in total (2 = one retry), only for failures before the model. */
      maxAttempts: z.number().int().min(1).max(5).default(2),
      budgetRatio: z.number().min(0).max(1).default(0.2),
      minPerSec: z.number().min(0).default(10),
      minRemainingMs: z.number().int().min(0).default(5),
    })
    .prefault({}),
  shedding: z
    .object({
      /** Requests the egress side serves at once (for the queue-delay estimate). */
      parallelism: z.number().int().positive().default(64),
      maxQueueDelayMs: z.number().int().positive().default(1000),
      maxInFlight: z.number().int().positive().default(4096),
    })
    .prefault({}),
});

/** Training transfers (src/training/): sluice.v1.TensorTransfer and the training segment. */
export const trainingSchema = z.object({
  /** Where received tensors are written (SPOOL sink). */
  spoolDir: z.string().min(1).default('/var/lib/sluice/spool'),
  windowBytes: z.number().int().min(64 * KiB).default(8 * MiB),
  maxChunkBytes: z.number().int().min(4 * KiB).max(16 * MiB).default(MiB),
  maxTensorBytes: z.number().int().positive().default(1024 * MiB),
  resumeTimeoutMs: z.number().int().positive().default(60_000),
  maxTransfers: z.number().int().positive().default(64),
});

export const configSchema = z.object({
  node: z.object({ name: z.string().default('sluice') }).default({ name: 'sluice' }),
  listeners: z
    .object({
      http: hostPort.extend({ port: port.default(8000) }).optional(),
      grpc: hostPort.extend({ port: port.default(8001) }).optional(),
      metrics: hostPort.extend({ port: port.default(8002) }).optional(),
    })
    .default({}),
  segments: z
    .object({
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
    .object({
      maxRequestBytes: z.number().int().positive().default(64 * 1024 * 1024),
      defaultTimeoutMs: z.number().int().positive().default(30_000),
    })
    .default({ maxRequestBytes: 64 * 1024 * 1024, defaultTimeoutMs: 30_000 }),
  log: z
    .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .default({ level: 'info' }),
});

export type SluiceConfig = z.infer<typeof configSchema>;
export type SegmentConfig = z.infer<typeof segmentSchema>;
export type ReferenceModelsConfig = z.infer<typeof referenceModelsSchema>;
export type SchedulingConfig = z.infer<typeof schedulingSchema>;
export type TrainingConfig = z.infer<typeof trainingSchema>;
