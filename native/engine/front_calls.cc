// See front_calls.h.
#include "engine/front_calls.h"

#include <cstring>
#include <string>

#include "engine/egress.h"
#include "engine/engine.h"

namespace sluice::engine {

namespace {
constexpr uint8_t kCancelCaller = 0;    // CancelReason.CALLER
constexpr uint8_t kCancelDeadline = 1;  // CancelReason.DEADLINE
uint32_t SlotOfStream(uint32_t stream) { return stream & 0xffffu; }
}  // namespace

FrontCalls::FrontCalls(EventLoop* loop, Engine* engine) : loop_(loop), engine_(engine) {}

FrontCalls::~FrontCalls() {
  for (auto& s : slots_) {
    if (s && s->timer != EventLoop::kNoTimer) loop_->CancelTimer(s->timer);
  }
}

bool FrontCalls::Submit(uint32_t slot, uint32_t dialer, uint32_t tenant, uint32_t timeout_ms, const uint8_t* header, size_t header_len,
                        const uint8_t* payload, size_t payload_len) {
  if (slot >= kMaxSlots || header_len > 0xffffffffu) return false;
  Slot* s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slots_.empty()) slots_.resize(kMaxSlots);
    if (!slots_[slot]) slots_[slot] = std::make_unique<Slot>();
    s = slots_[slot].get();
  }
  // The slot is JS's until the loop takes it from the queue: fill it outside the lock.
  s->bytes.resize(header_len + payload_len);
  if (header_len > 0) std::memcpy(s->bytes.data(), header, header_len);
  if (payload_len > 0) std::memcpy(s->bytes.data() + header_len, payload, payload_len);
  s->header_len = static_cast<uint32_t>(header_len);
  s->dialer = dialer;
  s->tenant = tenant;
  s->timeout_ms = timeout_ms;
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake = queue_.empty();
    queue_.push_back(Op{slot, false});
  }
  if (wake) loop_->Post([this] { RunQueue(); });
  return true;
}

void FrontCalls::Cancel(uint32_t slot) {
  if (slot >= kMaxSlots) return;
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake = queue_.empty();
    queue_.push_back(Op{slot, true});
  }
  if (wake) loop_->Post([this] { RunQueue(); });
}

void FrontCalls::RunQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    work_.swap(queue_);
  }
  for (const Op& op : work_) {
    Slot* s = slots_[op.slot].get();
    if (s == nullptr) continue;  // a cancel for a slot never submitted
    if (!op.cancel) {
      if (op.slot + 1 > high_slot_) high_slot_ = op.slot + 1;
      Start(op.slot);
    } else if (s->active) {
      SendCancel(s, op.slot, kCancelCaller);
      Complete(s, op.slot, FrontOutcome::kCancelled, nullptr, "cancelled", nullptr, 0);
    }
  }
  work_.clear();
}

void FrontCalls::Start(uint32_t index) {
  Slot* s = slots_[index].get();
  // JS resubmits a slot only after its done event; should it not, the earlier call ends here so
  // the books (inflight, timer) stay right.
  if (s->active) Complete(s, index, FrontOutcome::kCancelled, nullptr, "slot reused", nullptr, 0);
  InferenceLink* link = engine_->LinkOfDialer(s->dialer);
  s->active = true;
  inflight_++;
  // One generation per submission, counted the same way in JS: a late event of an earlier call
  // in this slot is told apart by it.
  s->generation = static_cast<uint16_t>((s->generation + 1) & 0x7fff);
  if (link == nullptr) {
    Complete(s, index, FrontOutcome::kNoLink, nullptr, "no open link", nullptr, 0);
    return;
  }
  s->stream = kStreamBit | (static_cast<uint32_t>(s->generation) << 16) | index;
  s->link = link->id();
  const BytePart parts[2] = {{s->bytes.data(), s->header_len}, {s->bytes.data() + s->header_len, s->bytes.size() - s->header_len}};
  OutboundMessage m;
  m.cls = kClassInference;
  m.kind = kKindCall;
  m.stream_id = s->stream;
  m.tenant = s->tenant;
  m.parts = parts;
  m.part_count = 2;
  bool below = true;
  Status st = link->Send(m, &below);
  if (!st.ok()) {
    s->link = 0;
    Complete(s, index, FrontOutcome::kSendFailed, st.code, st.message, nullptr, 0);
    return;
  }
  s->timer = loop_->AddTimer(s->timeout_ms, [this, index] {
    Slot* t = slots_[index].get();
    t->timer = EventLoop::kNoTimer;
    if (!t->active) return;
    SendCancel(t, index, kCancelDeadline);
    Complete(t, index, FrontOutcome::kDeadline, nullptr, "deadline", nullptr, 0);
  });
}

void FrontCalls::SendCancel(Slot* s, uint32_t /*index*/, uint8_t reason) {
  InferenceLink* link = s->link == 0 ? nullptr : engine_->FindLink(s->link);
  if (link == nullptr || s->bytes.empty()) return;
  // The CANCEL speaks the CALL's envelope version (its first byte).
  uint8_t body[4] = {s->bytes[0], reason, 0, 0};
  const BytePart part{body, sizeof body};
  OutboundMessage m;
  m.cls = kClassInference;
  m.kind = kKindCancel;
  m.stream_id = s->stream;
  m.tenant = s->tenant;
  m.parts = &part;
  m.part_count = 1;
  bool below = true;
  (void)link->Send(m, &below);
}

void FrontCalls::Complete(Slot* s, uint32_t index, FrontOutcome outcome, const char* code, std::string text, const uint8_t* body, size_t len) {
  s->active = false;
  s->link = 0;
  inflight_--;
  if (s->timer != EventLoop::kNoTimer) {
    loop_->CancelTimer(s->timer);
    s->timer = EventLoop::kNoTimer;
  }
  EngineEvent e;
  e.type = EventType::kFrontCallDone;
  e.a = index;
  e.b = static_cast<uint64_t>(outcome);
  e.c = s->generation;
  if (code != nullptr) e.code = code;
  e.text = std::move(text);
  if (body != nullptr) e.body.assign(body, body + len);
  // A full ring drops the event (counted): JS then fails the call at its own deadline guard.
  engine_->Emit(std::move(e));
}

bool FrontCalls::OnLinkMessage(InferenceLink* link, const InboundMessage& msg) {
  if (msg.cls != kClassInference || msg.kind != kKindReply || (msg.stream_id & kStreamBit) == 0) return false;
  const uint32_t index = SlotOfStream(msg.stream_id);
  if (index >= high_slot_) return true;
  Slot* s = slots_[index].get();
  // A late reply (the call timed out or was cancelled; the slot may carry another call now).
  if (s == nullptr || !s->active || s->link != link->id() || s->stream != msg.stream_id) return true;
  Complete(s, index, FrontOutcome::kReply, nullptr, std::string(), msg.body, msg.size);
  return true;
}

void FrontCalls::OnLinkClosed(InferenceLink* link, const LinkCloseInfo& info) {
  static const char* const kBy[] = {"local", "peer", "error"};
  const uint32_t id = link->id();
  for (uint32_t i = 0; i < high_slot_; i++) {
    Slot* s = slots_[i].get();
    if (s == nullptr || !s->active || s->link != id) continue;
    Complete(s, i, FrontOutcome::kLinkClosed, info.error_code, std::string(kBy[info.by <= 2 ? info.by : 2]) + ": " + info.reason, nullptr, 0);
  }
}

}  // namespace sluice::engine
