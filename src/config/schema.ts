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
