// Kernel receive timestamps of TCP reads (SO_TIMESTAMPNS), on the steady clock. The engine's
// ingress starts the bulk governor's round trip at the moment a request reached this host, so
// the sample includes the wait before its thread got to read it: the part of a client's latency
// that low-priority work on the same cores adds, and that a clock read after read() misses.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace sluice::engine {

// Microseconds of the steady clock: the clock arrival times below are given on, and the one the
// engine's ingress times calls with.
uint64_t SteadyMicros();

// Turns receive timestamps on for `fd` (best effort: false when the kernel refuses).
bool EnableRxTimestamps(int fd);

// Reads like read(2). *arrival_us: when the kernel received the last segment this read took,
// in microseconds of the steady clock (std::chrono::steady_clock), or 0 without a timestamp.
ssize_t ReadStamped(int fd, uint8_t* buf, size_t cap, uint64_t* arrival_us);

}  // namespace sluice::engine
