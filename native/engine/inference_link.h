// Inference-segment links in the engine: wire-compatible with the TypeScript links
// (docs/wire.md; src/transport/handshake.ts, src/crypto/key-schedule.ts,
// src/transport/link-base.ts, src/transport/tcp-link.ts). A TypeScript TcpLink and an engine
// link talk to each other in either role.
//
// Layers, bottom up (each usable alone; the sans-IO ones are the fuzz targets):
//   - FrameParser: bytes -> checked 52-byte headers + sealed bodies (no keys, no I/O).
//   - LinkReceiver: FrameParser + the receiving direction's keys (sequence, nonce, key id,
//     per-tenant keys, REKEY) + reassembly; delivers whole messages and the peer's CLOSE.
//   - FrameSealer: the sending direction: header, nonce, per-tenant key, rekey at the limits.
//   - Handshake: HELLO / PROOF / REJECT as a state machine over bytes (no I/O).
//   - TcpInferenceLink: one connected, authenticated link on the EventLoop: outbound queue with
//     high-water backpressure, fragmenting, writev of sealed frames from a reused ring, reads
//     into a reused buffer, CLOSE with codes, keepalive.
//   - LinkListener / LinkDialer: accept (bounded handshakes: 10 s, 64 in progress) and dial
//     (reconnect with backoff), DSCP + SO_PRIORITY on every link socket.
//
// Threading: everything but the sans-IO classes runs on the engine's loop thread only.
// Errors: every rejection of peer input is a Status with a docs/wire.md code
// (SLUICE_ERR_WIRE_*, SLUICE_ERR_HANDSHAKE_*), never an assert or abort.
#ifndef SLUICE_NATIVE_ENGINE_INFERENCE_LINK_H_
#define SLUICE_NATIVE_ENGINE_INFERENCE_LINK_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "crypto/aes_gcm.h"
#include "engine/counters.h"
#include "engine/event_loop.h"
#include "engine/scheduling_delay.h"

namespace sluice {
namespace engine {

// ---- wire constants (docs/wire.md §3) ----
constexpr size_t kHeaderBytes = 52;
constexpr size_t kTagBytes = 16;
constexpr size_t kNonceOffset = 40;
constexpr size_t kNonceBytes = 12;
constexpr uint32_t kMaxFramePayload = 1024 * 1024;
constexpr uint8_t kWireVersion = 1;

enum FrameType : uint8_t { kFrameData = 1, kFrameClose = 2, kFrameRekey = 3 };
enum TrafficClass : uint8_t { kClassControl = 0, kClassInference = 1, kClassTraining = 2 };
enum SegmentCode : uint8_t { kSegmentInference = 1, kSegmentTraining = 2 };
enum FrameFlag : uint8_t { kFlagFirst = 1, kFlagLast = 2 };
enum CloseCode : uint16_t {
  kCloseNormal = 0,
  kCloseGoingAway = 1,
  kCloseProtocolError = 2,
  kCloseSecurityViolation = 3,
  kCloseTooBig = 4,
  kCloseInternalError = 5,
};

// Stable error codes (the same strings the TypeScript side uses).
namespace codes {
extern const char kWireTruncated[];   // SLUICE_ERR_WIRE_TRUNCATED
extern const char kWireOversize[];    // SLUICE_ERR_WIRE_OVERSIZE
extern const char kWireBadMagic[];    // SLUICE_ERR_WIRE_BAD_MAGIC
extern const char kWireVersion[];     // SLUICE_ERR_WIRE_VERSION
extern const char kWireMalformed[];   // SLUICE_ERR_WIRE_MALFORMED
extern const char kWireSegment[];     // SLUICE_ERR_WIRE_SEGMENT
extern const char kWireClass[];       // SLUICE_ERR_WIRE_CLASS
extern const char kWireReplay[];      // SLUICE_ERR_WIRE_REPLAY
extern const char kWireSequenceGap[]; // SLUICE_ERR_WIRE_SEQUENCE_GAP
extern const char kWireNonce[];       // SLUICE_ERR_WIRE_NONCE
extern const char kWireKey[];         // SLUICE_ERR_WIRE_KEY
extern const char kWireAuth[];        // SLUICE_ERR_WIRE_AUTH
extern const char kWireFragment[];    // SLUICE_ERR_WIRE_FRAGMENT
extern const char kHandshakeAuth[];   // SLUICE_ERR_HANDSHAKE_AUTH
extern const char kHandshakeSegment[];
extern const char kHandshakeVersion[];
extern const char kHandshakeProtocol[];
extern const char kHandshakeTimeout[];
extern const char kHandshakeClosed[];
extern const char kHandshakeBusy[];
extern const char kPeerGone[];        // SLUICE_ERR_TRANSPORT_PEER_GONE
extern const char kKeepalive[];       // SLUICE_ERR_TRANSPORT_KEEPALIVE: peer silent past the keepalive timeout
extern const char kLinkClosed[];      // SLUICE_ERR_TRANSPORT_LINK_CLOSED
extern const char kTooBig[];          // SLUICE_ERR_TRANSPORT_TOO_BIG: message over maxMessageBytes (send side)
extern const char kInternal[];        // SLUICE_ERR_ENGINE_INTERNAL
extern const char kSystem[];          // SLUICE_ERR_ENGINE_SYSTEM: a system call failed (text says which)
}  // namespace codes

// A growable byte buffer that never zero-fills (std::vector would on resize): the pooled
// memory of reassembly, queues and the sealed-output ring. Grows, never shrinks.
class ByteBuffer {
 public:
  uint8_t* data() { return data_.get(); }
  const uint8_t* data() const { return data_.get(); }
  size_t capacity() const { return capacity_; }
  void Release() {
    data_.reset();
    capacity_ = 0;
  }
  // Makes room for n bytes; keeps the first `keep` bytes when it has to grow.
  void Reserve(size_t n, size_t keep = 0) {
    if (n <= capacity_) return;
    size_t cap = capacity_ == 0 ? 4096 : capacity_;
    while (cap < n) cap *= 2;
    std::unique_ptr<uint8_t[]> next(new uint8_t[cap]);
    if (keep > 0) std::memcpy(next.get(), data_.get(), keep);
    data_ = std::move(next);
    capacity_ = cap;
  }

 private:
  std::unique_ptr<uint8_t[]> data_;
  size_t capacity_ = 0;
};

// Failure with a stable code and a readable message. ok() when code is null.
struct Status {
  const char* code = nullptr;
  std::string message;
  bool ok() const { return code == nullptr; }
  static Status Error(const char* c, std::string m) { return Status{c, std::move(m)}; }
};

// The close code that tells the peer why an error ended the link (close-frame.ts closeCodeFor).
CloseCode CloseCodeFor(const char* code);

struct FrameHeader {
  uint8_t type, cls, segment, flags;
  uint32_t stream_id;
  uint16_t kind;
  uint32_t tenant;
  uint32_t payload_length;
  uint32_t message_length;
  uint32_t key_id;
  uint64_t sequence;
  const uint8_t* nonce;  // into the header bytes
};

struct ParserLimits {
  uint8_t segment = kSegmentInference;
  uint32_t max_frame_payload = kMaxFramePayload;
  uint32_t max_message_bytes = 128u * 1024 * 1024;
};

// Checks one 52-byte header in docs/wire.md's order. Status error on any violation.
Status ParseFrameHeader(const uint8_t* bytes, const ParserLimits& limits, FrameHeader* out);
void EncodeFrameHeader(const FrameHeader& h, uint8_t* out);  // nonce copied from h.nonce

// Sans-IO framing: Feed() arbitrary chunks; each complete frame goes to the sink with views
// that are valid only during the call. Headers are checked as soon as they are complete, so an
// oversized frame is refused before its body arrives. Holds at most one maximal frame.
class FrameParser {
 public:
  using Sink = std::function<Status(const FrameHeader& h, const uint8_t* header_bytes, const uint8_t* sealed, size_t sealed_size)>;
  explicit FrameParser(const ParserLimits& limits);
  // Returns the first error (the sink's or the parser's); after an error the parser stays failed.
  Status Feed(const uint8_t* data, size_t size, const Sink& sink);
  // The stream ended: SLUICE_ERR_WIRE_TRUNCATED when it ended inside a frame.
  Status End() const;
  bool mid_frame() const { return have_ > 0; }
  // Pauses delivery (the sink may call it); Feed then only buffers up to one frame.
  const ParserLimits& limits() const { return limits_; }

 private:
  ParserLimits limits_;
  std::vector<uint8_t> buf_;  // gathers a frame that spans chunks (reserved once)
  size_t have_ = 0;
  size_t need_ = kHeaderBytes;
  bool header_done_ = false;
  FrameHeader header_{};
  Status failed_;
};

// Key limits per direction (key-limits.ts): rekey before either is passed.
struct KeyLimits {
  uint64_t max_frames_per_key = 1ull << 32;
  uint64_t max_bytes_per_key = 1ull << 36;
};

// One direction's keys: secret of the epoch, AEAD per tenant (at most 4096 per epoch), nonce
// counter, bytes under the key; ratchets on rekey (key-schedule.ts, traffic-keys.ts).
class TrafficKeys {
 public:
  TrafficKeys(const uint8_t secret[32], uint32_t direction, KeyLimits limits);
  ~TrafficKeys();
  crypto::AesGcm256* AeadFor(uint32_t tenant, Status* status);
  void NextNonce(uint8_t out[12]);           // writes and consumes
  bool NonceMatches(const uint8_t* nonce) const;
  void ConsumeNonce() { counter_++; }
  bool RekeyDue(uint64_t frame_bytes, uint64_t rekey_frame_bytes) const;
  void Account(uint64_t bytes) { bytes_ += bytes; }
  bool Advance(Status* status);  // next epoch
  uint32_t epoch() const { return epoch_; }
  uint64_t frames_under_key() const { return counter_; }
  uint64_t bytes_under_key() const { return bytes_; }
  const KeyLimits& limits() const { return limits_; }

 private:
  bool MakeAead(uint32_t tenant, crypto::AesGcm256* aead, Status* status);
  uint8_t secret_[32];
  uint32_t direction_;
  KeyLimits limits_;
  uint32_t epoch_ = 0;
  uint64_t counter_ = 0;
  uint64_t bytes_ = 0;
  std::unique_ptr<crypto::AesGcm256> system_;
  std::unordered_map<uint32_t, std::unique_ptr<crypto::AesGcm256>> tenants_;
  std::deque<uint32_t> tenant_order_;  // creation order, for eviction past 4096
};

// A whole received message. `body` points into reassembly memory owned by the receiver and is
// valid only during the OnMessage call (the receiver reuses it afterwards).
struct InboundMessage {
  uint8_t cls;
  uint16_t kind;
  uint32_t stream_id;
  uint32_t tenant;
  const uint8_t* body;
  size_t size;
};

struct ReceiverLimits {
  ParserLimits parser;
  uint64_t max_reassembly_bytes = 256ull * 1024 * 1024;
  uint32_t max_pending_messages = 4096;
};

// Sans-IO receiving half of a link: Feed() bytes; whole messages to on_message, the peer's
// CLOSE to on_close. Every rejection is a Status (SLUICE_ERR_WIRE_*), after which the receiver
// stays failed. Reassembly buffers are pooled per stream and reused message after message.
class LinkReceiver {
 public:
  using OnMessage = std::function<void(const InboundMessage&)>;
  using OnClose = std::function<void(uint16_t code, const std::string& reason)>;
  LinkReceiver(const ReceiverLimits& limits, std::unique_ptr<TrafficKeys> keys, OnMessage on_message, OnClose on_close);
  Status Feed(const uint8_t* data, size_t size);
  Status End() const { return parser_.End(); }
  void Stop() { stopped_ = true; }
  uint64_t frames() const { return frames_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t rekeys() const { return rekeys_; }
  uint64_t last_sequence() const { return sequence_; }
  std::string DescribePending() const;

 private:
  struct Partial {
    uint8_t cls;
    uint16_t kind;
    uint32_t tenant;
    uint32_t length;
    uint32_t stream_id;
    uint32_t filled;
    ByteBuffer body;
    bool active = false;
  };
  Status OnFrame(const FrameHeader& h, const uint8_t* header_bytes, const uint8_t* sealed, size_t sealed_size);
  Status Check(const FrameHeader& h) const;
  ReceiverLimits limits_;
  FrameParser parser_;
  std::unique_ptr<TrafficKeys> keys_;
  OnMessage on_message_;
  OnClose on_close_;
  Partial* FindPartial(uint8_t cls, uint32_t stream);
  // Messages being rebuilt; slots (and their buffers) are reused, so no allocation per message
  // once the link has warmed up. Linear search: few messages are partial at once.
  std::vector<std::unique_ptr<Partial>> partials_;
  size_t active_partials_ = 0;
  uint64_t pending_bytes_ = 0;
  ByteBuffer single_;   // one-frame messages are opened here
  ByteBuffer control_;  // CLOSE / REKEY payloads
  uint64_t sequence_ = 0;
  uint64_t frames_ = 0, bytes_ = 0, rekeys_ = 0;
  bool stopped_ = false;
};

// A gather list of the caller's bytes.
struct BytePart {
  const uint8_t* data;
  size_t size;
};

// Sending half: seals frames into caller memory (header, nonce, per-tenant key).
class FrameSealer {
 public:
  FrameSealer(std::unique_ptr<TrafficKeys> keys, uint8_t segment);
  static constexpr size_t FrameBytes(size_t payload) { return kHeaderBytes + payload + kTagBytes; }
  static constexpr size_t kRekeyFrameBytes = kHeaderBytes + 4 + kTagBytes;
  bool RekeyDue(size_t payload) const { return keys_->RekeyDue(FrameBytes(payload), kRekeyFrameBytes); }
  // Seals into out (FrameBytes(payload_length) bytes). `parts` total payload_length bytes.
  Status Seal(uint8_t type, uint8_t cls, uint8_t flags, uint32_t stream, uint16_t kind, uint32_t tenant,
              uint32_t message_length, const BytePart* parts, size_t part_count, size_t payload_length, uint8_t* out);
  // Seals a REKEY frame under the current key into out (kRekeyFrameBytes), then advances.
  Status SealRekey(uint8_t* out);
  uint64_t sequence() const { return sequence_; }
  uint64_t rekeys() const { return rekeys_; }

 private:
  std::unique_ptr<TrafficKeys> keys_;
  uint8_t segment_;
  uint64_t sequence_ = 0;
  uint64_t rekeys_ = 0;
};

// ---- handshake (docs/wire.md §1, §2) ----
enum class Role : uint8_t { kInitiator = 1, kAcceptor = 2 };

struct LinkSecrets {
  uint8_t send[32];
  uint8_t receive[32];
  uint32_t send_direction;
  uint32_t receive_direction;
  uint8_t link_id[8];  // first 8 bytes of the transcript hash (hex in logs), same on both ends
};

// Sans-IO handshake. Start() writes the first record (initiator: HELLO); each Feed() consumes
// bytes and appends what must be sent to *out. kDone: secrets() ready and leftover() holds bytes
// that followed the last record (the first frames). kFailed: status() says why and *out may hold
// a REJECT to send before closing.
class Handshake {
 public:
  enum class State { kInProgress, kDone, kFailed };
  Handshake(Role role, std::string segment, const uint8_t key[32]);
  ~Handshake();
  void Start(std::vector<uint8_t>* out);
  State Feed(const uint8_t* data, size_t size, std::vector<uint8_t>* out);
  // The connection closed or timed out: fail with that code.
  void Fail(const char* code, std::string message);
  State state() const { return state_; }
  const Status& status() const { return status_; }
  const LinkSecrets& secrets() const { return secrets_; }
  const std::vector<uint8_t>& leftover() const { return buf_; }

 private:
  State Step(std::vector<uint8_t>* out);
  State Reject(uint8_t reject_code, const char* code, std::string reason, std::vector<uint8_t>* out);
  Role role_;
  std::string segment_;
  uint8_t key_[32];
  uint8_t nonce_[32];
  uint8_t peer_nonce_[32];
  uint8_t transcript_[32];
  uint8_t auth_key_[32];
  std::vector<uint8_t> my_hello_;
  std::vector<uint8_t> buf_;
  int step_ = 0;
  State state_ = State::kInProgress;
  Status status_;
  LinkSecrets secrets_{};
};

// ---- a link on the event loop ----
struct LinkOptions {
  std::string segment = "inference";
  uint8_t key[32] = {0};
  uint32_t max_message_bytes = 128u * 1024 * 1024;
  uint64_t high_water_bytes = 8ull * 1024 * 1024;
  uint32_t frame_bytes_inference = 256 * 1024;
  uint32_t frame_bytes_control = 64 * 1024;
  uint64_t max_reassembly_bytes = 256ull * 1024 * 1024;
  uint32_t seal_ahead_bytes = 1024 * 1024;
  uint32_t close_timeout_ms = 5000;
  uint32_t handshake_timeout_ms = 10000;
  uint32_t max_handshakes = 64;
  // Dead-peer detection: TCP keepalive probes after keepalive_idle_ms of silence and
  // TCP_USER_TIMEOUT: data unacknowledged for keepalive_timeout_ms fails the link (and with it
  // every call on it) at once. 0 disables.
  uint32_t keepalive_timeout_ms = 5000;
  // Tail witness (docs/wire.md, src/transport/link-base.ts): after tail_witness_ms without
  // sending, a link that sent frames since its last witness sends one REKEY frame, so a peer that
  // lost our last frame finds the sequence gap at once. 0 disables.
  uint32_t tail_witness_ms = 200;
  // IP_TOS = dscp << 2 and SO_PRIORITY on every link socket (config segments.<name>.dscp).
  int dscp = 34;
  KeyLimits key_limits;
  // segments.inference.transport: links over RDMA queue pairs (verbs_link.h) after the TCP
  // handshake and set-up, with the TypeScript RDMA transport's sizing (src/transport/rdma-transport.ts).
  bool rdma = false;
  std::string rdma_device;          // segments.inference.device; empty: by the side channel's address
  uint32_t rdma_send_slots = 16;
  uint32_t rdma_recv_window = 16;
  uint8_t rdma_ack_timeout = 16;
  uint8_t rdma_retry_count = 6;
  // segments.inference.rdma.busyPoll: spin on the CQ up to rdma_busy_poll_us before arming it.
  bool rdma_busy_poll = false;
  uint32_t rdma_busy_poll_us = 50;
};

struct OutboundMessage {
  uint8_t cls = kClassInference;
  uint16_t kind = 0;
  uint32_t stream_id = 0;
  uint32_t tenant = 0;
  const BytePart* parts = nullptr;  // copied (sealed) before Send returns when the socket
  size_t part_count = 0;            // takes it; otherwise into the link's pooled queue memory
};

// The messages a link could not frame at once, copied into pooled entries: control before
// inference, bytes not yet framed counted. Shared by the TCP and verbs links (loop thread only).
class OutboundQueue {
 public:
  struct Entry {
    uint8_t cls;
    uint16_t kind;
    uint32_t stream_id;
    uint32_t tenant;
    uint32_t size;
    uint32_t offset;  // bytes already framed
    uint64_t queued_ns;  // MonotonicNs() at Push: its scheduling delay ends at its first frame
    ByteBuffer body;  // from the pool: capacity reused
  };
  bool empty() const { return lanes_[0].empty() && lanes_[1].empty(); }
  uint64_t bytes() const { return bytes_; }
  // Copies msg's `total` bytes into a pooled entry at the back of its class's lane.
  void Push(const OutboundMessage& msg, size_t total) {
    std::unique_ptr<Entry> q;
    if (!pool_.empty()) {
      q = std::move(pool_.back());
      pool_.pop_back();
    } else {
      q = std::make_unique<Entry>();
    }
    q->cls = msg.cls;
    q->kind = msg.kind;
    q->stream_id = msg.stream_id;
    q->tenant = msg.tenant;
    q->size = static_cast<uint32_t>(total);
    q->offset = 0;
    q->queued_ns = MonotonicNs();
    q->body.Reserve(total == 0 ? 1 : total);
    size_t at = 0;
    for (size_t i = 0; i < msg.part_count; i++) {
      if (msg.parts[i].size > 0) std::memcpy(q->body.data() + at, msg.parts[i].data, msg.parts[i].size);
      at += msg.parts[i].size;
    }
    bytes_ += total;
    lanes_[msg.cls == kClassControl ? 0 : 1].push_back(std::move(q));
  }
  // The entry to frame next (control first); null when empty.
  Entry* Front() {
    auto& lane = !lanes_[0].empty() ? lanes_[0] : lanes_[1];
    return lane.empty() ? nullptr : lane.front().get();
  }
  // `chunk` more bytes of Front() are framed; true when that finished it (it goes back to the pool).
  bool Consume(uint32_t chunk) {
    auto& lane = !lanes_[0].empty() ? lanes_[0] : lanes_[1];
    Entry& m = *lane.front();
    m.offset += chunk;
    bytes_ -= chunk;
    if (m.offset != m.size) return false;
    std::unique_ptr<Entry> done = std::move(lane.front());
    lane.pop_front();
    if (done->body.capacity() > 4 * 1024 * 1024) done->body.Release();
    if (pool_.size() < 64) pool_.push_back(std::move(done));
    return true;
  }
  void Clear() {
    for (auto& lane : lanes_) lane.clear();
    bytes_ = 0;
  }

 private:
  std::deque<std::unique_ptr<Entry>> lanes_[2];  // [0] control, [1] inference
  std::vector<std::unique_ptr<Entry>> pool_;
  uint64_t bytes_ = 0;
};

struct LinkCloseInfo {
  enum By : uint8_t { kLocal = 0, kPeer = 1, kError = 2 } by;
  uint16_t code;
  std::string reason;
  const char* error_code;  // null unless by == kError
};

// What the engine's egress, ingress and front use of a link, whatever carries it: TCP
// (TcpInferenceLink) or an RDMA queue pair (VerbsInferenceLink, verbs_link.h).
class InferenceLink {
 public:
  virtual ~InferenceLink() = default;
  virtual void Start(const std::vector<uint8_t>& early) = 0;
  virtual Status Send(const OutboundMessage& msg, bool* below_high_water) = 0;
  virtual void Close(uint16_t code, const std::string& reason) = 0;
  virtual uint32_t id() const = 0;
  virtual Role role() const = 0;
  virtual const std::string& remote() const = 0;
  virtual const std::string& link_id_hex() const = 0;
  virtual bool open() const = 0;
  virtual uint64_t queued_bytes() const = 0;
  // The peer's counter block (Engine::PeerCounters), before Start: the link counts into it too.
  virtual void SetPeerCounters(CounterBlock* peer) = 0;
};

// What owns links (the engine's egress, the JS bridge) hears from them on the loop thread.
class LinkHandler {
 public:
  virtual ~LinkHandler() = default;
  virtual void OnLinkMessage(InferenceLink* link, const InboundMessage& msg) = 0;
  virtual void OnLinkDrain(InferenceLink* link) = 0;
  // After this the link is destroyed by its owner (never inside the callback).
  virtual void OnLinkClosed(InferenceLink* link, const LinkCloseInfo& info) = 0;
};

// One authenticated link over a connected TCP socket (the handshake is done). Owned by the
// engine; lives on the loop thread.
class TcpInferenceLink : public InferenceLink {
 public:
  TcpInferenceLink(EventLoop* loop, CounterBlock* counters, LinkHandler* handler, uint32_t id, int fd, Role role,
                   const LinkOptions& options, const LinkSecrets& secrets, std::string remote);
  ~TcpInferenceLink() override;
  // The peer's counter block (Engine::PeerCounters), before Start: the link counts into it too.
  void SetPeerCounters(CounterBlock* peer) override { counters_.SetPeer(peer); }
  // Starts reading; `early` are bytes that followed the handshake.
  void Start(const std::vector<uint8_t>& early) override;
  // Queues a message. Small messages are sealed straight from the caller's parts when nothing
  // is queued ahead; others are copied into pooled queue memory. *below_high_water is false
  // above the high-water mark (OnLinkDrain follows at half). An error Status for a closed link,
  // a message over max_message_bytes or a class the segment may not carry.
  Status Send(const OutboundMessage& msg, bool* below_high_water) override;
  // Sends what is queued, then CLOSE(code, reason); bounded by close_timeout_ms.
  void Close(uint16_t code, const std::string& reason) override;
  uint32_t id() const override { return id_; }
  Role role() const override { return role_; }
  const std::string& remote() const override { return remote_; }
  const std::string& link_id_hex() const override { return link_id_hex_; }
  bool open() const override { return state_ == kOpen; }
  uint64_t queued_bytes() const override { return queue_.bytes() + (out_len_ - out_off_); }

 private:
  enum State { kOpen, kClosing, kClosed };
  void OnEvents(uint32_t events);
  void ReadSome();
  void OnEof();
  void OnPeerClose(uint16_t code, const std::string& reason);
  void Pump();
  Status SealFrame(uint8_t type, uint8_t cls, uint8_t flags, uint32_t stream, uint16_t kind, uint32_t tenant, uint32_t message_length,
                   const BytePart* parts, size_t part_count, size_t payload_length);
  Status SealClose(uint16_t code, const std::string& reason);
  bool FlushOut();
  void UpdateWatch();
  void Fail(const Status& status);
  void Teardown();
  void Finish();
  void UpdateQueuedGauge();
  void CountReceived();
  uint32_t FrameLimit(uint8_t cls) const { return cls == kClassControl ? options_.frame_bytes_control : options_.frame_bytes_inference; }
  void NoteSent();
  void OnWitnessTimer();

  EventLoop* loop_;
  LinkCounters counters_;
  LinkHandler* handler_;
  uint32_t id_;
  int fd_;
  Role role_;
  LinkOptions options_;
  uint8_t segment_code_;
  std::string remote_;
  std::string link_id_hex_;
  State state_ = kOpen;
  std::unique_ptr<LinkReceiver> receiver_;
  std::unique_ptr<FrameSealer> sealer_;
  OutboundQueue queue_;
  uint64_t reported_queued_ = 0;
  bool need_drain_ = false;
  ByteBuffer out_;  // sealed bytes [out_off_, out_len_) not yet written; reused
  size_t out_off_ = 0, out_len_ = 0;
  ByteBuffer in_;   // read buffer, reused
  std::vector<BytePart> slice_;  // reused gather list for one frame
  bool reading_ = true;       // false: bytes are discarded (after a close or failure) until EOF
  bool watching_write_ = false;
  bool close_queued_ = false;
  bool close_sent_ = false;    // our CLOSE has left (fully written)
  bool wr_shut_ = false;
  uint16_t close_code_ = 0;
  std::string close_reason_;
  LinkCloseInfo info_{};
  bool info_set_ = false;
  EventLoop::TimerId close_timer_ = EventLoop::kNoTimer;
  EventLoop::TimerId teardown_timer_ = EventLoop::kNoTimer;
  uint64_t reported_recv_frames_ = 0, reported_recv_bytes_ = 0, reported_rekeys_ = 0;
  EventLoop::TimerId witness_timer_ = EventLoop::kNoTimer;
  uint64_t last_send_ms_ = 0;
  uint64_t witnessed_sequence_ = 0;
};

// Applies DSCP (IP_TOS / IPV6_TCLASS = dscp << 2) and SO_PRIORITY to a link socket. Failures
// are not fatal (a kernel may refuse SO_PRIORITY above 6 without CAP_NET_ADMIN): returns false.
bool ApplyDscp(int fd, int dscp);

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_INFERENCE_LINK_H_
