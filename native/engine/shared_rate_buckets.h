// One token bucket per tenant shared by the engine thread and JavaScript's main thread
// (src/security/shared-rate-buckets.ts): an array of 64-bit slots in a SharedArrayBuffer the
// binding keeps referenced. A slot holds the bucket as one number, the theoretical arrival time
// (GCRA) in microseconds of CLOCK_MONOTONIC (steady_clock here, process.hrtime in node), so a
// take is one compare-and-swap on each side and neither thread ever waits on the other:
//   allowed iff max(tat, now) + T - now <= burst * T   (T = 1 / requestsPerSecond),
// which is the refill-and-take token bucket of rate-limiter.ts with `burst` tokens. Slot value
// 0 is a full bucket. TypeScript assigns slots by tenant name and keeps them across policy
// republishes; it zeroes a slot when that tenant's limits change.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>

namespace sluice::engine {

inline constexpr uint32_t kNoBucket = 0xffffffffu;

inline int64_t MonotonicMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Takes one token from the bucket at `slot`: 0 when allowed, else milliseconds until the next token.
inline double GcraTake(int64_t* slot, double requests_per_second, double burst, int64_t now_us) {
  const double interval = 1e6 / requests_per_second;
  const int64_t step = static_cast<int64_t>(std::llround(interval));
  const int64_t tolerance = static_cast<int64_t>(std::llround(burst * interval));
  int64_t tat = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  for (;;) {
    const int64_t next = (tat > now_us ? tat : now_us) + step;
    if (next - now_us > tolerance) return std::ceil(static_cast<double>(next - now_us - tolerance) / 1000.0);
    if (__atomic_compare_exchange_n(slot, &tat, next, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return 0;
  }
}

}  // namespace sluice::engine
