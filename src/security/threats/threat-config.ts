// `security.threats` config: which detectors run, their thresholds, and what happens to a
// tenant that trips one (docs/security.md, "Threat detection").
import { z } from 'zod';

export const threatActionSchema = z.enum(['observe', 'throttle', 'block']);
export type ThreatAction = z.infer<typeof threatActionSchema>;

export const threatsSchema = z
  .strictObject({
    enabled: z.boolean().default(false),
    /** Fraction of inference calls whose tensors the detectors see (the tap is sampled). */
    sampleRate: z.number().min(0).max(1).default(1),
    /** Tapped calls waiting for the detectors at most; past it the tap drops (never blocks a call). */
    maxQueued: z.number().int().positive().max(1_000_000).default(1024),
    /**
     * Bytes of the native engine's tensor tap ring (the sampled copies wait there for the
     * detectors; a sample that does not fit is dropped, never waited for). A power of two.
     */
    engineTapBytes: z
      .number()
      .int()
      .min(4096)
      .max(2 ** 30)
      .refine((n) => (n & (n - 1)) === 0, 'must be a power of two')
      .default(16 * 1024 * 1024),
    extraction: z
      .strictObject({
        enabled: z.boolean().default(true),
        wThreshold: z.number().gt(0).lt(1).default(0.9),
        minQueries: z.number().int().min(3).max(5000).default(100),
        window: z.number().int().min(3).max(5000).default(500),
        maxGrowingSet: z.number().int().positive().max(100_000).default(1000),
        /** Query-volume signal: queries per minute per tenant and model above this. */
        maxQueriesPerMinute: z.number().int().positive().default(6000),
        /** Input-space coverage signal: distinct coarse cells visited per 1000 queries above this. */
        maxCoveragePer1000: z.number().int().positive().max(1000).default(900),
      })
      .prefault({}),
    adversarial: z
      .strictObject({
        enabled: z.boolean().default(true),
        warmup: z.number().int().positive().default(200),
        threshold: z.number().positive().default(8),
        saturation: z.number().positive().default(1),
      })
      .prefault({}),
    poisoning: z
      .strictObject({
        enabled: z.boolean().default(true),
        normJump: z.number().gt(1).default(2),
        ksThreshold: z.number().gt(0).lt(1).default(0.25),
        digestMismatches: z.number().int().positive().default(2),
        /** Withhold a flagged tensor from its readers until an admin releases it. */
        quarantine: z.boolean().default(false),
        /** Tensor name -> senders allowed to push it (default: the first sender seen). */
        allowedSenders: z.record(z.string(), z.array(z.string().min(1))).default({}),
      })
      .prefault({}),
    /** The stricter profile a flagged tenant moves to, for `durationSeconds`. */
    profile: z
      .strictObject({
        durationSeconds: z.number().int().positive().max(7 * 24 * 3600).default(900),
        /** Requests per second the tenant keeps under `throttle`. */
        rateLimitPerSecond: z.number().positive().default(5),
      })
      .prefault({}),
    defaultAction: threatActionSchema.default('observe'),
    tenants: z.array(z.strictObject({ tenant: z.string().min(1), action: threatActionSchema })).default([]),
  })
  .prefault({});

export type ThreatsConfig = z.infer<typeof threatsSchema>;
