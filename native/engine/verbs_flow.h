// Sans-IO bookkeeping of an engine verbs link (verbs_link.cc): the credit protocol of
// native/verbs/connection.h (wire-compatible with the TypeScript RDMA link) and the send queue
// under selective signalling. No verbs calls here, so both are unit-tested on a host without
// RDMA (native/engine/test/verbs_flow_tests.cc).
//
// Credits: the receiver grants `recv_window`; every data SEND spends one; credits come back in
// the immediate of the peer's data SENDs or in zero-length credit messages (bit 31 of the
// immediate), each carrying at least a quarter of the window; at most kCtrlSlots of ours are
// outstanding. More credit back than SENDs outstanding is a protocol violation.
//
// Selective signalling: only every `interval`-th work request asks for a completion. An RC send
// queue completes in order, so a signalled completion also retires every unsignalled request
// posted before it: the tracker keeps posted requests in a FIFO and releases their send slots
// (and credit-message places) when a later signalled one completes. To never wait on a
// completion that was not asked for, a request is also signalled when it takes the last free
// slot or send-queue entry, and the last request of a flush is signalled (TailNeedsSignal) when
// fewer than `interval` slots (or queue entries) remain free or a credit message is uncovered.
#ifndef SLUICE_NATIVE_ENGINE_VERBS_FLOW_H_
#define SLUICE_NATIVE_ENGINE_VERBS_FLOW_H_

#include <cstdint>
#include <vector>

namespace sluice {
namespace engine {

constexpr uint32_t kVerbsImmCtrl = 0x80000000u;
constexpr uint32_t kVerbsImmCreditMask = 0x00ffffffu;
constexpr uint32_t kVerbsCtrlSlots = 4;

class VerbsCredits {
 public:
  enum class Arrival { kData, kCredit, kOverflow };
  void Init(uint32_t recv_window) {
    recv_window_ = recv_window;
    threshold_ = (recv_window + 3) / 4;
  }
  void Connect(uint32_t remote_window) {
    send_credits_ = remote_window;
    uncredited_ = 0;
  }
  bool CanSendData() const { return send_credits_ > 0; }
  // A data SEND is posted: returns the credits to piggyback in its immediate.
  uint32_t SpendForData() {
    const uint32_t give = TakeOwed();
    send_credits_--;
    uncredited_++;
    return give;
  }
  // A receive completed with immediate `imm`: credits back (checked), and whether it held data.
  Arrival OnImmediate(uint32_t imm) {
    const uint32_t credits = imm & kVerbsImmCreditMask;
    if (credits > uncredited_) return Arrival::kOverflow;
    send_credits_ += credits;
    uncredited_ -= credits;
    return (imm & kVerbsImmCtrl) != 0 ? Arrival::kCredit : Arrival::kData;
  }
  // A data receive was reposted: its credit is owed to the peer.
  void Reposted() { owed_++; }
  // Whether a credit message should go now (enough owed, a place free).
  bool CreditMessageDue() const { return owed_ >= threshold_ && ctrl_in_flight_ < kVerbsCtrlSlots; }
  // A credit message is posted: the immediate it carries.
  uint32_t SpendForCreditMessage() {
    ctrl_in_flight_++;
    ctrl_sent_++;
    return kVerbsImmCtrl | TakeOwed();
  }
  void CreditMessageRetired() {
    if (ctrl_in_flight_ > 0) ctrl_in_flight_--;
  }
  uint32_t send_credits() const { return send_credits_; }
  uint32_t uncredited() const { return uncredited_; }
  uint32_t owed() const { return owed_; }
  uint32_t ctrl_in_flight() const { return ctrl_in_flight_; }
  uint64_t ctrl_sent() const { return ctrl_sent_; }

 private:
  uint32_t TakeOwed() {
    const uint32_t give = owed_ < kVerbsImmCreditMask ? owed_ : kVerbsImmCreditMask;
    owed_ -= give;
    return give;
  }
  uint32_t recv_window_ = 0;
  uint32_t threshold_ = 1;
  uint32_t send_credits_ = 0;
  uint32_t uncredited_ = 0;  // send_credits_ + uncredited_ == the peer's window
  uint32_t owed_ = 0;
  uint32_t ctrl_in_flight_ = 0;
  uint64_t ctrl_sent_ = 0;
};

class SendTracker {
 public:
  static constexpr uint32_t kNoSlot = 0xffffffffu;
  enum Kind : uint8_t { kData = 1, kCredit = 2 };
  struct Retired {
    uint32_t slots = 0;    // send slots freed
    uint32_t credits = 0;  // credit messages retired
    uint32_t requests = 0;
  };

  // `slots` send slots, a send queue of `sq_depth` entries, a completion every `interval`.
  void Init(uint32_t slots, uint32_t sq_depth, uint32_t interval) {
    slots_ = slots;
    sq_depth_ = sq_depth;
    interval_ = interval == 0 ? 1 : interval;
    free_.clear();
    for (uint32_t s = slots; s > 0; s--) free_.push_back(s - 1);
    ring_.assign(sq_depth, Entry{});
    head_ = tail_ = 0;
    since_signal_ = 0;
    uncovered_credit_ = 0;
  }
  uint32_t free_slots() const { return static_cast<uint32_t>(free_.size()); }
  uint32_t outstanding() const { return static_cast<uint32_t>(tail_ - head_); }
  uint32_t sq_room() const { return sq_depth_ - outstanding(); }
  uint32_t interval() const { return interval_; }

  // A free send slot to seal into, or kNoSlot.
  uint32_t TakeSlot() {
    if (free_.empty()) return kNoSlot;
    const uint32_t s = free_.back();
    free_.pop_back();
    return s;
  }
  // Gives back a slot taken but not posted, or one whose bytes went inline (copied at post).
  void ReturnSlot(uint32_t slot) { free_.push_back(slot); }

  // Records a request about to be posted: its wr_id (a sequence number) and whether to signal
  // it (every `interval`-th, the one that takes the last free slot or queue entry, or `force`).
  // `slot` is held until the request retires (kNoSlot for inline and credit requests).
  uint64_t Record(Kind kind, uint32_t slot, bool force, bool* signal) {
    const uint64_t seq = tail_++;
    ring_[seq % sq_depth_] = Entry{kind, slot};
    since_signal_++;
    if (kind == kCredit) uncovered_credit_++;
    const bool s = force || since_signal_ >= interval_ || free_.empty() || sq_room() == 0;
    if (s) Signalled();
    *signal = s;
    return seq;
  }
  // At the end of a flush, whether its last (unsignalled) request must be signalled after all:
  // fewer than `interval` slots or queue entries are left, or a credit message is uncovered, so
  // waiting for the interval could wait forever on an idle link.
  bool TailNeedsSignal() const {
    if (since_signal_ == 0) return false;
    return free_.size() < interval_ || sq_room() < interval_ || uncovered_credit_ > 0;
  }
  void Signalled() {
    since_signal_ = 0;
    uncovered_credit_ = 0;
  }

  // A signalled request completed: retires it and everything posted before it. False when
  // `seq` is not outstanding (a completion this tracker never asked for).
  bool Complete(uint64_t seq, Retired* out) {
    if (seq < head_ || seq >= tail_) return false;
    while (head_ <= seq) {
      const Entry& e = ring_[head_ % sq_depth_];
      if (e.slot != kNoSlot) {
        free_.push_back(e.slot);
        out->slots++;
      }
      if (e.kind == kCredit) out->credits++;
      out->requests++;
      head_++;
    }
    return true;
  }

  // After a failure nothing completes normally: forget what is outstanding, free every slot.
  void Reset() { Init(slots_, sq_depth_, interval_); }

 private:
  struct Entry {
    Kind kind = kData;
    uint32_t slot = kNoSlot;
  };
  uint32_t slots_ = 0, sq_depth_ = 1, interval_ = 1;
  std::vector<uint32_t> free_;
  std::vector<Entry> ring_;
  uint64_t head_ = 0, tail_ = 0;
  uint32_t since_signal_ = 0;
  uint32_t uncovered_credit_ = 0;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_VERBS_FLOW_H_
