// The receiving half of a link (src/wire/frame-receiver.ts, frame-opener.ts, reassembler.ts):
// frames -> checks in docs/wire.md's order -> decrypt straight into the message's place.
#include <string>

#include "engine/inference_link.h"

namespace sluice {
namespace engine {

namespace {
constexpr uint64_t kReceiveMaxFrames = 1ull << 32;
constexpr uint64_t kReceiveMaxBytes = (1ull << 36) + kHeaderBytes + kMaxFramePayload + kTagBytes;
constexpr size_t kKeepBufferBytes = 4 * 1024 * 1024;
const uint8_t kNoBytes[1] = {0};
const char* ClassName(uint8_t c) { return c == 0 ? "control" : c == 1 ? "inference" : "training"; }
}  // namespace

LinkReceiver::LinkReceiver(const ReceiverLimits& limits, std::unique_ptr<TrafficKeys> keys, OnMessage on_message, OnClose on_close)
    : limits_(limits), parser_(limits.parser), keys_(std::move(keys)), on_message_(std::move(on_message)), on_close_(std::move(on_close)) {}

Status LinkReceiver::Feed(const uint8_t* data, size_t size) {
  if (stopped_) return Status();
  return parser_.Feed(data, size, [this](const FrameHeader& h, const uint8_t* hb, const uint8_t* sealed, size_t n) {
    if (stopped_) return Status();  // nothing after a CLOSE
    return OnFrame(h, hb, sealed, n);
  });
}

Status LinkReceiver::Check(const FrameHeader& h) const {
  if (h.key_id != keys_->epoch()) {
    return Status::Error(codes::kWireKey, "frame under key " + std::to_string(h.key_id) + ", receiver is at key " + std::to_string(keys_->epoch()));
  }
  if (h.sequence <= sequence_) {
    return Status::Error(codes::kWireReplay, "frame sequence " + std::to_string(h.sequence) + " already seen (last accepted " + std::to_string(sequence_) + ")");
  }
  if (h.sequence != sequence_ + 1) {
    return Status::Error(codes::kWireSequenceGap, "frame sequence " + std::to_string(h.sequence) + " after " + std::to_string(sequence_) + ": frames are missing");
  }
  if (keys_->frames_under_key() >= kReceiveMaxFrames ||
      keys_->bytes_under_key() + kHeaderBytes + h.payload_length + kTagBytes > kReceiveMaxBytes) {
    return Status::Error(codes::kWireKey, "peer exceeded the data limit of key " + std::to_string(h.key_id) + " without rekeying");
  }
  if (!keys_->NonceMatches(h.nonce)) {
    return Status::Error(codes::kWireNonce, "frame " + std::to_string(h.sequence) + " does not carry the nonce the key schedule expects");
  }
  return Status();
}

LinkReceiver::Partial* LinkReceiver::FindPartial(uint8_t cls, uint32_t stream) {
  for (auto& p : partials_) {
    if (p->active && p->cls == cls && p->stream_id == stream) return p.get();
  }
  return nullptr;
}

Status LinkReceiver::OnFrame(const FrameHeader& h, const uint8_t* hb, const uint8_t* sealed, size_t sealed_size) {
  Status st = Check(h);
  if (!st.ok()) return st;
  uint8_t* target = nullptr;
  Partial* partial = nullptr;
  const bool first = (h.flags & kFlagFirst) != 0;
  const bool last = (h.flags & kFlagLast) != 0;
  if (h.type == kFrameData) {
    if (h.message_length > limits_.parser.max_message_bytes) {
      return Status::Error(codes::kWireOversize, "message of " + std::to_string(h.message_length) + " bytes exceeds the " +
                                                     std::to_string(limits_.parser.max_message_bytes) + "-byte limit");
    }
    partial = FindPartial(h.cls, h.stream_id);
    if (first) {
      if (partial != nullptr) {
        return Status::Error(codes::kWireFragment, std::string(ClassName(h.cls)) + " stream " + std::to_string(h.stream_id) +
                                                       " started a new message before finishing the last (" + std::to_string(partial->filled) +
                                                       " of " + std::to_string(partial->length) + " bytes)");
      }
      if (last) {
        single_.Reserve(h.message_length == 0 ? 1 : h.message_length);
        target = single_.data();
      } else {
        if (active_partials_ >= limits_.max_pending_messages) {
          return Status::Error(codes::kWireOversize, "more than " + std::to_string(limits_.max_pending_messages) + " messages partly received at once");
        }
        if (pending_bytes_ + h.message_length > limits_.max_reassembly_bytes) {
          return Status::Error(codes::kWireOversize, "partly received messages would hold " + std::to_string(pending_bytes_ + h.message_length) +
                                                         " bytes, over the " + std::to_string(limits_.max_reassembly_bytes) + "-byte reassembly limit");
        }
        for (auto& p : partials_) {
          if (!p->active) {
            partial = p.get();
            break;
          }
        }
        if (partial == nullptr) {
          partials_.push_back(std::make_unique<Partial>());
          partial = partials_.back().get();
        }
        partial->active = true;
        partial->cls = h.cls;
        partial->stream_id = h.stream_id;
        partial->kind = h.kind;
        partial->tenant = h.tenant;
        partial->length = h.message_length;
        partial->filled = 0;
        partial->body.Reserve(h.message_length);
        active_partials_ += 1;
        pending_bytes_ += h.message_length;
      }
    } else if (partial == nullptr) {
      return Status::Error(codes::kWireFragment, "continuation fragment on " + std::string(ClassName(h.cls)) + " stream " +
                                                     std::to_string(h.stream_id) + " without a first fragment");
    } else if (partial->length != h.message_length || partial->kind != h.kind || partial->tenant != h.tenant) {
      return Status::Error(codes::kWireFragment, "fragment on " + std::string(ClassName(h.cls)) + " stream " + std::to_string(h.stream_id) +
                                                     " disagrees with its first fragment (length, kind or tenant)");
    }
    if (partial != nullptr) {
      const uint64_t end = static_cast<uint64_t>(partial->filled) + h.payload_length;
      if (end > partial->length || (last && end != partial->length)) {
        return Status::Error(codes::kWireFragment, "fragments on " + std::string(ClassName(h.cls)) + " stream " + std::to_string(h.stream_id) +
                                                       " add up to " + std::to_string(end) + " bytes, message declared " + std::to_string(partial->length));
      }
      target = partial->body.data() + partial->filled;
    }
  } else {
    control_.Reserve(h.payload_length == 0 ? 1 : h.payload_length);
    target = control_.data();
  }
  crypto::AesGcm256* aead = keys_->AeadFor(h.tenant, &st);
  if (aead == nullptr) return st;
  crypto::Status cs;
  const crypto::OpenResult r = aead->Open(h.nonce, {hb, kHeaderBytes}, {sealed, sealed_size}, target, &cs);
  if (r == crypto::OpenResult::kError) return Status::Error(codes::kInternal, cs.message);
  if (r != crypto::OpenResult::kOk) {
    return Status::Error(codes::kWireAuth, "frame " + std::to_string(h.sequence) + " failed authentication (tampered, or sealed under another key or tenant)");
  }
  keys_->ConsumeNonce();
  const uint64_t wire = kHeaderBytes + h.payload_length + kTagBytes;
  keys_->Account(wire);
  sequence_ = h.sequence;
  frames_ += 1;
  bytes_ += wire;
  if (h.type == kFrameData) {
    if (partial == nullptr) {
      on_message_(InboundMessage{h.cls, h.kind, h.stream_id, h.tenant, single_.data(), h.message_length});
      return Status();
    }
    partial->filled += h.payload_length;
    if (!last) return Status();
    partial->active = false;
    active_partials_ -= 1;
    pending_bytes_ -= partial->length;
    on_message_(InboundMessage{partial->cls, partial->kind, partial->stream_id, partial->tenant, partial->body.data(), partial->length});
    // Slots keep buffers of usual sizes; a rare huge message does not pin its memory.
    if (partial->body.capacity() > kKeepBufferBytes) partial->body.Release();
    return Status();
  }
  if (h.type == kFrameRekey) {
    if (h.payload_length != 4) return Status::Error(codes::kWireMalformed, "rekey payload must be 4 bytes, got " + std::to_string(h.payload_length));
    const uint32_t next = static_cast<uint32_t>(target[0]) << 24 | static_cast<uint32_t>(target[1]) << 16 | static_cast<uint32_t>(target[2]) << 8 | target[3];
    if (next != keys_->epoch() + 1) {
      return Status::Error(codes::kWireKey, "rekey to key " + std::to_string(next) + ", expected " + std::to_string(keys_->epoch() + 1));
    }
    if (!keys_->Advance(&st)) return st;
    rekeys_ += 1;
    return Status();
  }
  // CLOSE
  if (h.payload_length < 2 || h.payload_length > 2 + 240) {
    return Status::Error(codes::kWireMalformed, "close payload of " + std::to_string(h.payload_length) + " bytes (expected 2..242)");
  }
  const uint16_t code = static_cast<uint16_t>(target[0] << 8 | target[1]);
  std::string reason(reinterpret_cast<const char*>(target + 2), h.payload_length - 2);
  stopped_ = true;
  on_close_(code, reason);
  return Status();
}

std::string LinkReceiver::DescribePending() const {
  std::string out;
  int n = 0;
  for (const auto& p : partials_) {
    if (!p->active) continue;
    if (n < 3) {
      if (!out.empty()) out += ", ";
      out += std::string(ClassName(p->cls)) + " stream " + std::to_string(p->stream_id) + ": " + std::to_string(p->filled) + " of " +
             std::to_string(p->length) + " bytes";
    }
    n++;
  }
  if (n > 3) out += " and " + std::to_string(n - 3) + " more";
  return out;
}

FrameSealer::FrameSealer(std::unique_ptr<TrafficKeys> keys, uint8_t segment) : keys_(std::move(keys)), segment_(segment) {}

Status FrameSealer::Seal(uint8_t type, uint8_t cls, uint8_t flags, uint32_t stream, uint16_t kind, uint32_t tenant, uint32_t message_length,
                         const BytePart* parts, size_t part_count, size_t payload_length, uint8_t* out) {
  Status st;
  crypto::AesGcm256* aead = keys_->AeadFor(tenant, &st);
  if (aead == nullptr) return st;
  sequence_ += 1;
  uint8_t nonce[kNonceBytes];
  keys_->NextNonce(nonce);
  FrameHeader h{type, cls, segment_, flags, stream, kind, tenant, static_cast<uint32_t>(payload_length), message_length, keys_->epoch(), sequence_, nonce};
  EncodeFrameHeader(h, out);
  crypto::Status cs;
  // crypto::ByteView and BytePart have the same layout; SealV takes the gather list as is.
  static_assert(sizeof(BytePart) == sizeof(crypto::ByteView), "BytePart must match crypto::ByteView");
  const bool ok = part_count <= 1
                      ? aead->Seal(nonce, {out, kHeaderBytes},
                                   part_count == 0 ? crypto::ByteView{kNoBytes, 0} : crypto::ByteView{parts[0].data, parts[0].size},
                                   out + kHeaderBytes, &cs)
                      : aead->SealV(nonce, {out, kHeaderBytes}, reinterpret_cast<const crypto::ByteView*>(parts), part_count, out + kHeaderBytes, &cs);
  if (!ok) return Status::Error(codes::kInternal, cs.message);
  keys_->Account(FrameBytes(payload_length));
  return Status();
}

Status FrameSealer::SealRekey(uint8_t* out) {
  const uint32_t next = keys_->epoch() + 1;
  const uint8_t payload[4] = {static_cast<uint8_t>(next >> 24), static_cast<uint8_t>(next >> 16), static_cast<uint8_t>(next >> 8), static_cast<uint8_t>(next)};
  const BytePart part{payload, 4};
  Status st = Seal(kFrameRekey, kClassControl, kFlagFirst | kFlagLast, 0, 0, 0, 4, &part, 1, 4, out);
  if (!st.ok()) return st;
  if (!keys_->Advance(&st)) return st;
  rekeys_ += 1;
  return Status();
}

}  // namespace engine
}  // namespace sluice
