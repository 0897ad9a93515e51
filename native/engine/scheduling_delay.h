// The wait of a message between being handed to a link and its first frame being sealed for the
// wire: sluice_scheduling_delay_seconds{segment="inference"} of the engine's links, as the
// TypeScript scheduler measures it (src/telemetry/scheduler-telemetry.ts). Counted into the
// engine's counter block (counters.h kSchedDelay*): a scrape reads it from the JS view of the
// block, no addon call and nothing per message in JS. A message sealed at once counts 0.
#ifndef SLUICE_NATIVE_ENGINE_SCHEDULING_DELAY_H_
#define SLUICE_NATIVE_ENGINE_SCHEDULING_DELAY_H_

#include <cstddef>
#include <cstdint>

#include "engine/counters.h"
#include "engine/trace_context.h"  // MonotonicNs

namespace sluice {
namespace engine {

// src/telemetry/bucket-histogram.ts QUEUE_DELAY_BUCKETS_SECONDS in nanoseconds (10 us .. 1 s).
constexpr uint64_t kQueueDelayBoundsNs[] = {10000,    25000,    50000,    100000,    250000,    500000,    1000000,   2500000,
                                            5000000,  10000000, 25000000, 50000000,  100000000, 250000000, 1000000000};
constexpr size_t kQueueDelayBuckets = sizeof(kQueueDelayBoundsNs) / sizeof(kQueueDelayBoundsNs[0]) + 1;  // + +Inf
static_assert(kSchedDelayControlSumNs - kSchedDelayControlBase == kQueueDelayBuckets, "control buckets");
static_assert(kSchedDelayInferenceSumNs - kSchedDelayInferenceBase == kQueueDelayBuckets, "inference buckets");

// One message's wait. Class 0 is control; every other class counts as inference (the only data
// class the engine's inference links carry).
inline void RecordSchedulingDelay(LinkCounters& counters, uint8_t cls, uint64_t wait_ns) {
  size_t b = 0;
  while (b < kQueueDelayBuckets - 1 && wait_ns > kQueueDelayBoundsNs[b]) b++;
  const uint32_t base = cls == 0 ? kSchedDelayControlBase : kSchedDelayInferenceBase;
  counters.AddTotal(static_cast<Counter>(base + b));
  if (wait_ns > 0) counters.AddTotal(static_cast<Counter>(base + kQueueDelayBuckets), wait_ns);
}

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_SCHEDULING_DELAY_H_
