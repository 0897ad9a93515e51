// libFuzzer harness: the gRPC deframer fed in chunks the input chooses, and inflation of the
// messages it yields under a small limit (scripts/fuzz-native.sh).
// fuzz-build: native/engine/grpc_deframer.cc native/engine/grpc_compression.cc -lz
// fuzz-seeds: deframer
#include <cstddef>
#include <cstdint>

#include "engine/grpc_compression.h"
#include "engine/grpc_deframer.h"

namespace {
struct Sink final : sluice::engine::GrpcDeframer::Sink {
  sluice::engine::CompressionCodec* codec;
  sluice::engine::GrpcEncoding enc;
  size_t total = 0;
  bool OnMessage(bool compressed, const uint8_t* data, size_t len) override {
    total += len;
    if (compressed) {
      sluice::engine::CallError e = codec->Inflate(enc, data, len, 1 << 16);
      if (e.ok() && codec->size() > (1 << 16)) __builtin_trap();
    }
    return true;
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static sluice::engine::CompressionCodec codec;
  if (size < 2) return 0;
  // First byte: chunk size (1-256); second: encoding.
  size_t chunk = static_cast<size_t>(data[0]) + 1;
  auto enc = static_cast<sluice::engine::GrpcEncoding>(data[1] % 3);
  data += 2;
  size -= 2;
  sluice::engine::GrpcDeframer d(1 << 16);
  Sink sink;
  sink.codec = &codec;
  sink.enc = enc;
  for (size_t pos = 0; pos < size; pos += chunk) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    if (!d.Push(data + pos, n, enc != sluice::engine::GrpcEncoding::kIdentity, sink).ok()) break;
  }
  if (sink.total > size) __builtin_trap();  // never more message bytes than input bytes
  return 0;
}
