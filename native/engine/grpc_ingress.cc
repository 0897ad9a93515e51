#include "engine/grpc_ingress.h"
#include "engine/rx_timestamp.h"
#include "engine/sanitizers.h"
#include "engine/stream_table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>

namespace sluice::engine {

namespace {

constexpr uint16_t kKindCall = 0x20;
constexpr uint16_t kKindReply = 0x21;
constexpr uint16_t kKindCancel = 0x22;
constexpr uint8_t kEnvelopeVersion = 1;
constexpr uint8_t kMethodModelInfer = 1;
constexpr uint8_t kCancelCaller = 0;
constexpr uint8_t kCancelDeadline = 1;
constexpr size_t kReadChunk = 256 * 1024;
constexpr size_t kPlainChunk = 64 * 1024;
constexpr size_t kTlsOutChunk = 256 * 1024;  // ciphertext moved out of the BIO per send
constexpr size_t kTlsWriteChunk = 64 * 1024;  // plaintext per SSL_write (4 records)
constexpr size_t kMaxStreamInflight = 256;  // as src/ingress/http2-grpc-ingress.ts MAX_STREAM_INFLIGHT
const std::string_view kModelInferPath = "/inference.GRPCInferenceService/ModelInfer";
const std::string_view kModelStreamInferPath = "/inference.GRPCInferenceService/ModelStreamInfer";

uint64_t Key(uint32_t link, uint32_t stream) { return (static_cast<uint64_t>(link) << 32) | stream; }

void Varint(std::vector<uint8_t>* o, uint64_t v) {
  while (v >= 0x80) {
    o->push_back(static_cast<uint8_t>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  o->push_back(static_cast<uint8_t>(v));
}

void LenField(std::vector<uint8_t>* o, uint32_t field, std::string_view v) {
  Varint(o, (field << 3) | 2);
  Varint(o, v.size());
  o->insert(o->end(), v.begin(), v.end());
}

bool IsIdChar(char c, bool first) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  if (first) return false;
  return std::strchr("._:~+=/@-", c) != nullptr && c != '\0';
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(std::string_view s) {
  for (char c : s) {
    if (c != '0') return false;
  }
  return true;
}

}  // namespace

bool IsValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (size_t i = 0; i < id.size(); i++) {
    if (!IsIdChar(id[i], i == 0)) return false;
  }
  return true;
}

std::string TraceIdFromTraceparent(std::string_view h) {
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  // version(2)-trace(32)-parent(16)-flags(2)[-...]
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return "";
  std::string_view version = h.substr(0, 2), trace = h.substr(3, 32), parent = h.substr(36, 16), flags = h.substr(53, 2);
  if (!IsLowerHex(version) || !IsLowerHex(trace) || !IsLowerHex(parent) || !IsLowerHex(flags)) return "";
  if (h.size() > 55 && h[55] != '-') return "";
  if (version == "ff" || (version == "00" && h.size() != 55)) return "";
  if (AllZero(trace) || AllZero(parent)) return "";
  return std::string(trace);
}

// ---- per-connection state ----

// The trace state of one request's CALLs: the context they carry (envelope v2) and, when
// sampled, the request's ingress span. A unary call's is the call's (decided when it begins); a
// stream message's is its own (StartMessageSpan).
struct GrpcIngress::MessageTrace {
  bool traced = false;  // sampled: `span` is the request's ingress span
  bool carry = false;   // the CALLs carry `ctx`
  uint8_t ctx[26] = {};
  SpanRecord span;
};

struct GrpcIngress::Call {
  Conn* conn = nullptr;
  int32_t stream = 0;
  bool streaming = false;
  bool half_closed = false;
  bool client_deadline = false;
  std::string request_id;
  std::string model;
  uint64_t started_us = 0;  // steady clock, for the request duration metric
  double timeout_ms = 0;
  uint64_t deadline_at = 0;  // loop ms
  EventLoop::TimerId timer = EventLoop::kNoTimer;
  uint32_t tenant = 0;
  uint32_t seq = 0;
  CallAccess access;  // a unary call's access record (a stream's messages keep their own)
  std::vector<Pending*> pendings;
  GateHeaders gate_headers;
  // Tracing of a unary call (off, or a stream: traced false, carry_trace false): the ingress span
  // of a sampled call, and the trace context its CALL carries (the span's, or an unsampled
  // caller's header unchanged).
  bool traced = false;
  bool carry_trace = false;
  uint64_t started_ns = 0;
  SpanRecord span;
  uint8_t carry[26] = {};
  // A stream with tracing on: the caller's traceparent parsed once, by the propagator's rules (a
  // valid one is each sampled message's parent) and by the envelope's (what an unsampled
  // message's CALL carries: raw_carry). Each message decides its own span from them.
  bool stream_tracing = false;
  TraceContext parent;
  bool raw_carry = false;
  uint8_t raw[26] = {};

  // Back to a new call's state for reuse; the strings and the pendings list keep their
  // capacity (a string's copy assignment from an empty one keeps its buffer).
  void Reset() {
    std::vector<Pending*> keep = std::move(pendings);
    keep.clear();
    std::string id = std::move(request_id);
    std::string m = std::move(model);
    id.clear();
    m.clear();
    *this = Call{};
    pendings = std::move(keep);
    request_id = std::move(id);
    model = std::move(m);
  }
};

// One CALL out on a link (a unary call, or one message of a stream).
struct GrpcIngress::Pending {
  Call* call = nullptr;
  std::string request_id;
  std::string model;
  std::string version;
  std::string req_id_field;  // the request's own id (stream error responses carry it)
  std::vector<uint8_t> payload;
  std::vector<uint32_t> peers;
  uint32_t attempts = 0;
  uint32_t link = 0;
  uint32_t link_stream = 0;
  // Audit hold: the decision's entry is not durable yet. A refusal waits in held_error; an
  // allowed call goes out at once and a reply that comes first waits in held_reply.
  uint64_t audit_ticket = 0;
  CallError held_error;
  bool reply_held = false;
  std::vector<uint8_t> held_reply;
  uint64_t message_us = 0;   // a stream message's arrival: its sluice_request_duration_seconds starts here
  uint64_t admitted_us = 0;  // the upstream policy's round trip starts here (retries included)
  uint64_t arrived_us = 0;   // the bulk governor's: when the request's bytes reached this host (else admitted_us)
  bool admitted = false;     // counted in the shedder's in-flight calls
  std::vector<uint32_t> tried;  // peers an attempt went to (a retry prefers others)
  uint32_t peer = 0;            // the peer of the attempt out now (leased in the P2C policy)
  bool leased = false;
  uint64_t sent_us = 0;
  // The context its CALLs carry (a unary call's copied from the call), and a stream message's
  // own span; a stream message's own access numbers (its access record).
  MessageTrace trace;
  CallAccess access;

  // For reuse (GrpcIngress::RecyclePending): every field back to its default, the containers
  // emptied but keeping their capacity. A field added above must be reset here too.
  void Reset() {
    call = nullptr;
    request_id.clear();
    model.clear();
    version.clear();
    req_id_field.clear();
    payload.clear();
    peers.clear();
    attempts = link = link_stream = 0;
    audit_ticket = 0;
    held_error = CallError{};
    reply_held = false;
    held_reply.clear();
    message_us = admitted_us = arrived_us = 0;
    admitted = false;
    tried.clear();
    peer = 0;
    leased = false;
    sent_us = 0;
    trace = MessageTrace{};
    access = CallAccess{};
  }
};

struct GrpcIngress::Conn final : GrpcServerSession::Handler {
  GrpcIngress* ingress = nullptr;
  int fd = -1;
  uint32_t watched = 0;
  bool closed = false;
  std::unique_ptr<GrpcServerSession> session;  // null while TLS is handshaking
  // TLS (null: h2c): the session, its ciphertext on its way out, the handshake deadline.
  std::unique_ptr<TlsServerSession> tls;
  std::vector<uint8_t> tls_out;
  size_t tls_out_off = 0;
  EventLoop::TimerId tls_timer = EventLoop::kNoTimer;
  std::string remote;       // "address:port" for audit records
  std::string fingerprint;  // mTLS: the verified certificate's SHA-256 (the allowlist's key)
  bool timeout_counted = false;
  StreamTable<Call> calls;
  // Relay to the TypeScript server.
  int relay_fd = -1;
  nghttp2_session* relay = nullptr;
  std::vector<uint8_t> relay_out;
  size_t relay_out_off = 0;
  struct RelayStream {
    int32_t server_stream = 0;
    std::vector<uint8_t> body;
    size_t off = 0;
    bool end = false;
    bool deferred = false;
    bool responded = false;
    std::vector<std::string> trailer_store;
  };
  std::unordered_map<int32_t, std::unique_ptr<RelayStream>> relay_by_client;  // relay stream id -> state
  std::unordered_map<int32_t, int32_t> relay_by_server;                       // server stream -> relay stream

  CallKind Route(int32_t id, const RequestHead& head) override { return ingress->Route(this, id, head); }
  void OnCall(int32_t id, const RequestHead& head) override { ingress->StartCall(this, id, head); }
  void OnMessage(int32_t id, const uint8_t* d, size_t n) override { ingress->OnRequestMessage(this, id, d, n); }
  void OnHalfClose(int32_t id) override { ingress->OnHalfClose(this, id); }
  void OnCancel(int32_t id) override {
    if (relay_by_server.count(id) != 0) ingress->OnRelayCancel(this, id);
    else ingress->OnCallCancel(this, id);
  }
  void OnDeadline(int32_t id) override {
    if (Call* call = calls.Find(id)) ingress->OnCallDeadline(call);
  }
  void OnRelayData(int32_t id, const uint8_t* d, size_t n, bool end) override { ingress->OnRelayData(this, id, d, n, end); }
};

GrpcIngress::GrpcIngress(EventLoop* loop, IngressBackend* backend, PolicyStore* policy, IngressConfig config)
    : loop_(loop), backend_(backend), policy_(policy), config_(std::move(config)), rng_(std::random_device{}()), upstreams_(config_.upstream_policy) {
  read_buf_.resize(kReadChunk);
  if (config_.tls != nullptr) plain_buf_.resize(kPlainChunk);
}

GrpcIngress::~GrpcIngress() {
  if (housekeeping_ != EventLoop::kNoTimer) loop_->CancelTimer(housekeeping_);
  std::vector<Conn*> all;
  for (auto& [p, c] : conns_) all.push_back(p);
  for (Conn* c : all) CloseConn(c);
  if (listen_fd_ >= 0) {
    loop_->Unwatch(listen_fd_);
    ::close(listen_fd_);
  }
  for (Pending* p : spare_pendings_) delete p;
  for (Call* call : spare_calls_) delete call;
}

bool GrpcIngress::Listen(std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(config_.port);
  int rc = getaddrinfo(config_.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    *error = "cannot resolve " + config_.host + ": " + gai_strerror(rc);
    return false;
  }
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    *error = std::string("socket: ") + strerror(errno);
    return false;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
    *error = "cannot listen on " + config_.host + ":" + port + ": " + strerror(errno);
    freeaddrinfo(res);
    ::close(fd);
    return false;
  }
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  listen_fd_ = fd;
  loop_->Watch(fd, kReadable, [this](uint32_t) { OnAccept(); });
  housekeeping_ = loop_->AddTimer(1000, [this] { Housekeeping(); });
  return true;
}

void GrpcIngress::Housekeeping() {
  housekeeping_ = EventLoop::kNoTimer;
  uint64_t now = loop_->now_ms();
  std::vector<Conn*> all;
  for (auto& [p, c] : conns_) all.push_back(p);
  for (Conn* c : all) {
    if (c->session == nullptr) continue;  // TLS handshake: its own timer
    c->session->Tick(now);
    Flush(c);
  }
  housekeeping_ = loop_->AddTimer(1000, [this] { Housekeeping(); });
}

void GrpcIngress::OnAccept() {
  for (int i = 0; i < 64; i++) {
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or an error of that one connection
    if (draining_ || conns_.size() >= config_.max_connections) {
      if (!draining_) backend_->OnConnectionRefused(RefusalReason::kMaxConnections);
      ::close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Receive timestamps: the bulk governor's round trip starts when a request reached this
    // host, so it includes the wait before this thread read it (what a client sees, and what
    // low-priority work on the same cores delays). Best effort: without them it starts at the read.
    EnableRxTimestamps(fd);
    auto c = std::make_unique<Conn>();
    c->ingress = this;
    c->fd = fd;
    if (config_.tls != nullptr) {
      c->tls = std::make_unique<TlsServerSession>(config_.tls);
      if (!c->tls->ok()) {
        ::close(fd);
        continue;
      }
      char host[INET6_ADDRSTRLEN] = "?";
      uint16_t port = 0;
      if (peer.ss_family == AF_INET6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&peer);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
      } else if (peer.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&peer);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
      }
      c->remote = std::string(host) + ":" + std::to_string(port);
    } else {
      c->session = std::make_unique<GrpcServerSession>(c.get(), config_.limits, loop_->now_ms());
      if (!c->session->ok()) {
        ::close(fd);
        continue;
      }
    }
    Conn* raw = c.get();
    conns_[raw] = std::move(c);
    counters_.connections++;
    raw->watched = kReadable;
    loop_->Watch(fd, kReadable, [this, raw](uint32_t ev) { OnConnEvents(raw, ev); });
    if (raw->tls != nullptr) {
      // The TLS handshake's deadline (node's handshakeTimeout): from the accept.
      if (config_.limits.handshake_timeout_ms > 0) {
        raw->tls_timer = loop_->AddTimer(config_.limits.handshake_timeout_ms, [this, raw] {
          raw->tls_timer = EventLoop::kNoTimer;
          if (!raw->closed && raw->session == nullptr) TlsFailed(raw, "handshake_timeout", "ERR_TLS_HANDSHAKE_TIMEOUT", "TLS handshake timeout");
        });
      }
      continue;
    }
    Flush(raw);  // our SETTINGS
  }
}

void GrpcIngress::OnConnEvents(Conn* c, uint32_t events) {
  if (c->closed) return;
  if ((events & kReadable) != 0 || (events & (kError | kHangup)) != 0) {
    for (int i = 0; i < 16; i++) {
      ssize_t n = ReadStamped(c->fd, read_buf_.data(), read_buf_.size(), &rx_arrival_us_);
      if (n > 0) {
        if (c->tls != nullptr) {
          const bool alive = TlsInput(c, read_buf_.data(), static_cast<size_t>(n));
          rx_arrival_us_ = 0;
          if (!alive) return;
        } else {
          c->session->Feed(read_buf_.data(), static_cast<size_t>(n), loop_->now_ms());
          rx_arrival_us_ = 0;
        }
        if (c->session != nullptr && c->session->output_size() > config_.limits.output_watermark) break;
        if (static_cast<size_t>(n) < read_buf_.size()) break;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        // node reports a TLS client that leaves mid-handshake as a failed handshake
        // ('tlsClientError', ECONNRESET "socket hang up").
        if (c->tls != nullptr && c->session == nullptr) {
          TlsFailed(c, "tls_handshake_failed", "ECONNRESET", "socket hang up");
        } else {
          CloseConn(c);
        }
        return;
      }
      break;
    }
  }
  Flush(c);
}

void GrpcIngress::Flush(Conn* c) {
  if (c->closed) return;
  if (c->tls != nullptr) {
    FlushTls(c);
    return;
  }
  for (;;) {
    c->session->FillOutput();
    size_t n = c->session->output_size();
    if (n == 0) break;
    ssize_t w = ::send(c->fd, c->session->output(), n, MSG_NOSIGNAL);
    if (w > 0) {
      c->session->ConsumeOutput(static_cast<size_t>(w));
      if (static_cast<size_t>(w) < n) break;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
    CloseConn(c);
    return;
  }
  if (c->session->wants_close()) {
    CloseConn(c);
    return;
  }
  // Read while the output keeps up; wait for writability while it does not (backpressure).
  uint32_t want = c->session->output_size() > 0 ? kWritable : kReadable;
  if (c->session->output_size() > 0 && c->session->output_size() < config_.limits.output_watermark) want |= kReadable;
  if (want != c->watched) {
    c->watched = want;
    loop_->Modify(c->fd, want);
  }
}

void GrpcIngress::CloseConn(Conn* c) {
  if (c->closed) return;
  c->closed = true;
  if (c->tls_timer != EventLoop::kNoTimer) {
    loop_->CancelTimer(c->tls_timer);
    c->tls_timer = EventLoop::kNoTimer;
  }
  if (c->session != nullptr) {
    switch (c->session->close_reason()) {
      case GrpcServerSession::CloseReason::kHandshakeTimeout: backend_->OnConnectionRefused(RefusalReason::kHandshakeTimeout); break;
      case GrpcServerSession::CloseReason::kIdleTimeout: backend_->OnConnectionRefused(RefusalReason::kIdleTimeout); break;
      case GrpcServerSession::CloseReason::kProtocolError: backend_->OnConnectionRefused(RefusalReason::kProtocolError); break;
      case GrpcServerSession::CloseReason::kNone: break;
    }
  }
  loop_->Unwatch(c->fd);
  ::close(c->fd);
  if (c->session != nullptr) c->session->PeerGone();  // OnCancel for every open call
  if (c->relay_fd >= 0) {
    loop_->Unwatch(c->relay_fd);
    ::close(c->relay_fd);
    c->relay_fd = -1;
  }
  if (c->relay != nullptr) {
    nghttp2_session_del(c->relay);
    c->relay = nullptr;
  }
  auto it = conns_.find(c);
  if (it != conns_.end()) {
    std::shared_ptr<Conn> dying(it->second.release());
    conns_.erase(it);
    loop_->Defer([dying] {});  // freed after this turn: we may be inside its call stack
  }
}

void GrpcIngress::Drain() {
  draining_ = true;
  if (listen_fd_ >= 0) {
    loop_->Unwatch(listen_fd_);
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  std::vector<Conn*> all;
  for (auto& [p, c] : conns_) all.push_back(p);
  for (Conn* c : all) {
    if (c->session == nullptr) continue;  // mid-handshake: drained once established
    c->session->Drain();
    Flush(c);
  }
}

// ---- TLS (security.tls) ----

void GrpcIngress::Refused(const char* reason) { backend_->OnTlsRefused(reason); }

bool GrpcIngress::TlsInput(Conn* c, const uint8_t* data, size_t len) {
  c->tls->Feed(data, len);
  if (c->session == nullptr) {
    TlsServerSession::Step step = c->tls->Handshake();
    if (step == TlsServerSession::Step::kFailed) {
      TlsFailed(c, "tls_handshake_failed", c->tls->error_code(), c->tls->error_message());
      return false;
    }
    if (step == TlsServerSession::Step::kPending) {
      FlushTls(c);  // the server's flight
      return !c->closed;
    }
    if (!TlsEstablished(c)) return false;
  }
  for (;;) {
    long n = c->tls->ReadPlain(plain_buf_.data(), plain_buf_.size());
    if (n == 0) break;
    if (n < 0) {
      CloseConn(c);  // close_notify or a bad record: this connection only
      return false;
    }
    c->session->Feed(plain_buf_.data(), static_cast<size_t>(n), loop_->now_ms());
    if (c->closed) return false;
  }
  return true;
}

bool GrpcIngress::TlsEstablished(Conn* c) {
  counters_.tls_handshakes++;
  if (c->tls_timer != EventLoop::kNoTimer) {
    loop_->CancelTimer(c->tls_timer);
    c->tls_timer = EventLoop::kNoTimer;
  }
  if (config_.tls->require_client_cert()) {
    // The chain was verified in the handshake; the certificate must also be allowlisted.
    PeerCertificate cert;
    bool have = c->tls->PeerCert(&cert);
    if (!have || config_.client_allowlist.count(cert.fingerprint) == 0) {
      TlsAuditEvent e;
      e.type = "tls.client_refused";
      e.remote = c->remote;
      e.message = have ? "certificate not in allowlist" : "no certificate";
      e.cert = have ? &cert : nullptr;
      backend_->OnTlsAudit(e);
      FlushTls(c);
      CloseConn(c);
      return false;
    }
    c->fingerprint = std::move(cert.fingerprint);
  }
  StartSession(c);
  return !c->closed;
}

void GrpcIngress::StartSession(Conn* c) {
  // The HTTP/2 preface deadline starts now, as the TypeScript listener's session watch does.
  c->session = std::make_unique<GrpcServerSession>(c, config_.limits, loop_->now_ms());
  if (!c->session->ok()) {
    CloseConn(c);
    return;
  }
  if (draining_) c->session->Drain();
  FlushTls(c);
}

void GrpcIngress::TlsFailed(Conn* c, const char* reason, std::string_view code, std::string_view message) {
  if (c->closed) return;
  counters_.tls_failures++;
  FlushTls(c);  // an alert for the peer, if OpenSSL wrote one (a failed send closes c: still counted)
  Refused(reason);
  // A flood of bad handshakes must not become a flood of audit records: 20 a second, then the
  // rest is counted and reported with the next record (secure-listener.ts's rule).
  uint64_t now = loop_->now_ms();
  auto& w = tls_failure_window_;
  if (now - w.start >= 1000) {
    w.start = now;
    w.count = 0;
  }
  if (w.count < config_.handshake_events_per_second) {
    w.count++;
    TlsAuditEvent e;
    e.type = "tls.handshake_failed";
    e.remote = c->remote;
    e.code = code;
    e.message = message.substr(0, 200);
    e.count = w.suppressed;
    w.suppressed = 0;
    backend_->OnTlsAudit(e);
  } else {
    w.suppressed++;
  }
  CloseConn(c);
}

void GrpcIngress::FlushTls(Conn* c) {
  if (c->closed) return;
  for (;;) {
    if (c->tls_out_off < c->tls_out.size()) {
      ssize_t w = ::send(c->fd, c->tls_out.data() + c->tls_out_off, c->tls_out.size() - c->tls_out_off, MSG_NOSIGNAL);
      if (w > 0) {
        c->tls_out_off += static_cast<size_t>(w);
        if (c->tls_out_off < c->tls_out.size()) break;
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
      CloseConn(c);
      return;
    }
    c->tls_out_off = 0;
    c->tls_out.clear();  // keeps its capacity
    size_t pending = c->tls->pending_ciphertext();
    if (pending > 0) {
      c->tls_out.resize(pending < kTlsOutChunk ? pending : kTlsOutChunk);
      c->tls_out.resize(c->tls->TakeCiphertext(c->tls_out.data(), c->tls_out.size()));
      if (c->tls_out.empty()) break;
      continue;
    }
    if (c->session == nullptr) break;
    c->session->FillOutput();
    size_t n = c->session->output_size();
    if (n == 0) break;
    long w = c->tls->WritePlain(c->session->output(), n < kTlsWriteChunk ? n : kTlsWriteChunk);
    if (w < 0) {
      CloseConn(c);
      return;
    }
    if (w == 0) break;
    c->session->ConsumeOutput(static_cast<size_t>(w));
  }
  bool out_pending = c->tls_out_off < c->tls_out.size();
  if (c->session != nullptr && c->session->wants_close() && !out_pending) {
    CloseConn(c);
    return;
  }
  size_t session_out = c->session != nullptr ? c->session->output_size() : 0;
  uint32_t want = out_pending ? kWritable : kReadable;
  if (out_pending && session_out < config_.limits.output_watermark) want |= kReadable;
  if (want != c->watched) {
    c->watched = want;
    loop_->Modify(c->fd, want);
  }
}

void GrpcIngress::SetClientAllowlist(std::unordered_set<std::string> allowlist) {
  config_.client_allowlist = std::move(allowlist);
  std::unordered_map<std::string, std::vector<Conn*>> revoked;
  for (auto& [p, c] : conns_) {
    if (!c->fingerprint.empty() && config_.client_allowlist.count(c->fingerprint) == 0) revoked[c->fingerprint].push_back(p);
  }
  for (auto& [fp, list] : revoked) {
    PeerCertificate cert;
    cert.fingerprint = fp;
    TlsAuditEvent e;
    e.type = "tls.client_revoked";
    e.cert = &cert;
    e.count = list.size();
    backend_->OnTlsAudit(e);
    for (Conn* c : list) CloseConn(c);
  }
}

void GrpcIngress::RequestIdFor(const RequestHead& head, std::string* out) {
  if (IsValidRequestId(head.x_request_id)) {
    out->assign(head.x_request_id);
    return;
  }
  if (!head.traceparent.empty()) {
    *out = TraceIdFromTraceparent(head.traceparent);
    if (!out->empty()) return;
  }
  uint64_t a = rng_(), b = rng_();
  a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;  // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant
  char id[37];
  std::snprintf(id, sizeof id, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32), static_cast<unsigned>((a >> 16) & 0xffff),
                static_cast<unsigned>(a & 0xffff), static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
  out->assign(id, 36);
}

// ---- fast path ----

CallKind GrpcIngress::Route(Conn* c, int32_t id, const RequestHead& head) {
  bool fast = head.path == kModelInferPath || head.path == kModelStreamInferPath;
  std::shared_ptr<const PolicyTable> table = policy_->Current();
  if (fast && table != nullptr) {
    // Header-only gates decide here whether TypeScript must see the call (a token it has not
    // verified yet, break-glass, durable audit, a slow-path tenant).
    GateHeaders gh;
    gh.authorization = head.authorization;
    gh.authorization_count = head.authorization_count;
    gh.api_key = head.api_key;
    gh.api_key_count = head.api_key_count;
    for (size_t i = 0; i < head.field_count; i++) {
      if (head.fields[i].name == "x-sluice-tenant") gh.tenant = head.fields[i].value;
      if (head.fields[i].name == "x-sluice-break-glass") gh.break_glass = true;
    }
    SyncTokens(*table);
    // A dry run: model-specific checks come with the message; only "ask" matters here.
    RateLimiter dry;
    GateResult r = PolicyGates::Check(*table, tokens_, dry, gh, std::string_view(), 0, 0, 0);
    if (r.outcome == GateOutcome::kAskControlPlane) fast = false;
  } else if (fast) {
    fast = false;  // no tables yet: TypeScript serves until they arrive
  }
  if (fast) {
    counters_.fast_calls++;
    return head.path == kModelStreamInferPath ? CallKind::kStreaming : CallKind::kUnary;
  }
  counters_.relayed_calls++;
  backend_->OnCallRelayed();
  if (StartRelay(c, id, head)) return CallKind::kRelay;
  std::string rid;
  RequestIdFor(head, &rid);
  HeaderField t{"x-request-id", rid};
  c->session->Finish(id, GrpcStatus::kUnimplemented, "unknown method " + std::string(head.path), &t, 1);
  return CallKind::kAnswered;
}

void GrpcIngress::StartCall(Conn* c, int32_t id, const RequestHead& head) {
  Call* call = NewCall();
  call->conn = c;
  call->stream = id;
  call->streaming = head.path == kModelStreamInferPath;
  call->started_us = SteadyMicros();
  backend_->OnCallOpened();
  RequestIdFor(head, &call->request_id);  // into the pooled call's string: no allocation once warm
  StartSpan(call, head.traceparent);
  if (call->streaming && call->request_id.size() > 100) call->request_id.resize(100);
  call->client_deadline = head.timeout_ms >= 0;
  call->timeout_ms = head.timeout_ms >= 0 ? head.timeout_ms : config_.default_timeout_ms;
  call->deadline_at = loop_->now_ms() + static_cast<uint64_t>(call->timeout_ms);
  call->gate_headers.authorization = head.authorization;
  call->gate_headers.authorization_count = head.authorization_count;
  call->gate_headers.api_key = head.api_key;
  call->gate_headers.api_key_count = head.api_key_count;
  for (size_t i = 0; i < head.field_count; i++) {
    if (head.fields[i].name == "x-sluice-tenant") call->gate_headers.tenant = head.fields[i].value;
  }
  c->calls.Put(id, call);
  uint64_t delay = static_cast<uint64_t>(call->timeout_ms + 0.999);
  call->timer = loop_->AddTimer(delay, [this, call] {
    call->timer = EventLoop::kNoTimer;
    OnCallDeadline(call);
  });
}

void GrpcIngress::OnRequestMessage(Conn* c, int32_t id, const uint8_t* data, size_t len) {
  Call* call = c->calls.Find(id);
  if (call == nullptr) return;
  call->access.bytes_in += len;
  const uint64_t message_us = call->streaming ? SteadyMicros() : 0;
  // A unary call's id is its call's; a stream message's is built in a string this ingress
  // keeps (each is copied into its pending before the next message is read).
  if (call->streaming) {
    stream_rid_.assign(call->request_id);
    stream_rid_ += ':';
    stream_rid_ += std::to_string(++call->seq);
  }
  const std::string& rid = call->streaming ? stream_rid_ : call->request_id;
  CallError e = scanner_.ScanInferRequest(data, len);
  // A stream message that scans gets a request context on the TypeScript ingress, and with it
  // its own span (tracingHook runs before any gate can refuse it); one that does not scan is
  // refused without a span or a trace id (gw.refused), so the same here.
  MessageTrace trace;
  if (call->streaming && e.ok()) StartMessageSpan(call, &trace);
  std::shared_ptr<const PolicyTable> table = policy_->Current();
  const std::vector<uint32_t>* peers = nullptr;
  GateResult gate;
  std::string model, version, req_id;
  if (e.ok()) {
    model = std::string(KServeScanner::View(data, scanner_.head().model_name));
    version = std::string(KServeScanner::View(data, scanner_.head().model_version));
    req_id = std::string(KServeScanner::View(data, scanner_.head().id));
    if (table == nullptr) {
      e = CallError::Of(GrpcStatus::kUnavailable, "SLUICE_ERR_PEER_UNAVAILABLE", "no policy tables yet");
    } else {
      SyncTokens(*table);
      uint64_t wall = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
      gate = PolicyGates::Check(*table, tokens_, limiter_, call->gate_headers, model, static_cast<double>(len), static_cast<double>(wall),
                                static_cast<double>(loop_->now_ms()));
      if (gate.outcome != GateOutcome::kAllow) {
        // kAskControlPlane here: the table changed under a call Route put on the fast path.
        e = gate.error.ok() ? CallError::Of(GrpcStatus::kUnavailable, "SLUICE_ERR_AUTH_UNAVAILABLE", "credentials cannot be checked on this path")
                            : gate.error;
        counters_.refused++;
      } else {
        peers = table->PeersFor(model);
        if (peers == nullptr || peers->empty()) {
          e = CallError::Of(GrpcStatus::kNotFound, err::kModelNotFound, "no route for model '" + model + "'");
        } else {
          // Admission (load shedding) on the time left before the call's deadline.
          const uint64_t now = loop_->now_ms();
          const double remaining = call->deadline_at > now ? static_cast<double>(call->deadline_at - now) : 0;
          Admission a = upstreams_.Admit(remaining, static_cast<double>(now));
          if (!a.admitted()) {
            backend_->OnShed(a.cause);
            e = CallError::Of(GrpcStatus::kResourceExhausted, "SLUICE_ERR_OVERLOADED", std::move(a.message));
          }
        }
      }
    }
  }
  if (!e.ok() && model.empty()) {
    // The request's own model and id (when readable) go into a stream's in-band error.
    ScannedHead h;
    if (KServeScanner::ScanHead(data, len, &h).ok()) {
      model = std::string(KServeScanner::View(data, h.model_name));
      req_id = std::string(KServeScanner::View(data, h.id));
    }
  }
  if (call->model.empty()) call->model = model;
  if (!e.ok() && gate.outcome == GateOutcome::kRefuse) {
    // A gate refusal is a security event; an audited one is answered once its entry is durable.
    if (gate.audit) {
      Pending* p = NewPending();
      p->call = call;
      p->request_id = rid;
      p->model = model;
      p->req_id_field = req_id;
      p->held_error = e;
      p->message_us = message_us;
      p->access.bytes_in = len;  // refused: no tenant, as the gates hook never set one
      if (call->streaming) p->trace = trace;
      call->pendings.push_back(p);
      if (ReportGate(call, gate, rid, model, len, p)) return;
      FailPending(p, GrpcStatus::kUnavailable, "SLUICE_ERR_AUDIT_UNAVAILABLE", "the audit log cannot record this request");
      return;
    }
    (void)ReportGate(call, gate, rid, model, len, nullptr);
  }
  if (!e.ok()) {
    if (!call->streaming) {
      FinishCall(call, e.status, e.message, e.code);
      return;
    }
    // A stream answers a bad request in-band and goes on (as the TypeScript ingress does).
    scratch_.clear();
    LenField(&scratch_, 1, e.message + " (request_id " + rid + ")");
    std::vector<uint8_t> inner;
    LenField(&inner, 1, model);
    LenField(&inner, 3, req_id);
    LenField(&scratch_, 2, std::string_view(reinterpret_cast<const char*>(inner.data()), inner.size()));
    c->session->SendMessage(id, scratch_.data(), scratch_.size());
    // Its own request: the gates set the tenant when they let it through (refused after them:
    // no route, shed, no tables), as securityIngressHook sets ctx.tenant.
    CallAccess access;
    access.bytes_in = len;
    access.tenant = gate.outcome == GateOutcome::kAllow ? gate.tenant_id : 0;
    EndMessage(rid, model, e.status, e.code, e.message, message_us, access, &trace);
    return;
  }
  call->tenant = gate.tenant_id;
  call->access.tenant = gate.tenant_id;
  Pending* p = NewPending();
  p->call = call;
  p->request_id = rid;
  p->model = std::move(model);
  p->version = std::move(version);
  p->req_id_field = std::move(req_id);
  p->payload.assign(data, data + len);
  p->admitted_us = SteadyMicros();
  p->arrived_us = rx_arrival_us_ != 0 && rx_arrival_us_ <= p->admitted_us ? rx_arrival_us_ : p->admitted_us;
  p->message_us = message_us;
  p->admitted = true;
  p->peers = *peers;
  p->access.tenant = gate.tenant_id;
  p->access.bytes_in = len;
  if (call->streaming) {
    p->trace = trace;
  } else if (call->carry_trace) {
    p->trace.carry = true;
    std::memcpy(p->trace.ctx, call->carry, sizeof call->carry);
  }
  call->pendings.push_back(p);
  if (call->streaming && call->pendings.size() >= kMaxStreamInflight) c->session->PauseInput(id);
  if (gate.audit && !ReportGate(call, gate, rid, p->model, len, p)) {
    FailPending(p, GrpcStatus::kUnavailable, "SLUICE_ERR_AUDIT_UNAVAILABLE", "the audit log cannot record this request; it was not answered");
    return;
  }
  if (!call->streaming) backend_->OnInferAdmitted(gate.tenant_id, p->model, rid, data, len, scanner_);
  Send(p);
}

bool GrpcIngress::ReportGate(Call* call, const GateResult& gate, const std::string& rid, const std::string& model, size_t bytes, Pending* held) {
  GateEventInfo ev;
  ev.allowed = gate.outcome == GateOutcome::kAllow;
  ev.throttled = gate.throttled;
  ev.streaming = call->streaming;
  ev.credential = gate.credential;
  ev.gate = ev.allowed ? std::string_view() : std::string_view(gate.gate);
  // gates.ts names an identity refusal without a known key "unauthenticated".
  bool nobody = !ev.allowed && ev.gate == "identity" && gate.principal.actor == "anonymous";
  ev.actor = !gate.actor_owned.empty() ? std::string_view(gate.actor_owned) : nobody ? std::string_view("unauthenticated") : gate.principal.actor;
  ev.tenant = gate.tenant_name;
  ev.request_id = rid;
  ev.model = model;
  ev.status = gate.error.status;
  ev.code = gate.error.code;
  ev.message = gate.error.message;
  ev.bytes = bytes;
  if (held != nullptr) {
    ev.ticket = next_ticket_++;
    held->audit_ticket = ev.ticket;
    audit_held_[ev.ticket] = held;
  }
  if (backend_->OnGateEvent(ev)) return true;
  if (held != nullptr) Unhold(held);
  return false;
}

void GrpcIngress::SyncTokens(const PolicyTable& table) {
  if (table.generation() == tokens_generation_) return;
  tokens_.Clear();
  tokens_generation_ = table.generation();
}

void GrpcIngress::Unhold(Pending* p) {
  if (p->audit_ticket == 0) return;
  audit_held_.erase(p->audit_ticket);
  p->audit_ticket = 0;
}

void GrpcIngress::ReleaseAudit(uint64_t ticket, bool durable) {
  auto it = audit_held_.find(ticket);
  if (it == audit_held_.end()) return;  // the call ended meanwhile (deadline, cancel, upstream error)
  Pending* p = it->second;
  Unhold(p);
  if (!durable) {
    // As ingress-gate-hook.ts: an audited decision that cannot be recorded is not answered.
    FailPending(p, GrpcStatus::kUnavailable, "SLUICE_ERR_AUDIT_UNAVAILABLE",
                p->held_error.ok() ? "the audit log cannot record this request; it was not answered" : "the audit log cannot record this request");
    return;
  }
  if (!p->held_error.ok()) {
    CallError e = p->held_error;
    FailPending(p, e.status, e.code, e.message);
    return;
  }
  if (p->reply_held) {
    std::vector<uint8_t> reply = std::move(p->held_reply);
    p->reply_held = false;
    SucceedPending(p, reply.data(), reply.size());
  }
}

void GrpcIngress::Send(Pending* p) {
  Call* call = p->call;
  uint64_t now = loop_->now_ms();
  if (now >= call->deadline_at) {
    FailPending(p, GrpcStatus::kDeadlineExceeded, err::kDeadlineExceeded, "the deadline passed before the request could be sent");
    return;
  }
  // Power of two choices over the route's peers whose link is up (upstream_policy.h).
  InferenceLink* link = nullptr;
  uint32_t peer = 0;
  if (upstreams_.Pick(p->peers, p->tried, [this](uint32_t id) { return backend_->LinkForPeer(id) != nullptr; }, static_cast<double>(now), &peer)) {
    link = backend_->LinkForPeer(peer);
  }
  if (link == nullptr) {
    FailPending(p, GrpcStatus::kUnavailable, "SLUICE_ERR_PEER_UNAVAILABLE", "no live link to egress peer of model '" + p->model + "' is up");
    return;
  }
  uint32_t remaining = static_cast<uint32_t>(call->deadline_at - now);
  uint8_t head[13 + 128 + 2048 + 26];
  size_t rid = p->request_id.size() > 128 ? 128 : p->request_id.size();
  size_t ml = p->model.size() > 1024 ? 1024 : p->model.size();
  size_t vl = p->version.size() > 1024 ? 1024 : p->version.size();
  const MessageTrace& trace = p->trace;
  head[0] = trace.carry ? 2 : kEnvelopeVersion;
  head[1] = kMethodModelInfer;
  head[2] = 0;
  head[3] = trace.carry ? 1 : 0;  // CallFlag.TRACE_CONTEXT (envelope v2)
  head[4] = static_cast<uint8_t>(remaining >> 24);
  head[5] = static_cast<uint8_t>(remaining >> 16);
  head[6] = static_cast<uint8_t>(remaining >> 8);
  head[7] = static_cast<uint8_t>(remaining);
  head[8] = static_cast<uint8_t>(rid);
  head[9] = static_cast<uint8_t>(ml >> 8);
  head[10] = static_cast<uint8_t>(ml);
  head[11] = static_cast<uint8_t>(vl >> 8);
  head[12] = static_cast<uint8_t>(vl);
  std::memcpy(head + 13, p->request_id.data(), rid);
  std::memcpy(head + 13 + rid, p->model.data(), ml);
  std::memcpy(head + 13 + rid + ml, p->version.data(), vl);
  size_t head_len = 13 + rid + ml + vl;
  if (trace.carry) {
    std::memcpy(head + head_len, trace.ctx, sizeof trace.ctx);
    head_len += sizeof trace.ctx;
  }
  BytePart parts[2] = {{head, head_len}, {p->payload.data(), p->payload.size()}};
  uint32_t stream = next_stream_++;
  // Ids with bit 31 set are the front calls' (front_calls.h) on the same links.
  if (next_stream_ == 0x80000000u) next_stream_ = 1;
  OutboundMessage m;
  m.cls = kClassInference;
  m.kind = kKindCall;
  m.stream_id = stream;
  m.tenant = call->tenant;
  m.parts = parts;
  m.part_count = 2;
  bool below = true;
  p->peer = peer;
  p->leased = true;
  p->sent_us = SteadyMicros();
  Status st = link->Send(m, &below);
  p->attempts++;
  if (!st.ok()) {
    EndAttempt(p, false, true);
    if (RetryElsewhere(p)) return;
    FailPending(p, GrpcStatus::kUnavailable, "SLUICE_ERR_PEER_UNAVAILABLE", "link to egress peer failed: " + st.message);
    return;
  }
  p->link = link->id();
  p->link_stream = stream;
  out_.Put(Key(p->link, stream), p);
  const uint64_t sent = SteadyMicros();
  for (CallAccess* a : {&call->access, &p->access}) {
    if (a->first_sent_us == 0) a->first_sent_us = sent;
    a->sent_us = sent;
    a->replied_us = 0;
    a->peer = peer;
    a->attempts++;
  }
}

bool GrpcIngress::OnLinkMessage(InferenceLink* link, const InboundMessage& msg) {
  if (msg.cls != kClassInference || msg.kind != kKindReply) return false;
  auto it = out_.find(Key(link->id(), msg.stream_id));
  if (it == out_.end()) return true;  // a late reply to a call that timed out or was cancelled
  Pending* p = it->second;
  out_.erase(it);
  p->link = 0;
  const uint64_t replied = SteadyMicros();
  p->access.replied_us = replied;
  if (p->call != nullptr) p->call->access.replied_us = replied;
  const uint8_t* b = msg.body;
  size_t n = msg.size;
  if (n < 8 || (b[0] != 1 && b[0] != 2) || b[1] > 16) {
    FailPending(p, GrpcStatus::kInternal, err::kInternal, "bad inference envelope: malformed reply");
    return true;
  }
  uint8_t status = b[1];
  size_t rid = b[2], code = b[3], ml = (static_cast<size_t>(b[4]) << 8) | b[5];
  size_t end = 8 + rid + code + ml;
  if (end > n || rid == 0) {
    FailPending(p, GrpcStatus::kInternal, err::kInternal, "bad inference envelope: header runs past the message");
    return true;
  }
  if (status == 0) {
    // Answered: its round trip since the request reached this host is the inference latency
    // the bulk governor paces training by (the TypeScript ingress records its own).
    EndAttempt(p, true, false);
    const uint64_t arrived_us = p->arrived_us;
    SucceedPending(p, b + end, n - end);
    backend_->OnCallAnswered(SteadyMicros() - arrived_us);
  } else {
    std::string message(reinterpret_cast<const char*>(b + 8 + rid + code), ml);
    std::string reply_code(reinterpret_cast<const char*>(b + 8 + rid), code);
    // As segment-forwarder.ts classify(): these count against the peer; a model server the
    // egress could not reach is a failure before the model, retried on another peer.
    const bool fault = reply_code == "SLUICE_ERR_PEER_UNAVAILABLE" || reply_code == "SLUICE_ERR_UPSTREAM_UNAVAILABLE" ||
                       status == static_cast<uint8_t>(GrpcStatus::kDeadlineExceeded) || reply_code == err::kInternal;
    EndAttempt(p, !fault, fault);
    if (reply_code == "SLUICE_ERR_UPSTREAM_UNAVAILABLE") {
      if (RetryElsewhere(p)) return true;
    } else {
      backend_->OnRetry(false, p->peer, p->request_id);
    }
    if (status == static_cast<uint8_t>(GrpcStatus::kDeadlineExceeded) && p->call != nullptr) {
      // The egress ran out of the budget it was sent (what was left of it); the caller is told
      // its own deadline, as the ingress's timer would have said (the two race).
      char msg[200];
      std::snprintf(msg, sizeof msg, "no answer within the deadline of %.0f ms (%s)", std::ceil(p->call->timeout_ms), message.substr(0, 120).c_str());
      message = msg;
    }
    FailPending(p, static_cast<GrpcStatus>(status), reply_code.empty() ? "SLUICE_ERR_UPSTREAM_ERROR" : reply_code.c_str(), message);
  }
  return true;
}

void GrpcIngress::OnLinkClosed(InferenceLink* link) {
  std::vector<Pending*> hit;
  for (auto it = out_.begin(); it != out_.end();) {
    if ((it->first >> 32) == link->id()) {
      hit.push_back(it->second);
      it->second->link = 0;
      it = out_.erase(it);
    } else {
      ++it;
    }
  }
  for (Pending* p : hit) {
    // It never reached a model through this link's egress answer: retry on another peer.
    EndAttempt(p, false, true);
    if (!RetryElsewhere(p)) {
      FailPending(p, GrpcStatus::kUnavailable, "SLUICE_ERR_PEER_UNAVAILABLE",
                  "link to egress peer " + link->remote() + " closed before the reply");
    }
  }
}

void GrpcIngress::SucceedPending(Pending* p, const uint8_t* payload, size_t len) {
  if (p->audit_ticket != 0) {
    // The model answered before the audit entry is durable: the answer waits (gates.ts holds it too).
    p->held_reply.assign(payload, payload + len);
    p->reply_held = true;
    return;
  }
  Call* call = p->call;
  Conn* c = call->conn;
  call->access.bytes_out += len;
  p->access.bytes_out = len;
  if (!call->streaming) {
    c->session->SendMessage(call->stream, payload, len);
    Settle(p);
    FinishCall(call, GrpcStatus::kOk, "");
    return;
  }
  scratch_.clear();
  Varint(&scratch_, (2 << 3) | 2);
  Varint(&scratch_, len);
  scratch_.insert(scratch_.end(), payload, payload + len);
  c->session->SendMessage(call->stream, scratch_.data(), scratch_.size());
  static const std::string kNone;
  EndMessage(p->request_id, p->model, GrpcStatus::kOk, {}, kNone, p->message_us, p->access, &p->trace);
  Settle(p);
  Flush(c);
}

void GrpcIngress::FailPending(Pending* p, GrpcStatus status, const char* code, const std::string& message) {
  Call* call = p->call;
  Conn* c = call->conn;
  if (!call->streaming) {
    Settle(p);
    FinishCall(call, status, message, code);
    return;
  }
  scratch_.clear();
  LenField(&scratch_, 1, message + " (request_id " + p->request_id + ")");
  std::vector<uint8_t> inner;
  LenField(&inner, 1, p->model);
  LenField(&inner, 3, p->req_id_field);
  LenField(&scratch_, 2, std::string_view(reinterpret_cast<const char*>(inner.data()), inner.size()));
  c->session->SendMessage(call->stream, scratch_.data(), scratch_.size());
  EndMessage(p->request_id, p->model, status, code, message, p->message_us, p->access, &p->trace);
  Settle(p);
  Flush(c);
}

void GrpcIngress::EndAttempt(Pending* p, bool ok, bool fault) {
  if (!p->leased) return;
  p->leased = false;
  const double rtt = static_cast<double>(SteadyMicros() - p->sent_us) / 1000.0;
  // An outcome that says nothing about the peer (the caller cancelled) gives no latency sample.
  if (upstreams_.Done(p->peer, ok, fault, ok || fault ? rtt : -1, static_cast<double>(loop_->now_ms()))) {
    backend_->OnPeerEjected(p->peer, "consecutive failures");
  }
  p->tried.push_back(p->peer);
}

bool GrpcIngress::RetryElsewhere(Pending* p) {
  const uint64_t now = loop_->now_ms();
  const double remaining = p->call->deadline_at > now ? static_cast<double>(p->call->deadline_at - now) : 0;
  const bool ok = upstreams_.MayRetry(true, p->attempts, remaining, static_cast<double>(now));
  backend_->OnRetry(ok, p->tried.empty() ? p->peer : p->tried.back(), p->request_id);
  if (!ok) return false;
  counters_.retries++;
  Send(p);
  return true;
}

void GrpcIngress::Forget(Pending* p) {
  EndAttempt(p, true, false);  // still out (cancelled, deadline): no sample, no fault
  if (p->admitted) upstreams_.Release(static_cast<double>(SteadyMicros() - p->admitted_us) / 1000.0);
  RecyclePending(p);
}


namespace {
// Under AddressSanitizer nothing is kept: a pending used after its call ended must stay a
// use-after-free ASan reports, not a silent read of the next call's state.
#ifdef SLUICE_ASAN
constexpr size_t kMaxSparePendings = 0;
constexpr size_t kMaxSpareCalls = 0;
#else
constexpr size_t kMaxSparePendings = 256;
constexpr size_t kMaxSpareCalls = 256;
#endif
// What spare pendings may keep of request payloads (one 1 MiB call in flight keeps 1 MiB).
constexpr size_t kMaxSparePayloadBytes = 32u << 20;
}  // namespace

GrpcIngress::Pending* GrpcIngress::NewPending() {
  if (spare_pendings_.empty()) return new Pending();
  Pending* p = spare_pendings_.back();
  spare_pendings_.pop_back();
  spare_payload_bytes_ -= p->payload.capacity() + p->held_reply.capacity();
  return p;
}

void GrpcIngress::RecyclePending(Pending* p) {
  const size_t keeps = p->payload.capacity() + p->held_reply.capacity();
  if (spare_pendings_.size() >= kMaxSparePendings || spare_payload_bytes_ + keeps > kMaxSparePayloadBytes) {
    delete p;
    return;
  }
  p->Reset();
  spare_pendings_.push_back(p);
  spare_payload_bytes_ += keeps;
}

GrpcIngress::Call* GrpcIngress::NewCall() {
  if (spare_calls_.empty()) return new Call();
  Call* call = spare_calls_.back();
  spare_calls_.pop_back();
  return call;
}

void GrpcIngress::RecycleCall(Call* call) {
  if (spare_calls_.size() >= kMaxSpareCalls) {
    delete call;
    return;
  }
  call->Reset();
  spare_calls_.push_back(call);
}

// Removes a pending that is answered; ends a half-closed stream once nothing is left.
void GrpcIngress::Settle(Pending* p) {
  Call* call = p->call;
  if (p->link != 0) out_.erase(Key(p->link, p->link_stream));
  Unhold(p);
  for (size_t i = 0; i < call->pendings.size(); i++) {
    if (call->pendings[i] == p) {
      call->pendings[i] = call->pendings.back();
      call->pendings.pop_back();
      break;
    }
  }
  Forget(p);
  if (call->streaming) {
    if (call->pendings.size() < kMaxStreamInflight) call->conn->session->ResumeInput(call->stream);
    if (call->half_closed && call->pendings.empty()) FinishCall(call, GrpcStatus::kOk, "");
  }
}

void GrpcIngress::OnHalfClose(Conn* c, int32_t id) {
  Call* call = c->calls.Find(id);
  if (call == nullptr) return;
  call->half_closed = true;
  if (call->streaming && call->pendings.empty()) FinishCall(call, GrpcStatus::kOk, "");
}

void GrpcIngress::FinishCall(Call* call, GrpcStatus status, const std::string& message, std::string_view code) {
  Conn* c = call->conn;
  HeaderField rid{"x-request-id", call->request_id};
  c->session->Finish(call->stream, status, message, &rid, 1);
  // A stream is not a request of its own (its messages were, each reported as it ended), as on
  // the TypeScript ingress: no span, no record for the stream.
  if (!call->streaming) {
    if (call->traced) EndSpan(call->span, call->access, status, call->request_id, call->model, message);
    backend_->OnCallFinished(CallOutcome{call->model, call->request_id, status, code, message, SteadyMicros() - call->started_us, false, call->access,
                                         call->started_us, call->carry_trace ? call->carry + 1 : nullptr});
  }
  DropCall(call);
  Flush(c);
}

void GrpcIngress::EndMessage(const std::string& request_id, const std::string& model, GrpcStatus status, std::string_view code, const std::string& message,
                             uint64_t message_us, const CallAccess& access, MessageTrace* trace) {
  if (trace->traced) {
    EndSpan(trace->span, access, status, request_id, model, message);
    trace->traced = false;
  }
  backend_->OnStreamMessageDone(
      CallOutcome{model, request_id, status, code, message, SteadyMicros() - message_us, true, access, message_us, trace->carry ? trace->ctx + 1 : nullptr});
}

void GrpcIngress::StartSpan(Call* call, std::string_view traceparent) {
  const TraceSettings* tracing = backend_->Tracing();
  if (tracing == nullptr || !tracing->enabled()) return;  // no trace context travels (tracing off)
  if (call->streaming) {
    // Each message is a request with its own span (StartMessageSpan); keep what they start from.
    call->stream_tracing = true;
    if (!traceparent.empty()) (void)ParseTraceparent(traceparent, TraceparentRules::kPropagator, &call->parent);
    TraceContext raw;
    if (!traceparent.empty() && ParseTraceparent(traceparent, TraceparentRules::kEnvelope, &raw)) {
      TraceContextBytes(raw.trace_id, raw.span_id, raw.flags, call->raw);
      call->raw_carry = true;
    }
    return;
  }
  // node-telemetry.ts tracingHook: the ingress span continues a valid caller's context, else
  // starts a trace (sampled by ratio); a sampled span's context goes on in the CALL, an
  // unsampled call's caller header goes on as it came (if the envelope can carry it).
  SpanStart s = DecideSpan(traceparent, tracing->ratio(), &trace_ids_);
  if (s.sampled) {
    call->traced = true;
    call->started_ns = MonotonicNs();
    BeginIngressSpan(s, call->started_ns, &call->span, call->carry);
    call->carry_trace = true;
    return;
  }
  TraceContext raw;
  if (!traceparent.empty() && ParseTraceparent(traceparent, TraceparentRules::kEnvelope, &raw)) {
    TraceContextBytes(raw.trace_id, raw.span_id, raw.flags, call->carry);
    call->carry_trace = true;
  }
}

// A stream message's span (node-telemetry.ts tracingHook.onRequest, per message): the stream's
// caller header is each message's parent (ParentBased: its sampled flag decides); without a
// valid one each message starts a trace of its own, sampled by ratio. A sampled message's CALL
// carries its own span's context; an unsampled one's the caller's header as it came.
void GrpcIngress::StartMessageSpan(Call* call, MessageTrace* trace) {
  if (!call->stream_tracing) return;
  const TraceSettings* tracing = backend_->Tracing();
  if (tracing == nullptr || !tracing->enabled()) return;
  SpanStart s = DecideSpanFrom(call->parent, tracing->ratio(), &trace_ids_);
  if (s.sampled) {
    trace->traced = true;
    BeginIngressSpan(s, MonotonicNs(), &trace->span, trace->ctx);
    trace->carry = true;
    return;
  }
  if (call->raw_carry) {
    std::memcpy(trace->ctx, call->raw, sizeof call->raw);
    trace->carry = true;
  }
}

void GrpcIngress::BeginIngressSpan(const SpanStart& s, uint64_t start_ns, SpanRecord* r, uint8_t* ctx) {
  *r = SpanRecord();
  r->side = SpanRecord::kIngress;
  std::memcpy(r->trace_id, s.trace_id, 16);
  trace_ids_.SpanId(r->span_id);
  r->has_parent = s.parent.valid;
  if (r->has_parent) std::memcpy(r->parent_id, s.parent.span_id, 8);
  r->start_ns = start_ns;
  // engine-spans.ts: ModelInfer (a stream message is a ModelInfer request of its own, its
  // ctx.method on the TypeScript ingress)
  r->method = 1;
  TraceContextBytes(r->trace_id, r->span_id, 1, ctx);
}

void GrpcIngress::EndSpan(SpanRecord& r, const CallAccess& access, GrpcStatus status, const std::string& request_id, const std::string& model,
                          const std::string& message) {
  r.end_ns = MonotonicNs();
  r.status = static_cast<uint8_t>(status);
  r.tenant = access.tenant;
  r.peer = access.peer;
  r.attempts = access.attempts;
  r.bytes_in = access.bytes_in;
  r.bytes_out = access.bytes_out;
  // The link span: the segment round trip of the last attempt (steady clock = CLOCK_MONOTONIC).
  if (access.sent_us != 0) {
    r.child_start_ns = access.sent_us * 1000;
    r.child_end_ns = access.replied_us != 0 ? access.replied_us * 1000 : r.end_ns;
  }
  backend_->OnSpan(r, request_id, model, message);
}

void GrpcIngress::AbandonPendings(Call* call, uint8_t reason) {
  for (Pending* p : call->pendings) {
    if (p->link != 0) {
      out_.erase(Key(p->link, p->link_stream));
      // CANCEL to the egress on the same link, so the model server's call is dropped too.
      // In the version of the CALL it cancels (docs/wire.md section 5).
      uint8_t body[4] = {static_cast<uint8_t>(p->trace.carry ? 2 : kEnvelopeVersion), reason, 0, 0};
      BytePart part{body, 4};
      OutboundMessage m;
      m.cls = kClassInference;
      m.kind = kKindCancel;
      m.stream_id = p->link_stream;
      m.tenant = call->tenant;
      m.parts = &part;
      m.part_count = 1;
      for (uint32_t peer : p->peers) {
        InferenceLink* l = backend_->LinkForPeer(peer);
        if (l != nullptr && l->id() == p->link) {
          bool below = true;
          (void)l->Send(m, &below);
          break;
        }
      }
    }
    // A stream's unanswered messages end with the stream, each a request of its own (the
    // TypeScript ingress's message contexts fail with their deadline or the client's cancel).
    if (call->streaming) {
      if (reason == kCancelDeadline) {
        char msg[160];
        std::snprintf(msg, sizeof msg, "no answer from model '%.100s' within the deadline of %.0f ms", p->model.c_str(), std::ceil(call->timeout_ms));
        EndMessage(p->request_id, p->model, GrpcStatus::kDeadlineExceeded, err::kDeadlineExceeded, msg, p->message_us, p->access, &p->trace);
      } else {
        static const std::string kCancelledText = "the client cancelled the request";
        EndMessage(p->request_id, p->model, GrpcStatus::kCancelled, err::kCancelled, kCancelledText, p->message_us, p->access, &p->trace);
      }
    }
    Unhold(p);
    Forget(p);
  }
  call->pendings.clear();
}

void GrpcIngress::DropCall(Call* call) {
  Conn* c = call->conn;
  if (call->timer != EventLoop::kNoTimer) loop_->CancelTimer(call->timer);
  AbandonPendings(call, kCancelCaller);
  c->calls.Erase(call->stream);
  RecycleCall(call);
  backend_->OnCallClosed();
}

void GrpcIngress::OnCallDeadline(Call* call) {
  counters_.deadline_exceeded++;
  if (call->timer != EventLoop::kNoTimer) {
    loop_->CancelTimer(call->timer);
    call->timer = EventLoop::kNoTimer;
  }
  // The peers did not answer in time: counts against them (segment-forwarder.ts classify()).
  for (Pending* p : call->pendings) EndAttempt(p, false, true);
  AbandonPendings(call, kCancelDeadline);
  char msg[160];
  if (call->client_deadline) {
    std::snprintf(msg, sizeof msg, "deadline of %.0f ms exceeded", std::ceil(call->timeout_ms));
  } else {
    std::snprintf(msg, sizeof msg, "no answer within the deadline of %.0f ms", std::ceil(call->timeout_ms));
  }
  FinishCall(call, GrpcStatus::kDeadlineExceeded, msg, err::kDeadlineExceeded);
}

void GrpcIngress::OnCallCancel(Conn* c, int32_t id) {
  Call* call = c->calls.Find(id);
  if (call == nullptr) return;
  counters_.cancelled++;
  if (call->timer != EventLoop::kNoTimer) loop_->CancelTimer(call->timer);
  call->timer = EventLoop::kNoTimer;
  AbandonPendings(call, kCancelCaller);
  c->calls.Erase(id);
  RecycleCall(call);
  backend_->OnCallClosed();
}

// ---- relay to the TypeScript gRPC server (raw HTTP/2 over a unix socket) ----

struct RelayGlue {
  using Conn = GrpcIngress::Conn;
  using RS = GrpcIngress::Conn::RelayStream;
  static RS* Find(Conn* c, int32_t relay_stream) {
    auto it = c->relay_by_client.find(relay_stream);
    return it == c->relay_by_client.end() ? nullptr : it->second.get();
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t, void* u) {
    RS* rs = Find(static_cast<Conn*>(u), f->hd.stream_id);
    if (rs == nullptr) return 0;
    rs->trailer_store.emplace_back(reinterpret_cast<const char*>(n), nl);
    rs->trailer_store.emplace_back(reinterpret_cast<const char*>(v), vl);
    return 0;
  }
  static void Emit(Conn* c, RS* rs, bool end_stream) {
    std::vector<HeaderField> fields;
    for (size_t i = 0; i + 1 < rs->trailer_store.size(); i += 2) fields.push_back({rs->trailer_store[i], rs->trailer_store[i + 1]});
    if (!rs->responded) {
      rs->responded = true;
      c->session->SubmitRawHeaders(rs->server_stream, fields.data(), fields.size(), end_stream);
    } else {
      c->session->FinishRaw(rs->server_stream, fields.data(), fields.size());
    }
    rs->trailer_store.clear();
  }
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    Conn* c = static_cast<Conn*>(u);
    RS* rs = Find(c, f->hd.stream_id);
    if (rs == nullptr) return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
      Emit(c, rs, end && !rs->responded);
    } else if (f->hd.type == NGHTTP2_DATA && end) {
      c->session->FinishRaw(rs->server_stream, nullptr, 0);
    }
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* u) {
    Conn* c = static_cast<Conn*>(u);
    RS* rs = Find(c, id);
    if (rs != nullptr) c->session->SendRawData(rs->server_stream, d, len);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    Conn* c = static_cast<Conn*>(u);
    auto it = c->relay_by_client.find(id);
    if (it == c->relay_by_client.end()) return 0;
    if (code != NGHTTP2_NO_ERROR) c->session->Reset(it->second->server_stream, code);
    c->relay_by_server.erase(it->second->server_stream);
    c->relay_by_client.erase(it);
    return 0;
  }
  static ssize_t Read(nghttp2_session*, int32_t id, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source*, void* u) {
    RS* rs = Find(static_cast<Conn*>(u), id);
    if (rs == nullptr) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    size_t avail = rs->body.size() - rs->off;
    size_t n = avail < len ? avail : len;
    if (n > 0) std::memcpy(buf, rs->body.data() + rs->off, n);  // an empty body has no data() (UBSan)
    rs->off += n;
    if (rs->off == rs->body.size()) {
      rs->body.clear();
      rs->off = 0;
      if (rs->end) *flags |= NGHTTP2_DATA_FLAG_EOF;
      else if (n == 0) {
        rs->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }
};

namespace {
void FlushRelay(GrpcIngress::Conn* c) {
  if (c->relay == nullptr || c->relay_fd < 0) return;
  for (;;) {
    if (c->relay_out_off == c->relay_out.size()) {
      c->relay_out.clear();
      c->relay_out_off = 0;
      const uint8_t* p = nullptr;
      ssize_t n = nghttp2_session_mem_send(c->relay, &p);
      if (n <= 0) return;
      c->relay_out.assign(p, p + n);
    }
    ssize_t w = ::send(c->relay_fd, c->relay_out.data() + c->relay_out_off, c->relay_out.size() - c->relay_out_off, MSG_NOSIGNAL);
    if (w > 0) {
      c->relay_out_off += static_cast<size_t>(w);
      continue;
    }
    return;  // EAGAIN (the writable event resumes it) or an error (the read side sees it)
  }
}
}  // namespace

bool GrpcIngress::StartRelay(Conn* c, int32_t id, const RequestHead& head) {
  if (config_.relay_path.empty()) return false;
  if (c->relay == nullptr) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (fd < 0 || config_.relay_path.size() >= sizeof sa.sun_path) {
      if (fd >= 0) ::close(fd);
      return false;
    }
    std::memcpy(sa.sun_path, config_.relay_path.data(), config_.relay_path.size());
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS && errno != EAGAIN) {
      ::close(fd);
      return false;
    }
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, RelayGlue::OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, RelayGlue::OnFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, RelayGlue::OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, RelayGlue::OnClose);
    int rv = nghttp2_session_client_new(&c->relay, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
      ::close(fd);
      c->relay = nullptr;
      return false;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16u << 20}, {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(c->relay, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(c->relay, NGHTTP2_FLAG_NONE, 0, 64 << 20);
    c->relay_fd = fd;
    loop_->Watch(fd, kReadable | kWritable, [this, c](uint32_t ev) {
      if (c->closed) return;
      if ((ev & (kReadable | kError | kHangup)) != 0) {
        for (;;) {
          ssize_t n = ::read(c->relay_fd, read_buf_.data(), read_buf_.size());
          if (n > 0) {
            if (nghttp2_session_mem_recv(c->relay, read_buf_.data(), static_cast<size_t>(n)) < 0) break;
            continue;
          }
          if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            // The TypeScript server went away: its streams end with UNAVAILABLE-style resets.
            for (auto& [rid, rs] : c->relay_by_client) c->session->Reset(rs->server_stream, NGHTTP2_REFUSED_STREAM);
            c->relay_by_client.clear();
            c->relay_by_server.clear();
            loop_->Unwatch(c->relay_fd);
            ::close(c->relay_fd);
            c->relay_fd = -1;
            nghttp2_session_del(c->relay);
            c->relay = nullptr;
            Flush(c);
            return;
          }
          break;
        }
      }
      FlushRelay(c);
      if (c->relay_fd >= 0) loop_->Modify(c->relay_fd, c->relay_out_off < c->relay_out.size() ? (kReadable | kWritable) : kReadable);
      Flush(c);
    });
  }
  std::vector<nghttp2_nv> nva;
  for (size_t i = 0; i < head.field_count; i++) {
    const HeaderField& f = head.fields[i];
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(f.name.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(f.value.data())),
                   f.name.size(), f.value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  auto rs = std::make_unique<Conn::RelayStream>();
  rs->server_stream = id;
  nghttp2_data_provider prd;
  prd.source.ptr = nullptr;
  prd.read_callback = RelayGlue::Read;
  int32_t relay_stream = nghttp2_submit_request(c->relay, nullptr, nva.data(), nva.size(), &prd, nullptr);
  if (relay_stream < 0) return false;
  c->relay_by_server[id] = relay_stream;
  c->relay_by_client[relay_stream] = std::move(rs);
  FlushRelay(c);
  return true;
}

void GrpcIngress::OnRelayData(Conn* c, int32_t id, const uint8_t* data, size_t len, bool end) {
  auto it = c->relay_by_server.find(id);
  if (it == c->relay_by_server.end() || c->relay == nullptr) return;
  Conn::RelayStream* rs = RelayGlue::Find(c, it->second);
  if (rs == nullptr) return;
  rs->body.insert(rs->body.end(), data, data + len);
  if (end) rs->end = true;
  if (rs->deferred) {
    rs->deferred = false;
    nghttp2_session_resume_data(c->relay, it->second);
  }
  FlushRelay(c);
}

void GrpcIngress::OnRelayCancel(Conn* c, int32_t id) {
  auto it = c->relay_by_server.find(id);
  if (it == c->relay_by_server.end() || c->relay == nullptr) return;
  nghttp2_submit_rst_stream(c->relay, NGHTTP2_FLAG_NONE, it->second, NGHTTP2_CANCEL);
  FlushRelay(c);
}

}  // namespace sluice::engine
