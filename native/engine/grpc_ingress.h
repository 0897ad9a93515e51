// The engine's gRPC ingress (port 8001) on the engine's loop thread: accepts h2c connections,
// runs a GrpcServerSession per connection, and serves ModelInfer and ModelStreamInfer on the
// fast path without entering JavaScript: KServe scan (kserve_scan.h), policy gates over the
// tables TypeScript compiled (policy_table.h), a CALL envelope (src/wire/inference-envelope.ts)
// on an inference link to an egress peer of the model's route, and the REPLY back to the
// client as a gRPC response and trailers (grpc-status, grpc-message, x-request-id).
// Every other call (health, server/model metadata and readiness, the training service, calls
// of slow-path tenants, bearer tokens the tables do not know yet, break-glass, durably audited
// configs) is relayed as raw HTTP/2 to the TypeScript gRPC server on a private unix socket, so
// the port stays fully functional.
// Deadlines: grpc-timeout (or the default) -> DEADLINE_EXCEEDED with x-request-id and CANCEL to
// the egress. A client RST_STREAM -> CANCEL. A link that fails before the reply -> the call is
// retried on the next peer of the route while the deadline allows (it never reached a model).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/event_loop.h"
#include "engine/grpc_server_session.h"
#include "engine/inference_link.h"
#include "engine/kserve_scan.h"
#include "engine/policy_table.h"
#include "engine/upstream_policy.h"

namespace sluice::engine {

// The access record's numbers of a fast-path call (src/telemetry/access-log.ts AccessRecord).
struct CallAccess {
  uint32_t tenant = 0;
  uint32_t peer = 0;      // dialer id of the egress peer that answered last (0: none)
  uint32_t attempts = 0;  // CALLs sent (more than messages when retried on another peer)
  uint64_t bytes_in = 0;  // request messages, as received (after inflation)
  uint64_t bytes_out = 0; // response messages sent
  uint64_t first_sent_us = 0;  // steady clock: the first CALL went out
  uint64_t sent_us = 0;        // the last CALL went out
  uint64_t replied_us = 0;     // its REPLY came back (0: none)
};

// How a fast-path call ended (the request metrics, the failed-request log line, the access log).
struct CallOutcome {
  const std::string& model;
  const std::string& request_id;
  GrpcStatus status;
  std::string_view code;  // SLUICE_ERR_* or "" (OK)
  const std::string& message;
  uint64_t duration_us;
  bool streaming;
  const CallAccess& access;
  uint64_t started_us;  // steady clock: the call arrived
};

enum class RefusalReason : uint8_t { kMaxConnections, kHandshakeTimeout, kIdleTimeout, kProtocolError };

// How the ingress reaches egress peers (the engine's links; a peer is a dialer id).
class IngressBackend {
 public:
  virtual TcpInferenceLink* LinkForPeer(uint32_t peer) = 0;
  // A fast-path call began / was dropped (answered, cancelled or its connection closed).
  virtual void OnCallOpened() {}
  virtual void OnCallClosed() {}
  // A relayed call began.
  virtual void OnCallRelayed() {}
  // A fast-path call ended (answered, refused or timed out): the request metrics' source.
  virtual void OnCallFinished(const CallOutcome& /*outcome*/) {}
  // An egress peer answered a call admitted `elapsed_us` ago (the bulk governor's signal).
  virtual void OnCallAnswered(uint64_t /*elapsed_us*/) {}
  // A call was shed at admission (upstream_policy.h), a failed attempt was retried on another
  // peer or not (the TypeScript ingress's sluice_requests_shed_total / sluice_retries_total).
  virtual void OnShed(ShedCause /*cause*/) {}
  virtual void OnRetry(bool /*granted*/) {}
  // The listener refused a connection or closed it before it did useful work (reason: a
  // ConnectionRefusalReason label of src/telemetry/connection-refusals.ts).
  virtual void OnConnectionRefused(RefusalReason /*reason*/) {}
  // The P2C policy ejected an egress peer after consecutive failures.
  virtual void OnPeerEjected(uint32_t /*peer*/, const std::string& /*error*/) {}

 protected:
  ~IngressBackend() = default;
};

struct IngressConfig {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  // Unix socket of the TypeScript gRPC server every non-fast call is relayed to ("" : none,
  // such calls get UNIMPLEMENTED).
  std::string relay_path;
  GrpcSessionLimits limits;
  // Deadline of a call without grpc-timeout (config inference.timeoutMs).
  uint32_t default_timeout_ms = 30'000;
  uint32_t max_connections = 10'000;
  // Admission, P2C, ejection and retries (config scheduling.shedding/upstreams/retries).
  UpstreamPolicyConfig upstream_policy;
};

struct IngressCounters {
  uint64_t connections = 0;
  uint64_t fast_calls = 0;
  uint64_t relayed_calls = 0;
  uint64_t refused = 0;
  uint64_t deadline_exceeded = 0;
  uint64_t cancelled = 0;
  uint64_t retries = 0;
};

class GrpcIngress {
 public:
  GrpcIngress(EventLoop* loop, IngressBackend* backend, PolicyStore* policy, IngressConfig config);
  ~GrpcIngress();
  GrpcIngress(const GrpcIngress&) = delete;
  GrpcIngress& operator=(const GrpcIngress&) = delete;

  // Loop thread. False with *error set when the socket cannot be bound.
  bool Listen(std::string* error);
  uint16_t port() const { return port_; }
  // A REPLY on an initiator link: true when it belonged to one of our calls.
  bool OnLinkMessage(TcpInferenceLink* link, const InboundMessage& msg);
  // Calls out on the link are retried elsewhere or failed with UNAVAILABLE.
  void OnLinkClosed(TcpInferenceLink* link);
  // Stop accepting; GOAWAY to every connection (open calls finish).
  void Drain();
  size_t connections() const { return conns_.size(); }
  const IngressCounters& counters() const { return counters_; }

  struct Conn;
  struct Call;
  struct Pending;

 private:
  friend struct Conn;
  void OnAccept();
  void Flush(Conn* c);
  void OnConnEvents(Conn* c, uint32_t events);
  void CloseConn(Conn* c);
  void Housekeeping();

  // Fast path.
  CallKind Route(Conn* c, int32_t id, const RequestHead& head);
  void StartCall(Conn* c, int32_t id, const RequestHead& head);
  void OnRequestMessage(Conn* c, int32_t id, const uint8_t* data, size_t len);
  void OnHalfClose(Conn* c, int32_t id);
  void OnCallCancel(Conn* c, int32_t id);
  void OnCallDeadline(Call* call);
  void Send(Pending* p);
  void FailPending(Pending* p, GrpcStatus status, const char* code, const std::string& message);
  void SucceedPending(Pending* p, const uint8_t* payload, size_t len);
  void Settle(Pending* p);
  // The attempt out on p's peer ended: ok (answered), or failed with `fault` (the peer's own).
  void EndAttempt(Pending* p, bool ok, bool fault);
  // A failed attempt before the model: retried on another peer when the policy allows (true).
  bool RetryElsewhere(Pending* p);
  // Frees a pending (its lease and admission end here).
  void Forget(Pending* p);
  void FinishCall(Call* call, GrpcStatus status, const std::string& message, std::string_view code = {});
  void DropCall(Call* call);
  void AbandonPendings(Call* call, uint8_t reason);

  // Relay to the TypeScript server.
  bool StartRelay(Conn* c, int32_t id, const RequestHead& head);
  void OnRelayData(Conn* c, int32_t id, const uint8_t* data, size_t len, bool end);
  void OnRelayCancel(Conn* c, int32_t id);

  std::string RequestIdFor(const RequestHead& head);

  EventLoop* loop_;
  IngressBackend* backend_;
  PolicyStore* policy_;
  IngressConfig config_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  bool draining_ = false;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns_;
  std::unordered_map<uint64_t, Pending*> out_;  // (link id << 32 | link stream) -> pending
  uint32_t next_stream_ = 1;
  std::vector<uint8_t> read_buf_;
  std::vector<uint8_t> scratch_;
  KServeScanner scanner_;
  TokenCache tokens_;
  RateLimiter limiter_;
  std::mt19937_64 rng_;
  UpstreamPolicy upstreams_;
  EventLoop::TimerId housekeeping_ = EventLoop::kNoTimer;
  IngressCounters counters_;
};

// Request id (src/telemetry/request-id.ts): a valid x-request-id, else a valid traceparent's
// trace id, else "" (the caller generates one).
bool IsValidRequestId(std::string_view id);
std::string TraceIdFromTraceparent(std::string_view header);

}  // namespace sluice::engine
