#include "engine/rx_timestamp.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <chrono>
#include <cstring>

namespace sluice::engine {

uint64_t SteadyMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

namespace {
// A stamp older than this (or from the future) is a clock step, not a measurement.
constexpr int64_t kMaxAgeNs = 10LL * 1000 * 1000 * 1000;
}  // namespace

bool EnableRxTimestamps(int fd) {
  int one = 1;
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) == 0;
}

// The kernel stamps on CLOCK_REALTIME: the stamp's age is taken against the realtime clock now
// and subtracted from the steady clock, so a clock step can skew one sample, never the steady
// clock the rest of the engine times with.
ssize_t ReadStamped(int fd, uint8_t* buf, size_t cap, uint64_t* arrival_us) {
  iovec iov{buf, cap};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t n = ::recvmsg(fd, &msg, 0);
  *arrival_us = 0;
  if (n <= 0) return n;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS || cm->cmsg_len < CMSG_LEN(sizeof(timespec))) continue;
    timespec rx;
    std::memcpy(&rx, CMSG_DATA(cm), sizeof rx);
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const int64_t age_ns = (static_cast<int64_t>(now.tv_sec) - rx.tv_sec) * 1000000000LL + (now.tv_nsec - rx.tv_nsec);
    if (age_ns < 0 || age_ns > kMaxAgeNs) break;
    const uint64_t steady = SteadyMicros();
    const uint64_t age_us = static_cast<uint64_t>(age_ns / 1000);
    *arrival_us = age_us < steady ? steady - age_us : 0;
    break;
  }
  return n;
}

}  // namespace sluice::engine
