// See link_endpoints.h.
#include "engine/link_endpoints.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>

#include "engine/engine.h"

namespace sluice {
namespace engine {

namespace {
std::string Describe(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    port = ntohs(a->sin6_port);
  }
  return std::string(buf) + ":" + std::to_string(port);
}
}  // namespace

bool ResolveAddress(const std::string& host_in, uint16_t port, sockaddr_storage* out, socklen_t* len, std::string* error) {
  std::string host = host_in;
  if (host == "localhost") host = "127.0.0.1";
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::memset(out, 0, sizeof *out);
  auto* v4 = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    *len = sizeof(sockaddr_in);
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  *error = "the engine needs a numeric address (IPv4, IPv6 or localhost), got \"" + host_in + "\"";
  return false;
}

// ---- PendingHandshake ----

PendingHandshake::PendingHandshake(Engine* engine, int fd, Role role, const LinkOptions& options, std::string remote, LinkListener* listener,
                                   uint32_t dialer, bool connecting)
    : engine_(engine),
      fd_(fd),
      role_(role),
      options_(options),
      remote_(std::move(remote)),
      listener_(listener),
      dialer_(dialer),
      handshake_(role, options.segment, options.key),
      connecting_(connecting) {}

PendingHandshake::~PendingHandshake() {
  engine_->loop()->CancelTimer(timer_);
  if (fd_ >= 0) {
    engine_->loop()->Unwatch(fd_);
    close(fd_);
  }
}

void PendingHandshake::Begin() {
  engine_->counters()->Add(kHandshakesInProgress);
  timer_ = engine_->loop()->AddTimer(options_.handshake_timeout_ms, [this] {
    timer_ = EventLoop::kNoTimer;
    Failed(codes::kHandshakeTimeout, remote_ + ": handshake did not complete within " + std::to_string(options_.handshake_timeout_ms) + " ms");
  });
  if (!engine_->loop()->Watch(fd_, kReadable | kPeerHalfClosed | (connecting_ ? static_cast<uint32_t>(kWritable) : 0u),
                              [this](uint32_t ev) { OnEvents(ev); })) {
    Failed(codes::kSystem, std::string("epoll_ctl: ") + strerror(errno));
    return;
  }
  if (!connecting_) {
    handshake_.Start(&out_);
    FlushOut();
  }
}

bool PendingHandshake::FlushOut() {
  while (out_off_ < out_.size()) {
    const ssize_t n = send(fd_, out_.data() + out_off_, out_.size() - out_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_off_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      engine_->loop()->Modify(fd_, kReadable | kPeerHalfClosed | kWritable);
      return true;
    }
    return false;
  }
  out_.clear();
  out_off_ = 0;
  engine_->loop()->Modify(fd_, kReadable | kPeerHalfClosed);
  return true;
}

void PendingHandshake::OnEvents(uint32_t events) {
  if (finished_) return;
  if (connecting_) {
    if ((events & (kWritable | kError | kHangup)) == 0) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      Failed("SLUICE_ERR_TRANSPORT_CONNECT", "cannot connect to " + remote_ + ": " + strerror(err));
      return;
    }
    connecting_ = false;
    handshake_.Start(&out_);
    if (!FlushOut()) {
      Failed(codes::kHandshakeClosed, remote_ + ": connection failed during the handshake");
      return;
    }
    if (handshake_.state() == Handshake::State::kFailed) {
      Failed(handshake_.status().code, remote_ + ": " + handshake_.status().message);
      return;
    }
  }
  if (events & kWritable) {
    if (!FlushOut()) {
      Failed(codes::kHandshakeClosed, remote_ + ": connection failed during the handshake");
      return;
    }
  }
  if (events & (kReadable | kHangup | kError | kPeerHalfClosed)) {
    uint8_t buf[4096];
    for (;;) {
      const ssize_t n = read(fd_, buf, sizeof buf);
      if (n > 0) {
        const Handshake::State s = handshake_.Feed(buf, static_cast<size_t>(n), &out_);
        FlushOut();  // a REJECT goes out before we close
        if (s == Handshake::State::kFailed) {
          const Status& st = handshake_.status();
          const bool from_peer = st.message.rfind("peer rejected", 0) == 0;
          Failed(st.code, from_peer ? remote_ + st.message.substr(4) : remote_ + ": " + st.message);
          return;
        }
        if (s == Handshake::State::kDone) {
          Done();
          return;
        }
        continue;
      }
      if (n == 0) {
        Failed(codes::kHandshakeClosed, "the peer closed the connection during the handshake");
        return;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      Failed(codes::kHandshakeClosed, std::string("connection failed during the handshake: ") + strerror(errno));
      return;
    }
  }
}

void PendingHandshake::Done() {
  finished_ = true;
  engine_->counters()->Sub(kHandshakesInProgress);
  engine_->loop()->CancelTimer(timer_);
  timer_ = EventLoop::kNoTimer;
  engine_->loop()->Unwatch(fd_);
  // Our last record (the acceptor's PROOF, a few bytes into an empty socket buffer) was written
  // by the FlushOut before this; the engine takes the fd for the link.
  LinkSecrets secrets = handshake_.secrets();
  std::vector<uint8_t> early = handshake_.leftover();
  Status ok;
  engine_->HandshakeFinished(this, ok, options_, &secrets, &early, remote_);
}

void PendingHandshake::Failed(const char* code, const std::string& message) {
  if (finished_) return;
  finished_ = true;
  engine_->counters()->Sub(kHandshakesInProgress);
  engine_->counters()->Add(kHandshakesFailed);
  engine_->loop()->CancelTimer(timer_);
  timer_ = EventLoop::kNoTimer;
  FlushOut();
  if (fd_ >= 0) shutdown(fd_, SHUT_WR);  // the REJECT (if any) reaches the peer before our FIN
  engine_->HandshakeFinished(this, Status::Error(code, message), options_, nullptr, nullptr, remote_);
}

// ---- LinkListener ----

LinkListener::LinkListener(Engine* engine, const LinkOptions& options) : engine_(engine), options_(options) {}

LinkListener::~LinkListener() {
  if (fd_ >= 0) {
    engine_->loop()->Unwatch(fd_);
    close(fd_);
  }
}

bool LinkListener::Listen(const std::string& host, uint16_t port, std::string* error) {
  sockaddr_storage ss;
  socklen_t len;
  if (!ResolveAddress(host, port, &ss, &len, error)) return false;
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    *error = std::string("socket: ") + strerror(errno);
    return false;
  }
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd_, 512) != 0) {
    *error = "cannot listen on " + host + ":" + std::to_string(port) + ": " + strerror(errno);
    close(fd_);
    fd_ = -1;
    return false;
  }
  sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  if (!engine_->loop()->Watch(fd_, kReadable, [this](uint32_t) { OnAcceptable(); })) {
    *error = std::string("epoll_ctl: ") + strerror(errno);
    return false;
  }
  return true;
}

void LinkListener::OnAcceptable() {
  for (;;) {
    sockaddr_storage peer;
    socklen_t len = sizeof peer;
    const int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        engine_->events()->Log(LogLevel::kWarn, std::string("inference segment listener: accept failed: ") + strerror(errno));
      }
      return;  // EAGAIN or a transient failure: epoll tells us again
    }
    const std::string remote = Describe(peer);
    if (in_progress_ >= options_.max_handshakes) {
      static const char kBusy[] = "too many handshakes in progress";
      uint8_t rec[8 + 1 + sizeof kBusy - 1] = {'S', 'L', 'H', 'S', 1, 3, 0, static_cast<uint8_t>(1 + sizeof kBusy - 1), 5};
      std::memcpy(rec + 9, kBusy, sizeof kBusy - 1);
      ssize_t n = send(fd, rec, sizeof rec, MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)n;
      close(fd);
      engine_->counters()->Add(kHandshakesFailed);
      EngineEvent e;
      e.type = EventType::kHandshakeFailed;
      e.code = codes::kHandshakeBusy;
      e.text = remote + ": more than " + std::to_string(options_.max_handshakes) + " handshakes in progress";
      engine_->Emit(std::move(e));
      continue;
    }
    in_progress_ += 1;
    engine_->StartHandshake(fd, Role::kAcceptor, options_, remote, this, 0, false);
  }
}

// ---- LinkDialer ----

LinkDialer::LinkDialer(Engine* engine, uint32_t id, std::string host, uint16_t port, const LinkOptions& options)
    : engine_(engine), id_(id), host_(std::move(host)), port_(port), options_(options) {
  target_ = host_ + ":" + std::to_string(port_);
}

LinkDialer::~LinkDialer() {
  stopped_ = true;
  engine_->loop()->CancelTimer(timer_);
}

void LinkDialer::Dial() {
  timer_ = EventLoop::kNoTimer;
  if (stopped_) return;
  sockaddr_storage ss;
  socklen_t len;
  std::string error;
  auto fail = [this](const char* code, const std::string& text) {
    EngineEvent e;
    e.type = EventType::kDialFailed;
    e.link = id_;
    e.code = code;
    e.text = text;
    engine_->Emit(std::move(e));
    Retry(false);
  };
  if (!ResolveAddress(host_, port_, &ss, &len, &error)) {
    fail("SLUICE_ERR_TRANSPORT_CONNECT", error);
    return;
  }
  const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(codes::kSystem, std::string("socket: ") + strerror(errno));
    return;
  }
  ApplyDscp(fd, options_.dscp);  // from the first SYN
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  if (rc != 0 && errno != EINPROGRESS) {
    const std::string text = "cannot connect to " + target_ + ": " + strerror(errno);
    close(fd);
    fail("SLUICE_ERR_TRANSPORT_CONNECT", text);
    return;
  }
  engine_->StartHandshake(fd, Role::kInitiator, options_, target_, nullptr, id_, rc != 0);
}

void LinkDialer::Retry(bool had_link) {
  if (stopped_ || timer_ != EventLoop::kNoTimer) return;
  if (had_link) backoff_ms_ = 100;  // it worked a moment ago: come back quickly
  const uint32_t delay = backoff_ms_;
  backoff_ms_ = std::min<uint32_t>(backoff_ms_ * 2, 5000);
  timer_ = engine_->loop()->AddTimer(delay, [this] { Dial(); });
}

}  // namespace engine
}  // namespace sluice
