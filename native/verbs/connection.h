// One reliable-connected queue pair to one peer, with its completion queue and channel, two
// registered buffer pools owned by the caller, and credit-based flow control.
//
// Data moves as SEND_WITH_IMM into receive buffers the peer has posted; nothing is registered
// for remote access. The receiver grants `recv_window` credits; every data SEND spends one and
// the receiver hands credits back as it reposts buffers, piggybacked on its own data SENDs (in
// the immediate) or, when it has nothing to send, in zero-length credit messages. A credit
// message carries at least a quarter of the window, so at most four can be outstanding; each side
// posts window + kCtrlSlots receives, and so a sender never overruns the receiver.
#pragma once

#include <infiniband/verbs.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "verbs/device.h"

namespace sluice::verbs {

struct ConnectionOptions {
  uint32_t send_slots = 16;   // data SENDs in flight; each owns one slot of send memory
  uint32_t recv_window = 16;  // credits granted to the peer
  uint32_t slot_bytes = 256 * 1024;
  uint8_t* send_mem = nullptr;  // caller-owned, send_slots * slot_bytes; registered read-only
  size_t send_len = 0;
  uint8_t* recv_mem = nullptr;  // caller-owned, (recv_window + kCtrlSlots) * slot_bytes; local write only
  size_t recv_len = 0;
  uint8_t timeout = 16;    // local ACK timeout exponent: 4.096 us * 2^timeout
  uint8_t retry_cnt = 6;   // transport retries before IBV_WC_RETRY_EXC_ERR (rxe: 7 = forever)
  uint8_t traffic_class = 0;  // GRH traffic class (DSCP << 2) of every packet of this queue pair
  uint32_t* counters = nullptr;  // caller-owned, kCounterCount entries, mirrored after every call
};

// What the peer needs to reach this queue pair (exchanged over the side channel).
struct Endpoint {
  uint32_t qpn = 0;
  uint32_t psn = 0;
  uint8_t gid[16] = {};
  uint16_t lid = 0;
  uint32_t mtu = 0;  // bytes
};

enum CompletionKind : uint32_t {
  kSendDone = 1,       // slot: send slot now free
  kRecv = 2,           // slot: receive slot holding `length` bytes until repost(slot)
  kError = 3,          // status: ibv_wc_status; slot: wr kind << 24 | slot; length: vendor_err
  kProtocolError = 4,  // the peer sent something this protocol never sends (status: reason)
  kCredit = 5,         // a credit message arrived (length: credits it returned); sends may resume
};

struct Completion {
  uint32_t kind;
  uint32_t slot;
  uint32_t length;
  uint32_t status;
};

enum ProtocolErrorReason : uint32_t { kNoImmediate = 1, kUnexpectedOpcode = 2, kCreditOverflow = 3 };

enum Counter : uint32_t {
  kSendCredits = 0,   // data SENDs the peer has room for now
  kSendsInFlight,     // data SENDs posted, not yet completed
  kCreditsOwed,       // reposted receives not yet reported to the peer
  kCtrlSent,          // credit messages sent
  kCtrlReceived,      // credit messages received
  kRecvsHeld,         // receive slots handed out and not yet reposted
  kFailed,            // 1 once a completion failed (the QP is in error)
  kCounterCount,
};

class Connection {
 public:
  static constexpr uint32_t kCtrlSlots = 4;

  Connection(std::shared_ptr<Device> device, const ConnectionOptions& options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  Endpoint local() const;
  // Moves the queue pair to RTR and RTS towards `remote`; the peer granted `remote_window` credits.
  void connect(const Endpoint& remote, uint32_t remote_window);

  // The GRH traffic class the queue pair carries (ibv_query_qp); -1 when it cannot be read.
  int query_traffic_class() const;
  // The completion channel's file descriptor (non-blocking): readable when completions arrive.
  int fd() const { return channel_->fd; }
  // Consumes pending channel events, acknowledges them in batches and re-arms the CQ. Call when
  // fd() is readable, then poll() until it returns less than `max`.
  void consume_events();
  // Drains up to `max` completions the caller must see; credit traffic is handled here.
  size_t poll(Completion* out, size_t max);
  // Sends `length` bytes from send slot `slot`. The caller checks credits and slot ownership first.
  void post_send(uint32_t slot, uint32_t length);
  // Gives a receive slot back to the queue pair once its contents have been consumed.
  void repost(uint32_t slot);

  // After an error outside a completion (a failed poll, re-arm or repost): no more sends, and
  // the counters say so. The owner reports the error and closes the connection.
  void mark_failed();

  // Test-only fault injection (the binding allows it only with SLUICE_VERBS_FAULT_INJECTION=1):
  // the next call of that kind fails as the verbs call would. Moving a QP to the error state
  // only yields flush completions, so these paths cannot be reached otherwise.
  enum Fault : uint32_t { kFaultNone = 0, kFaultPoll = 1, kFaultNotify = 2, kFaultPostRecv = 3 };
  void inject_fault(uint32_t fault);

  uint32_t send_credits() const { return send_credits_; }
  uint32_t slot_bytes() const { return opts_.slot_bytes; }
  const Device& device() const { return *device_; }

  // Live objects across all connections (tests check that failures free everything).
  static uint32_t live_count();

 private:
  void post_recv(uint32_t slot);
  void post_credit_message();
  void maybe_send_credits();
  void publish();
  void destroy();

  std::shared_ptr<Device> device_;
  ConnectionOptions opts_;
  ibv_comp_channel* channel_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
  ibv_mr* send_mr_ = nullptr;
  ibv_mr* recv_mr_ = nullptr;
  uint32_t psn_ = 0;
  uint32_t unacked_events_ = 0;
  uint32_t send_credits_ = 0;
  uint32_t remote_window_ = 0;
  uint32_t uncredited_ = 0;  // data SENDs whose credit has not come back: send_credits_ + uncredited_ == remote_window_
  uint32_t sends_in_flight_ = 0;
  uint32_t credits_owed_ = 0;
  uint32_t credit_threshold_ = 1;
  uint32_t ctrl_in_flight_ = 0;
  uint32_t ctrl_sent_ = 0;
  uint32_t ctrl_received_ = 0;
  uint32_t recvs_held_ = 0;
  bool failed_ = false;
  bool connected_ = false;
  uint32_t fault_ = kFaultNone;
};

}  // namespace sluice::verbs
