#include "verbs/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "verbs/error.h"

namespace sluice::verbs {

namespace {

std::atomic<uint32_t> g_live{0};

// wr_id = kind << 32 | slot: what completed and which buffer it used.
enum WrKind : uint64_t { kWrData = 1, kWrCtrl = 2, kWrRecv = 3 };
constexpr uint64_t wr_id(WrKind kind, uint32_t slot) { return (static_cast<uint64_t>(kind) << 32) | slot; }
constexpr WrKind wr_kind(uint64_t id) { return static_cast<WrKind>(id >> 32); }
constexpr uint32_t wr_slot(uint64_t id) { return static_cast<uint32_t>(id & 0xffffffffu); }

// Immediate data: bit 31 marks a credit-only message, the low 24 bits carry returned credits.
constexpr uint32_t kImmCtrl = 0x80000000u;
constexpr uint32_t kImmCreditMask = 0x00ffffffu;

constexpr uint32_t kAckBatch = 32;

ibv_mtu mtu_enum(uint32_t bytes) {
  if (bytes >= 4096) return IBV_MTU_4096;
  if (bytes >= 2048) return IBV_MTU_2048;
  if (bytes >= 1024) return IBV_MTU_1024;
  if (bytes >= 512) return IBV_MTU_512;
  return IBV_MTU_256;
}

[[noreturn]] void fail(const char* what, int err) { throw Error("SLUICE_ERR_RDMA_VERBS", errno_text(what, err)); }

}  // namespace

uint32_t Connection::live_count() { return g_live.load(); }

Connection::Connection(std::shared_ptr<Device> device, const ConnectionOptions& options) : device_(std::move(device)), opts_(options) {
  // Checked in every build (a Release build drops assert): a bad option is an error, not UB.
  if (opts_.send_slots == 0 || opts_.recv_window == 0 || opts_.slot_bytes == 0 || opts_.send_mem == nullptr ||
      opts_.send_len < size_t(opts_.send_slots) * opts_.slot_bytes || opts_.recv_mem == nullptr ||
      opts_.recv_len < size_t(opts_.recv_window + kCtrlSlots) * opts_.slot_bytes || opts_.counters == nullptr) {
    throw Error("SLUICE_ERR_RDMA_INVALID", "connection options do not fit the registered memory");
  }
  credit_threshold_ = (opts_.recv_window + 3) / 4;
  try {
    channel_ = ibv_create_comp_channel(device_->context());
    if (channel_ == nullptr) fail("ibv_create_comp_channel", errno);
    int fl = fcntl(channel_->fd, F_GETFL);
    if (fl < 0 || fcntl(channel_->fd, F_SETFL, fl | O_NONBLOCK) < 0) fail("fcntl(O_NONBLOCK) on the completion channel", errno);

    const uint32_t send_wr = opts_.send_slots + kCtrlSlots;
    const uint32_t recv_wr = opts_.recv_window + kCtrlSlots;
    cq_ = ibv_create_cq(device_->context(), static_cast<int>(send_wr + recv_wr), nullptr, channel_, 0);
    if (cq_ == nullptr) fail("ibv_create_cq", errno);

    // Send memory is only ever read by the local HCA; receive memory only written by it.
    send_mr_ = ibv_reg_mr(device_->pd(), opts_.send_mem, opts_.send_len, 0);
    if (send_mr_ == nullptr) fail("ibv_reg_mr (send pool)", errno);
    recv_mr_ = ibv_reg_mr(device_->pd(), opts_.recv_mem, opts_.recv_len, IBV_ACCESS_LOCAL_WRITE);
    if (recv_mr_ == nullptr) fail("ibv_reg_mr (receive pool)", errno);

    ibv_qp_init_attr init{};
    init.send_cq = cq_;
    init.recv_cq = cq_;
    init.qp_type = IBV_QPT_RC;
    init.sq_sig_all = 1;
    init.cap.max_send_wr = send_wr;
    init.cap.max_recv_wr = recv_wr;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    qp_ = ibv_create_qp(device_->pd(), &init);
    if (qp_ == nullptr) fail("ibv_create_qp", errno);

    ibv_qp_attr attr{};
    attr.qp_state = IBV_QPS_INIT;
    attr.pkey_index = 0;
    attr.port_num = device_->port();
    attr.qp_access_flags = 0;  // no remote read, write or atomics
    if (int rc = ibv_modify_qp(qp_, &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS); rc != 0) {
      fail("ibv_modify_qp(INIT)", rc);
    }
    for (uint32_t s = 0; s < recv_wr; s++) post_recv(s);
    if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) fail("ibv_req_notify_cq", rc);
    if (getrandom(&psn_, sizeof psn_, 0) != sizeof psn_) psn_ = 0x5a5a5a;
    psn_ &= 0xffffff;
  } catch (...) {
    destroy();
    throw;
  }
  g_live++;
  publish();
}

Connection::~Connection() {
  destroy();
  g_live--;
}

void Connection::destroy() {
  // Reverse order of creation; destroying the QP first flushes its work requests.
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
}

Endpoint Connection::local() const {
  Endpoint e;
  e.qpn = qp_->qp_num;
  e.psn = psn_;
  std::memcpy(e.gid, device_->gid().raw, 16);
  e.lid = device_->lid();
  e.mtu = mtu_bytes(device_->active_mtu());
  return e;
}

void Connection::connect(const Endpoint& remote, uint32_t remote_window) {
  if (connected_) throw Error("SLUICE_ERR_RDMA_INVALID", "the queue pair is already connected");
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu = mtu_enum(std::min(remote.mtu, mtu_bytes(device_->active_mtu())));
  attr.dest_qp_num = remote.qpn;
  attr.rq_psn = remote.psn;
  attr.max_dest_rd_atomic = 0;
  attr.min_rnr_timer = 12;
  attr.ah_attr.port_num = device_->port();
  attr.ah_attr.dlid = remote.lid;
  attr.ah_attr.is_global = 1;
  std::memcpy(attr.ah_attr.grh.dgid.raw, remote.gid, 16);
  attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(device_->gid_index());
  attr.ah_attr.grh.hop_limit = 64;
  attr.ah_attr.grh.traffic_class = opts_.traffic_class;
  if (int rc = ibv_modify_qp(qp_, &attr,
                             IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
      rc != 0) {
    fail("ibv_modify_qp(RTR)", rc);
  }
  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = opts_.timeout;
  attr.retry_cnt = opts_.retry_cnt;
  // Flow control guarantees a posted receive for every SEND: an RNR NAK is a bug, fail fast.
  attr.rnr_retry = 0;
  attr.sq_psn = psn_;
  attr.max_rd_atomic = 0;
  if (int rc = ibv_modify_qp(qp_, &attr,
                             IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                                 IBV_QP_MAX_QP_RD_ATOMIC);
      rc != 0) {
    fail("ibv_modify_qp(RTS)", rc);
  }
  send_credits_ = remote_window;
  remote_window_ = remote_window;
  connected_ = true;
  publish();
}

void Connection::post_recv(uint32_t slot) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(opts_.recv_mem) + uint64_t(slot) * opts_.slot_bytes;
  sge.length = opts_.slot_bytes;
  sge.lkey = recv_mr_->lkey;
  ibv_recv_wr wr{};
  wr.wr_id = wr_id(kWrRecv, slot);
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (fault_ == kFaultPostRecv) {
    fault_ = kFaultNone;
    fail("ibv_post_recv", ENOMEM);
  }
  if (int rc = ibv_post_recv(qp_, &wr, &bad); rc != 0) fail("ibv_post_recv", rc);
}

void Connection::post_send(uint32_t slot, uint32_t length) {
  if (!connected_ || slot >= opts_.send_slots || length > opts_.slot_bytes) {
    throw Error("SLUICE_ERR_RDMA_INVALID", "post_send: not connected, or slot/length out of range");
  }
  if (failed_) throw Error("SLUICE_ERR_RDMA_LINK_FAILED", "the queue pair has failed; no more sends");
  if (send_credits_ == 0) throw Error("SLUICE_ERR_RDMA_NO_CREDIT", "no send credit: the peer has no posted receive");
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(opts_.send_mem) + uint64_t(slot) * opts_.slot_bytes;
  sge.length = length;
  sge.lkey = send_mr_->lkey;
  const uint32_t credits = std::min(credits_owed_, kImmCreditMask);
  ibv_send_wr wr{};
  wr.wr_id = wr_id(kWrData, slot);
  wr.sg_list = &sge;
  wr.num_sge = length > 0 ? 1 : 0;
  wr.opcode = IBV_WR_SEND_WITH_IMM;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.imm_data = htonl(credits);
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(qp_, &wr, &bad); rc != 0) fail("ibv_post_send", rc);
  credits_owed_ -= credits;
  send_credits_--;
  uncredited_++;
  sends_in_flight_++;
  publish();
}

void Connection::post_credit_message() {
  const uint32_t credits = std::min(credits_owed_, kImmCreditMask);
  ibv_send_wr wr{};
  wr.wr_id = wr_id(kWrCtrl, 0);
  wr.num_sge = 0;
  wr.opcode = IBV_WR_SEND_WITH_IMM;
  wr.send_flags = IBV_SEND_SIGNALED;
  wr.imm_data = htonl(kImmCtrl | credits);
  ibv_send_wr* bad = nullptr;
  if (int rc = ibv_post_send(qp_, &wr, &bad); rc != 0) fail("ibv_post_send (credit message)", rc);
  credits_owed_ -= credits;
  ctrl_in_flight_++;
  ctrl_sent_++;
}

void Connection::maybe_send_credits() {
  if (!connected_ || failed_) return;
  if (credits_owed_ >= credit_threshold_ && ctrl_in_flight_ < kCtrlSlots) post_credit_message();
}

void Connection::repost(uint32_t slot) {
  if (slot >= opts_.recv_window + kCtrlSlots || recvs_held_ == 0) {
    throw Error("SLUICE_ERR_RDMA_INVALID", "repost: slot out of range, or no receive is held");
  }
  recvs_held_--;
  if (failed_) {
    publish();
    return;
  }
  post_recv(slot);
  credits_owed_++;
  maybe_send_credits();
  publish();
}

void Connection::consume_events() {
  for (;;) {
    ibv_cq* cq = nullptr;
    void* ctx = nullptr;
    if (ibv_get_cq_event(channel_, &cq, &ctx) != 0) break;  // EAGAIN: no more events
    unacked_events_++;
  }
  if (unacked_events_ >= kAckBatch) {
    ibv_ack_cq_events(cq_, unacked_events_);
    unacked_events_ = 0;
  }
  // Re-arm before draining, so a completion that lands after the drain raises a new event.
  if (fault_ == kFaultNotify) {
    fault_ = kFaultNone;
    fail("ibv_req_notify_cq", EIO);
  }
  if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) fail("ibv_req_notify_cq", rc);
}

size_t Connection::poll(Completion* out, size_t max) {
  size_t n = 0;
  ibv_wc wcs[32];
  while (n < max) {
    const int want = static_cast<int>(std::min<size_t>(32, max - n));
    int got = ibv_poll_cq(cq_, want, wcs);
    if (fault_ == kFaultPoll && got > 0) {
      fault_ = kFaultNone;
      got = -1;  // as if the CQ broke with completions in it (they are lost with the connection)
    }
    if (got < 0) fail("ibv_poll_cq", EIO);
    if (got == 0) break;
    for (int i = 0; i < got; i++) {
      const ibv_wc& wc = wcs[i];
      const WrKind kind = wr_kind(wc.wr_id);
      const uint32_t slot = wr_slot(wc.wr_id);
      if (wc.status != IBV_WC_SUCCESS) {
        if (kind == kWrData) sends_in_flight_--;
        if (kind == kWrCtrl) ctrl_in_flight_--;
        // After the first failure the QP flushes everything posted: report the cause once.
        if (!failed_) {
          failed_ = true;
          out[n++] = {kError, (static_cast<uint32_t>(kind) << 24) | slot, wc.vendor_err, static_cast<uint32_t>(wc.status)};
        }
        continue;
      }
      switch (kind) {
        case kWrData:
          sends_in_flight_--;
          out[n++] = {kSendDone, slot, 0, 0};
          break;
        case kWrCtrl:
          ctrl_in_flight_--;
          break;
        case kWrRecv: {
          if (wc.opcode != IBV_WC_RECV) {
            failed_ = true;
            out[n++] = {kProtocolError, slot, 0, kUnexpectedOpcode};
            break;
          }
          if ((wc.wc_flags & IBV_WC_WITH_IMM) == 0) {
            failed_ = true;
            out[n++] = {kProtocolError, slot, 0, kNoImmediate};
            break;
          }
          const uint32_t imm = ntohl(wc.imm_data);
          const uint32_t credits = imm & kImmCreditMask;
          if (credits > uncredited_) {  // more credit back than SENDs it could be for
            failed_ = true;
            out[n++] = {kProtocolError, slot, 0, kCreditOverflow};
            break;
          }
          send_credits_ += credits;
          uncredited_ -= credits;
          if ((imm & kImmCtrl) != 0) {
            ctrl_received_++;
            if (!failed_) post_recv(slot);  // a credit message holds no data: reuse the receive at once
            out[n++] = {kCredit, slot, credits, 0};
          } else {
            recvs_held_++;
            out[n++] = {kRecv, slot, wc.byte_len, 0};
          }
          break;
        }
      }
    }
  }
  maybe_send_credits();
  publish();
  return n;
}

void Connection::mark_failed() {
  failed_ = true;
  publish();
}

void Connection::inject_fault(uint32_t fault) {
  if (fault > kFaultPostRecv) throw Error("SLUICE_ERR_RDMA_INVALID", "unknown fault");
  fault_ = fault;
}

void Connection::publish() {
  uint32_t* c = opts_.counters;
  c[kSendCredits] = send_credits_;
  c[kSendsInFlight] = sends_in_flight_;
  c[kCreditsOwed] = credits_owed_;
  c[kCtrlSent] = ctrl_sent_;
  c[kCtrlReceived] = ctrl_received_;
  c[kRecvsHeld] = recvs_held_;
  c[kFailed] = failed_ ? 1 : 0;
}

int Connection::query_traffic_class() const {
  ibv_qp_attr attr{};
  ibv_qp_init_attr init{};
  if (ibv_query_qp(qp_, &attr, IBV_QP_AV, &init) != 0) return -1;
  return attr.ah_attr.grh.traffic_class;
}

}  // namespace sluice::verbs
