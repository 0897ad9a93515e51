// See egress.h. Statuses, codes and messages follow src/egress/egress-service.ts,
// http2-grpc-client.ts and upstream-client.ts word for word, so a caller cannot tell which
// egress answered.
#include "engine/egress.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <string_view>

#include "engine/egress_access.h"
#include "engine/link_endpoints.h"

namespace sluice {
namespace engine {

namespace {

// How std::strtol reads a header value: blanks, a sign, digits (capped: a big number stays big
// without overflowing). `whole`: the digits must end the value (strtol with *end == '\0').
// Returns false when there are no digits, or `whole` and something follows them.
bool ReadInt(std::string_view v, bool whole, long* out) {
  size_t i = 0;
  while (i < v.size() && (v[i] == ' ' || (v[i] >= '\t' && v[i] <= '\r'))) i++;
  bool neg = false;
  if (i < v.size() && (v[i] == '+' || v[i] == '-')) neg = v[i++] == '-';
  const size_t digits = i;
  long x = 0;
  for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; i++) {
    if (x < 1000000000L) x = x * 10 + (v[i] - '0');
  }
  if (i == digits || (whole && i != v.size())) return false;
  *out = neg ? -x : x;
  return true;
}

// gRPC status codes.
constexpr uint8_t kOk = 0, kCancelled = 1, kUnknown = 2, kInvalidArgument = 3, kDeadlineExceeded = 4, kNotFound = 5, kPermissionDenied = 7,
                  kResourceExhausted = 8, kInternal = 13, kUnavailable = 14;
constexpr size_t kCallFixed = 13;
constexpr size_t kMaxRequestId = 128;
constexpr size_t kMaxModelName = 1024;
constexpr size_t kMaxErrorMessage = 4096;
constexpr int32_t kStreamWindow = 16 * 1024 * 1024;
constexpr int32_t kConnectionWindow = 64 * 1024 * 1024;

// By CALL method (docs/wire.md section 6): 1-3 in envelope v1 and v2, 4-6 in v2 only.
const char* kMethodPaths[] = {nullptr,
                              "/inference.GRPCInferenceService/ModelInfer",
                              "/inference.GRPCInferenceService/ModelReady",
                              "/inference.GRPCInferenceService/ModelMetadata",
                              "/inference.GRPCInferenceService/ModelConfig",
                              "/inference.GRPCInferenceService/ModelStatistics",
                              "/inference.GRPCInferenceService/RepositoryIndex"};
constexpr size_t kTraceContext = 26;

bool ValidRequestId(const uint8_t* p, size_t n) {
  if (n == 0 || n > kMaxRequestId) return false;
  auto alnum = [](uint8_t c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(p[0])) return false;
  for (size_t i = 1; i < n; i++) {
    const uint8_t c = p[i];
    if (!alnum(c) && std::strchr("._:~+=/@-", c) == nullptr) return false;
  }
  return true;
}

std::string GrpcTimeout(uint64_t ms) {
  if (ms < 1) ms = 1;
  if (ms < 100000000ull) return std::to_string(ms) + "m";
  uint64_t s = (ms + 999) / 1000;
  if (s > 99999999ull) s = 99999999ull;
  return std::to_string(s) + "S";
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::string(s);  // decodeURIComponent throws: the TS client keeps the raw text
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (s[i] == '%') {
      return std::string(s);
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}
}  // namespace

// One upstream call: its request (gRPC-framed) and response buffers are reused call after call.
struct UpstreamCall {
  Egress* egress = nullptr;
  // Envelope version of the CALL (its REPLY answers in the same version) and its W3C traceparent.
  uint8_t envelope_version = 1;
  std::string traceparent;
  UpstreamSession* session = nullptr;
  uint32_t link_id = 0;
  uint32_t link_stream = 0;
  uint32_t tenant = 0;
  uint8_t method = 0;
  std::string request_id;
  std::string model;
  uint64_t deadline_ms = 0;
  int32_t h2_stream = -1;
  ByteBuffer request;
  size_t request_size = 0;
  size_t request_sent = 0;
  ByteBuffer response;
  size_t received = 0;
  bool responded = false;
  int http_status = 0;
  int grpc_status = -1;
  std::string grpc_message;
  bool settled = false;
  EventLoop::TimerId timer = EventLoop::kNoTimer;
  // The CALL arrived / went to the model server (CLOCK_MONOTONIC ns): the upstream duration
  // metric and, for a sampled call (traced), the egress and upstream spans (span).
  uint64_t received_ns = 0;
  uint64_t called_ns = 0;
  bool traced = false;
  SpanRecord span;
  // The session's list of calls with an open HTTP/2 stream (intrusive: no allocation per call).
  UpstreamCall* prev = nullptr;
  UpstreamCall* next = nullptr;
  bool listed = false;
};

// One HTTP/2 connection to a model server (http2-grpc-client.ts): connects on demand,
// reconnects after a failure, multiplexes calls as streams.
class UpstreamSession {
 public:
  UpstreamSession(Egress* egress, std::string address) : egress_(egress), address_(std::move(address)) {}
  ~UpstreamSession() { Disconnect("client closed", false); }
  const std::string& address() const { return address_; }

  void Submit(UpstreamCall* call) {
    call->session = this;
    if (state_ == kConnected) {
      Start(call);
      Flush();
      return;
    }
    pending_.push_back(call);
    if (state_ == kIdle) Connect();
  }

  void Cancel(UpstreamCall* call) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (*it == call) {
        pending_.erase(it);
        return;
      }
    }
    Unlist(call);
    if (session_ != nullptr && call->h2_stream > 0) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call->h2_stream, NGHTTP2_CANCEL);
      nghttp2_session_set_stream_user_data(session_, call->h2_stream, nullptr);
      call->h2_stream = -1;
      if (!in_recv_) Flush();  // inside nghttp2's callbacks the send waits until mem_recv returns
    }
  }

 private:
  enum State { kIdle, kConnecting, kConnected };

  void List(UpstreamCall* c) {
    c->prev = nullptr;
    c->next = active_;
    if (active_ != nullptr) active_->prev = c;
    active_ = c;
    c->listed = true;
  }
  void Unlist(UpstreamCall* c) {
    if (!c->listed) return;
    if (c->prev != nullptr) c->prev->next = c->next;
    else active_ = c->next;
    if (c->next != nullptr) c->next->prev = c->prev;
    c->prev = c->next = nullptr;
    c->listed = false;
  }

  void Connect() {
    Engine* engine = egress_->engine();
    std::string host = address_, port_text;
    const size_t colon = address_.rfind(':');
    if (colon == std::string::npos) {
      FailAll("invalid upstream address " + address_);
      return;
    }
    host = address_.substr(0, colon);
    port_text = address_.substr(colon + 1);
    sockaddr_storage ss;
    socklen_t len;
    std::string error;
    if (!ResolveAddress(host, static_cast<uint16_t>(std::atoi(port_text.c_str())), &ss, &len, &error)) {
      FailAll(error);
      return;
    }
    fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
      FailAll(std::string("socket: ") + strerror(errno));
      return;
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    engine->counters()->Add(kEgressUpstreamConnects);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
      const int err = errno;
      close(fd_);
      fd_ = -1;
      engine->counters()->Add(kEgressUpstreamConnectFailures);
      FailAll(ConnectError(err));
      return;
    }
    state_ = kConnecting;
    engine->loop()->Watch(fd_, kWritable | kReadable, [this](uint32_t ev) { OnEvents(ev); });
    connect_timer_ = engine->loop()->AddTimer(egress_->config().connect_timeout_ms, [this] {
      connect_timer_ = EventLoop::kNoTimer;
      if (state_ == kConnecting) {
        egress_->engine()->counters()->Add(kEgressUpstreamConnectFailures);
        Disconnect("connect timed out after " + std::to_string(egress_->config().connect_timeout_ms) + " ms", true);
      }
    });
  }

  std::string ConnectError(int err) const {
    const char* name = strerrorname_np(err);
    return std::string("connect ") + (name != nullptr ? name : strerror(err)) + " " + address_;
  }

  bool SetUpSession() {
    nghttp2_session_callbacks* cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
    nghttp2_session_callbacks_set_on_header_callback(cbs, &UpstreamSession::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &UpstreamSession::OnData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &UpstreamSession::OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &UpstreamSession::OnStreamClose);
    const int rc = nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) return false;
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}, {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, 2);
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
    return true;
  }

  void OnEvents(uint32_t events) {
    Engine* engine = egress_->engine();
    if (state_ == kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        engine->counters()->Add(kEgressUpstreamConnectFailures);
        Disconnect(ConnectError(err), true);
        return;
      }
      if ((events & (kWritable | kReadable)) == 0) return;
      engine->loop()->CancelTimer(connect_timer_);
      connect_timer_ = EventLoop::kNoTimer;
      if (!SetUpSession()) {
        Disconnect("nghttp2 session setup failed", true);
        return;
      }
      state_ = kConnected;
      engine->counters()->Add(kEgressUpstreamSessionsOpen);
      while (!pending_.empty() && state_ == kConnected) {
        UpstreamCall* c = pending_.front();
        pending_.pop_front();
        Start(c);
      }
      engine->loop()->Modify(fd_, kReadable);
      Flush();
      return;
    }
    if (events & (kReadable | kHangup | kError)) {
      uint8_t buf[64 * 1024];
      for (;;) {
        const ssize_t n = read(fd_, buf, sizeof buf);
        if (n > 0) {
          in_recv_ = true;
          const ssize_t used = nghttp2_session_mem_recv(session_, buf, static_cast<size_t>(n));
          in_recv_ = false;
          if (used < 0) {
            Disconnect(std::string("upstream sent broken HTTP/2: ") + nghttp2_strerror(static_cast<int>(used)), false);
            return;
          }
          if (state_ != kConnected) return;
          if (static_cast<size_t>(n) < sizeof buf) break;  // drained: no read() just to learn EAGAIN
          continue;
        }
        if (n == 0) {
          Disconnect("Connection closed by the upstream", false);
          return;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        Disconnect(std::string("read failed: ") + strerror(errno), false);
        return;
      }
    }
    Flush();
  }

  // Writes what nghttp2 has to send; waits for writability when the socket is full. Frames are
  // gathered into one buffer first (nghttp2 hands them out one at a time), so a call's HEADERS
  // and DATA, or a run of 16 KiB DATA frames, leave in one send: one segment, one wake-up of
  // the model server, not one per frame.
  void Flush() {
    if (state_ != kConnected) return;
    for (;;) {
      if (out_off_ < out_len_) {
        const ssize_t n = send(fd_, out_.data() + out_off_, out_len_ - out_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          out_off_ += static_cast<size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          SetWritable(true);
          return;
        }
        Disconnect(std::string("write failed: ") + strerror(errno), false);
        return;
      }
      out_off_ = out_len_ = 0;
      while (out_len_ < kSendBatchBytes) {
        const uint8_t* data = nullptr;
        const ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
          Disconnect(std::string("HTTP/2 send failed: ") + nghttp2_strerror(static_cast<int>(n)), false);
          return;
        }
        if (n == 0) break;
        out_.Reserve(out_len_ + static_cast<size_t>(n), out_len_);
        std::memcpy(out_.data() + out_len_, data, static_cast<size_t>(n));
        out_len_ += static_cast<size_t>(n);
      }
      if (out_len_ == 0) break;
    }
    SetWritable(false);
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      Disconnect("upstream session ended", false);
    }
  }

  void SetWritable(bool on) {
    if (on == watching_write_ || fd_ < 0) return;
    watching_write_ = on;
    egress_->engine()->loop()->Modify(fd_, kReadable | (on ? static_cast<uint32_t>(kWritable) : 0u));
  }

  void Start(UpstreamCall* call) {
    const uint64_t now = EventLoop::NowMs();
    const std::string timeout = GrpcTimeout(call->deadline_ms > now ? call->deadline_ms - now : 1);
    auto nv = [](const char* name, std::string_view value) {
      return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)), reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                        std::strlen(name), value.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME};
    };
    static const std::string kPost = "POST", kHttp = "http", kGrpc = "application/grpc", kTrailers = "trailers", kAgent = "sluice-egress";
    const std::string_view path = kMethodPaths[call->method];
    const nghttp2_nv headers[] = {nv(":method", kPost),       nv(":scheme", kHttp),     nv(":path", path),
                                  nv(":authority", address_), nv("content-type", kGrpc), nv("te", kTrailers),
                                  nv("grpc-timeout", timeout), nv("user-agent", kAgent), nv("x-request-id", call->request_id),
                                  nv("traceparent", call->traceparent)};
    // The traceparent header only when the CALL carried a trace context (the last entry).
    const size_t header_count = sizeof headers / sizeof headers[0] - (call->traceparent.empty() ? 1 : 0);
    nghttp2_data_provider provider;
    provider.source.ptr = call;
    provider.read_callback = &UpstreamSession::ReadRequest;
    const int32_t id = nghttp2_submit_request(session_, nullptr, headers, header_count, &provider, call);
    if (id < 0) {
      Settle(call, kUnavailable, std::string("cannot start the call: ") + nghttp2_strerror(id));
      return;
    }
    call->h2_stream = id;
    List(call);
  }

  static ssize_t ReadRequest(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* call = static_cast<UpstreamCall*>(source->ptr);
    const size_t n = std::min(length, call->request_size - call->request_sent);
    std::memcpy(buf, call->request.data() + call->request_sent, n);
    call->request_sent += n;
    if (call->request_sent == call->request_size) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static UpstreamCall* CallOf(nghttp2_session* s, int32_t stream) {
    return static_cast<UpstreamCall*>(nghttp2_session_get_stream_user_data(s, stream));
  }

  static int OnHeader(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen,
                      uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    UpstreamCall* call = CallOf(s, frame->hd.stream_id);
    if (call == nullptr) return 0;
    // Views, not strings: every header of every response passes here (most are not read).
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      call->responded = true;
      long st = 0;
      call->http_status = ReadInt(v, false, &st) ? static_cast<int>(st) : 0;  // as std::atoi
    } else if (n == "grpc-status") {
      long st = 0;
      call->grpc_status = ReadInt(v, true, &st) && st >= 0 && st <= 16 ? static_cast<int>(st) : kUnknown;
    } else if (n == "grpc-message") {
      call->grpc_message = PercentDecode(v);
    }
    return 0;
  }

  static int OnFrame(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<UpstreamSession*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    UpstreamCall* call = CallOf(s, frame->hd.stream_id);
    if (call == nullptr || call->settled) return 0;
    if (call->http_status != 0 && call->http_status != 200) {
      const int http = call->http_status;
      self->Settle(call, http == 502 || http == 503 || http == 504 ? kUnavailable : kUnknown, "upstream answered HTTP " + std::to_string(http));
    }
    return 0;
  }

  static int OnData(nghttp2_session* s, uint8_t, int32_t stream, const uint8_t* data, size_t len, void* user) {
    auto* self = static_cast<UpstreamSession*>(user);
    UpstreamCall* call = CallOf(s, stream);
    if (call == nullptr || call->settled) return 0;
    const uint64_t limit = static_cast<uint64_t>(self->egress_->config().max_message_bytes) + 5;
    if (call->received + len > limit) {
      self->Settle(call, kResourceExhausted, "response larger than " + std::to_string(self->egress_->config().max_message_bytes) + " bytes");
      return 0;  // settling released the call, which reset the stream
    }
    call->response.Reserve(call->received + len, call->received);
    std::memcpy(call->response.data() + call->received, data, len);
    call->received += len;
    return 0;
  }

  static int OnStreamClose(nghttp2_session* s, int32_t stream, uint32_t error_code, void* user) {
    auto* self = static_cast<UpstreamSession*>(user);
    UpstreamCall* call = CallOf(s, stream);
    if (call == nullptr) return 0;
    nghttp2_session_set_stream_user_data(s, stream, nullptr);
    call->h2_stream = -1;
    self->Unlist(call);
    if (call->settled) return 0;
    if (call->grpc_status < 0) {
      if (error_code != NGHTTP2_NO_ERROR && call->responded) {
        self->Settle(call, kUnavailable, std::string("stream failed: Stream closed with error code ") + nghttp2_http2_strerror(error_code));
      } else {
        self->Settle(call, kUnavailable, call->responded ? "upstream closed the stream without a status" : "connection to the upstream failed");
      }
      return 0;
    }
    if (call->grpc_status != kOk) {
      self->Settle(call, static_cast<uint8_t>(call->grpc_status), call->grpc_message);
      return 0;
    }
    self->Settle(call, kOk, "");
    return 0;
  }

  void Settle(UpstreamCall* call, uint8_t status, const std::string& details) {
    if (call->settled) return;
    call->settled = true;
    call->grpc_status = status;
    call->grpc_message = details;
    egress_->CallFinished(call);
  }

  // Calls waiting for the connection fail with it, in the words of node:http2 (what the
  // TypeScript egress says), so callers see the same message from either egress.
  void FailAll(const std::string& why) {
    // Pop one at a time: settling a call may release others of the same link (and so remove
    // them from pending_), which a copy of the list would not see.
    while (!pending_.empty()) {
      UpstreamCall* c = pending_.front();
      pending_.pop_front();
      Settle(c, kUnavailable, "The pending stream has been canceled (caused by: " + why + ")");
    }
  }

  void Disconnect(const std::string& why, bool fail_pending) {
    Engine* engine = egress_->engine();
    if (connect_timer_ != EventLoop::kNoTimer) engine->loop()->CancelTimer(connect_timer_);
    connect_timer_ = EventLoop::kNoTimer;
    if (session_ != nullptr) {
      nghttp2_session* s = session_;
      session_ = nullptr;
      nghttp2_session_del(s);
      engine->counters()->Sub(kEgressUpstreamSessionsOpen);
      // Streams still open fail with the session (stream 'error' in the TS client).
      while (active_ != nullptr) {
        UpstreamCall* c = active_;
        Unlist(c);
        c->h2_stream = -1;
        Settle(c, kUnavailable, c->responded ? "stream failed: " + why : why);
      }
    }
    if (fd_ >= 0) {
      engine->loop()->Unwatch(fd_);
      close(fd_);
      fd_ = -1;
    }
    watching_write_ = false;
    out_off_ = out_len_ = 0;
    state_ = kIdle;
    if (fail_pending) FailAll(why);
    else if (!pending_.empty()) Connect();  // calls waiting for a session get a fresh one
  }

  Egress* egress_;
  std::string address_;
  State state_ = kIdle;
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  std::deque<UpstreamCall*> pending_;
  // Frames gathered per send (Flush): large enough for a 1 MiB call in a few sends.
  static constexpr size_t kSendBatchBytes = 256 * 1024;
  ByteBuffer out_;
  size_t out_off_ = 0, out_len_ = 0;
  bool watching_write_ = false;
  bool in_recv_ = false;
  UpstreamCall* active_ = nullptr;
  EventLoop::TimerId connect_timer_ = EventLoop::kNoTimer;
};

// ---- Egress ----

Egress::Egress(Engine* engine, const EgressConfig& config) : engine_(engine) { Configure(config); }

Egress::~Egress() {
  // Take the calls out first: cancelling one may end a session, which settles others.
  std::vector<UpstreamCall*> calls;
  for (auto& [key, call] : inflight_) calls.push_back(call);
  inflight_.clear();
  for (UpstreamCall* call : calls) {
    engine_->loop()->CancelTimer(call->timer);
    call->settled = true;
    if (call->session != nullptr) call->session->Cancel(call);
  }
  for (UpstreamCall* call : calls) delete call;
  sessions_.clear();
  for (UpstreamCall* c : free_calls_) delete c;
}

void Egress::Configure(const EgressConfig& config) {
  config_ = config;
  by_model_.clear();
  wildcard_ = Pool{};
  for (const auto& r : config.routes) {
    if (r.addresses.empty()) continue;
    Pool& pool = r.model == "*" ? wildcard_ : by_model_[r.model];
    for (const auto& a : r.addresses) {
      auto it = sessions_.find(a);
      if (it == sessions_.end()) it = sessions_.emplace(a, std::make_unique<UpstreamSession>(this, a)).first;
      pool.sessions.push_back(it->second.get());
    }
  }
}

UpstreamSession* Egress::Pick(const std::string& model, std::string* error) {
  auto it = by_model_.find(model);
  Pool& pool = it != by_model_.end() ? it->second : wildcard_;
  if (pool.sessions.empty()) {
    *error = "no upstream model server serves model '" + model + "' on this egress";
    return nullptr;
  }
  UpstreamSession* s = pool.sessions[pool.next % pool.sessions.size()];
  pool.next = (pool.next + 1) % 0x40000000;
  return s;
}

void Egress::Reply(InferenceLink* link, uint32_t stream, uint32_t tenant, const std::string& request_id, uint8_t status, const char* code,
                   const std::string& message, const BytePart* payload, size_t payload_parts) {
  const size_t code_len = std::strlen(code);
  const size_t msg_len = std::min(message.size(), kMaxErrorMessage);
  reply_header_.resize(8 + request_id.size() + code_len + msg_len);
  uint8_t* h = reply_header_.data();
  h[0] = reply_version_;
  h[1] = status;
  h[2] = static_cast<uint8_t>(request_id.size());
  h[3] = static_cast<uint8_t>(code_len);
  h[4] = static_cast<uint8_t>(msg_len >> 8);
  h[5] = static_cast<uint8_t>(msg_len);
  h[6] = h[7] = 0;
  size_t p = 8;
  std::memcpy(h + p, request_id.data(), request_id.size());
  p += request_id.size();
  std::memcpy(h + p, code, code_len);
  p += code_len;
  std::memcpy(h + p, message.data(), msg_len);
  BytePart parts[2] = {{reply_header_.data(), reply_header_.size()}, {nullptr, 0}};
  size_t count = 1;
  if (payload_parts > 0) parts[count++] = payload[0];
  OutboundMessage m;
  m.cls = kClassInference;
  m.kind = kKindReply;
  m.stream_id = stream;
  m.tenant = tenant;
  m.parts = parts;
  m.part_count = count;
  bool below = true;
  Status st = link->Send(m, &below);
  if (status <= 16) engine_->counters()->Add(static_cast<Counter>(kEgressStatusBase + status));
  if (st.ok() || payload_parts == 0) return;
  // The answer cannot cross (too big for the segment): tell the caller instead of going silent.
  const std::string why = "the response of " + std::to_string(payload[0].size) + " bytes cannot cross the inference segment: " + st.message;
  engine_->events()->Log(LogLevel::kWarn, "reply not sent", "", request_id, "", why);
  Reply(link, stream, tenant, request_id, kResourceExhausted, "SLUICE_ERR_TOO_LARGE", why, nullptr, 0);
}

bool Egress::OnMessage(InferenceLink* link, const InboundMessage& m) {
  if (m.cls != kClassInference) return false;
  const uint64_t key = static_cast<uint64_t>(link->id()) << 32 | m.stream_id;
  if (m.kind == kKindCancel) {
    // A CANCEL speaks its CALL's version (1 or 2); a malformed one is ignored, as in TS.
    if (m.size != 4 || (m.body[0] != 1 && m.body[0] != 2) || m.body[1] > 1) return true;
    auto it = inflight_.find(key);
    if (it != inflight_.end()) {
      UpstreamCall* call = it->second;
      inflight_.erase(it);
      call->settled = true;
      engine_->counters()->Add(kEgressCallsCancelled);
      Observe(call, kCancelled);
      Release(call);
    }
    return true;
  }
  if (m.kind != kKindCall) return false;
  const uint64_t received_ns = MonotonicNs();
  const uint8_t* b = m.body;
  auto bad = [&](const std::string& why) {
    engine_->counters()->Add(kEgressBadEnvelopes);
    engine_->events()->Log(LogLevel::kWarn, "dropping malformed inference call", "", "", "",
                           "bad inference envelope: " + why + " (link " + link->link_id_hex() + ", stream " + std::to_string(m.stream_id) + ")");
    Reply(link, m.stream_id, m.tenant, "invalid", kInternal, "SLUICE_ERR_INTERNAL", "bad inference envelope: " + why, nullptr, 0);
    return true;
  };
  // A REPLY answers in its CALL's version; a CALL that cannot be read gets 1 unless it claimed 2.
  reply_version_ = m.size > 0 && b[0] == 2 ? 2 : 1;
  if (m.size < kCallFixed) return bad("call shorter than its fixed header");
  const uint8_t envelope_version = b[0];
  if (envelope_version != 1 && envelope_version != 2) return bad("unsupported version " + std::to_string(envelope_version));
  const uint8_t method = b[1];
  if (method < 1 || method > (envelope_version == 2 ? 6 : 3)) return bad("unknown method " + std::to_string(method));
  const uint16_t flags = static_cast<uint16_t>(b[2] << 8 | b[3]);
  if (envelope_version == 1 ? flags != 0 : (flags & ~1u) != 0) return bad("unknown flags");
  const uint32_t timeout_ms = static_cast<uint32_t>(b[4]) << 24 | static_cast<uint32_t>(b[5]) << 16 | static_cast<uint32_t>(b[6]) << 8 | b[7];
  if (timeout_ms == 0) return bad("timeout of 0");
  const size_t rid_len = b[8];
  const size_t model_len = static_cast<size_t>(b[9]) << 8 | b[10];
  const size_t version_len = static_cast<size_t>(b[11]) << 8 | b[12];
  if (rid_len == 0 || rid_len > kMaxRequestId) return bad("request id length out of range");
  if (model_len > kMaxModelName || version_len > kMaxModelName) return bad("model name too long");
  size_t end = kCallFixed + rid_len + model_len + version_len;
  if (end > m.size) return bad("header runs past the message");
  // The call's strings are built in the egress's own and then swapped into the call, which
  // hands its old ones back: their buffers go round, no allocation per call once warm.
  std::string& traceparent = scratch_traceparent_;
  traceparent.clear();
  if ((flags & 1u) != 0) {
    if (end + kTraceContext > m.size) return bad("trace context runs past the message");
    const uint8_t* t = b + end;
    if (t[0] != 0) return bad("unsupported trace context version " + std::to_string(t[0]));
    bool trace_zero = true, span_zero = true;
    for (size_t i = 1; i < 17; i++) trace_zero = trace_zero && t[i] == 0;
    for (size_t i = 17; i < 25; i++) span_zero = span_zero && t[i] == 0;
    if (trace_zero || span_zero) return bad("trace context with an all-zero id");
    static const char kHex[] = "0123456789abcdef";
    traceparent = "00-";
    for (size_t i = 1; i < 26; i++) {
      if (i == 17 || i == 25) traceparent.push_back('-');
      traceparent.push_back(kHex[t[i] >> 4]);
      traceparent.push_back(kHex[t[i] & 15]);
    }
    end += kTraceContext;
  }
  if (!ValidRequestId(b + kCallFixed, rid_len)) return bad("invalid request id");
  std::string& request_id = scratch_request_id_;
  request_id.assign(reinterpret_cast<const char*>(b + kCallFixed), rid_len);
  std::string& model = scratch_model_;
  model.assign(reinterpret_cast<const char*>(b + kCallFixed + rid_len), model_len);
  if (shutting_down_) {
    Reply(link, m.stream_id, m.tenant, request_id, kUnavailable, "SLUICE_ERR_UPSTREAM_UNAVAILABLE", "egress is shutting down", nullptr, 0);
    return true;
  }
  if (!config_.tenants.empty()) {
    const TenantPolicy* t = nullptr;
    for (const auto& tp : config_.tenants) {
      if (tp.id == m.tenant) t = &tp;
    }
    std::string why;
    if (t == nullptr) {
      why = m.tenant == 0 ? "calls without a tenant are not served here" : "tenant id " + std::to_string(m.tenant) + " is not configured here";
    } else if (!t->all_models) {
      bool found = false;
      for (const auto& mm : t->models) found = found || mm == model;
      if (!found) why = "tenant \"" + t->name + "\" may not use model \"" + model.substr(0, 128) + "\"";
    }
    if (!why.empty()) {
      EngineEvent e;
      e.type = EventType::kPolicyDenied;
      e.link = link->id();
      e.b = t != nullptr ? 1 : 0;
      e.c = m.tenant;
      e.code = request_id;
      e.text = why;
      e.extra = t != nullptr ? t->name : "";
      e.body.assign(model.begin(), model.end());
      engine_->Emit(std::move(e));
      Reply(link, m.stream_id, m.tenant, request_id, kPermissionDenied, "SLUICE_ERR_TENANT_DENIED", why, nullptr, 0);
      return true;
    }
  }
  if (inflight_.count(key) != 0) {
    Reply(link, m.stream_id, m.tenant, request_id, kInternal, "SLUICE_ERR_INTERNAL", "stream " + std::to_string(m.stream_id) + " is already in use",
          nullptr, 0);
    return true;
  }
  std::string error;
  UpstreamSession* session = Pick(model, &error);
  if (session == nullptr) {
    // egress-service.ts reports a model without a route to its observer too (NOT_FOUND, no time).
    engine_->upstream_tally()->Record(model, kNotFound, 0);
    EgressAccess a;
    a.link = link->id();
    a.tenant = m.tenant;
    a.method = method;
    a.status = kNotFound;
    a.request_id = &request_id;
    a.model = &model;
    a.traceparent = &traceparent;
    a.bytes_in = m.size - end;
    a.received_ns = a.called_ns = received_ns;
    a.done_ns = MonotonicNs();
    EmitEgressAccess(engine_, a);
    Reply(link, m.stream_id, m.tenant, request_id, kNotFound, "SLUICE_ERR_MODEL_NOT_FOUND", error, nullptr, 0);
    return true;
  }
  UpstreamCall* call;
  if (!free_calls_.empty()) {
    call = free_calls_.back();
    free_calls_.pop_back();
  } else {
    call = new UpstreamCall();
  }
  call->egress = this;
  call->session = nullptr;
  call->link_id = link->id();
  call->link_stream = m.stream_id;
  call->tenant = m.tenant;
  call->method = method;
  call->envelope_version = envelope_version;
  call->traceparent.swap(traceparent);
  call->request_id.swap(request_id);
  call->model.swap(model);
  call->deadline_ms = EventLoop::NowMs() + timeout_ms;
  call->h2_stream = -1;
  call->received = 0;
  call->responded = false;
  call->http_status = 0;
  call->grpc_status = -1;
  call->grpc_message.clear();
  call->settled = false;
  call->received_ns = received_ns;
  StartSpan(call);
  // gRPC message prefix (no compression, 4-byte length) and the request, in one reused buffer.
  const size_t payload = m.size - end;
  call->request.Reserve(5 + payload);
  uint8_t* r = call->request.data();
  r[0] = 0;
  r[1] = static_cast<uint8_t>(payload >> 24);
  r[2] = static_cast<uint8_t>(payload >> 16);
  r[3] = static_cast<uint8_t>(payload >> 8);
  r[4] = static_cast<uint8_t>(payload);
  std::memcpy(r + 5, b + end, payload);
  call->request_size = 5 + payload;
  call->request_sent = 0;
  inflight_.Put(key, call);
  engine_->counters()->Add(kEgressCalls);
  engine_->counters()->Add(kEgressCallsInflight);
  call->timer = engine_->loop()->AddTimer(timeout_ms, [this, call] {
    call->timer = EventLoop::kNoTimer;
    if (call->settled) return;
    call->settled = true;
    call->grpc_status = kDeadlineExceeded;
    call->grpc_message = "deadline exceeded";
    CallFinished(call);
  });
  call->called_ns = MonotonicNs();
  if (call->traced) call->span.child_start_ns = call->called_ns;
  session->Submit(call);
  return true;
}

// node-telemetry.ts egressObserver: the `egress` span continues the CALL's trace context (else
// starts a trace, sampled by ratio) and the `upstream` span is its child, whose context goes to
// the model server; an unsampled call sends the model server the CALL's context unchanged.
void Egress::StartSpan(UpstreamCall* call) {
  call->traced = false;
  const TraceSettings* tracing = engine_->tracing();
  if (!tracing->enabled()) return;
  SpanStart s = DecideSpan(call->traceparent, tracing->ratio(), &trace_ids_);
  if (!s.sampled) return;
  call->traced = true;
  SpanRecord& r = call->span;
  r = SpanRecord();
  r.side = SpanRecord::kEgress;
  r.method = call->method;
  r.tenant = call->tenant;
  std::memcpy(r.trace_id, s.trace_id, 16);
  trace_ids_.SpanId(r.span_id);
  trace_ids_.SpanId(r.child_id);
  r.has_parent = s.parent.valid;
  if (r.has_parent) std::memcpy(r.parent_id, s.parent.span_id, 8);
  r.start_ns = call->received_ns;
  FormatTraceparent(r.trace_id, r.child_id, 1, &call->traceparent);
}

// The upstream duration (egress-service.ts's observer: from the model call to its answer) and
// the spans; the status is the call's as the model server, the deadline or a cancel ended it.
void Egress::Observe(UpstreamCall* call, uint8_t status) {
  const uint64_t done_ns = MonotonicNs();
  engine_->upstream_tally()->Record(call->model, status, (done_ns - call->called_ns) / 1000);
  EgressAccess a;
  a.link = call->link_id;
  a.tenant = call->tenant;
  a.method = call->method;
  a.status = status;
  a.request_id = &call->request_id;
  a.model = &call->model;
  if (call->session != nullptr) a.upstream = &call->session->address();
  a.traceparent = &call->traceparent;
  a.bytes_in = call->request_size >= 5 ? call->request_size - 5 : 0;
  a.bytes_out = status == kOk && call->received >= 5 ? call->received - 5 : 0;
  a.received_ns = call->received_ns;
  a.called_ns = call->called_ns;
  a.done_ns = done_ns;
  EmitEgressAccess(engine_, a);
  if (!call->traced) return;
  SpanRecord& r = call->span;
  r.status = status;
  r.end_ns = r.child_end_ns = done_ns;
  r.bytes_in = call->request_size >= 5 ? call->request_size - 5 : 0;
  r.bytes_out = status == kOk && call->received >= 5 ? call->received - 5 : 0;
  (void)engine_->EmitSpan(r, call->request_id, call->model);
  call->traced = false;
}

void Egress::Release(UpstreamCall* call) {
  engine_->loop()->CancelTimer(call->timer);
  call->timer = EventLoop::kNoTimer;
  if (call->session != nullptr) call->session->Cancel(call);
  call->session = nullptr;
  engine_->counters()->Sub(kEgressCallsInflight);
  if (call->response.capacity() > 4 * 1024 * 1024) call->response.Release();
  if (call->request.capacity() > 4 * 1024 * 1024) call->request.Release();
  if (free_calls_.size() < 1024) free_calls_.push_back(call);
  else delete call;
}

void Egress::CallFinished(UpstreamCall* call) {
  const uint64_t key = static_cast<uint64_t>(call->link_id) << 32 | call->link_stream;
  auto it = inflight_.find(key);
  if (it == inflight_.end() || it->second != call) return;  // cancelled meanwhile
  inflight_.erase(it);
  InferenceLink* link = engine_->FindLink(call->link_id);
  const std::string& addr = call->session != nullptr ? call->session->address() : std::string();
  const uint8_t st = static_cast<uint8_t>(call->grpc_status);
  reply_version_ = call->envelope_version;
  // unframe(): one uncompressed message whose length matches its prefix. Checked before the
  // call is observed, so the upstream metric and the access line say INTERNAL, as the caller sees.
  const uint8_t* r = call->response.data();
  const char* bad = nullptr;
  if (st == kOk) {
    if (call->received < 5) bad = "upstream sent no response message";
    else if (r[0] != 0) bad = "upstream sent a compressed message";
    else if ((static_cast<size_t>(r[1]) << 24 | static_cast<size_t>(r[2]) << 16 | static_cast<size_t>(r[3]) << 8 | r[4]) != call->received - 5) {
      bad = "upstream sent a response whose length does not match its frame";
    }
  }
  Observe(call, bad != nullptr ? static_cast<uint8_t>(kInternal) : st);
  if (link != nullptr) {
    if (st == kOk) {
      if (bad == nullptr) {
        const BytePart payload{r + 5, call->received - 5};
        Reply(link, call->link_stream, call->tenant, call->request_id, kOk, "", "", &payload, 1);
      } else {
        Reply(link, call->link_stream, call->tenant, call->request_id, kInternal, "SLUICE_ERR_UPSTREAM_ERROR", "model server " + addr + ": " + bad,
              nullptr, 0);
      }
    } else {
      const std::string details = call->grpc_message.empty() ? "no details" : call->grpc_message;
      const char* code;
      std::string message;
      uint8_t status = st;
      switch (st) {
        case kUnavailable:
          code = "SLUICE_ERR_UPSTREAM_UNAVAILABLE";
          message = "model server " + addr + " is unavailable: " + details;
          break;
        case kDeadlineExceeded:
          code = "SLUICE_ERR_DEADLINE_EXCEEDED";
          message = "model server " + addr + " did not answer before the deadline";
          break;
        case kNotFound:
          code = "SLUICE_ERR_MODEL_NOT_FOUND";
          message = details;
          break;
        case kInvalidArgument:
          code = "SLUICE_ERR_BAD_REQUEST";
          message = details;
          break;
        case kCancelled:
          code = "SLUICE_ERR_CANCELLED";
          message = details;
          break;
        default:
          code = "SLUICE_ERR_UPSTREAM_ERROR";
          message = "model server " + addr + ": " + details;
          break;
      }
      if (st != kNotFound && st != kInvalidArgument) {
        engine_->events()->Log(LogLevel::kInfo, "upstream call failed", code, call->request_id, call->model, message);
      }
      Reply(link, call->link_stream, call->tenant, call->request_id, status, code, message, nullptr, 0);
    }
  }
  Release(call);
}

void Egress::OnLinkClosed(InferenceLink* link) {
  const uint64_t id = link->id();
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    if ((it->first >> 32) == id) {
      UpstreamCall* call = it->second;
      it = inflight_.erase(it);
      call->settled = true;
      engine_->counters()->Add(kEgressCallsCancelled);
      Observe(call, kCancelled);
      Release(call);
    } else {
      ++it;
    }
  }
}

}  // namespace engine
}  // namespace sluice
