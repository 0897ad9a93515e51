#include "engine/grpc_deframer.h"

#include <cstring>

namespace sluice::engine {

CallError GrpcDeframer::CheckPrefix(const uint8_t* p, bool compression_allowed, uint32_t* len, bool* compressed) const {
  uint8_t flag = p[0];
  uint32_t n = (static_cast<uint32_t>(p[1]) << 24) | (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 8) | p[4];
  if (flag == 1 && !compression_allowed) {
    // gRPC over HTTP/2: a compressed flag without a grpc-encoding is a protocol error.
    return CallError::Of(GrpcStatus::kInternal, err::kInternal,
                         "compressed message without a grpc-encoding header (send grpc-encoding gzip or deflate)");
  }
  if (flag > 1) return CallError::Of(GrpcStatus::kInternal, err::kInternal, "invalid gRPC message flag " + std::to_string(flag));
  if (n > max_) {
    return CallError::Of(GrpcStatus::kResourceExhausted, err::kTooLarge,
                         "request message larger than max (" + std::to_string(n) + " vs " + std::to_string(max_) + " bytes)");
  }
  *len = n;
  *compressed = flag == 1;
  return CallError::Ok();
}

CallError GrpcDeframer::Push(const uint8_t* data, size_t n, bool compression_allowed, Sink& sink) {
  size_t pos = 0;
  while (pos < n) {
    if (!in_body_) {
      uint32_t len = 0;
      bool compressed = false;
      if (prefix_have_ == 0 && n - pos >= kGrpcPrefixBytes) {
        CallError e = CheckPrefix(data + pos, compression_allowed, &len, &compressed);
        if (!e.ok()) return e;
        pos += kGrpcPrefixBytes;
        if (n - pos >= len) {
          // Whole message in this chunk: a view, no copy.
          bool go_on = sink.OnMessage(compressed, data + pos, len);
          pos += len;
          if (!go_on) return CallError::Ok();
          continue;
        }
      } else {
        size_t take = kGrpcPrefixBytes - prefix_have_;
        if (take > n - pos) take = n - pos;
        std::memcpy(prefix_ + prefix_have_, data + pos, take);
        prefix_have_ += take;
        pos += take;
        if (prefix_have_ < kGrpcPrefixBytes) return CallError::Ok();
        prefix_have_ = 0;
        CallError e = CheckPrefix(prefix_, compression_allowed, &len, &compressed);
        if (!e.ok()) return e;
        if (len == 0) {
          if (!sink.OnMessage(compressed, body_.data(), 0)) return CallError::Ok();
          continue;
        }
      }
      if (body_.size() < len) body_.resize(len);
      in_body_ = true;
      body_compressed_ = compressed;
      body_len_ = len;
      body_have_ = 0;
      continue;
    }
    size_t take = body_len_ - body_have_;
    if (take > n - pos) take = n - pos;
    std::memcpy(body_.data() + body_have_, data + pos, take);
    body_have_ += take;
    pos += take;
    if (body_have_ == body_len_) {
      in_body_ = false;
      body_have_ = 0;
      if (!sink.OnMessage(body_compressed_, body_.data(), body_len_)) return CallError::Ok();
    }
  }
  return CallError::Ok();
}

void GrpcDeframer::Shrink(size_t keep) {
  if (!in_body_ && body_.capacity() > keep) {
    std::vector<uint8_t>().swap(body_);
    body_.reserve(keep);
  }
}

}  // namespace sluice::engine
