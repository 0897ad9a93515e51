// The link tuning a sluice node gives its links (src/node/sluice-node.ts): the fair scheduler
// with the config's scheduling defaults, paced by a BulkGovernor when one is given. Shared by
// both ends of the link-level mixed benchmark.
import { schedulingSchema } from '../src/config/schema.ts';
import type { BulkGovernor } from '../src/scheduler/bulk-governor.ts';
import { fairLinkSchedulerFactory } from '../src/scheduler/fair-link-scheduler.ts';
import type { LinkTuning } from '../src/transport/types.ts';

/** The control message kind that acknowledges one bulk message. */
export const BULK_ACK_KIND = 7;

export const SCHEDULING = schedulingSchema.parse({});

export function linkTuningFor(governor: BulkGovernor | undefined): LinkTuning {
  return {
    frameBytes: { training: SCHEDULING.chunk.maxBytes },
    scheduler: fairLinkSchedulerFactory({
      ...(governor !== undefined && { governor }),
      latencyTargetMs: SCHEDULING.latencyTargetMs,
      chunkBudgetFraction: SCHEDULING.chunk.budgetFraction,
      minChunkBytes: SCHEDULING.chunk.minBytes,
      quantumBytes: SCHEDULING.quantumBytes,
    }),
  };
}
