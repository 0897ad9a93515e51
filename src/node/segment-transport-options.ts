// Link tuning of a segment's transport, the same on every thread that runs links: the fair,
// latency-aware scheduler (instrumented so queue depth, delay and the bulk share show in the
// segment's metrics) and the segment's class on the wire (segments.<name>.dscp).
import type { SluiceConfig } from '../config/schema.ts';
import type { BulkGovernor } from '../scheduler/bulk-governor.ts';
import { fairLinkSchedulerFactory } from '../scheduler/fair-link-scheduler.ts';
import type { SluiceMetrics } from '../telemetry/metrics.ts';
import { instrumentScheduler } from '../telemetry/scheduler-telemetry.ts';
import { segmentSocketClass } from '../transport/socket-class.ts';
import type { SegmentName, TransportOptions } from '../transport/types.ts';

export function segmentTransportOptions(config: SluiceConfig, segment: SegmentName, governor: BulkGovernor, metrics: SluiceMetrics): TransportOptions {
  const sch = config.scheduling;
  const queues = metrics.segmentQueues(segment);
  // Only the training segment carries bulk; its links are the ones the governor paces.
  if (segment === 'training') queues.bulkShare = () => governor.share(performance.now());
  const fair = fairLinkSchedulerFactory({
    governor,
    latencyTargetMs: sch.latencyTargetMs,
    chunkBudgetFraction: sch.chunk.budgetFraction,
    minChunkBytes: sch.chunk.minBytes,
    quantumBytes: sch.quantumBytes,
    slicesBulkTurns: segment === 'training',
  });
  return {
    link: { frameBytes: { training: sch.chunk.maxBytes }, scheduler: instrumentScheduler(fair, queues) },
    socketClass: segmentSocketClass(segment, config.segments[segment]?.dscp),
  };
}
