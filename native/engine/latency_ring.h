// The engine's inference latency signal for the bulk governor: the writing half of
// src/scheduler/latency-sample-ring.ts, over memory JavaScript owns (a SharedArrayBuffer the
// training thread also maps). The loop thread records the round trip of every answered
// fast-path call (two stores and one release store, no call into JS); the governors of the
// main and training threads drain the ring on their own ticks. One writer: the loop thread.
//
// Layout (the ABI shared with latency-sample-ring.ts): int32 write index, int32 byte offset of
// the slots, the governor's float64 stats (not read or written here), then `capacity` slots of
// two float64: the absolute time in ms (performance.timeOrigin + performance.now() on the JS
// side) and the latency in ms (NaN: inference passed without a round trip to measure). The
// offset is read from the ring, not assumed: when the JS side grew its stats from 4 to 6 this
// side kept writing at the old offset, one slot off with a capacity one larger, so after the
// first lap the governors read stale slots and saw no samples.
#ifndef SLUICE_NATIVE_ENGINE_LATENCY_RING_H_
#define SLUICE_NATIVE_ENGINE_LATENCY_RING_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace sluice {
namespace engine {

class LatencyRing {
 public:
  static constexpr size_t kPrefixBytes = 2 * 4;  // write index, slots offset
  static constexpr size_t kSlotBytes = 16;
  static constexpr size_t kMinCapacity = 16;

  // Monotonic milliseconds (the clock of performance.now(): CLOCK_MONOTONIC).
  static double MonotonicMs() {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count()) / 1e6;
  }

  // The slots' byte offset the ring at `mem` declares; 0 when `bytes` of memory there do not
  // hold a ring (8-byte aligned, an offset past the prefix, 8-aligned, and 16 whole slots).
  static size_t SlotsOffset(const void* mem, size_t bytes) {
    if (mem == nullptr || reinterpret_cast<uintptr_t>(mem) % 8 != 0 || bytes < kPrefixBytes) return 0;
    int32_t declared = 0;
    std::memcpy(&declared, static_cast<const uint8_t*>(mem) + 4, sizeof declared);
    if (declared < static_cast<int32_t>(kPrefixBytes) || declared % 8 != 0) return 0;
    const size_t offset = static_cast<size_t>(declared);
    if (offset > bytes || (bytes - offset) % kSlotBytes != 0 || (bytes - offset) / kSlotBytes < kMinCapacity) return 0;
    return offset;
  }
  static bool Fits(const void* mem, size_t bytes) { return SlotsOffset(mem, bytes) != 0; }

  // Loop thread. `clock_offset_ms` turns MonotonicMs() into the JS side's absolute time.
  void Attach(uint8_t* mem, size_t bytes, double clock_offset_ms) {
    const size_t offset = SlotsOffset(mem, bytes);
    if (offset == 0) return;
    mem_ = mem;
    slots_ = mem + offset;
    capacity_ = static_cast<uint32_t>((bytes - offset) / kSlotBytes);
    offset_ms_ = clock_offset_ms;
  }
  void Detach() { mem_ = nullptr; }
  bool attached() const { return mem_ != nullptr; }

  // An inference round trip of `latency_ms`, seen now.
  void Record(double latency_ms) { Push(latency_ms); }
  // Inference passed without a round trip to measure.
  void Note() { Push(std::numeric_limits<double>::quiet_NaN()); }

 private:
  void Push(double latency_ms) {
    if (mem_ == nullptr) return;
    auto* index_word = reinterpret_cast<int32_t*>(mem_);
    const int32_t index = __atomic_load_n(index_word, __ATOMIC_RELAXED);  // we are the only writer
    // The reader's slot of an int32 index, negative after the wrap: ((i % n) + n) % n.
    const int64_t n = capacity_;
    const size_t slot = static_cast<size_t>(((static_cast<int64_t>(index) % n) + n) % n);
    const double v[2] = {MonotonicMs() + offset_ms_, latency_ms};
    std::memcpy(slots_ + slot * kSlotBytes, v, sizeof v);
    // The release store publishes the slot before the index the readers Atomics.load.
    __atomic_store_n(index_word, static_cast<int32_t>(static_cast<uint32_t>(index) + 1u), __ATOMIC_RELEASE);
  }

  uint8_t* mem_ = nullptr;
  uint8_t* slots_ = nullptr;
  uint32_t capacity_ = 0;
  double offset_ms_ = 0;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_LATENCY_RING_H_
