// Calls the TypeScript front (the REST/WebSocket gateway, and the gRPC calls the engine relays
// to TypeScript) sends on the engine's own inference links, so a node whose ingress runs on the
// engine keeps one set of links to each egress peer.
//
// JS builds the CALL envelope (the same bytes src/ingress/segment-call.ts builds for a TS link)
// and submits it in a request slot: an integer JS takes from its own free list. The bytes are
// copied into the slot's buffer (which keeps its capacity, so steady state does not allocate),
// the slot goes on a submission queue, and the loop sends the CALL on the dialer's link under a
// stream id that names the slot. Every submission ends in exactly one kFrontCallDone event (the
// REPLY's bytes, or why not: no link, link closed, deadline, cancelled, send refused); only then
// does JS reuse the slot. Cancel is queued behind submissions (FIFO), so a cancel never reaches
// a later call in the same slot.
//
// Stream ids: bit 31 set, bits 16..30 a per-slot generation, bits 0..15 the slot; the gRPC
// ingress's ids stay below bit 31 (grpc_ingress.cc), so both share a link without a map.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/event_loop.h"
#include "engine/inference_link.h"

namespace sluice::engine {

class Engine;

// kFrontCallDone's `b`: how the call ended.
enum class FrontOutcome : uint8_t {
  kReply = 0,        // body = the REPLY envelope
  kNoLink = 1,       // the dialer has no open link (never sent)
  kLinkClosed = 2,   // the link closed before the reply; text = "<by>: <reason>"
  kDeadline = 3,     // the deadline passed: CANCEL(DEADLINE) went to the egress
  kCancelled = 4,    // JS cancelled: CANCEL(CALLER) went to the egress
  kSendFailed = 5,   // the link refused the message; code, text
};

class FrontCalls {
 public:
  static constexpr uint32_t kMaxSlots = 65536;
  static constexpr uint32_t kStreamBit = 0x80000000u;

  FrontCalls(EventLoop* loop, Engine* engine);
  ~FrontCalls();

  // ---- JS thread ----
  // Queues a CALL (header + payload, copied now) for `dialer`'s link with `tenant` in the frame
  // and a deadline `timeout_ms` from when the loop sends it. False when slot >= kMaxSlots.
  bool Submit(uint32_t slot, uint32_t dialer, uint32_t tenant, uint32_t timeout_ms, const uint8_t* header, size_t header_len,
              const uint8_t* payload, size_t payload_len);
  // CANCEL(CALLER) for the call in `slot`, if it is still out when the loop gets to it.
  void Cancel(uint32_t slot);

  // ---- loop thread ----
  // A REPLY on one of our streams: true when it was ours (late ones included).
  bool OnLinkMessage(InferenceLink* link, const InboundMessage& msg);
  void OnLinkClosed(InferenceLink* link, const LinkCloseInfo& info);
  // Calls out now.
  uint32_t inflight() const { return inflight_; }

 private:
  struct Slot {
    std::vector<uint8_t> bytes;  // header + payload; capacity kept
    uint32_t header_len = 0;
    uint32_t dialer = 0;
    uint32_t tenant = 0;
    uint32_t timeout_ms = 0;
    // Loop-thread state while the call is out:
    bool active = false;
    uint16_t generation = 0;
    uint32_t link = 0;
    uint32_t stream = 0;
    EventLoop::TimerId timer = EventLoop::kNoTimer;
  };
  struct Op {
    uint32_t slot;
    bool cancel;
  };

  void RunQueue();
  void Start(uint32_t index);
  void SendCancel(Slot* s, uint32_t index, uint8_t reason);
  void Complete(Slot* s, uint32_t index, FrontOutcome outcome, const char* code, std::string text, const uint8_t* body, size_t len);

  EventLoop* loop_;
  Engine* engine_;
  std::mutex mutex_;
  std::vector<Op> queue_;    // JS -> loop, under mutex_
  std::vector<Op> work_;     // the loop's copy (swapped), capacity kept
  std::vector<std::unique_ptr<Slot>> slots_;  // index = slot; created by the JS thread under mutex_
  uint32_t high_slot_ = 0;   // one past the highest slot ever used (loop thread reads after the handoff)
  uint32_t inflight_ = 0;
};

}  // namespace sluice::engine
