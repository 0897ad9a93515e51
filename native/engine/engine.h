// The engine: the inference I/O thread and what it owns, under a TypeScript control plane.
//
//   Engine
//    ├─ EventLoop ("sluice-infer"): the one thread that touches sockets, links, sessions
//    ├─ CounterBlock: read by JS through a typed-array view (no call per read)
//    ├─ EventChannel: batched events to JS (link lifecycle, refusals, logs, slow-path messages)
//    ├─ LinkListener(s): accept inference-segment links (bounded handshakes)
//    ├─ LinkDialer(s): dial egress peers, reconnect with backoff
//    └─ Egress (egress.h): CALL -> pooled HTTP/2 gRPC client -> REPLY
//
// Control-plane methods may be called from any thread: they post to the loop. Nothing here
// blocks the caller beyond a mutex for posting.
#ifndef SLUICE_NATIVE_ENGINE_ENGINE_H_
#define SLUICE_NATIVE_ENGINE_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/counters.h"
#include "engine/event_channel.h"
#include "engine/event_loop.h"
#include "engine/inference_link.h"
#include "engine/latency_ring.h"
#include "engine/tensor_tap.h"
#include "engine/policy_table.h"
#include "engine/request_tally.h"
#include "engine/trace_context.h"

namespace sluice {
namespace engine {

class Egress;
class LinkListener;
class LinkDialer;
class PendingHandshake;
class GrpcIngress;
class TlsContext;
class FrontCalls;
class VerbsDevices;
struct IngressConfig;

struct UpstreamRoute {
  std::string model;                    // "*" for every model
  std::vector<std::string> addresses;   // host:port (IPv6 as [addr]:port)
};

// Tenant policy at the egress (src/security/egress-policy.ts): with tenants configured, a
// call's frame tenant must be one of them and may use only its models.
struct TenantPolicy {
  uint32_t id;
  std::string name;
  bool all_models = false;
  std::vector<std::string> models;
};

struct EgressConfig {
  std::vector<UpstreamRoute> routes;
  std::vector<TenantPolicy> tenants;  // empty: every call passes
  uint32_t max_message_bytes = 128u * 1024 * 1024;
  uint32_t connect_timeout_ms = 3000;
  // Refuses new calls with UNAVAILABLE "egress is shutting down" (drain).
  bool shutting_down = false;
};

class Engine : public LinkHandler {
 public:
  // `notify` is called from the loop thread when events are waiting (EventChannel).
  explicit Engine(std::function<void()> notify_events);
  ~Engine() override;

  bool Start(const std::string& thread_name, std::string* error);
  void Stop();  // closes every link (GOING_AWAY), stops the loop, joins

  CounterBlock* counters() { return &counters_; }
  // Per-peer link counters (the sluice_link_* series by peer): key "dialer:<id>" for a dialer's
  // links, the remote host for accepted ones. At most kMaxPeerBlocks keys, then "_other". The
  // blocks live as long as the engine. Any thread.
  static constexpr size_t kMaxPeerBlocks = 1024;
  CounterBlock* PeerCounters(const std::string& key);
  // Copies a peer's block (false: no link of that key yet).
  bool CopyPeerCounters(const std::string& key, uint64_t out[kCount]);
  EventChannel* events() { return &events_; }
  EventLoop* loop() { return &loop_; }
  // The ingress's request metrics (request_tally.h): JS takes them at scrape time.
  RequestTally* request_tally() { return &request_tally_; }
  // The egress's model-server calls per model and status (sluice_upstream_request_duration_seconds),
  // taken by JS at scrape time like the request tally.
  RequestTally* upstream_tally() { return &upstream_tally_; }
  // Tracing settings (telemetry.otlp): set from JS, read by the ingress and the egress.
  TraceSettings* tracing() { return &tracing_; }
  // Whether every fast-path call becomes a kRequestDone event (the access log), not only failed
  // ones. Set before StartIngress; read on the loop thread.
  void SetEveryCallEvent(bool on) { every_call_event_.store(on, std::memory_order_relaxed); }
  bool every_call_event() const { return every_call_event_.load(std::memory_order_relaxed); }

  // ---- control plane (any thread) ----
  // Listens for inference-segment links on host:port (port 0: any; the kListening event says
  // which). Accepted links feed the egress.
  void Listen(const std::string& host, uint16_t port, const LinkOptions& options);
  // Dials a peer and keeps a link to it up (reconnect with backoff 100 ms .. 5 s). Returns the
  // dialer id that kDialFailed events and Send(dialer) name.
  uint32_t Dial(const std::string& host, uint16_t port, const LinkOptions& options);
  void ConfigureEgress(const EgressConfig& config);
  // The gRPC ingress (grpc_ingress.h): listens for clients on config.host:port; the kListening
  // event with b = 3 says which port. Calls go out on the links of the dialers the policy
  // table's routes name.
  void StartIngress(const IngressConfig& config);
  // Swaps the ingress policy table (src/engine/policy-compiler.ts); any thread.
  void PublishPolicy(std::shared_ptr<const PolicyTable> table) { policy_.Publish(std::move(table)); }
  // A bearer token TypeScript verified joins the ingress's token cache (any thread).
  void AddVerifiedToken(const uint8_t digest[32], const TokenEntry& entry);
  // TypeScript recorded audited gate decisions (any thread): their held answers go out, or
  // fail with AUDIT_UNAVAILABLE when the entries could not be made durable.
  void ReleaseAudit(std::vector<uint64_t> tickets, bool durable);
  // TLS of the gRPC ingress: a new context (certificate rotation; new handshakes use it) and
  // the mTLS allowlist (connections of certificates no longer on it are closed). Any thread.
  void ReloadIngressTls(std::shared_ptr<const TlsContext> tls);
  void SetIngressClientAllowlist(std::vector<std::string> fingerprints);
  // Feeds the bulk governor: the round trip of every answered fast-path call is written into
  // the LatencySampleRing at `mem` (latency_ring.h). The memory must outlive the loop thread
  // (the binding keeps its SharedArrayBuffer referenced until Stop). Any thread.
  void AttachLatencyRing(uint8_t* mem, size_t bytes, double clock_offset_ms);
  // One rate-limit bucket per tenant for both ingress paths: the ingress takes tokens from the
  // `count` 64-bit slots at `slots` that TypeScript's limiter takes from too (shared_rate_buckets.h;
  // the binding keeps the SharedArrayBuffer referenced until Stop). Any thread.
  void AttachRateBuckets(int64_t* slots, uint32_t count);
  LatencyRing* latency_ring() { return &latency_ring_; }
  // security.threats: a sample (`sample_rate`) of fast-path ModelInfer calls copy their numeric
  // inputs into the TensorTap ring at `mem` (tensor_tap.h; the binding keeps it referenced until
  // Stop). Any thread.
  void AttachTensorTap(uint8_t* mem, size_t bytes, double sample_rate);
  TensorTap* tensor_tap() { return &tensor_tap_; }
  // Stops accepting gRPC clients and sends GOAWAY (drain).
  void DrainIngress();
  // Calls JS sends on the dialers' links (front_calls.h): any thread, see FrontCalls.
  bool SubmitFrontCall(uint32_t slot, uint32_t dialer, uint32_t tenant, uint32_t timeout_ms, const uint8_t* header, size_t header_len,
                       const uint8_t* payload, size_t payload_len);
  void CancelFrontCall(uint32_t slot);
  // The open link a dialer keeps up, or null (loop thread).
  InferenceLink* LinkOfDialer(uint32_t dialer);
  void BeginShutdown();
  // Number of upstream calls in flight (an atomic read).
  uint64_t EgressInflight() const { return counters_.Get(kEgressCallsInflight); }

  // Sends a message on a link (the slow path: JS control messages and tests). The bytes are
  // copied before this returns. Posted to the loop; failures come back as events.
  void SendFromJs(uint32_t link, uint8_t cls, uint16_t kind, uint32_t stream, uint32_t tenant, std::vector<uint8_t> body);
  void CloseLink(uint32_t link, uint16_t code, const std::string& reason);
  // Emits a kLinkStats event for the link (a verbs link's traffic class and send statistics).
  void QueryLink(uint32_t link);

  // ---- loop thread ----
  // Starts a handshake on a connected (or connecting) socket; the engine owns it until it ends.
  void StartHandshake(int fd, Role role, const LinkOptions& options, const std::string& remote, LinkListener* listener, uint32_t dialer,
                      bool connecting);
  // A handshake ended: on success the socket becomes a link (ownership of fd moves to it).
  void HandshakeFinished(PendingHandshake* h, const Status& status, const LinkOptions& options, const LinkSecrets* secrets,
                         const std::vector<uint8_t>* early, const std::string& remote);
  InferenceLink* FindLink(uint32_t id);
  // Registers a link the engine's egress (or JS) serves; called by the egress to send replies.
  // False when the ring was full (the event is dropped and counted).
  bool Emit(EngineEvent&& e) { return events_.Push(std::move(e)); }
  // A sampled call's span record (EventType::kSpan), batched like every event.
  bool EmitSpan(const SpanRecord& span, const std::string& request_id, const std::string& model, const std::string& err = std::string());
  // An event JS may take up to kEventBatchMs later (a call's access record or failure log line):
  // queued without waking JS; one loop timer (no timerfd: the epoll timeout) wakes it for the
  // whole batch. Anything that waits for JS (an audit ticket, a front call) uses Emit().
  bool EmitDeferred(EngineEvent&& e);
  static constexpr uint64_t kEventBatchMs = 10;
  uint32_t handshakes_in_progress() const { return static_cast<uint32_t>(handshakes_.size()); }

 private:
  void OnLinkMessage(InferenceLink* link, const InboundMessage& msg) override;
  void OnLinkDrain(InferenceLink* link) override;
  void OnLinkClosed(InferenceLink* link, const LinkCloseInfo& info) override;
  // A TCP link, or a verbs link when options.rdma (null when this build has no verbs).
  std::unique_ptr<InferenceLink> MakeLink(uint32_t id, int fd, Role role, const LinkOptions& options, const LinkSecrets& secrets, const std::string& remote);

  CounterBlock counters_;
  EventChannel events_;
  RequestTally request_tally_;
  RequestTally upstream_tally_;
  std::mutex peer_counters_mutex_;
  std::unordered_map<std::string, std::unique_ptr<CounterBlock>> peer_counters_;
  TraceSettings tracing_;
  std::atomic<bool> every_call_event_{false};
  EventLoop loop_;
  uint32_t next_link_id_ = 1;
  uint32_t next_dialer_id_ = 1;
  std::unordered_map<uint32_t, std::unique_ptr<InferenceLink>> links_;
  std::unordered_map<uint32_t, uint32_t> link_dialer_;  // link -> dialer that made it
  std::vector<std::unique_ptr<LinkListener>> listeners_;
  std::unordered_map<uint32_t, std::unique_ptr<LinkDialer>> dialers_;
  std::unordered_map<PendingHandshake*, std::unique_ptr<PendingHandshake>> handshakes_;
  std::unique_ptr<Egress> egress_;
  PolicyStore policy_;
  LatencyRing latency_ring_;  // loop thread
  TensorTap tensor_tap_;      // loop thread
  int64_t* rate_buckets_ = nullptr;  // loop thread: the shared buckets, for an ingress started later
  uint32_t rate_bucket_count_ = 0;
  std::unique_ptr<GrpcIngress> ingress_;
  std::unique_ptr<class IngressLinks> ingress_links_;
  std::unique_ptr<FrontCalls> front_;
  bool stopping_ = false;
  EventLoop::TimerId event_batch_timer_ = EventLoop::kNoTimer;  // loop thread: EmitDeferred's wake-up
  std::shared_ptr<VerbsDevices> verbs_devices_;  // the RDMA devices of verbs links (made on first use)
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_ENGINE_H_
