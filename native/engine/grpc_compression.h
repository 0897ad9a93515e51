// grpc-encoding for the engine's gRPC server: gzip and deflate (zlib format, as gRPC names it)
// via zlib, both ways. A Codec owns its z_streams and output buffer and reuses them call after
// call, so compressing or inflating a message allocates nothing once the buffer has grown to
// the largest message seen. Inflation is bounded: a message that inflates past the limit is
// refused with RESOURCE_EXHAUSTED before more than the limit is written (no zip bombs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/grpc_status.h"

struct z_stream_s;

namespace sluice::engine {

enum class GrpcEncoding : uint8_t { kIdentity = 0, kDeflate = 1, kGzip = 2, kUnsupported = 255 };

// What the server advertises in grpc-accept-encoding.
inline constexpr std::string_view kAcceptEncodingValue = "identity,deflate,gzip";

// The encoding a grpc-encoding value names (absent or empty: identity).
GrpcEncoding ParseGrpcEncoding(std::string_view value);
std::string_view GrpcEncodingName(GrpcEncoding e);

// Bit set of the encodings a grpc-accept-encoding list names (bit 1 << GrpcEncoding).
uint32_t ParseAcceptEncoding(std::string_view value);

// The encoding of the responses: the request's own encoding when the client accepts it, else
// identity (a client that compresses its requests gets compressed answers, no one else).
GrpcEncoding PickResponseEncoding(GrpcEncoding request, uint32_t accepted);

class CompressionCodec {
 public:
  CompressionCodec() = default;
  ~CompressionCodec();
  CompressionCodec(const CompressionCodec&) = delete;
  CompressionCodec& operator=(const CompressionCodec&) = delete;

  // Inflates `in` (a message of the given encoding); the result stays in output() until the next
  // call. Errors: INTERNAL for corrupt data, RESOURCE_EXHAUSTED past max_out bytes.
  CallError Inflate(GrpcEncoding enc, const uint8_t* in, size_t len, size_t max_out);
  // Compresses `in`; the result stays in output() until the next call.
  CallError Compress(GrpcEncoding enc, const uint8_t* in, size_t len);

  const uint8_t* data() const { return out_.data(); }
  size_t size() const { return out_size_; }

 private:
  z_stream_s* Inflater(GrpcEncoding enc);
  z_stream_s* Deflater(GrpcEncoding enc);

  z_stream_s* inflate_[3] = {nullptr, nullptr, nullptr};
  z_stream_s* deflate_[3] = {nullptr, nullptr, nullptr};
  std::vector<uint8_t> out_;
  size_t out_size_ = 0;
};

}  // namespace sluice::engine
