// Per-thread CPU priority and naming, and the traffic class of a socket: small Linux calls the
// training plane needs and Node does not expose. Plain C++ (no N-API); errors come back as
// {code, message} through Status, never as an abort.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::runtime {

struct ThreadStatus {
  const char* code = "";
  std::string message;
};

// Names the calling thread (comm, at most 15 bytes; longer names are cut). False on failure.
bool SetCurrentThreadName(const std::string& name, ThreadStatus* status);

struct ThreadPriority {
  // "idle" (SCHED_IDLE), "batch", "other" (SCHED_OTHER), "fifo", "rr" or "unknown".
  const char* policy = "unknown";
  int nice = 0;
  int tid = 0;
};

// Lowers the calling thread's CPU priority: SCHED_IDLE where the kernel allows it (when
// `try_idle`), else nice 19 for this thread alone (setpriority on its tid). Lowering never
// needs privileges.
bool LowerCurrentThreadPriority(bool try_idle, ThreadPriority* result, ThreadStatus* status);

// The calling thread's scheduling policy and nice value.
ThreadPriority CurrentThreadPriority();
// Another thread's of this process (by kernel thread id).
ThreadPriority ThreadPriorityOf(int tid);

// The EEVDF slice (Linux 6.12+: sched_attr.sched_runtime of a SCHED_OTHER thread, 0.1..100 ms)
// of thread `tid` (0: the calling thread). A thread with a shorter slice than the one running
// gets an earlier deadline and preempts it when it wakes, instead of waiting for the running
// thread's slice (or the next tick) to end; its share of the CPU does not change. No privileges
// needed for the caller's own threads. False with status set when the kernel refuses.
bool SetThreadSlice(int tid, uint64_t slice_ns, ThreadStatus* status);

// The slice thread `tid` runs with (ns), as the kernel reports it; 0 when it does not (kernels
// before EEVDF report no slice for SCHED_OTHER).
uint64_t ThreadSliceNs(int tid);

struct SocketClass {
  int tos = -1;       // IP_TOS (IPv4) or IPV6_TCLASS (IPv6); -1 when not readable
  int priority = -1;  // SO_PRIORITY
  bool ipv6 = false;
};

// Marks a connected socket: IP_TOS (IPV6_TCLASS on IPv6) = dscp << 2, then SO_PRIORITY (setting
// IP_TOS resets SO_PRIORITY on Linux, so the order matters).
bool SetSocketClass(int fd, int dscp, int priority, ThreadStatus* status);

bool GetSocketClass(int fd, SocketClass* out, ThreadStatus* status);

}  // namespace sluice::runtime
