// The link tuning a sluice node gives its links (src/node/sluice-node.ts): the fair scheduler
// with the config's scheduling defaults and the node's one BulkGovernor (training links sealing
// and taking in bulk in short turns while inference runs). Shared by both ends of the link-level
// mixed benchmark.
import { schedulingSchema } from '../src/config/schema.ts';
import { BulkGovernor } from '../src/scheduler/bulk-governor.ts';
import { fairLinkSchedulerFactory } from '../src/scheduler/fair-link-scheduler.ts';
import type { LinkTuning, SegmentName } from '../src/transport/types.ts';

/** The control message kind that acknowledges one bulk message. */
export const BULK_ACK_KIND = 7;

export const SCHEDULING = schedulingSchema.parse({});

export function newGovernor(): BulkGovernor {
  return new BulkGovernor({ targetMs: SCHEDULING.latencyTargetMs, ...SCHEDULING.bulk });
}

export function linkTuningFor(governor: BulkGovernor, segment: SegmentName): LinkTuning {
  return {
    frameBytes: { training: SCHEDULING.chunk.maxBytes },
    scheduler: fairLinkSchedulerFactory({
      governor,
      slicesBulkTurns: segment === 'training',
      latencyTargetMs: SCHEDULING.latencyTargetMs,
      chunkBudgetFraction: SCHEDULING.chunk.budgetFraction,
      minChunkBytes: SCHEDULING.chunk.minBytes,
      quantumBytes: SCHEDULING.quantumBytes,
    }),
  };
}
