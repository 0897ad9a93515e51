// Frame header checks, the sans-IO frame parser and the error codes (docs/wire.md §3).
#include <cstring>
#include <string>

#include "engine/inference_link.h"

namespace sluice {
namespace engine {

namespace codes {
const char kWireTruncated[] = "SLUICE_ERR_WIRE_TRUNCATED";
const char kWireOversize[] = "SLUICE_ERR_WIRE_OVERSIZE";
const char kWireBadMagic[] = "SLUICE_ERR_WIRE_BAD_MAGIC";
const char kWireVersion[] = "SLUICE_ERR_WIRE_VERSION";
const char kWireMalformed[] = "SLUICE_ERR_WIRE_MALFORMED";
const char kWireSegment[] = "SLUICE_ERR_WIRE_SEGMENT";
const char kWireClass[] = "SLUICE_ERR_WIRE_CLASS";
const char kWireReplay[] = "SLUICE_ERR_WIRE_REPLAY";
const char kWireSequenceGap[] = "SLUICE_ERR_WIRE_SEQUENCE_GAP";
const char kWireNonce[] = "SLUICE_ERR_WIRE_NONCE";
const char kWireKey[] = "SLUICE_ERR_WIRE_KEY";
const char kWireAuth[] = "SLUICE_ERR_WIRE_AUTH";
const char kWireFragment[] = "SLUICE_ERR_WIRE_FRAGMENT";
const char kHandshakeAuth[] = "SLUICE_ERR_HANDSHAKE_AUTH";
const char kHandshakeSegment[] = "SLUICE_ERR_HANDSHAKE_SEGMENT";
const char kHandshakeVersion[] = "SLUICE_ERR_HANDSHAKE_VERSION";
const char kHandshakeProtocol[] = "SLUICE_ERR_HANDSHAKE_PROTOCOL";
const char kHandshakeTimeout[] = "SLUICE_ERR_HANDSHAKE_TIMEOUT";
const char kHandshakeClosed[] = "SLUICE_ERR_HANDSHAKE_CLOSED";
const char kHandshakeBusy[] = "SLUICE_ERR_HANDSHAKE_BUSY";
const char kPeerGone[] = "SLUICE_ERR_TRANSPORT_PEER_GONE";
const char kKeepalive[] = "SLUICE_ERR_TRANSPORT_KEEPALIVE";
const char kLinkClosed[] = "SLUICE_ERR_TRANSPORT_LINK_CLOSED";
const char kTooBig[] = "SLUICE_ERR_TRANSPORT_TOO_BIG";
const char kInternal[] = "SLUICE_ERR_ENGINE_INTERNAL";
const char kSystem[] = "SLUICE_ERR_ENGINE_SYSTEM";
}  // namespace codes

CloseCode CloseCodeFor(const char* code) {
  if (code == nullptr) return kCloseInternalError;
  const std::string c(code);
  if (c == codes::kWireAuth || c == codes::kWireReplay || c == codes::kWireSequenceGap || c == codes::kWireNonce ||
      c == codes::kWireKey || c == codes::kWireSegment || c == codes::kWireClass) {
    return kCloseSecurityViolation;
  }
  if (c == codes::kWireOversize) return kCloseTooBig;
  if (c == codes::kWireTruncated || c == codes::kWireBadMagic || c == codes::kWireVersion || c == codes::kWireMalformed ||
      c == codes::kWireFragment) {
    return kCloseProtocolError;
  }
  return kCloseInternalError;
}

namespace {
inline uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}
inline void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
const char* ClassName(uint8_t c) { return c == 0 ? "control" : c == 1 ? "inference" : "training"; }
const char* SegmentName(uint8_t s) { return s == 1 ? "inference" : "training"; }
bool ClassAllowed(uint8_t cls, uint8_t seg) { return cls == kClassControl || (seg == kSegmentInference ? cls == kClassInference : cls == kClassTraining); }
}  // namespace

Status ParseFrameHeader(const uint8_t* b, const ParserLimits& limits, FrameHeader* h) {
  const uint16_t magic = Be16(b);
  if (magic != 0x534c) {
    char hex[8];
    snprintf(hex, sizeof hex, "%04x", magic);
    return Status::Error(codes::kWireBadMagic, std::string("not a sluice frame (magic 0x") + hex + ")");
  }
  if (b[2] != kWireVersion) {
    return Status::Error(codes::kWireVersion, "wire version " + std::to_string(b[2]) + " not supported (this node speaks 1)");
  }
  const uint8_t type = b[3];
  if (type != kFrameData && type != kFrameClose && type != kFrameRekey) return Status::Error(codes::kWireMalformed, "unknown frame type " + std::to_string(type));
  const uint8_t cls = b[4];
  if (cls > kClassTraining) return Status::Error(codes::kWireMalformed, "unknown traffic class " + std::to_string(cls));
  const uint8_t seg = b[5];
  if (seg != kSegmentInference && seg != kSegmentTraining) return Status::Error(codes::kWireMalformed, "unknown segment " + std::to_string(seg));
  if (seg != limits.segment) {
    return Status::Error(codes::kWireSegment, std::string("frame for segment \"") + SegmentName(seg) + "\" on a \"" + SegmentName(limits.segment) + "\" link");
  }
  if (!ClassAllowed(cls, seg)) {
    return Status::Error(codes::kWireClass, std::string(ClassName(cls)) + " traffic may not travel on the " + SegmentName(seg) + " segment");
  }
  const uint8_t flags = b[6];
  if ((flags & ~(kFlagFirst | kFlagLast)) != 0) {
    char hex[8];
    snprintf(hex, sizeof hex, "%x", flags);
    return Status::Error(codes::kWireMalformed, std::string("unknown flags 0x") + hex);
  }
  if (b[7] != 0 || Be16(b + 14) != 0) return Status::Error(codes::kWireMalformed, "reserved header bytes are not zero");
  h->type = type;
  h->cls = cls;
  h->segment = seg;
  h->flags = flags;
  h->stream_id = Be32(b + 8);
  h->kind = Be16(b + 12);
  h->tenant = Be32(b + 16);
  h->payload_length = Be32(b + 20);
  h->message_length = Be32(b + 24);
  h->key_id = Be32(b + 28);
  const uint32_t seq_hi = Be32(b + 32);
  if (seq_hi > 0x1fffff) return Status::Error(codes::kWireMalformed, "sequence number beyond 2^53");
  h->sequence = static_cast<uint64_t>(seq_hi) << 32 | Be32(b + 36);
  h->nonce = b + kNonceOffset;
  if (h->payload_length > limits.max_frame_payload) {
    return Status::Error(codes::kWireOversize, "frame payload of " + std::to_string(h->payload_length) + " bytes exceeds the " +
                                                   std::to_string(limits.max_frame_payload) + "-byte limit");
  }
  if (h->message_length > limits.max_message_bytes) {
    return Status::Error(codes::kWireOversize, "message of " + std::to_string(h->message_length) + " bytes exceeds the " +
                                                   std::to_string(limits.max_message_bytes) + "-byte limit");
  }
  if (h->payload_length > h->message_length) {
    return Status::Error(codes::kWireMalformed, "frame payload " + std::to_string(h->payload_length) + " longer than its message " +
                                                    std::to_string(h->message_length));
  }
  const uint8_t whole = kFlagFirst | kFlagLast;
  if ((flags & whole) == whole && h->payload_length != h->message_length) {
    return Status::Error(codes::kWireMalformed, "single-frame message declares " + std::to_string(h->message_length) + " bytes but carries " +
                                                    std::to_string(h->payload_length));
  }
  if (type != kFrameData && (cls != kClassControl || flags != whole || h->stream_id != 0 || h->kind != 0)) {
    return Status::Error(codes::kWireMalformed, "close and rekey frames are single control frames on stream 0");
  }
  if (type == kFrameData && h->payload_length == 0 && (flags & kFlagLast) == 0) {
    return Status::Error(codes::kWireMalformed, "an empty fragment must be the last of its message");
  }
  return Status();
}

void EncodeFrameHeader(const FrameHeader& h, uint8_t* b) {
  Put16(b, 0x534c);
  b[2] = kWireVersion;
  b[3] = h.type;
  b[4] = h.cls;
  b[5] = h.segment;
  b[6] = h.flags;
  b[7] = 0;
  Put32(b + 8, h.stream_id);
  Put16(b + 12, h.kind);
  Put16(b + 14, 0);
  Put32(b + 16, h.tenant);
  Put32(b + 20, h.payload_length);
  Put32(b + 24, h.message_length);
  Put32(b + 28, h.key_id);
  Put32(b + 32, static_cast<uint32_t>(h.sequence >> 32));
  Put32(b + 36, static_cast<uint32_t>(h.sequence));
  if (h.nonce != nullptr) std::memcpy(b + kNonceOffset, h.nonce, kNonceBytes);
}

FrameParser::FrameParser(const ParserLimits& limits) : limits_(limits) {}

Status FrameParser::Feed(const uint8_t* data, size_t size, const Sink& sink) {
  if (!failed_.ok()) return failed_;
  size_t pos = 0;
  while (pos < size) {
    if (have_ == 0) {
      // Nothing gathered: parse in place while whole headers / frames are in this chunk.
      const size_t avail = size - pos;
      if (avail >= kHeaderBytes) {
        FrameHeader h;
        Status st = ParseFrameHeader(data + pos, limits_, &h);
        if (!st.ok()) return failed_ = st;
        const size_t total = kHeaderBytes + h.payload_length + kTagBytes;
        if (avail >= total) {
          st = sink(h, data + pos, data + pos + kHeaderBytes, h.payload_length + kTagBytes);
          if (!st.ok()) return failed_ = st;
          pos += total;
          continue;
        }
        // The frame spans chunks: gather it (header already checked).
        if (buf_.size() < total) buf_.resize(total);
        std::memcpy(buf_.data(), data + pos, avail);
        have_ = avail;
        need_ = total;
        header_done_ = true;
        header_ = h;
        pos = size;
        break;
      }
      if (buf_.size() < kHeaderBytes) buf_.resize(kHeaderBytes);
      std::memcpy(buf_.data(), data + pos, avail);
      have_ = avail;
      need_ = kHeaderBytes;
      header_done_ = false;
      pos = size;
      break;
    }
    // Gathering.
    const size_t take = std::min(size - pos, need_ - have_);
    std::memcpy(buf_.data() + have_, data + pos, take);
    have_ += take;
    pos += take;
    if (have_ < need_) break;
    if (!header_done_) {
      Status st = ParseFrameHeader(buf_.data(), limits_, &header_);
      if (!st.ok()) return failed_ = st;
      header_done_ = true;
      need_ = kHeaderBytes + header_.payload_length + kTagBytes;
      if (buf_.size() < need_) buf_.resize(need_);
      if (have_ < need_) continue;
    }
    header_.nonce = buf_.data() + kNonceOffset;
    have_ = 0;
    need_ = kHeaderBytes;
    header_done_ = false;
    Status st = sink(header_, buf_.data(), buf_.data() + kHeaderBytes, header_.payload_length + kTagBytes);
    if (!st.ok()) return failed_ = st;
  }
  return Status();
}

Status FrameParser::End() const {
  if (!failed_.ok()) return failed_;
  if (have_ == 0) return Status();
  if (header_done_) {
    return Status::Error(codes::kWireTruncated, "stream ended " + std::to_string(have_) + " bytes into a " + std::to_string(need_) + "-byte frame");
  }
  return Status::Error(codes::kWireTruncated, "stream ended inside a frame header (" + std::to_string(have_) + " of 52 bytes)");
}

}  // namespace engine
}  // namespace sluice
