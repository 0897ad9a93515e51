#include "runtime/thread_control.h"

#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <netinet/ip.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace sluice::runtime {
namespace {

bool Fail(ThreadStatus* status, const char* code, const char* what) {
  const int err = errno;
  status->code = code;
  status->message = std::string(what) + ": " + std::strerror(err);
  return false;
}

int CurrentTid() { return static_cast<int>(syscall(SYS_gettid)); }

const char* PolicyName(int policy) {
  switch (policy & ~SCHED_RESET_ON_FORK) {
    case SCHED_OTHER:
      return "other";
    case SCHED_BATCH:
      return "batch";
    case SCHED_IDLE:
      return "idle";
    case SCHED_FIFO:
      return "fifo";
    case SCHED_RR:
      return "rr";
    default:
      return "unknown";
  }
}

// struct sched_attr (uapi linux/sched/types.h; glibc 2.36 has no wrapper): the first version's
// 48 bytes plus the utilization clamps, as the kernel accepts any size it knows.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

bool GetSchedAttr(int tid, SchedAttr* a) {
  *a = SchedAttr{};
  return syscall(SYS_sched_getattr, tid, a, sizeof(SchedAttr), 0) == 0;
}

int SocketFamily(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  return addr.ss_family;
}

}  // namespace

bool SetCurrentThreadName(const std::string& name, ThreadStatus* status) {
  char buf[16];
  std::strncpy(buf, name.c_str(), sizeof(buf) - 1);
  buf[sizeof(buf) - 1] = '\0';
  const int rc = pthread_setname_np(pthread_self(), buf);
  if (rc != 0) {
    errno = rc;
    return Fail(status, "SLUICE_ERR_THREAD_NAME", "pthread_setname_np");
  }
  return true;
}

ThreadPriority CurrentThreadPriority() { return ThreadPriorityOf(CurrentTid()); }

ThreadPriority ThreadPriorityOf(int tid) {
  ThreadPriority p;
  p.tid = tid;
  const int policy = sched_getscheduler(tid);  // a tid: that thread alone
  p.policy = policy < 0 ? "unknown" : PolicyName(policy);
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(p.tid));
  p.nice = errno == 0 ? nice : 0;
  return p;
}

bool LowerCurrentThreadPriority(bool try_idle, ThreadPriority* result, ThreadStatus* status) {
  const sched_param param{};  // sched_priority 0: required by SCHED_IDLE and SCHED_OTHER
  // sched_setscheduler(0, ...) acts on the calling thread only (Linux: a tid, not the process).
  if (!try_idle || sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
    // Some kernels (or seccomp profiles) refuse SCHED_IDLE: nice 19 for this thread alone.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(CurrentTid()), 19) != 0) {
      return Fail(status, "SLUICE_ERR_THREAD_PRIORITY", "setpriority(19)");
    }
  } else {
    // Nice also counts among SCHED_IDLE threads; best effort, the policy is what matters.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(CurrentTid()), 19);
  }
  *result = CurrentThreadPriority();
  return true;
}

bool SetThreadSlice(int tid, uint64_t slice_ns, ThreadStatus* status) {
  SchedAttr a;
  // Keep the policy, nice and flags the thread has; change only the slice.
  if (!GetSchedAttr(tid, &a)) return Fail(status, "SLUICE_ERR_THREAD_PRIORITY", "sched_getattr");
  a.size = sizeof(SchedAttr);
  a.sched_runtime = slice_ns;
  a.sched_flags &= 0x01;  // SCHED_FLAG_RESET_ON_FORK kept; no UTIL_CLAMP or KEEP_* requests
  if (syscall(SYS_sched_setattr, tid, &a, 0) != 0) return Fail(status, "SLUICE_ERR_THREAD_PRIORITY", "sched_setattr(slice)");
  return true;
}

uint64_t ThreadSliceNs(int tid) {
  SchedAttr a;
  return GetSchedAttr(tid, &a) && (a.sched_policy == SCHED_OTHER || a.sched_policy == SCHED_BATCH) ? a.sched_runtime : 0;
}

bool SetSocketClass(int fd, int dscp, int priority, ThreadStatus* status) {
  if (dscp < 0 || dscp > 63 || priority < 0 || priority > 6) {
    errno = EINVAL;
    return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "dscp must be 0..63 and priority 0..6");
  }
  const int family = SocketFamily(fd);
  if (family < 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "getsockname");
  const int tos = dscp << 2;
  if (family == AF_INET6) {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos)) != 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "setsockopt(IPV6_TCLASS)");
    // A v4-mapped peer on a dual-stack socket sends IPv4 headers: IP_TOS as well (may be refused).
    (void)setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
  } else if (family == AF_INET) {
    if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) != 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "setsockopt(IP_TOS)");
  } else {
    errno = EAFNOSUPPORT;
    return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "not an IP socket");
  }
  // After IP_TOS: setting the TOS resets the socket priority.
  if (setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &priority, sizeof(priority)) != 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "setsockopt(SO_PRIORITY)");
  return true;
}

bool GetSocketClass(int fd, SocketClass* out, ThreadStatus* status) {
  const int family = SocketFamily(fd);
  if (family < 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "getsockname");
  int value = 0;
  socklen_t len = sizeof(value);
  const bool v6 = family == AF_INET6;
  out->ipv6 = v6;
  if (getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_TCLASS : IP_TOS, &value, &len) != 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "getsockopt(tos)");
  out->tos = value & 0xff;
  len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, SO_PRIORITY, &value, &len) != 0) return Fail(status, "SLUICE_ERR_SOCKET_CLASS", "getsockopt(SO_PRIORITY)");
  out->priority = value;
  return true;
}

}  // namespace sluice::runtime
