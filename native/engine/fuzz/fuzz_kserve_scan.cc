// libFuzzer harness: the KServe ModelInferRequest scanner on arbitrary bytes (scripts/fuzz-native.sh).
// fuzz-build: native/engine/kserve_scan.cc
// fuzz-seeds: scan
#include <cstddef>
#include <cstdint>

#include "engine/kserve_scan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sluice::engine::KServeScanner scanner;  // reused, as the engine reuses it
  sluice::engine::CallError e = scanner.ScanInferRequest(data, size);
  if (e.ok()) {
    // Every span the scanner hands out lies inside the buffer.
    const auto& h = scanner.head();
    if (h.model_name.end > size || h.id.end > size || h.model_version.end > size) __builtin_trap();
    for (const auto& r : scanner.raw()) {
      if (r.start > r.end || r.end > size) __builtin_trap();
    }
  }
  sluice::engine::ScannedHead head;
  (void)sluice::engine::KServeScanner::ScanHead(data, size, &head);
  return 0;
}
