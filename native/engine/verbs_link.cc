// See verbs_link.h.
#include "engine/verbs_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "verbs/device.h"
#include "verbs/error.h"

namespace sluice {
namespace engine {

namespace rdma_codes {
const char kVerbs[] = "SLUICE_ERR_RDMA_VERBS";
const char kCompletion[] = "SLUICE_ERR_RDMA_COMPLETION";
const char kProtocol[] = "SLUICE_ERR_RDMA_PROTOCOL";
const char kNoDevice[] = "SLUICE_ERR_RDMA_NO_DEVICE";
const char kPortDown[] = "SLUICE_ERR_RDMA_PORT_DOWN";
const char kQpFatal[] = "SLUICE_ERR_RDMA_QP_FATAL";
const char kDeviceFatal[] = "SLUICE_ERR_RDMA_DEVICE_FATAL";
}  // namespace rdma_codes

namespace {
constexpr uint16_t kKindEndpoint = 0x30;  // src/wire/message-kinds.ts RDMA_ENDPOINT
constexpr uint16_t kKindReady = 0x31;     // RDMA_READY
constexpr size_t kEndpointBytes = 40;     // src/transport/rdma/rdma-endpoint.ts
constexpr uint32_t kSlotAlign = 4096;
constexpr uint32_t kSignalInterval = 8;   // a completion every 8th send request
constexpr uint32_t kWantInline = 256;     // asked for; the QP reports what it grants
constexpr uint32_t kAckBatch = 32;
constexpr uint32_t kPollBatch = 32;
constexpr uint32_t kTeardownGraceMs = 1000;
// wr_id of receives: bit 63 set, the slot below; sends carry the tracker's sequence number.
constexpr uint64_t kRecvBit = 1ull << 63;

std::string ErrnoText(const char* what, int err) { return std::string(what) + " failed: " + strerror(err); }

const char* WcStatusName(ibv_wc_status s) { return ibv_wc_status_str(s); }

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

ibv_mtu MtuEnum(uint32_t bytes) {
  if (bytes >= 4096) return IBV_MTU_4096;
  if (bytes >= 2048) return IBV_MTU_2048;
  if (bytes >= 1024) return IBV_MTU_1024;
  if (bytes >= 512) return IBV_MTU_512;
  return IBV_MTU_256;
}

uint32_t Get32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
void Put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

// The address of the side channel's local end when a device could hold it (IPv4, not loopback
// or wildcard), as rdma-transport.ts deviceAddress.
std::string LocalDeviceAddress(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (!IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) return "";
    inet_ntop(AF_INET, a6->sin6_addr.s6_addr + 12, buf, sizeof buf);
  }
  std::string ip(buf);
  if (ip.empty() || ip == "0.0.0.0" || ip.rfind("127.", 0) == 0) return "";
  return ip;
}
}  // namespace

// ---- VerbsDevices ----

VerbsDevices::~VerbsDevices() {
  for (auto& [spec, d] : devices_) loop_->Unwatch(d->context()->async_fd);
}

std::shared_ptr<verbs::Device> VerbsDevices::Open(const std::string& spec, Status* status) {
  auto it = devices_.find(spec);
  if (it != devices_.end()) return it->second;
  std::shared_ptr<verbs::Device> d;
  try {
    d = std::make_shared<verbs::Device>(spec);
  } catch (const verbs::Error& e) {
    *status = Status::Error(e.code() == "SLUICE_ERR_RDMA_NO_DEVICE" ? rdma_codes::kNoDevice : rdma_codes::kVerbs, e.what());
    return nullptr;
  } catch (const std::exception& e) {
    *status = Status::Error(rdma_codes::kVerbs, std::string("opening RDMA device: ") + e.what());
    return nullptr;
  }
  // The same device may be named two ways (rxe0, 10.0.2.15): one async watch per context.
  for (auto& [other, od] : devices_) {
    if (od->name() == d->name()) {
      devices_[spec] = od;
      return od;
    }
  }
  ibv_context* ctx = d->context();
  const int fl = fcntl(ctx->async_fd, F_GETFL);
  if (fl >= 0 && fcntl(ctx->async_fd, F_SETFL, fl | O_NONBLOCK) == 0) {
    loop_->Watch(ctx->async_fd, kReadable, [this, ctx](uint32_t) { OnAsyncEvents(ctx); });
  }
  devices_[spec] = d;
  return d;
}

void VerbsDevices::Attach(VerbsInferenceLink* link) { links_.push_back(link); }

void VerbsDevices::Detach(VerbsInferenceLink* link) {
  auto it = std::find(links_.begin(), links_.end(), link);
  if (it != links_.end()) links_.erase(it);
}

VerbsInferenceLink* VerbsDevices::Find(uint32_t id) const {
  for (VerbsInferenceLink* l : links_) {
    if (l->id() == id) return l;
  }
  return nullptr;
}

void VerbsDevices::OnAsyncEvents(ibv_context* ctx) {
  for (int i = 0; i < 64; i++) {
    ibv_async_event ev;
    if (ibv_get_async_event(ctx, &ev) != 0) return;  // EAGAIN: nothing more
    // Copy what we match on, acknowledge at once (destroying a QP waits for its events' acks).
    const ibv_event_type type = ev.event_type;
    ibv_qp* qp = nullptr;
    ibv_cq* cq = nullptr;
    int port = 0;
    switch (type) {
      case IBV_EVENT_QP_FATAL:
      case IBV_EVENT_QP_REQ_ERR:
      case IBV_EVENT_QP_ACCESS_ERR:
      case IBV_EVENT_PATH_MIG_ERR:
        qp = ev.element.qp;
        break;
      case IBV_EVENT_CQ_ERR:
        cq = ev.element.cq;
        break;
      case IBV_EVENT_PORT_ERR:
        port = ev.element.port_num;
        break;
      default:
        break;
    }
    ibv_ack_async_event(&ev);
    const std::string what = ibv_event_type_str(type);
    // Failing a link detaches it: iterate over a copy.
    std::vector<VerbsInferenceLink*> hit;
    for (VerbsInferenceLink* l : links_) {
      if (l->context() != ctx) continue;
      if ((qp != nullptr && l->qp() == qp) || (cq != nullptr && l->cq() == cq) || (port != 0 && l->port() == port) ||
          type == IBV_EVENT_DEVICE_FATAL) {
        hit.push_back(l);
      }
    }
    for (VerbsInferenceLink* l : hit) {
      if (std::find(links_.begin(), links_.end(), l) == links_.end()) continue;
      if (port != 0) {
        l->FailFromDevice(rdma_codes::kPortDown, "port " + std::to_string(port) + " of the RDMA device went down (" + what + ")");
      } else if (type == IBV_EVENT_DEVICE_FATAL) {
        l->FailFromDevice(rdma_codes::kDeviceFatal, "the RDMA device failed (" + what + ")");
      } else {
        l->FailFromDevice(rdma_codes::kQpFatal, "the link's queue pair entered the error state (" + what + ")");
      }
    }
  }
}

// ---- VerbsInferenceLink ----

VerbsInferenceLink::VerbsInferenceLink(EventLoop* loop, CounterBlock* counters, LinkHandler* handler, VerbsDevices* devices, uint32_t id, int fd,
                                       Role role, const LinkOptions& options, const LinkSecrets& secrets, std::string remote)
    : loop_(loop),
      counters_(counters),
      handler_(handler),
      devices_(devices),
      id_(id),
      fd_(fd),
      role_(role),
      options_(options),
      remote_(std::move(remote)) {
  segment_code_ = options.segment == "training" ? kSegmentTraining : kSegmentInference;
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++) {
    link_id_hex_.push_back(kHex[secrets.link_id[i] >> 4]);
    link_id_hex_.push_back(kHex[secrets.link_id[i] & 15]);
  }
  // Slot size as slotBytesFor (rdma-transport.ts): the largest frame, rounded to 4 KiB.
  const uint32_t payload = std::max(options.frame_bytes_control, options.frame_bytes_inference);
  slot_bytes_ = static_cast<uint32_t>((FrameSealer::FrameBytes(payload) + kSlotAlign - 1) / kSlotAlign * kSlotAlign);
  max_send_bytes_ = slot_bytes_;
  ReceiverLimits limits;
  limits.parser.segment = segment_code_;
  limits.parser.max_message_bytes = options.max_message_bytes;
  limits.parser.max_frame_payload = std::min<uint32_t>(kMaxFramePayload, slot_bytes_ - static_cast<uint32_t>(FrameSealer::FrameBytes(0)));
  limits.max_reassembly_bytes = options.max_reassembly_bytes;
  receiver_ = std::make_unique<LinkReceiver>(
      limits, std::make_unique<TrafficKeys>(secrets.receive, secrets.receive_direction, options.key_limits),
      [this](const InboundMessage& m) {
        if (phase_ == kSetup) {
          OnSetupMessage(m);
          return;
        }
        counters_->Add(kLinkMessagesReceived);
        if (state_ != kClosed) handler_->OnLinkMessage(this, m);
      },
      [this](uint16_t code, const std::string& reason) {
        if (state_ == kClosed) return;
        if (phase_ == kSetup) {
          Fail(Status::Error(rdma_codes::kProtocol, remote_ + " refused the RDMA link: " + reason));
          return;
        }
        if (!info_set_ || (info_.by == LinkCloseInfo::kLocal && !close_delivered_)) {
          info_ = LinkCloseInfo{LinkCloseInfo::kPeer, code, reason, nullptr};
          info_set_ = true;
        }
        state_ = kClosing;
        reading_ = false;
        queue_.Clear();
        Teardown();
      });
  sealer_ = std::make_unique<FrameSealer>(std::make_unique<TrafficKeys>(secrets.send, secrets.send_direction, options.key_limits), segment_code_);
  credits_.Init(options.rdma_recv_window);
  slice_.reserve(16);
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ApplyDscp(fd_, options.dscp);
}

VerbsInferenceLink::~VerbsInferenceLink() {
  if (state_ != kClosed) {
    loop_->CancelTimer(setup_timer_);
    loop_->CancelTimer(close_timer_);
    loop_->CancelTimer(teardown_timer_);
    loop_->Unwatch(fd_);
    close(fd_);
  }
  DestroyVerbs();
}

ibv_context* VerbsInferenceLink::context() const { return device_ ? device_->context() : nullptr; }
uint8_t VerbsInferenceLink::port() const { return device_ ? device_->port() : 0; }

void VerbsInferenceLink::DestroyVerbs() {
  if (attached_) {
    devices_->Detach(this);
    attached_ = false;
  }
  if (channel_ != nullptr && watching_channel_) loop_->Unwatch(channel_->fd);
  watching_channel_ = false;
  if (qp_ != nullptr) ibv_destroy_qp(qp_);
  qp_ = nullptr;
  if (recv_mr_ != nullptr) ibv_dereg_mr(recv_mr_);
  recv_mr_ = nullptr;
  if (send_mr_ != nullptr) ibv_dereg_mr(send_mr_);
  send_mr_ = nullptr;
  if (cq_ != nullptr) {
    if (unacked_events_ > 0) ibv_ack_cq_events(cq_, unacked_events_);
    unacked_events_ = 0;
    ibv_destroy_cq(cq_);
  }
  cq_ = nullptr;
  if (channel_ != nullptr) ibv_destroy_comp_channel(channel_);
  channel_ = nullptr;
  free(send_mem_);
  free(recv_mem_);
  send_mem_ = recv_mem_ = nullptr;
}

void VerbsInferenceLink::Start(const std::vector<uint8_t>& early) {
  counters_->Add(kLinksOpen);
  counters_->Add(kLinksOpened);
  if (!loop_->Watch(fd_, kReadable | kPeerHalfClosed, [this](uint32_t ev) { OnSideEvents(ev); })) {
    Fail(Status::Error(codes::kSystem, std::string("epoll_ctl: ") + strerror(errno)));
    return;
  }
  setup_timer_ = loop_->AddTimer(options_.handshake_timeout_ms, [this] {
    setup_timer_ = EventLoop::kNoTimer;
    if (phase_ == kSetup) Fail(Status::Error("SLUICE_ERR_TRANSPORT_TIMEOUT", remote_ + ": RDMA set-up did not complete within " + std::to_string(options_.handshake_timeout_ms) + " ms"));
  });
  if (role_ == Role::kInitiator) {
    Status st = CreateQueuePair();
    if (st.ok()) {
      uint8_t rec[kEndpointBytes];
      EncodeEndpoint(rec);
      st = SendSetupFrame(kKindEndpoint, rec, sizeof rec);
    }
    if (!st.ok()) {
      Fail(st);
      return;
    }
  }
  if (!early.empty()) {
    Status st = receiver_->Feed(early.data(), early.size());
    CountReceived();
    if (!st.ok()) Fail(st);
  }
}

// ---- side channel and set-up ----

Status VerbsInferenceLink::SendSetupFrame(uint16_t kind, const uint8_t* payload, size_t size) {
  const size_t at = side_out_.size();
  side_out_.resize(at + FrameSealer::FrameBytes(size));
  const BytePart part{payload, size};
  Status st = sealer_->Seal(kFrameData, kClassControl, kFlagFirst | kFlagLast, 0, kind, 0, static_cast<uint32_t>(size), &part, 1, size,
                            side_out_.data() + at);
  if (!st.ok()) return st;
  counters_->Add(kLinkFramesSent);
  counters_->Add(kLinkBytesSent, FrameSealer::FrameBytes(size));
  if (!FlushSide()) return Status::Error(codes::kPeerGone, "peer " + remote_ + ": the RDMA side channel failed during set-up: " + strerror(errno));
  return Status();
}

bool VerbsInferenceLink::FlushSide() {
  size_t off = 0;
  while (off < side_out_.size()) {
    const ssize_t n = send(fd_, side_out_.data() + off, side_out_.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return false;
  }
  side_out_.erase(side_out_.begin(), side_out_.begin() + static_cast<std::ptrdiff_t>(off));
  if (state_ != kClosed) loop_->Modify(fd_, kReadable | kPeerHalfClosed | (side_out_.empty() ? 0u : static_cast<uint32_t>(kWritable)));
  return true;
}

void VerbsInferenceLink::OnSideEvents(uint32_t events) {
  if (state_ == kClosed) return;
  if ((events & kWritable) && !FlushSide()) {
    Fail(Status::Error(codes::kPeerGone, "peer " + remote_ + ": the RDMA side channel failed: " + strerror(errno)));
    return;
  }
  if ((events & (kReadable | kHangup | kError | kPeerHalfClosed)) == 0) return;
  uint8_t buf[4096];
  for (;;) {
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n > 0) {
      if (phase_ == kSetup) {
        Status st = receiver_->Feed(buf, static_cast<size_t>(n));
        CountReceived();
        if (!st.ok()) {
          Fail(st);
          return;
        }
        if (state_ == kClosed) return;
        continue;
      }
      if (!reading_ || state_ != kOpen) continue;  // ending: discard until the peer's end
      Fail(Status::Error(codes::kWireMalformed, remote_ + " sent data on the RDMA side channel after set-up"));
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // The side channel ended: take in what the queue pair already holds first.
    side_gone_ = true;
    loop_->Modify(fd_, 0);
    if (phase_ == kRunning && state_ != kClosed) DrainCq();
    if (state_ == kClosed) return;
    if (state_ == kOpen) {
      std::string what = "peer " + remote_ + " on the " + options_.segment + " segment closed the RDMA side channel without a close frame";
      if (n < 0) what = "peer " + remote_ + " on the " + options_.segment + " segment: RDMA side channel failed: " + strerror(errno);
      const std::string pending = receiver_->DescribePending();
      if (!pending.empty()) what += " mid-message (" + pending + ")";
      Fail(Status::Error(codes::kPeerGone, what));
      return;
    }
    Finish();
    return;
  }
}

void VerbsInferenceLink::EncodeEndpoint(uint8_t out[40]) const {
  std::memset(out, 0, kEndpointBytes);
  out[0] = 1;
  out[2] = uint8_t(device_->lid() >> 8);
  out[3] = uint8_t(device_->lid());
  Put32(out + 4, qp_->qp_num);
  Put32(out + 8, psn_);
  std::memcpy(out + 12, device_->gid().raw, 16);
  Put32(out + 28, verbs::mtu_bytes(device_->active_mtu()));
  Put32(out + 32, options_.rdma_recv_window);
  Put32(out + 36, slot_bytes_);
}

void VerbsInferenceLink::OnSetupMessage(const InboundMessage& m) {
  if (state_ != kOpen) return;
  const bool control0 = m.cls == kClassControl && m.stream_id == 0;
  const bool want_endpoint = role_ == Role::kInitiator ? true : !setup_endpoint_sent_;
  if (!control0 || m.kind != (want_endpoint ? kKindEndpoint : kKindReady)) {
    Fail(Status::Error(codes::kWireMalformed, remote_ + ": expected the RDMA " + std::string(want_endpoint ? "endpoint" : "ready") +
                                                  " during set-up, got a frame of kind " + std::to_string(m.kind) + " on stream " +
                                                  std::to_string(m.stream_id)));
    return;
  }
  if (!want_endpoint) {
    if (m.size != 0) {
      Fail(Status::Error(codes::kWireMalformed, remote_ + ": RDMA ready carries " + std::to_string(m.size) + " bytes"));
      return;
    }
    BeginRunning();
    return;
  }
  Status st;
  if (role_ == Role::kAcceptor) st = CreateQueuePair();
  if (st.ok()) st = ConnectQueuePair(m.body, m.size);
  if (st.ok()) {
    if (role_ == Role::kAcceptor) {
      uint8_t rec[kEndpointBytes];
      EncodeEndpoint(rec);
      st = SendSetupFrame(kKindEndpoint, rec, sizeof rec);
      setup_endpoint_sent_ = true;
    } else {
      st = SendSetupFrame(kKindReady, nullptr, 0);
    }
  }
  if (!st.ok()) {
    Fail(st);
    return;
  }
  if (role_ == Role::kInitiator) BeginRunning();
}

Status VerbsInferenceLink::CreateQueuePair() {
  Status st;
  std::string spec = options_.rdma_device;
  if (spec.empty()) {
    const std::string ip = LocalDeviceAddress(fd_);
    if (!ip.empty()) {
      Status ignored;
      device_ = devices_->Open(ip, &ignored);
    }
  }
  if (!device_) device_ = devices_->Open(spec, &st);
  if (!device_) return st;
  devices_->Attach(this);
  attached_ = true;
  const uint32_t slots = options_.rdma_send_slots, window = options_.rdma_recv_window;
  const uint32_t send_wr = slots + kVerbsCtrlSlots, recv_wr = window + kVerbsCtrlSlots;
  if (posix_memalign(reinterpret_cast<void**>(&send_mem_), kSlotAlign, size_t(slots) * slot_bytes_) != 0 ||
      posix_memalign(reinterpret_cast<void**>(&recv_mem_), kSlotAlign, size_t(recv_wr) * slot_bytes_) != 0) {
    return Status::Error(rdma_codes::kVerbs, "cannot allocate the link's registered pools");
  }
  channel_ = ibv_create_comp_channel(device_->context());
  if (channel_ == nullptr) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_create_comp_channel", errno));
  const int fl = fcntl(channel_->fd, F_GETFL);
  if (fl < 0 || fcntl(channel_->fd, F_SETFL, fl | O_NONBLOCK) < 0) return Status::Error(rdma_codes::kVerbs, ErrnoText("fcntl(O_NONBLOCK)", errno));
  cq_ = ibv_create_cq(device_->context(), static_cast<int>(send_wr + recv_wr), nullptr, channel_, 0);
  if (cq_ == nullptr) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_create_cq", errno));
  send_mr_ = ibv_reg_mr(device_->pd(), send_mem_, size_t(slots) * slot_bytes_, 0);
  if (send_mr_ == nullptr) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_reg_mr (send pool)", errno));
  recv_mr_ = ibv_reg_mr(device_->pd(), recv_mem_, size_t(recv_wr) * slot_bytes_, IBV_ACCESS_LOCAL_WRITE);
  if (recv_mr_ == nullptr) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_reg_mr (receive pool)", errno));
  ibv_qp_init_attr init{};
  init.send_cq = cq_;
  init.recv_cq = cq_;
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;  // selective signalling: each request says whether it wants a completion
  init.cap.max_send_wr = send_wr;
  init.cap.max_recv_wr = recv_wr;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = kWantInline;
  qp_ = ibv_create_qp(device_->pd(), &init);
  if (qp_ == nullptr) {
    init.cap.max_inline_data = 0;  // a device without inline sends
    qp_ = ibv_create_qp(device_->pd(), &init);
  }
  if (qp_ == nullptr) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_create_qp", errno));
  max_inline_ = init.cap.max_inline_data;
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.port_num = device_->port();
  if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS); rc != 0) {
    return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_modify_qp(INIT)", rc));
  }
  wrs_.reserve(send_wr);
  sges_.reserve(send_wr);
  slot_of_wr_.reserve(send_wr);
  rwrs_.reserve(recv_wr);
  rsges_.reserve(recv_wr);
  repost_.reserve(recv_wr);
  for (uint32_t s = 0; s < recv_wr; s++) repost_.push_back(s);
  if (!PostRecvs()) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_post_recv", errno));
  if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_req_notify_cq", rc));
  if (getrandom(&psn_, sizeof psn_, 0) != sizeof psn_) psn_ = 0x5a5a5a;
  psn_ &= 0xffffff;
  tracker_.Init(slots, send_wr, kSignalInterval);
  return Status();
}

Status VerbsInferenceLink::ConnectQueuePair(const uint8_t* r, size_t size) {
  // The peer's record, checked as decodeEndpoint does.
  auto bad = [this](const std::string& what) { return Status::Error(codes::kWireMalformed, remote_ + ": RDMA endpoint record: " + what); };
  if (size != kEndpointBytes) return bad(std::to_string(size) + " bytes, expected 40");
  if (r[0] != 1) return bad("version " + std::to_string(r[0]) + ", expected 1");
  if (r[1] != 0) return bad("unknown flags");
  const uint32_t qpn = Get32(r + 4), psn = Get32(r + 8), mtu = Get32(r + 28), window = Get32(r + 32), slot = Get32(r + 36);
  if (qpn == 0 || qpn > 0xffffff) return bad("queue pair number out of range");
  if (psn > 0xffffff) return bad("packet sequence number out of range");
  if (mtu != 256 && mtu != 512 && mtu != 1024 && mtu != 2048 && mtu != 4096) return bad("MTU " + std::to_string(mtu) + " is not 256..4096");
  if (window < 1 || window > 4096) return bad("window " + std::to_string(window) + " outside [1, 4096]");
  if (slot < 4096 || slot > 64u * 1024 * 1024) return bad("slot size " + std::to_string(slot) + " outside [4096, 64 MiB]");
  max_send_bytes_ = std::min(slot_bytes_, slot);
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu = MtuEnum(std::min(mtu, verbs::mtu_bytes(device_->active_mtu())));
  attr.dest_qp_num = qpn;
  attr.rq_psn = psn;
  attr.max_dest_rd_atomic = 0;
  attr.min_rnr_timer = 12;
  attr.ah_attr.port_num = device_->port();
  attr.ah_attr.dlid = static_cast<uint16_t>((r[2] << 8) | r[3]);
  attr.ah_attr.is_global = 1;
  std::memcpy(attr.ah_attr.grh.dgid.raw, r + 12, 16);
  attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(device_->gid_index());
  attr.ah_attr.grh.hop_limit = 64;
  attr.ah_attr.grh.traffic_class = static_cast<uint8_t>(options_.dscp << 2);  // as the TS path: DSCP << 2
  if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC |
                                             IBV_QP_MIN_RNR_TIMER);
      rc != 0) {
    return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_modify_qp(RTR)", rc));
  }
  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = options_.rdma_ack_timeout;
  attr.retry_cnt = options_.rdma_retry_count;
  attr.rnr_retry = 0;  // credits guarantee a posted receive: an RNR NAK is a bug, fail fast
  attr.sq_psn = psn_;
  attr.max_rd_atomic = 0;
  if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
      rc != 0) {
    return Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_modify_qp(RTS)", rc));
  }
  credits_.Connect(window);
  return Status();
}

void VerbsInferenceLink::BeginRunning() {
  phase_ = kRunning;
  loop_->CancelTimer(setup_timer_);
  setup_timer_ = EventLoop::kNoTimer;
  if (!loop_->Watch(channel_->fd, kReadable, [this](uint32_t) { OnChannelReadable(); })) {
    Fail(Status::Error(codes::kSystem, std::string("epoll_ctl (completion channel): ") + strerror(errno)));
    return;
  }
  watching_channel_ = true;
  // Completions that arrived during set-up (held so the sequence stays in order) and queued sends.
  DrainCq();  // also pumps what was queued during set-up
}

// ---- completions ----

void VerbsInferenceLink::OnChannelReadable() {
  if (state_ == kClosed || channel_ == nullptr) return;
  for (;;) {
    ibv_cq* cq = nullptr;
    void* ctx = nullptr;
    if (ibv_get_cq_event(channel_, &cq, &ctx) != 0) break;  // EAGAIN: no more events
    unacked_events_++;
    stats_.cq_events++;
  }
  if (unacked_events_ >= kAckBatch) {
    ibv_ack_cq_events(cq_, unacked_events_);
    unacked_events_ = 0;
  }
  if (!DrainCq()) return;
  if (options_.rdma_busy_poll && state_ != kClosed) {
    // Busy poll: keep the CQ unarmed and spin on it for a bounded time; the next completion of
    // a call in flight usually lands within it, saving the interrupt, the channel event and the
    // loop's wake-up.
    const uint64_t until = NowNs() + uint64_t(options_.rdma_busy_poll_us) * 1000;
    stats_.busy_spins++;
    while (state_ != kClosed && NowNs() < until) {
      ibv_wc wcs[kPollBatch];
      const int got = ibv_poll_cq(cq_, kPollBatch, wcs);
      if (got < 0) {
        Fail(Status::Error(rdma_codes::kVerbs, "ibv_poll_cq failed"));
        return;
      }
      if (got == 0) continue;
      stats_.busy_hits++;
      for (int i = 0; i < got && state_ != kClosed; i++) OnCompletion(wcs[i]);
      if (state_ == kClosed) return;
      if (!PostRecvs()) return;
      if (credits_.CreditMessageDue() && tracker_.sq_room() > 0) AppendCreditMessage();
      if (!PostBatch()) return;
      Pump();
    }
    if (state_ == kClosed) return;
  }
  // Re-arm, then drain what landed before the arm took effect.
  if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) {
    Fail(Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_req_notify_cq", rc)));
    return;
  }
  DrainCq();
}

bool VerbsInferenceLink::DrainCq() {
  if (cq_ == nullptr) return false;
  for (;;) {
    ibv_wc wcs[kPollBatch];
    const int got = ibv_poll_cq(cq_, kPollBatch, wcs);
    if (got < 0) {
      Fail(Status::Error(rdma_codes::kVerbs, "ibv_poll_cq failed"));
      return false;
    }
    for (int i = 0; i < got && state_ != kClosed; i++) OnCompletion(wcs[i]);
    if (state_ == kClosed) return false;
    if (got < static_cast<int>(kPollBatch)) break;
  }
  if (!PostRecvs()) return false;
  if (credits_.CreditMessageDue() && tracker_.sq_room() > 0) AppendCreditMessage();
  if (!PostBatch()) return false;
  Pump();
  return state_ != kClosed;
}

void VerbsInferenceLink::OnCompletion(const ibv_wc& wc) {
  const bool recv = (wc.wr_id & kRecvBit) != 0;
  if (wc.status != IBV_WC_SUCCESS) {
    if (wc.status == IBV_WC_WR_FLUSH_ERR && (close_delivered_ || info_set_)) return;  // our own teardown
    const std::string what = recv ? "receive" : "send";
    Fail(Status::Error(rdma_codes::kCompletion, "peer " + remote_ + ": " + what + " failed: " + WcStatusName(wc.status) + " (vendor_err 0x" +
                                                    [&] {
                                                      char b[16];
                                                      snprintf(b, sizeof b, "%x", wc.vendor_err);
                                                      return std::string(b);
                                                    }() +
                                                    ")"));
    return;
  }
  if (!recv) {
    SendTracker::Retired r;
    if (!tracker_.Complete(wc.wr_id, &r)) {
      Fail(Status::Error(codes::kInternal, "a send completion the link did not ask for"));
      return;
    }
    for (uint32_t i = 0; i < r.credits; i++) credits_.CreditMessageRetired();
    if (close_posted_ && !close_delivered_ && wc.wr_id >= close_seq_) {
      // The peer's queue pair has our close frame: end the side channel behind it.
      close_delivered_ = true;
      Teardown();
    }
    return;
  }
  const uint32_t slot = static_cast<uint32_t>(wc.wr_id & 0xffffffffu);
  if (slot >= options_.rdma_recv_window + kVerbsCtrlSlots) {
    Fail(Status::Error(codes::kInternal, "a receive completion for an unknown slot"));
    return;
  }
  if (wc.opcode != IBV_WC_RECV) {
    Fail(Status::Error(rdma_codes::kProtocol, "the peer sent an operation other than SEND"));
    return;
  }
  if ((wc.wc_flags & IBV_WC_WITH_IMM) == 0) {
    Fail(Status::Error(rdma_codes::kProtocol, "the peer sent a SEND without immediate data"));
    return;
  }
  switch (credits_.OnImmediate(ntohl(wc.imm_data))) {
    case VerbsCredits::Arrival::kOverflow:
      Fail(Status::Error(rdma_codes::kProtocol, "the peer sent more credit than sends outstanding"));
      return;
    case VerbsCredits::Arrival::kCredit:
      repost_.push_back(slot);  // a credit message holds no data: reuse its receive at once
      return;
    case VerbsCredits::Arrival::kData:
      OnReceive(slot, wc.byte_len);
      return;
  }
}

void VerbsInferenceLink::OnReceive(uint32_t slot, uint32_t length) {
  repost_.push_back(slot);
  credits_.Reposted();
  if (!reading_ || state_ == kClosed) return;  // nothing may follow a close frame: drop it
  const uint8_t* data = recv_mem_ + size_t(slot) * slot_bytes_;
  if (length < kHeaderBytes) {
    Fail(Status::Error(codes::kWireTruncated, "a SEND of " + std::to_string(length) + " bytes holds no frame header"));
    return;
  }
  ParserLimits limits;
  limits.segment = segment_code_;
  limits.max_message_bytes = options_.max_message_bytes;
  limits.max_frame_payload = static_cast<uint32_t>(slot_bytes_ - FrameSealer::FrameBytes(0));
  FrameHeader h;
  Status st = ParseFrameHeader(data, limits, &h);
  if (st.ok() && length != FrameSealer::FrameBytes(h.payload_length)) {
    st = Status::Error(codes::kWireMalformed, "a SEND of " + std::to_string(length) + " bytes holds a frame of " +
                                                  std::to_string(FrameSealer::FrameBytes(h.payload_length)));
  }
  if (st.ok()) st = receiver_->Feed(data, length);
  CountReceived();
  if (!st.ok()) Fail(st);
}

bool VerbsInferenceLink::PostRecvs() {
  if (repost_.empty() || qp_ == nullptr) return true;
  if (state_ == kClosed) {
    repost_.clear();
    return false;
  }
  rwrs_.clear();
  rsges_.clear();
  for (uint32_t slot : repost_) {
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(recv_mem_) + uint64_t(slot) * slot_bytes_;
    sge.length = slot_bytes_;
    sge.lkey = recv_mr_->lkey;
    rsges_.push_back(sge);
  }
  for (size_t i = 0; i < repost_.size(); i++) {
    ibv_recv_wr wr{};
    wr.wr_id = kRecvBit | repost_[i];
    wr.sg_list = &rsges_[i];
    wr.num_sge = 1;
    rwrs_.push_back(wr);
  }
  for (size_t i = 0; i + 1 < rwrs_.size(); i++) rwrs_[i].next = &rwrs_[i + 1];
  repost_.clear();
  ibv_recv_wr* bad = nullptr;
  if (int rc = ibv_post_recv(qp_, rwrs_.data(), &bad); rc != 0) {
    errno = rc;
    if (phase_ == kRunning) Fail(Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_post_recv", rc)));
    return false;
  }
  return true;
}

// ---- sending ----

uint32_t VerbsInferenceLink::FrameLimit(uint8_t cls) const {
  const uint32_t want = cls == kClassControl ? options_.frame_bytes_control : options_.frame_bytes_inference;
  return std::min<uint32_t>(want, max_send_bytes_ - static_cast<uint32_t>(FrameSealer::FrameBytes(0)));
}

bool VerbsInferenceLink::CanPostData() const {
  return phase_ == kRunning && qp_ != nullptr && credits_.CanSendData() && tracker_.free_slots() > 0 && tracker_.sq_room() > 0 &&
         wrs_.size() < wrs_.capacity();
}

Status VerbsInferenceLink::AppendFrame(uint8_t type, uint8_t cls, uint8_t flags, uint32_t stream, uint16_t kind, uint32_t tenant,
                                       uint32_t message_length, const BytePart* parts, size_t part_count, size_t payload_length, bool force_signal,
                                       uint64_t* seq) {
  const uint32_t slot = tracker_.TakeSlot();
  if (slot == SendTracker::kNoSlot) return Status::Error(codes::kInternal, "no free send slot");
  uint8_t* out = send_mem_ + size_t(slot) * slot_bytes_;
  Status st = sealer_->Seal(type, cls, flags, stream, kind, tenant, message_length, parts, part_count, payload_length, out);
  if (!st.ok()) {
    tracker_.ReturnSlot(slot);
    return st;
  }
  const uint32_t length = static_cast<uint32_t>(FrameSealer::FrameBytes(payload_length));
  const bool inline_send = length <= max_inline_;
  bool signal = false;
  *seq = tracker_.Record(SendTracker::kData, inline_send ? SendTracker::kNoSlot : slot, force_signal, &signal);
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(out);
  sge.length = length;
  sge.lkey = send_mr_->lkey;
  sges_.push_back(sge);
  ibv_send_wr wr{};
  wr.wr_id = *seq;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND_WITH_IMM;
  wr.send_flags = (signal ? IBV_SEND_SIGNALED : 0) | (inline_send ? IBV_SEND_INLINE : 0);
  wr.imm_data = htonl(credits_.SpendForData());
  wrs_.push_back(wr);
  slot_of_wr_.push_back(inline_send ? slot : SendTracker::kNoSlot);
  stats_.requests++;
  if (signal) stats_.signalled++;
  if (inline_send) stats_.inlined++;
  counters_->Add(kLinkFramesSent);
  counters_->Add(kLinkBytesSent, length);
  return Status();
}

void VerbsInferenceLink::AppendCreditMessage() {
  bool signal = false;
  const uint64_t seq = tracker_.Record(SendTracker::kCredit, SendTracker::kNoSlot, false, &signal);
  sges_.push_back(ibv_sge{});
  ibv_send_wr wr{};
  wr.wr_id = seq;
  wr.num_sge = 0;
  wr.opcode = IBV_WR_SEND_WITH_IMM;
  wr.send_flags = signal ? IBV_SEND_SIGNALED : 0;
  wr.imm_data = htonl(credits_.SpendForCreditMessage());
  wrs_.push_back(wr);
  slot_of_wr_.push_back(SendTracker::kNoSlot);
  stats_.requests++;
  if (signal) stats_.signalled++;
}

bool VerbsInferenceLink::PostBatch() {
  if (wrs_.empty()) return state_ != kClosed;
  if (!(wrs_.back().send_flags & IBV_SEND_SIGNALED) && tracker_.TailNeedsSignal()) {
    wrs_.back().send_flags |= IBV_SEND_SIGNALED;
    tracker_.Signalled();
    stats_.signalled++;
  }
  for (size_t i = 0; i < wrs_.size(); i++) {
    wrs_[i].sg_list = wrs_[i].num_sge > 0 ? &sges_[i] : nullptr;
    wrs_[i].next = i + 1 < wrs_.size() ? &wrs_[i + 1] : nullptr;
  }
  ibv_send_wr* bad = nullptr;
  const int rc = ibv_post_send(qp_, wrs_.data(), &bad);
  stats_.post_calls++;
  // Inline sends copied their bytes into the queue: their slots are free again.
  for (uint32_t s : slot_of_wr_) {
    if (s != SendTracker::kNoSlot) tracker_.ReturnSlot(s);
  }
  wrs_.clear();
  sges_.clear();
  slot_of_wr_.clear();
  if (rc != 0) {
    Fail(Status::Error(rdma_codes::kVerbs, ErrnoText("ibv_post_send", rc)));
    return false;
  }
  return true;
}

Status VerbsInferenceLink::Send(const OutboundMessage& msg, bool* below_high_water) {
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
  const uint32_t limit = phase_ == kRunning ? FrameLimit(msg.cls) : 1;
  const uint64_t frames = total == 0 ? 1 : (total + limit - 1) / limit;
  const bool idle = queue_.empty() && !close_wanted_;
  const uint64_t room = std::min<uint64_t>({credits_.send_credits(), tracker_.free_slots(), tracker_.sq_room(), wrs_.capacity() - wrs_.size()});
  if (idle && phase_ == kRunning && frames <= room && !sealer_->RekeyDue(limit)) {
    // Room for the whole message now: seal straight from the caller's bytes into the send
    // slots (the only copy) and post its frames as one chain.
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
      uint64_t seq;
      Status st = AppendFrame(kFrameData, msg.cls, flags, msg.stream_id, msg.kind, msg.tenant, static_cast<uint32_t>(total), slice_.data(), slice_.size(),
                              static_cast<size_t>(chunk), false, &seq);
      if (!st.ok()) {
        Fail(st);
        return st;
      }
      offset += chunk;
    } while (offset < total);
    RecordSchedulingDelay(counters_, msg.cls, 0);  // sealed at once: no wait
    counters_->Add(kLinkMessagesSent);
    if (!PostBatch()) return Status::Error(codes::kLinkClosed, "link " + link_id_hex_ + " failed while sending");
  } else {
    queue_.Push(msg, total);
    Pump();
  }
  if (state_ != kOpen) return Status::Error(codes::kLinkClosed, "link " + link_id_hex_ + " failed while sending");
  UpdateQueuedGauge();
  *below_high_water = queue_.bytes() < options_.high_water_bytes;
  if (!*below_high_water) need_drain_ = true;
  return Status();
}

void VerbsInferenceLink::Pump() {
  if (state_ == kClosed || phase_ != kRunning) return;
  while (state_ != kClosed) {
    OutboundQueue::Entry* front = queue_.Front();
    if (front == nullptr || !CanPostData()) break;
    OutboundQueue::Entry& m = *front;
    const uint32_t chunk = std::min<uint32_t>(m.size - m.offset, FrameLimit(m.cls));
    if (sealer_->RekeyDue(chunk)) {
      // REKEY under the current key, in its own slot; the frame follows when room allows.
      const uint32_t slot = tracker_.TakeSlot();
      uint8_t* out = send_mem_ + size_t(slot) * slot_bytes_;
      Status st = sealer_->SealRekey(out);
      if (!st.ok()) {
        tracker_.ReturnSlot(slot);
        Fail(st);
        return;
      }
      bool signal = false;
      const uint64_t seq = tracker_.Record(SendTracker::kData, slot, false, &signal);
      sges_.push_back(ibv_sge{reinterpret_cast<uintptr_t>(out), static_cast<uint32_t>(FrameSealer::kRekeyFrameBytes), send_mr_->lkey});
      ibv_send_wr wr{};
      wr.wr_id = seq;
      wr.num_sge = 1;
      wr.opcode = IBV_WR_SEND_WITH_IMM;
      wr.send_flags = signal ? IBV_SEND_SIGNALED : 0;
      wr.imm_data = htonl(credits_.SpendForData());
      wrs_.push_back(wr);
      slot_of_wr_.push_back(SendTracker::kNoSlot);
      counters_->Add(kLinkRekeys);
      counters_->Add(kLinkFramesSent);
      continue;
    }
    if (m.offset == 0) RecordSchedulingDelay(counters_, m.cls, MonotonicNs() - m.queued_ns);
    const uint8_t flags = (m.offset == 0 ? kFlagFirst : 0) | (m.offset + chunk == m.size ? kFlagLast : 0);
    const BytePart part{m.body.data() + m.offset, chunk};
    uint64_t seq;
    Status st = AppendFrame(kFrameData, m.cls, flags, m.stream_id, m.kind, m.tenant, m.size, &part, 1, chunk, false, &seq);
    if (!st.ok()) {
      Fail(st);
      return;
    }
    if (queue_.Consume(chunk)) counters_->Add(kLinkMessagesSent);
  }
  if (!PostBatch()) return;
  UpdateQueuedGauge();
  if (state_ == kClosing && close_wanted_) {
    if (!close_posted_) TrySendClose();
    return;
  }
  if (need_drain_ && state_ == kOpen && queue_.bytes() <= options_.high_water_bytes / 2) {
    need_drain_ = false;
    handler_->OnLinkDrain(this);
  }
}

bool VerbsInferenceLink::TrySendClose() {
  if (close_posted_ || state_ == kClosed) return false;
  if (!queue_.empty()) return false;  // Pump sends them first, then calls here
  if (phase_ != kRunning || !CanPostData()) return false;  // completions retry; the close timer bounds it
  std::string text = close_reason_;
  if (text.size() > 240) {
    size_t end = 240;
    while (end > 0 && (static_cast<uint8_t>(text[end]) & 0xc0) == 0x80) end--;
    text.resize(end);
  }
  uint8_t payload[242];
  payload[0] = static_cast<uint8_t>(close_code_ >> 8);
  payload[1] = static_cast<uint8_t>(close_code_);
  std::memcpy(payload + 2, text.data(), text.size());
  const BytePart part{payload, 2 + text.size()};
  uint64_t seq;
  Status st = AppendFrame(kFrameClose, kClassControl, kFlagFirst | kFlagLast, 0, 0, 0, static_cast<uint32_t>(part.size), &part, 1, part.size, true, &seq);
  if (!st.ok() || !PostBatch()) {
    Finish();
    return false;
  }
  close_posted_ = true;
  close_seq_ = seq;
  return true;
}

void VerbsInferenceLink::Close(uint16_t code, const std::string& reason) {
  if (state_ != kOpen) return;
  state_ = kClosing;
  info_ = LinkCloseInfo{LinkCloseInfo::kLocal, code, reason, nullptr};
  info_set_ = true;
  close_wanted_ = true;
  close_code_ = code;
  close_reason_ = reason;
  close_timer_ = loop_->AddTimer(options_.close_timeout_ms, [this] {
    close_timer_ = EventLoop::kNoTimer;
    Finish();
  });
  if (phase_ != kRunning) {
    // Nothing was ever sent over the queue pair: end now, on the next turn (the caller may be
    // iterating over the links).
    loop_->CancelTimer(close_timer_);
    close_timer_ = loop_->AddTimer(0, [this] {
      close_timer_ = EventLoop::kNoTimer;
      Finish();
    });
    return;
  }
  Pump();  // the queue first, then the close frame
}

void VerbsInferenceLink::FailFromDevice(const char* code, const std::string& message) { Fail(Status::Error(code, message)); }

void VerbsInferenceLink::Fail(const Status& status) {
  if (state_ == kClosed) return;
  const bool ending_cleanly = info_set_ && (info_.by == LinkCloseInfo::kPeer || close_delivered_);
  if (ending_cleanly) {
    Finish();
    return;
  }
  if (std::strncmp(status.code, "SLUICE_ERR_WIRE_", 16) == 0) counters_->Add(kLinkRejectedFrames);
  const uint16_t code = CloseCodeFor(status.code);
  info_ = LinkCloseInfo{LinkCloseInfo::kError, code, status.message, status.code};
  info_set_ = true;
  state_ = kClosing;
  reading_ = false;
  receiver_->Stop();
  queue_.Clear();
  const bool qp_usable = phase_ == kRunning && qp_ != nullptr && std::strncmp(status.code, "SLUICE_ERR_RDMA_", 16) != 0 &&
                         status.code != codes::kPeerGone && status.code != codes::kSystem;
  if (phase_ == kSetup && !side_gone_) {
    // Tell the peer why set-up failed (sealed CLOSE on the side channel), as refuseSetup does.
    std::string text = "RDMA set-up failed: " + status.message;
    if (text.size() > 240) text.resize(240);
    uint8_t payload[242];
    payload[0] = static_cast<uint8_t>(code >> 8);
    payload[1] = static_cast<uint8_t>(code);
    std::memcpy(payload + 2, text.data(), text.size());
    const size_t at = side_out_.size();
    side_out_.resize(at + FrameSealer::FrameBytes(2 + text.size()));
    const BytePart part{payload, 2 + text.size()};
    if (sealer_->Seal(kFrameClose, kClassControl, kFlagFirst | kFlagLast, 0, 0, 0, static_cast<uint32_t>(part.size), &part, 1, part.size,
                      side_out_.data() + at)
            .ok()) {
      FlushSide();
    }
    Teardown();
    return;
  }
  if (qp_usable) {
    close_wanted_ = true;
    close_code_ = code;
    close_reason_ = status.message;
    if (TrySendClose()) {
      if (close_timer_ == EventLoop::kNoTimer) close_timer_ = loop_->AddTimer(kTeardownGraceMs, [this] {
        close_timer_ = EventLoop::kNoTimer;
        Finish();
      });
      return;
    }
  }
  Finish();
}

void VerbsInferenceLink::Teardown() {
  if (state_ == kClosed) return;
  if (!side_shut_) {
    shutdown(fd_, SHUT_WR);
    side_shut_ = true;
  }
  if (side_gone_) {
    Finish();
    return;
  }
  if (teardown_timer_ == EventLoop::kNoTimer) {
    teardown_timer_ = loop_->AddTimer(kTeardownGraceMs, [this] {
      teardown_timer_ = EventLoop::kNoTimer;
      Finish();
    });
  }
}

void VerbsInferenceLink::Finish() {
  if (state_ == kClosed) return;
  if (!info_set_) {
    info_ = LinkCloseInfo{LinkCloseInfo::kError, kCloseInternalError, "peer " + remote_ + " on the " + options_.segment + " segment closed the connection",
                          codes::kPeerGone};
    info_set_ = true;
  } else if (info_.by == LinkCloseInfo::kLocal && !close_delivered_) {
    info_ = LinkCloseInfo{LinkCloseInfo::kError, kCloseInternalError, "close timed out: peer " + remote_ + " did not take the queued messages",
                          codes::kPeerGone};
  }
  state_ = kClosed;
  loop_->CancelTimer(setup_timer_);
  loop_->CancelTimer(close_timer_);
  loop_->CancelTimer(teardown_timer_);
  setup_timer_ = close_timer_ = teardown_timer_ = EventLoop::kNoTimer;
  loop_->Unwatch(fd_);
  close(fd_);
  // The queue pair, CQ, channel and pools go now (in-flight work is flushed, not reported).
  DestroyVerbs();
  queue_.Clear();
  UpdateQueuedGauge();
  counters_->Sub(kLinksOpen);
  counters_->Add(info_.by == LinkCloseInfo::kLocal ? kLinksClosedLocal : info_.by == LinkCloseInfo::kPeer ? kLinksClosedPeer : kLinksClosedError);
  handler_->OnLinkClosed(this, info_);
}

std::string VerbsInferenceLink::StatsJson() const {
  return "{\"trafficClass\":" + std::to_string(QueryTrafficClass()) + ",\"requests\":" + std::to_string(stats_.requests) +
         ",\"signalled\":" + std::to_string(stats_.signalled) + ",\"inlined\":" + std::to_string(stats_.inlined) +
         ",\"postCalls\":" + std::to_string(stats_.post_calls) + ",\"cqEvents\":" + std::to_string(stats_.cq_events) +
         ",\"busySpins\":" + std::to_string(stats_.busy_spins) + ",\"busyHits\":" + std::to_string(stats_.busy_hits) + ",\"maxInline\":" + std::to_string(max_inline_) + "}";
}

int VerbsInferenceLink::QueryTrafficClass() const {
  if (qp_ == nullptr) return -1;
  ibv_qp_attr attr{};
  ibv_qp_init_attr init{};
  if (ibv_query_qp(qp_, &attr, IBV_QP_AV, &init) != 0) return -1;
  return attr.ah_attr.grh.traffic_class;
}

void VerbsInferenceLink::UpdateQueuedGauge() {
  const uint64_t now = state_ == kClosed ? 0 : queue_.bytes();
  if (now > reported_queued_) counters_->Add(kLinkQueuedBytes, now - reported_queued_);
  else if (now < reported_queued_) counters_->Sub(kLinkQueuedBytes, reported_queued_ - now);
  reported_queued_ = now;
}

void VerbsInferenceLink::CountReceived() {
  const uint64_t f = receiver_->frames(), b = receiver_->bytes(), r = receiver_->rekeys();
  if (f != reported_recv_frames_) counters_->Add(kLinkFramesReceived, f - reported_recv_frames_);
  if (b != reported_recv_bytes_) counters_->Add(kLinkBytesReceived, b - reported_recv_bytes_);
  if (r != reported_rekeys_) counters_->Add(kLinkRekeys, r - reported_rekeys_);
  reported_recv_frames_ = f;
  reported_recv_bytes_ = b;
  reported_rekeys_ = r;
}

}  // namespace engine
}  // namespace sluice
