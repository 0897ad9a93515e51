// Process-wide malloc tuning for a data plane that allocates many large, short-lived buffers
// (received messages of 256 KiB to many MiB). No N-API here.
#pragma once

#include <cstddef>

namespace sluice::runtime {

// Serves allocations up to `mmap_threshold` bytes from malloc's heap and returns freed heap
// memory to the kernel only once `trim_threshold` bytes are free at its top. Without this,
// glibc maps each large buffer afresh, and trims the heap after every garbage collection, so
// every received megabyte is page-faulted in and zeroed by the kernel again.
// Returns false where it cannot apply (not glibc, or mallopt refused).
bool TuneMallocForLargeBuffers(size_t mmap_threshold, size_t trim_threshold);

}  // namespace sluice::runtime
