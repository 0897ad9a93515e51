#include "engine/grpc_compression.h"

#include <zlib.h>

#include <new>

namespace sluice::engine {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// zlib window bits: 15 for the zlib format (gRPC "deflate"), 16 + 15 for gzip.
int WindowBits(GrpcEncoding enc) { return enc == GrpcEncoding::kGzip ? 16 + MAX_WBITS : MAX_WBITS; }

constexpr size_t kInitialOut = 16 * 1024;

}  // namespace

GrpcEncoding ParseGrpcEncoding(std::string_view value) {
  value = Trim(value);
  if (value.empty() || EqualsIgnoreCase(value, "identity")) return GrpcEncoding::kIdentity;
  if (EqualsIgnoreCase(value, "gzip")) return GrpcEncoding::kGzip;
  if (EqualsIgnoreCase(value, "deflate")) return GrpcEncoding::kDeflate;
  return GrpcEncoding::kUnsupported;
}

std::string_view GrpcEncodingName(GrpcEncoding e) {
  switch (e) {
    case GrpcEncoding::kIdentity:
      return "identity";
    case GrpcEncoding::kDeflate:
      return "deflate";
    case GrpcEncoding::kGzip:
      return "gzip";
    default:
      return "unsupported";
  }
}

uint32_t ParseAcceptEncoding(std::string_view value) {
  uint32_t set = 1u << static_cast<unsigned>(GrpcEncoding::kIdentity);
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = Trim(value.substr(0, comma));
    GrpcEncoding e = ParseGrpcEncoding(item);
    if (e != GrpcEncoding::kUnsupported && !item.empty()) set |= 1u << static_cast<unsigned>(e);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return set;
}

GrpcEncoding PickResponseEncoding(GrpcEncoding request, uint32_t accepted) {
  if (request == GrpcEncoding::kDeflate || request == GrpcEncoding::kGzip) {
    if ((accepted & (1u << static_cast<unsigned>(request))) != 0) return request;
  }
  return GrpcEncoding::kIdentity;
}

CompressionCodec::~CompressionCodec() {
  for (z_stream_s*& z : inflate_) {
    if (z != nullptr) {
      inflateEnd(z);
      delete z;
    }
  }
  for (z_stream_s*& z : deflate_) {
    if (z != nullptr) {
      deflateEnd(z);
      delete z;
    }
  }
}

z_stream_s* CompressionCodec::Inflater(GrpcEncoding enc) {
  z_stream_s*& z = inflate_[static_cast<unsigned>(enc)];
  if (z == nullptr) {
    z = new (std::nothrow) z_stream_s();
    if (z == nullptr) return nullptr;
    if (inflateInit2(z, WindowBits(enc)) != Z_OK) {
      delete z;
      z = nullptr;
      return nullptr;
    }
  } else if (inflateReset(z) != Z_OK) {
    return nullptr;
  }
  return z;
}

z_stream_s* CompressionCodec::Deflater(GrpcEncoding enc) {
  z_stream_s*& z = deflate_[static_cast<unsigned>(enc)];
  if (z == nullptr) {
    z = new (std::nothrow) z_stream_s();
    if (z == nullptr) return nullptr;
    // Level 1: the proxy compresses for the wire, not for storage; speed matters more.
    if (deflateInit2(z, 1, Z_DEFLATED, WindowBits(enc), 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      delete z;
      z = nullptr;
      return nullptr;
    }
  } else if (deflateReset(z) != Z_OK) {
    return nullptr;
  }
  return z;
}

CallError CompressionCodec::Inflate(GrpcEncoding enc, const uint8_t* in, size_t len, size_t max_out) {
  out_size_ = 0;
  if (enc != GrpcEncoding::kGzip && enc != GrpcEncoding::kDeflate) {
    return CallError::Of(GrpcStatus::kInternal, err::kInternal, "compressed message without a grpc-encoding");
  }
  z_stream_s* z = Inflater(enc);
  if (z == nullptr) return CallError::Of(GrpcStatus::kInternal, err::kInternal, "cannot start the decompressor");
  if (out_.size() < kInitialOut) out_.resize(kInitialOut);
  z->next_in = const_cast<Bytef*>(in);
  size_t in_left = len;
  for (;;) {
    uInt chunk_in = in_left > 0x40000000 ? 0x40000000 : static_cast<uInt>(in_left);
    z->avail_in = chunk_in;
    if (out_size_ == out_.size()) {
      if (out_size_ > max_out) break;
      size_t grow = out_.size() * 2;
      if (grow > max_out + 1) grow = max_out + 1;
      if (grow <= out_.size()) grow = out_.size() + 1;
      out_.resize(grow);
    }
    size_t room = out_.size() - out_size_;
    uInt chunk_out = room > 0x40000000 ? 0x40000000 : static_cast<uInt>(room);
    z->next_out = out_.data() + out_size_;
    z->avail_out = chunk_out;
    int rc = inflate(z, Z_NO_FLUSH);
    in_left -= chunk_in - z->avail_in;
    out_size_ += chunk_out - z->avail_out;
    if (out_size_ > max_out) break;
    if (rc == Z_STREAM_END) {
      if (in_left != 0 || z->avail_in != 0) {
        return CallError::Of(GrpcStatus::kInternal, err::kInternal, "compressed message has bytes after its end");
      }
      return CallError::Ok();
    }
    if (rc == Z_BUF_ERROR && in_left == 0 && z->avail_out != 0) {
      return CallError::Of(GrpcStatus::kInternal, err::kInternal, "compressed message is truncated");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return CallError::Of(GrpcStatus::kInternal, err::kInternal,
                           std::string("compressed message is corrupt (") + (z->msg != nullptr ? z->msg : "zlib error") + ")");
    }
  }
  out_size_ = 0;
  return CallError::Of(GrpcStatus::kResourceExhausted, err::kTooLarge,
                       "decompressed request message larger than max (" + std::to_string(max_out) + " bytes)");
}

CallError CompressionCodec::Compress(GrpcEncoding enc, const uint8_t* in, size_t len) {
  out_size_ = 0;
  z_stream_s* z = Deflater(enc);
  if (z == nullptr) return CallError::Of(GrpcStatus::kInternal, err::kInternal, "cannot start the compressor");
  size_t bound = deflateBound(z, static_cast<uLong>(len)) + 64;
  if (out_.size() < bound) out_.resize(bound);
  z->next_in = const_cast<Bytef*>(in);
  z->avail_in = static_cast<uInt>(len);
  z->next_out = out_.data();
  z->avail_out = static_cast<uInt>(out_.size());
  int rc = deflate(z, Z_FINISH);
  if (rc != Z_STREAM_END) return CallError::Of(GrpcStatus::kInternal, err::kInternal, "compression failed");
  out_size_ = out_.size() - z->avail_out;
  return CallError::Ok();
}

}  // namespace sluice::engine
