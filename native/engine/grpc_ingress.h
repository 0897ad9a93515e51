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
// TLS (security.tls): with IngressConfig::tls the listener terminates TLS itself (tls_server.h)
// before HTTP/2, with the TypeScript listener's handshake timeout, ALPN h2, mTLS allowlist,
// audit records of failed handshakes and refused or revoked certificates, and reload.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/pooled_map.h"
#include "engine/event_loop.h"
#include "engine/grpc_server_session.h"
#include "engine/inference_link.h"
#include "engine/kserve_scan.h"
#include "engine/policy_table.h"
#include "engine/tls_server.h"
#include "engine/trace_context.h"
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

// How a fast-path request ended (the request metrics, the failed-request log line, the access
// log): a unary ModelInfer call, or one message of a ModelStreamInfer stream (each message is a
// request of its own, as on the TypeScript ingress; the stream itself is none).
struct CallOutcome {
  const std::string& model;
  const std::string& request_id;
  GrpcStatus status;
  std::string_view code;  // SLUICE_ERR_* or "" (OK)
  const std::string& message;
  uint64_t duration_us;
  bool streaming;  // a message of a ModelStreamInfer stream (request id "<stream's id>:<n>")
  const CallAccess& access;  // a stream message: that message's numbers alone
  uint64_t started_us;  // steady clock: the call (the message) arrived
  // The trace id of the context the request's CALLs carried (16 bytes), or null: the access
  // line's trace_id (node-telemetry.ts accessLogHook).
  const uint8_t* trace_id = nullptr;
};

// A gate decision TypeScript records (src/engine/engine-gate-events.ts turns it into the
// security event gates.ts would have emitted: auth.failed, policy.denied, ratelimit.exceeded,
// infer.request). Fields point into the ingress's state; the backend copies them.
struct GateEventInfo {
  uint64_t ticket = 0;  // != 0: the answer waits for GrpcIngress::ReleaseAudit(ticket)
  bool allowed = false;
  bool throttled = false;
  bool streaming = false;
  std::string_view credential;  // api_key | jwt | none
  std::string_view gate;        // identity | tenant | isolation | policy ("" when allowed)
  std::string_view actor;
  std::string_view tenant;      // "" : none
  std::string_view request_id;
  std::string_view model;
  GrpcStatus status = GrpcStatus::kOk;
  std::string_view code;
  std::string_view message;
  uint64_t bytes = 0;
};

// A TLS security event of the listener (src/security/events.ts types): "tls.handshake_failed"
// (remote, code, message; `count` = failures not audited since the last record: the rate cap),
// "tls.client_refused" (remote, cert, message = reason), "tls.client_revoked" (cert
// fingerprint, `count` = connections closed).
struct TlsAuditEvent {
  std::string_view type;
  std::string_view remote;
  std::string_view code;
  std::string_view message;
  const PeerCertificate* cert = nullptr;
  uint64_t count = 0;
};

enum class RefusalReason : uint8_t { kMaxConnections, kHandshakeTimeout, kIdleTimeout, kProtocolError };

// How the ingress reaches egress peers (the engine's links; a peer is a dialer id).
class IngressBackend {
 public:
  virtual InferenceLink* LinkForPeer(uint32_t peer) = 0;
  // A fast-path call began / was dropped (answered, cancelled or its connection closed).
  virtual void OnCallOpened() {}
  virtual void OnCallClosed() {}
  // A relayed call began.
  virtual void OnCallRelayed() {}
  // A unary fast-path call ended (answered, refused or timed out): the request metrics' source
  // and its access record. A ModelStreamInfer stream's end is not reported here: its messages
  // are the requests (OnStreamMessageDone).
  virtual void OnCallFinished(const CallOutcome& /*outcome*/) {}
  // One message of a ModelStreamInfer stream ended (answered, answered in-band with an error, or
  // abandoned with its stream: deadline, reset, connection closed): the request metrics and the
  // access record count each message, as the TypeScript ingress does, not the stream.
  virtual void OnStreamMessageDone(const CallOutcome& /*outcome*/) {}
  // A gate decision for TypeScript to record; false when it could not be queued (the event
  // ring is full), and then an audited answer is AUDIT_UNAVAILABLE rather than unrecorded.
  virtual bool OnGateEvent(const GateEventInfo& /*event*/) { return false; }
  // A TLS connection closed before its handshake finished (tls_handshake_failed, or
  // handshake_timeout while still in TLS): sluice_connections_refused_total's reason, sent as an
  // event. The other reasons are counted in the counters block (OnConnectionRefused below).
  virtual void OnTlsRefused(std::string_view /*reason*/) {}
  virtual void OnTlsAudit(const TlsAuditEvent& /*event*/) {}
  // A unary ModelInfer passed the gates and admission and goes out now (`msg` was scanned by
  // `scan`): the sampled tensor tap's seam (tensor_tap.h). Must not block.
  virtual void OnInferAdmitted(uint32_t /*tenant*/, std::string_view /*model*/, std::string_view /*request_id*/, const uint8_t* /*msg*/,
                               size_t /*len*/, const KServeScanner& /*scan*/) {}
  // An egress peer answered a call admitted `elapsed_us` ago (the bulk governor's signal).
  virtual void OnCallAnswered(uint64_t /*elapsed_us*/) {}
  // A call was shed at admission (upstream_policy.h), a failed attempt was retried on another
  // peer or not (the TypeScript ingress's sluice_requests_shed_total / sluice_retries_total).
  virtual void OnShed(ShedCause /*cause*/) {}
  // `failed_peer`: the peer whose attempt failed; `request_id`: the call's (for the log line).
  virtual void OnRetry(bool /*granted*/, uint32_t /*failed_peer*/, const std::string& /*request_id*/) {}
  // The listener refused a connection or closed it before it did useful work (reason: a
  // ConnectionRefusalReason label of src/telemetry/connection-refusals.ts).
  virtual void OnConnectionRefused(RefusalReason /*reason*/) {}
  // The P2C policy ejected an egress peer after consecutive failures.
  virtual void OnPeerEjected(uint32_t /*peer*/, const std::string& /*error*/) {}
  // Tracing (telemetry.otlp): the node's settings (null: off), and a sampled call's span
  // record, queued for TypeScript (trace_context.h).
  virtual const TraceSettings* Tracing() { return nullptr; }
  virtual void OnSpan(const SpanRecord& /*span*/, const std::string& /*request_id*/, const std::string& /*model*/, const std::string& /*err*/) {}

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
  // TLS on the listener (null: h2c). The TLS handshake must finish within
  // limits.handshake_timeout_ms of the accept; the HTTP/2 preface then gets as long again.
  std::shared_ptr<const TlsContext> tls;
  // mTLS: SHA-256 fingerprints (lowercase hex) of the client certificates allowed.
  std::unordered_set<std::string> client_allowlist;
  // Failed-handshake audit records per second before they are summarised.
  uint32_t handshake_events_per_second = 20;
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
  uint64_t tls_handshakes = 0;
  uint64_t tls_failures = 0;
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
  bool OnLinkMessage(InferenceLink* link, const InboundMessage& msg);
  // Calls out on the link are retried elsewhere or failed with UNAVAILABLE.
  void OnLinkClosed(InferenceLink* link);
  // Stop accepting; GOAWAY to every connection (open calls finish).
  void Drain();
  // A new certificate/key (reload): new handshakes use it; live connections keep theirs.
  void SetTls(std::shared_ptr<const TlsContext> tls) { config_.tls = std::move(tls); }
  // A new allowlist: live connections of certificates no longer on it are closed (audited).
  void SetClientAllowlist(std::unordered_set<std::string> allowlist);
  size_t connections() const { return conns_.size(); }
  // A bearer token TypeScript verified (loop thread): its next calls stay on the fast path.
  void AddVerifiedToken(const uint8_t digest[32], const TokenEntry& entry) { tokens_.Add(digest, entry); }
  // The per-tenant buckets shared with TypeScript's limiter (loop thread; Engine::AttachRateBuckets).
  void AttachRateBuckets(int64_t* slots, uint32_t count) { limiter_.AttachShared(slots, count); }
  // TypeScript's answer for an audited decision (loop thread): durable -> the held answer goes
  // out (the refusal, or the reply once it is here); not durable -> AUDIT_UNAVAILABLE.
  void ReleaseAudit(uint64_t ticket, bool durable);
  size_t audit_held() const { return audit_held_.size(); }
  const IngressCounters& counters() const { return counters_; }

  struct Conn;
  struct Call;
  struct Pending;
  struct MessageTrace;

 private:
  friend struct Conn;
  void OnAccept();
  void Flush(Conn* c);
  void OnConnEvents(Conn* c, uint32_t events);
  void CloseConn(Conn* c);
  void Housekeeping();
  void StartSession(Conn* c);
  // TLS: ciphertext in (false: the connection closed), handshake end, failures, output.
  bool TlsInput(Conn* c, const uint8_t* data, size_t len);
  bool TlsEstablished(Conn* c);
  void TlsFailed(Conn* c, const char* reason, std::string_view code, std::string_view message);
  void FlushTls(Conn* c);
  void Refused(const char* reason);

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
  // Tracing: the call's span decision and the context its CALLs carry (trace_context.h). A
  // stream keeps the caller's header parsed; each of its messages decides its own span
  // (StartMessageSpan), as tracingHook runs per message on the TypeScript ingress.
  void StartSpan(Call* call, std::string_view traceparent);
  void StartMessageSpan(Call* call, MessageTrace* trace);
  // A sampled request's ingress span record (a unary call's or a stream message's), started at
  // `start_ns`; its context (for the CALLs) into `ctx` (26 bytes).
  void BeginIngressSpan(const SpanStart& s, uint64_t start_ns, SpanRecord* r, uint8_t* ctx);
  void EndSpan(SpanRecord& span, const CallAccess& access, GrpcStatus status, const std::string& request_id, const std::string& model,
               const std::string& message);
  // One message of a stream ended: its metrics, access record and span.
  void EndMessage(const std::string& request_id, const std::string& model, GrpcStatus status, std::string_view code, const std::string& message,
                  uint64_t message_us, const CallAccess& access, MessageTrace* trace);
  void AbandonPendings(Call* call, uint8_t reason);

  // Relay to the TypeScript server.
  bool StartRelay(Conn* c, int32_t id, const RequestHead& head);
  void OnRelayData(Conn* c, int32_t id, const uint8_t* data, size_t len, bool end);
  void OnRelayCancel(Conn* c, int32_t id);

  // The call's request id (x-request-id, else the traceparent's trace id, else a new UUID),
  // into `out`, whose buffer a pooled call keeps.
  void RequestIdFor(const RequestHead& head, std::string* out);
  std::string stream_rid_;  // OnRequestMessage: a stream message's request id
  // Reports a gate decision to TypeScript; with `held`, registers p under a new ticket. False
  // when the event could not be queued.
  bool ReportGate(Call* call, const GateResult& gate, const std::string& rid, const std::string& model, size_t bytes, Pending* held);
  void Unhold(Pending* p);
  void SyncTokens(const PolicyTable& table);

  EventLoop* loop_;
  IngressBackend* backend_;
  PolicyStore* policy_;
  IngressConfig config_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  bool draining_ = false;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> conns_;
  PooledMap<uint64_t, Pending*> out_;  // (link id << 32 | link stream) -> pending
  // Audited decisions whose answer waits for TypeScript (ticket -> pending); bounded by the
  // calls in flight, as every entry is a pending of a live call.
  std::unordered_map<uint64_t, Pending*> audit_held_;
  uint64_t next_ticket_ = 1;
  uint32_t next_stream_ = 1;
  std::vector<uint8_t> read_buf_;
  // When the bytes being fed now reached this host (the kernel's receive timestamp of the last
  // segment of the read, SO_TIMESTAMPNS, on the steady clock); 0 outside a read or without one.
  uint64_t rx_arrival_us_ = 0;
  // Pendings of ended calls, cleared but keeping their buffers' capacity (the request payload,
  // ids, peer lists) for the next call: no allocation per call once warm. Bounded in count and
  // in the payload bytes they keep.
  std::vector<Pending*> spare_pendings_;
  size_t spare_payload_bytes_ = 0;
  Pending* NewPending();
  void RecyclePending(Pending* p);
  // Calls of ended streams, the same way (their ids, span and pendings list keep capacity).
  std::vector<Call*> spare_calls_;
  Call* NewCall();
  void RecycleCall(Call* call);
  std::vector<uint8_t> plain_buf_;  // TLS: decrypted bytes on their way into a session
  struct {
    uint64_t start = 0;
    uint32_t count = 0;
    uint64_t suppressed = 0;
  } tls_failure_window_;
  std::vector<uint8_t> scratch_;
  KServeScanner scanner_;
  TokenCache tokens_;
  // The table generation the token cache belongs to: a republish (key store or JWKS reloaded)
  // empties it, so a retired signing key stops at once, as src/security/jwt.ts does.
  uint64_t tokens_generation_ = UINT64_MAX;
  RateLimiter limiter_;
  std::mt19937_64 rng_;
  TraceIds trace_ids_;
  UpstreamPolicy upstreams_;
  EventLoop::TimerId housekeeping_ = EventLoop::kNoTimer;
  IngressCounters counters_;
};

// Request id (src/telemetry/request-id.ts): a valid x-request-id, else a valid traceparent's
// trace id, else "" (the caller generates one).
bool IsValidRequestId(std::string_view id);
std::string TraceIdFromTraceparent(std::string_view header);

}  // namespace sluice::engine
