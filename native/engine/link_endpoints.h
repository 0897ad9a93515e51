// Where inference-segment links come from: a listener that accepts and runs bounded handshakes
// (10 s each, at most 64 at once; more are refused with REJECT(busy)), and a dialer that keeps
// one link to a peer up, reconnecting with backoff. Both hand finished handshakes to the Engine.
// Loop thread only.
#ifndef SLUICE_NATIVE_ENGINE_LINK_ENDPOINTS_H_
#define SLUICE_NATIVE_ENGINE_LINK_ENDPOINTS_H_

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/inference_link.h"

namespace sluice {
namespace engine {

class Engine;
class LinkListener;

// A socket address from "host" + port; host is numeric (IPv4/IPv6) or "localhost".
bool ResolveAddress(const std::string& host, uint16_t port, sockaddr_storage* out, socklen_t* len, std::string* error);

// One handshake over a connected non-blocking socket, with its deadline.
class PendingHandshake {
 public:
  // `connecting`: the socket's connect() is still in progress (dialer). `listener` is the one
  // that accepted it (null for a dialer's); `dialer` the dialer's id (0 for accepted).
  PendingHandshake(Engine* engine, int fd, Role role, const LinkOptions& options, std::string remote, LinkListener* listener,
                   uint32_t dialer, bool connecting);
  ~PendingHandshake();
  void Begin();
  int fd() const { return fd_; }
  // On success the socket moves to the link: the handshake no longer closes it.
  int ReleaseFd() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  LinkListener* listener() const { return listener_; }
  uint32_t dialer() const { return dialer_; }

 private:
  void OnEvents(uint32_t events);
  void Done();
  void Failed(const char* code, const std::string& message);
  bool FlushOut();
  Engine* engine_;
  int fd_;
  Role role_;
  LinkOptions options_;
  std::string remote_;
  LinkListener* listener_;
  uint32_t dialer_;
  Handshake handshake_;
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  bool connecting_;
  EventLoop::TimerId timer_ = EventLoop::kNoTimer;
  bool finished_ = false;
};

class LinkListener {
 public:
  LinkListener(Engine* engine, const LinkOptions& options);
  ~LinkListener();
  bool Listen(const std::string& host, uint16_t port, std::string* error);
  uint16_t port() const { return port_; }
  // A handshake ended (either way): frees its slot.
  void HandshakeEnded() { in_progress_ -= 1; }

 private:
  void OnAcceptable();
  Engine* engine_;
  LinkOptions options_;
  int fd_ = -1;
  uint16_t port_ = 0;
  uint32_t in_progress_ = 0;
};

class LinkDialer {
 public:
  LinkDialer(Engine* engine, uint32_t id, std::string host, uint16_t port, const LinkOptions& options);
  ~LinkDialer();
  void Dial();
  // The handshake failed or the link closed: try again after the backoff.
  void Retry(bool had_link);
  uint32_t id() const { return id_; }
  const std::string& target() const { return target_; }

 private:
  Engine* engine_;
  uint32_t id_;
  std::string host_;
  uint16_t port_;
  std::string target_;
  LinkOptions options_;
  uint32_t backoff_ms_ = 100;
  EventLoop::TimerId timer_ = EventLoop::kNoTimer;
  bool stopped_ = false;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_LINK_ENDPOINTS_H_
