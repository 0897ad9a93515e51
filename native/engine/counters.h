// The engine's counters: one plain block of 64-bit atomics in native memory. JS reads it
// through a BigUint64Array view over the same memory (as udx-native does), so a metrics scrape
// costs no call into the addon and the hot path never talks to JS to count something.
//
// Layout: counter i is the i-th uint64 of the block; the indices below are the ABI shared with
// src/engine/engine-counters.ts (ENGINE_COUNTER_NAMES lists them in this order). Additions go at
// the end, before kCount. The loop thread is the only writer of most counters (relaxed stores
// are enough: a scrape may see a value a moment old, never a torn one).
#ifndef SLUICE_NATIVE_ENGINE_COUNTERS_H_
#define SLUICE_NATIVE_ENGINE_COUNTERS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice {
namespace engine {

enum Counter : uint32_t {
  // Inference-segment links (summed over all links the engine owns, open and closed).
  kLinkFramesSent = 0,
  kLinkFramesReceived,
  kLinkBytesSent,
  kLinkBytesReceived,
  kLinkMessagesSent,
  kLinkMessagesReceived,
  kLinkQueuedBytes,  // gauge: bytes accepted for sending and not yet written, over open links
  kLinkRejectedFrames,
  kLinkRekeys,
  kLinksOpen,  // gauge
  kLinksOpened,
  kLinksClosedLocal,
  kLinksClosedPeer,
  kLinksClosedError,
  kHandshakesInProgress,  // gauge
  kHandshakesFailed,
  kKeepaliveTimeouts,
  // Egress: calls taken from links and forwarded to model servers.
  kEgressCallsInflight,  // gauge
  kEgressCalls,
  kEgressCallsCancelled,
  kEgressUpstreamConnects,
  kEgressUpstreamConnectFailures,
  kEgressUpstreamSessionsOpen,  // gauge
  kEgressBadEnvelopes,
  // Replies by gRPC status: kEgressStatusBase + status (0..16).
  kEgressStatusBase,
  kEgressStatusLast = kEgressStatusBase + 16,
  // Event channel: records dropped because JS did not drain the ring in time.
  kEventsDropped,
  // gRPC ingress (grpc_ingress.h): fast-path calls open now, and calls begun on each path.
  kIngressCallsInflight,  // gauge
  kIngressFastCalls,
  kIngressRelayedCalls,
  // Admission and retries of the fast path (upstream_policy.h): calls shed by cause, failed
  // attempts retried on another peer or not, peers ejected.
  kIngressShedInFlight,
  kIngressShedQueueDelay,
  kIngressShedDeadline,
  kIngressRetries,
  kIngressRetriesDenied,
  kIngressPeersEjected,
  // gRPC connections the listener refused or closed early (sluice_connections_refused_total{listener="grpc"}).
  kIngressRefusedMaxConnections,
  kIngressRefusedHandshakeTimeout,
  kIngressRefusedIdleTimeout,
  kIngressRefusedProtocolError,
  // sluice_scheduling_delay_seconds{segment="inference"} of the engine's links (scheduling_delay.h):
  // per class (control, inference) one count per QUEUE_DELAY_BUCKETS_SECONDS bucket (+Inf last)
  // and the summed delay in nanoseconds. Only the engine's block counts them, not a peer's.
  kSchedDelayControlBase,
  kSchedDelayControlSumNs = kSchedDelayControlBase + 16,
  kSchedDelayInferenceBase,
  kSchedDelayInferenceSumNs = kSchedDelayInferenceBase + 16,
  kCount
};

struct alignas(64) CounterBlock {
  std::atomic<uint64_t> values[kCount];

  CounterBlock() {
    for (auto& v : values) v.store(0, std::memory_order_relaxed);
  }
  void Add(Counter c, uint64_t n = 1) { values[c].fetch_add(n, std::memory_order_relaxed); }
  void Sub(Counter c, uint64_t n = 1) { values[c].fetch_sub(n, std::memory_order_relaxed); }
  uint64_t Get(Counter c) const { return values[c].load(std::memory_order_relaxed); }
  // Raw memory for the JS view (kCount * 8 bytes).
  void* data() { return static_cast<void*>(values); }
  static constexpr size_t bytes() { return sizeof(uint64_t) * kCount; }
};

// What a link counts into: the engine's block (the totals) and, once the engine has named the
// link's peer, that peer's block (the per-peer sluice_link_* series). `counters_->Add(...)` in
// tcp_link.cc reads the same as with a plain block pointer (operator-> returns the object).
class LinkCounters {
 public:
  explicit LinkCounters(CounterBlock* total) : total_(total) {}
  void SetPeer(CounterBlock* peer) { peer_ = peer; }
  void Add(Counter c, uint64_t n = 1) {
    total_->Add(c, n);
    if (peer_ != nullptr) peer_->Add(c, n);
  }
  void Sub(Counter c, uint64_t n = 1) {
    total_->Sub(c, n);
    if (peer_ != nullptr) peer_->Sub(c, n);
  }
  uint64_t Get(Counter c) const { return total_->Get(c); }
  // Counts into the engine's block only (series without a peer label).
  void AddTotal(Counter c, uint64_t n = 1) { total_->Add(c, n); }
  LinkCounters* operator->() { return this; }

 private:
  CounterBlock* total_;
  CounterBlock* peer_ = nullptr;
};

static_assert(sizeof(std::atomic<uint64_t>) == sizeof(uint64_t), "atomics must be plain words for the JS view");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the JS view needs lock-free 64-bit atomics");

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_COUNTERS_H_
