// Splits the DATA of a gRPC request stream (untrusted bytes) into messages: a 1-byte
// compressed flag, a 4-byte big-endian length and that many bytes (gRPC over HTTP/2,
// "Length-Prefixed-Message"). The size limit is checked on the prefix, before any byte of the
// message is buffered. A message wholly inside one chunk is handed out as a view of it; one
// split across chunks is gathered into a buffer the deframer keeps and reuses (its capacity
// stays, so a stream of messages allocates only while the largest one grows it).
// The same rules and messages as src/ingress/grpc-deframer.ts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/grpc_status.h"

namespace sluice::engine {

inline constexpr size_t kGrpcPrefixBytes = 5;

class GrpcDeframer {
 public:
  // Receives each complete message. `compressed` is the prefix's flag; the view is valid only
  // during the call. Return false to stop deframing (the rest of the chunk is dropped).
  class Sink {
   public:
    virtual bool OnMessage(bool compressed, const uint8_t* data, size_t len) = 0;

   protected:
    ~Sink() = default;
  };

  explicit GrpcDeframer(uint32_t max_message_bytes = 4u << 20) : max_(max_message_bytes) {}

  void Reset(uint32_t max_message_bytes) {
    max_ = max_message_bytes;
    prefix_have_ = 0;
    in_body_ = false;
    body_have_ = 0;
    body_len_ = 0;
  }

  // Feeds a chunk; an error (limit, bad flag) leaves the deframer failed: drop the stream.
  // `compression_allowed`: the stream named a grpc-encoding, so flag 1 is valid.
  CallError Push(const uint8_t* data, size_t len, bool compression_allowed, Sink& sink);

  // True between messages: the stream may end here.
  bool at_boundary() const { return prefix_have_ == 0 && !in_body_; }
  // Bytes held for a message not yet complete (flow-control accounting).
  size_t buffered() const { return in_body_ ? body_have_ : 0; }
  // Gives back the gather buffer's memory (a stream slot going idle after a huge message).
  void Shrink(size_t keep);

 private:
  CallError CheckPrefix(const uint8_t* p, bool compression_allowed, uint32_t* len, bool* compressed) const;

  uint32_t max_;
  uint8_t prefix_[kGrpcPrefixBytes] = {};
  size_t prefix_have_ = 0;
  bool in_body_ = false;
  bool body_compressed_ = false;
  size_t body_have_ = 0;
  size_t body_len_ = 0;
  std::vector<uint8_t> body_;
};

// Writes the 5-byte prefix of a message of `len` bytes.
inline void WriteGrpcPrefix(uint8_t* out, bool compressed, uint32_t len) {
  out[0] = compressed ? 1 : 0;
  out[1] = static_cast<uint8_t>(len >> 24);
  out[2] = static_cast<uint8_t>(len >> 16);
  out[3] = static_cast<uint8_t>(len >> 8);
  out[4] = static_cast<uint8_t>(len);
}

}  // namespace sluice::engine
