// libFuzzer harness: the sampled tensor tap (tensor_tap.h) on whatever the KServe scanner accepts
// (scripts/fuzz-native.sh). Every accepted request is offered to a small ring; a reader written
// here (the JS side's rules, engine-tensor-tap.ts) consumes a varying share of it and checks
// every record lies inside the ring and its inputs inside the record. The first input byte
// chooses how much the reader drains, so full rings, wraps and drops are all reached.
// fuzz-build: native/engine/kserve_scan.cc
// fuzz-seeds: scan
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/kserve_scan.h"
#include "engine/tensor_tap.h"

using sluice::engine::KServeScanner;
using sluice::engine::TensorTap;

namespace {

constexpr size_t kCapacity = 8192;
alignas(8) uint8_t ring_mem[TensorTap::kHeaderBytes + kCapacity];

uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint16_t Get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Drains up to `budget` records, checking each (traps on a record the JS reader would reject).
void Drain(unsigned budget) {
  auto* h = reinterpret_cast<uint32_t*>(ring_mem);
  const uint8_t* data = ring_mem + TensorTap::kHeaderBytes;
  uint32_t r = h[1];
  const uint32_t w = __atomic_load_n(&h[0], __ATOMIC_ACQUIRE);
  while (r != w && budget-- > 0) {
    const uint32_t off = r & (kCapacity - 1);
    const uint32_t len = Get32(data + off);
    if (len == TensorTap::kWrap) {
      r += kCapacity - off;
      continue;
    }
    if (len < 16 || len % 8 != 0 || len > w - r || off + len > kCapacity) __builtin_trap();
    const uint8_t* rec = data + off;
    size_t p = (16 + Get16(rec + 8) + Get16(rec + 10) + 7) & ~size_t{7};
    const uint16_t count = Get16(rec + 12);
    const unsigned n = count == TensorTap::kWholeMessage ? 1 : count;
    for (unsigned i = 0; i < n; i++) {
      if (p + 8 > len) __builtin_trap();
      const size_t head = count == TensorTap::kWholeMessage ? 8 : ((8 + 8 * rec[p + 3] + Get16(rec + p) + 7) & ~size_t{7});
      const size_t bytes = Get32(rec + p + 4);
      p += head;
      if (p + bytes > len) __builtin_trap();
      p = (p + bytes + 7) & ~size_t{7};
    }
    if (p != len) __builtin_trap();
    r += len;
  }
  __atomic_store_n(&h[1], r, __ATOMIC_RELEASE);
  __atomic_store_n(&h[3], 1u, __ATOMIC_RELEASE);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static KServeScanner scanner;
  static TensorTap tap;
  static bool attached = false;
  if (!attached) {
    tap.Attach(ring_mem, sizeof ring_mem, 1.0);
    attached = true;
  }
  if (size == 0) return 0;
  const unsigned budget = data[0] % 4;  // 0: the reader falls behind, the ring fills
  if (scanner.ScanInferRequest(data + 1, size - 1).ok()) {
    for (int i = 0; i < 3; i++) {
      if (tap.Sample()) (void)tap.Offer(static_cast<uint32_t>(size), "model", "request-id", data + 1, size - 1, scanner);
    }
  }
  Drain(budget);
  return 0;
}
