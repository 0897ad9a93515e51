// One inference-segment link over a TCP socket on the engine's loop (src/transport/tcp-link.ts,
// link-base.ts): outbound queue with high-water backpressure, fragmenting, sealing into a
// reused output buffer bounded by seal-ahead, reads into a reused buffer, CLOSE with codes.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "engine/inference_link.h"

namespace sluice {
namespace engine {

namespace {
constexpr size_t kReadBufferBytes = 256 * 1024;
constexpr size_t kReadBudgetPerEvent = 4 * 1024 * 1024;
constexpr uint32_t kTeardownGraceMs = 1000;
const char* CloseCodeName(uint16_t code) {
  switch (code) {
    case 0: return "normal";
    case 1: return "going away";
    case 2: return "protocol error";
    case 3: return "security violation";
    case 4: return "too big";
    case 5: return "internal error";
    default: return "closed";
  }
}
bool IsWireCode(const char* code) { return code != nullptr && std::strncmp(code, "SLUICE_ERR_WIRE_", 16) == 0; }
}  // namespace

bool ApplyDscp(int fd, int dscp) {
  if (dscp < 0 || dscp > 63) return false;
  const int tos = dscp << 2;
  bool ok = setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof tos) == 0;
  const int tclass = tos;
  const bool ok6 = setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass) == 0;
  ok = ok || ok6;
  // The class selector (top 3 bits) as the socket priority; 7 needs CAP_NET_ADMIN, so cap at 6.
  int prio = dscp >> 3;
  if (prio > 6) prio = 6;
  return setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof prio) == 0 && ok;
}

TcpInferenceLink::TcpInferenceLink(EventLoop* loop, CounterBlock* counters, LinkHandler* handler, uint32_t id, int fd, Role role,
                                   const LinkOptions& options, const LinkSecrets& secrets, std::string remote)
    : loop_(loop), counters_(counters), handler_(handler), id_(id), fd_(fd), role_(role), options_(options), remote_(std::move(remote)) {
  segment_code_ = options.segment == "training" ? kSegmentTraining : kSegmentInference;
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) {
    link_id_hex_.push_back(kHex[secrets.link_id[i] >> 4]);
    link_id_hex_.push_back(kHex[secrets.link_id[i] & 15]);
  }
  ReceiverLimits limits;
  limits.parser.segment = segment_code_;
  limits.parser.max_message_bytes = options.max_message_bytes;
  limits.max_reassembly_bytes = options.max_reassembly_bytes;
  receiver_ = std::make_unique<LinkReceiver>(
      limits, std::make_unique<TrafficKeys>(secrets.receive, secrets.receive_direction, options.key_limits),
      [this](const InboundMessage& m) {
        counters_->Add(kLinkMessagesReceived);
        if (state_ != kClosed) handler_->OnLinkMessage(this, m);
      },
      [this](uint16_t code, const std::string& reason) { OnPeerClose(code, reason); });
  sealer_ = std::make_unique<FrameSealer>(std::make_unique<TrafficKeys>(secrets.send, secrets.send_direction, options.key_limits), segment_code_);
  in_.Reserve(kReadBufferBytes);
  out_.Reserve(options.seal_ahead_bytes + kHeaderBytes + kMaxFramePayload + kTagBytes);
  slice_.reserve(16);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (options.keepalive_timeout_ms > 0) {
    // A dead peer (or a path that stopped carrying our bytes) fails the link within the
    // timeout: keepalive probes when idle, TCP_USER_TIMEOUT when data goes unacknowledged.
    setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    int idle = static_cast<int>(options.keepalive_timeout_ms / 2000);
    if (idle < 1) idle = 1;
    int intvl = 1;
    int cnt = static_cast<int>(options.keepalive_timeout_ms / 2000);
    if (cnt < 1) cnt = 1;
    unsigned int user_timeout = options.keepalive_timeout_ms;
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
  }
  ApplyDscp(fd_, options.dscp);
}

TcpInferenceLink::~TcpInferenceLink() {
  if (state_ != kClosed) {
    loop_->CancelTimer(close_timer_);
    loop_->CancelTimer(teardown_timer_);
    loop_->CancelTimer(witness_timer_);
    loop_->Unwatch(fd_);
    close(fd_);
  }
}

void TcpInferenceLink::Start(const std::vector<uint8_t>& early) {
  counters_->Add(kLinksOpen);
  counters_->Add(kLinksOpened);
  if (!loop_->Watch(fd_, kReadable | kPeerHalfClosed, [this](uint32_t ev) { OnEvents(ev); })) {
    Fail(Status::Error(codes::kSystem, std::string("epoll_ctl: ") + strerror(errno)));
    return;
  }
  if (!early.empty()) {
    Status st = receiver_->Feed(early.data(), early.size());
    CountReceived();
    if (!st.ok()) Fail(st);
  }
}

void TcpInferenceLink::CountReceived() {
  const uint64_t f = receiver_->frames(), b = receiver_->bytes(), r = receiver_->rekeys();
  if (f != reported_recv_frames_) counters_->Add(kLinkFramesReceived, f - reported_recv_frames_);
  if (b != reported_recv_bytes_) counters_->Add(kLinkBytesReceived, b - reported_recv_bytes_);
  if (r != reported_rekeys_) counters_->Add(kLinkRekeys, r - reported_rekeys_);
  reported_recv_frames_ = f;
  reported_recv_bytes_ = b;
  reported_rekeys_ = r;
}

void TcpInferenceLink::UpdateQueuedGauge() {
  const uint64_t now = state_ == kClosed ? 0 : queued_bytes();
  if (now > reported_queued_) counters_->Add(kLinkQueuedBytes, now - reported_queued_);
  else if (now < reported_queued_) counters_->Sub(kLinkQueuedBytes, reported_queued_ - now);
  reported_queued_ = now;
}

Status TcpInferenceLink::Send(const OutboundMessage& msg, bool* below_high_water) {
  *below_high_water = false;
  if (state_ != kOpen) return Status::Error(codes::kLinkClosed, "link " + link_id_hex_ + " to " + remote_ + " is closed");
  const bool allowed = msg.cls == kClassControl || (segment_code_ == kSegmentInference ? msg.cls == kClassInference : msg.cls == kClassTraining);
  if (!allowed) return Status::Error("SLUICE_ERR_LINK_WRONG_SEGMENT", "traffic class " + std::to_string(msg.cls) + " may not travel on the " + options_.segment + " segment");
  uint64_t total = 0;
  for (size_t i = 0; i < msg.part_count; i++) total += msg.parts[i].size;
  if (total > options_.max_message_bytes) {
    return Status::Error(codes::kTooBig, "message of " + std::to_string(total) + " bytes exceeds the link's maxMessageBytes of " +
                                             std::to_string(options_.max_message_bytes));
  }
  const bool idle = queue_.empty() && !close_queued_;
  if (idle && total <= options_.seal_ahead_bytes && (out_len_ - out_off_) < options_.seal_ahead_bytes) {
    // Nothing ahead of it: seal straight from the caller's bytes (the only copy).
    const uint32_t limit = FrameLimit(msg.cls);
    uint64_t offset = 0;
    do {
      const uint64_t chunk = std::min<uint64_t>(total - offset, limit);
      slice_.clear();
      uint64_t skip = offset, want = chunk;
      for (size_t i = 0; i < msg.part_count && want > 0; i++) {
        const BytePart& p = msg.parts[i];
        if (skip >= p.size) {
          skip -= p.size;
          continue;
        }
        const size_t n = static_cast<size_t>(std::min<uint64_t>(p.size - skip, want));
        slice_.push_back(BytePart{p.data + skip, n});
        want -= n;
        skip = 0;
      }
      const uint8_t flags = (offset == 0 ? kFlagFirst : 0) | (offset + chunk == total ? kFlagLast : 0);
      Status st = SealFrame(kFrameData, msg.cls, flags, msg.stream_id, msg.kind, msg.tenant, static_cast<uint32_t>(total), slice_.data(),
                            slice_.size(), static_cast<size_t>(chunk));
      if (!st.ok()) {
        Fail(st);
        return st;
      }
      offset += chunk;
    } while (offset < total);
    RecordSchedulingDelay(counters_, msg.cls, 0);  // sealed at once: no wait
    counters_->Add(kLinkMessagesSent);
    if (!FlushOut()) return Status::Error(codes::kLinkClosed, "link " + link_id_hex_ + " failed while sending");
  } else {
    queue_.Push(msg, total);
    Pump();
  }
  if (state_ != kOpen) return Status::Error(codes::kLinkClosed, "link " + link_id_hex_ + " failed while sending");
  UpdateQueuedGauge();
  *below_high_water = queued_bytes() < options_.high_water_bytes;
  if (!*below_high_water) need_drain_ = true;
  return Status();
}

Status TcpInferenceLink::SealFrame(uint8_t type, uint8_t cls, uint8_t flags, uint32_t stream, uint16_t kind, uint32_t tenant,
                                   uint32_t message_length, const BytePart* parts, size_t part_count, size_t payload_length) {
  // Compact before growing: the written part of the buffer is free again.
  if (out_off_ == out_len_) out_off_ = out_len_ = 0;
  const size_t need = FrameSealer::kRekeyFrameBytes + FrameSealer::FrameBytes(payload_length);
  if (out_len_ + need > out_.capacity() && out_off_ > 0) {
    std::memmove(out_.data(), out_.data() + out_off_, out_len_ - out_off_);
    out_len_ -= out_off_;
    out_off_ = 0;
  }
  out_.Reserve(out_len_ + need, out_len_);
  if (sealer_->RekeyDue(payload_length)) {
    Status st = sealer_->SealRekey(out_.data() + out_len_);
    if (!st.ok()) return st;
    out_len_ += FrameSealer::kRekeyFrameBytes;
    counters_->Add(kLinkFramesSent);
    counters_->Add(kLinkBytesSent, FrameSealer::kRekeyFrameBytes);
    counters_->Add(kLinkRekeys);
  }
  Status st = sealer_->Seal(type, cls, flags, stream, kind, tenant, message_length, parts, part_count, payload_length, out_.data() + out_len_);
  if (!st.ok()) return st;
  out_len_ += FrameSealer::FrameBytes(payload_length);
  counters_->Add(kLinkFramesSent);
  counters_->Add(kLinkBytesSent, FrameSealer::FrameBytes(payload_length));
  NoteSent();
  return Status();
}

void TcpInferenceLink::NoteSent() {
  if (options_.tail_witness_ms == 0) return;
  last_send_ms_ = loop_->now_ms();
  if (witness_timer_ == EventLoop::kNoTimer) witness_timer_ = loop_->AddTimer(options_.tail_witness_ms, [this] { OnWitnessTimer(); });
}

void TcpInferenceLink::OnWitnessTimer() {
  witness_timer_ = EventLoop::kNoTimer;
  if (state_ != kOpen || sealer_->sequence() == witnessed_sequence_) return;
  const uint64_t quiet = EventLoop::NowMs() - last_send_ms_;
  if (quiet < options_.tail_witness_ms) {
    witness_timer_ = loop_->AddTimer(options_.tail_witness_ms - quiet, [this] { OnWitnessTimer(); });
    return;
  }
  // Behind a full socket the frames still waiting will be followed by more: not quiet.
  if (out_off_ != out_len_ || !queue_.empty()) return;
  out_off_ = out_len_ = 0;
  out_.Reserve(FrameSealer::kRekeyFrameBytes);
  Status st = sealer_->SealRekey(out_.data());
  if (!st.ok()) {
    Fail(st);
    return;
  }
  out_len_ = FrameSealer::kRekeyFrameBytes;
  counters_->Add(kLinkFramesSent);
  counters_->Add(kLinkBytesSent, FrameSealer::kRekeyFrameBytes);
  counters_->Add(kLinkRekeys);
  NoteSent();  // the witness is a frame too: the timer this arms then finds nothing new
  witnessed_sequence_ = sealer_->sequence();
  FlushOut();
}

Status TcpInferenceLink::SealClose(uint16_t code, const std::string& reason) {
  std::string text = reason;
  if (text.size() > 240) {
    size_t end = 240;
    while (end > 0 && (static_cast<uint8_t>(text[end]) & 0xc0) == 0x80) end--;
    text.resize(end);
  }
  uint8_t payload[242];
  payload[0] = static_cast<uint8_t>(code >> 8);
  payload[1] = static_cast<uint8_t>(code);
  std::memcpy(payload + 2, text.data(), text.size());
  const BytePart part{payload, 2 + text.size()};
  return SealFrame(kFrameClose, kClassControl, kFlagFirst | kFlagLast, 0, 0, 0, static_cast<uint32_t>(part.size), &part, 1, part.size);
}

void TcpInferenceLink::Pump() {
  while (state_ != kClosed && (out_len_ - out_off_) < options_.seal_ahead_bytes) {
    OutboundQueue::Entry* front = queue_.Front();
    if (front == nullptr) {
      if (close_queued_ && !close_sent_ && state_ == kClosing) {
        close_queued_ = false;
        Status st = SealClose(close_code_, close_reason_);
        if (!st.ok()) {
          Finish();
          return;
        }
        close_sent_ = true;  // sealed; it leaves with the next writes
      }
      break;
    }
    OutboundQueue::Entry& m = *front;
    const uint32_t chunk = std::min<uint32_t>(m.size - m.offset, FrameLimit(m.cls));
    if (m.offset == 0) RecordSchedulingDelay(counters_, m.cls, MonotonicNs() - m.queued_ns);
    const uint8_t flags = (m.offset == 0 ? kFlagFirst : 0) | (m.offset + chunk == m.size ? kFlagLast : 0);
    const BytePart part{m.body.data() + m.offset, chunk};
    Status st = SealFrame(kFrameData, m.cls, flags, m.stream_id, m.kind, m.tenant, m.size, &part, 1, chunk);
    if (!st.ok()) {
      Fail(st);
      return;
    }
    if (queue_.Consume(chunk)) counters_->Add(kLinkMessagesSent);
  }
  if (!FlushOut()) return;
  UpdateQueuedGauge();
  if (need_drain_ && state_ == kOpen && queued_bytes() <= options_.high_water_bytes / 2) {
    need_drain_ = false;
    handler_->OnLinkDrain(this);
  }
}

bool TcpInferenceLink::FlushOut() {
  while (out_off_ < out_len_) {
    const ssize_t n = send(fd_, out_.data() + out_off_, out_len_ - out_off_, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_off_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    const int err = errno;
    if (err == ETIMEDOUT) {
      counters_->Add(kKeepaliveTimeouts);
      Fail(Status::Error(codes::kKeepalive, "peer " + remote_ + " on the " + options_.segment + " segment stopped acknowledging data within " +
                                                std::to_string(options_.keepalive_timeout_ms) + " ms"));
    } else {
      Fail(Status::Error(codes::kPeerGone, "peer " + remote_ + " on the " + options_.segment + " segment: write failed: " + strerror(err)));
    }
    return false;
  }
  if (out_off_ == out_len_) {
    out_off_ = out_len_ = 0;
    if (close_sent_ && !wr_shut_ && (state_ == kClosing)) {
      shutdown(fd_, SHUT_WR);  // our CLOSE has left: end our side, wait for the peer's end
      wr_shut_ = true;
    }
  }
  UpdateWatch();
  return state_ != kClosed;
}

void TcpInferenceLink::UpdateWatch() {
  if (state_ == kClosed) return;
  const bool want = out_off_ < out_len_ || !queue_.empty();
  if (want == watching_write_) return;
  watching_write_ = want;
  loop_->Modify(fd_, kReadable | kPeerHalfClosed | (want ? static_cast<uint32_t>(kWritable) : 0u));
}

void TcpInferenceLink::OnEvents(uint32_t events) {
  if (state_ == kClosed) return;
  if (events & (kReadable | kHangup | kError | kPeerHalfClosed)) ReadSome();
  if (state_ == kClosed) return;
  if (events & kWritable) Pump();
}

void TcpInferenceLink::ReadSome() {
  size_t budget = kReadBudgetPerEvent;
  while (state_ != kClosed && budget > 0) {
    const ssize_t n = read(fd_, in_.data(), in_.capacity());
    if (n > 0) {
      budget -= std::min(budget, static_cast<size_t>(n));
      if (!reading_) continue;  // after a close or failure: discard until the peer's end
      Status st = receiver_->Feed(in_.data(), static_cast<size_t>(n));
      CountReceived();
      if (!st.ok()) {
        Fail(st);
        return;
      }
      // A short read drained the socket: the next byte comes with the next (level-triggered)
      // readiness, so no read() just to learn EAGAIN.
      if (static_cast<size_t>(n) < in_.capacity()) return;
      continue;
    }
    if (n == 0) {
      OnEof();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    const int err = errno;
    if (err == ETIMEDOUT) {
      counters_->Add(kKeepaliveTimeouts);
      Fail(Status::Error(codes::kKeepalive, "peer " + remote_ + " on the " + options_.segment + " segment went silent (keepalive timed out after " +
                                                std::to_string(options_.keepalive_timeout_ms) + " ms)"));
    } else if (state_ == kOpen) {
      Fail(Status::Error(codes::kPeerGone, "peer " + remote_ + " on the " + options_.segment + " segment: connection failed: " + strerror(err)));
    } else {
      Finish();
    }
    return;
  }
}

void TcpInferenceLink::OnEof() {
  if (state_ == kOpen) {
    Status st = receiver_->End();
    std::string pending = receiver_->DescribePending();
    std::string what = "peer " + remote_ + " on the " + options_.segment + " segment closed the connection";
    if (!pending.empty()) what += " mid-message (" + pending + ")";
    else if (!st.ok()) what += " mid-frame";
    Fail(Status::Error(codes::kPeerGone, what));
    return;
  }
  Finish();
}

void TcpInferenceLink::OnPeerClose(uint16_t code, const std::string& reason) {
  if (state_ == kClosed) return;
  if (!info_set_ || (info_.by == LinkCloseInfo::kLocal && !close_sent_)) {
    info_ = LinkCloseInfo{LinkCloseInfo::kPeer, code, reason.empty() ? CloseCodeName(code) : reason, nullptr};
    info_set_ = true;
  }
  state_ = kClosing;
  reading_ = false;  // nothing may follow a close frame
  queue_.Clear();
  close_queued_ = false;
  Teardown();
}

void TcpInferenceLink::Close(uint16_t code, const std::string& reason) {
  if (state_ != kOpen) return;
  state_ = kClosing;
  info_ = LinkCloseInfo{LinkCloseInfo::kLocal, code, reason, nullptr};
  info_set_ = true;
  close_queued_ = true;
  close_code_ = code;
  close_reason_ = reason;
  close_timer_ = loop_->AddTimer(options_.close_timeout_ms, [this] {
    close_timer_ = EventLoop::kNoTimer;
    Finish();  // the peer did not take our queue (or answer) in time
  });
  Pump();
}

void TcpInferenceLink::Fail(const Status& status) {
  if (state_ == kClosed) return;
  const bool ending_cleanly = info_set_ && (info_.by == LinkCloseInfo::kPeer || close_sent_);
  if (ending_cleanly) {
    Finish();
    return;
  }
  if (IsWireCode(status.code)) counters_->Add(kLinkRejectedFrames);
  const uint16_t code = CloseCodeFor(status.code);
  info_ = LinkCloseInfo{LinkCloseInfo::kError, code, status.message, status.code};
  info_set_ = true;
  state_ = kClosing;
  reading_ = false;
  receiver_->Stop();
  queue_.Clear();
  close_queued_ = false;
  const bool carrier_gone = status.code == codes::kPeerGone || status.code == codes::kKeepalive || status.code == codes::kSystem;
  if (!carrier_gone && !close_sent_) {
    // Tell the peer why (after whatever whole frames are already sealed), then end our side.
    if (SealClose(code, status.message).ok()) close_sent_ = true;
    FlushOut();
    if (state_ == kClosed) return;
  }
  if (carrier_gone) {
    Finish();
    return;
  }
  Teardown();
}

void TcpInferenceLink::Teardown() {
  if (state_ == kClosed) return;
  FlushOut();
  if (state_ == kClosed) return;
  if (!wr_shut_ && out_off_ == out_len_) {
    shutdown(fd_, SHUT_WR);
    wr_shut_ = true;
  }
  if (teardown_timer_ == EventLoop::kNoTimer) {
    teardown_timer_ = loop_->AddTimer(kTeardownGraceMs, [this] {
      teardown_timer_ = EventLoop::kNoTimer;
      Finish();
    });
  }
}

void TcpInferenceLink::Finish() {
  if (state_ == kClosed) return;
  if (!info_set_) {
    info_ = LinkCloseInfo{LinkCloseInfo::kError, kCloseInternalError, "peer " + remote_ + " on the " + options_.segment + " segment closed the connection",
                          codes::kPeerGone};
    info_set_ = true;
  } else if (info_.by == LinkCloseInfo::kLocal && !close_sent_) {
    info_ = LinkCloseInfo{LinkCloseInfo::kError, kCloseInternalError, "close timed out: peer " + remote_ + " did not take the queued messages",
                          codes::kPeerGone};
  }
  state_ = kClosed;
  loop_->CancelTimer(close_timer_);
  loop_->CancelTimer(teardown_timer_);
  close_timer_ = teardown_timer_ = EventLoop::kNoTimer;
  loop_->CancelTimer(witness_timer_);
  witness_timer_ = EventLoop::kNoTimer;
  loop_->Unwatch(fd_);
  close(fd_);
  queue_.Clear();
  out_off_ = out_len_ = 0;
  UpdateQueuedGauge();
  counters_->Sub(kLinksOpen);
  counters_->Add(info_.by == LinkCloseInfo::kLocal ? kLinksClosedLocal : info_.by == LinkCloseInfo::kPeer ? kLinksClosedPeer : kLinksClosedError);
  handler_->OnLinkClosed(this, info_);
}

}  // namespace engine
}  // namespace sluice
