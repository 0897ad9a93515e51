// libFuzzer harness: engine-core's frame header checks and sans-IO frame parser (docs/wire.md
// §3) on arbitrary bytes in chunks the input chooses: every frame handed out lies within the
// limits it was given.
// fuzz-build: native/engine/wire.cc
// fuzz-seeds: link
#include <cstddef>
#include <cstdint>

#include "engine/inference_link.h"

using namespace sluice::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = static_cast<size_t>(data[0]) * 16 + 1;
  data++;
  size--;
  ParserLimits limits;
  limits.max_frame_payload = 1 << 16;
  limits.max_message_bytes = 1 << 20;
  FrameParser parser(limits);
  auto sink = [&](const FrameHeader& h, const uint8_t*, const uint8_t*, size_t sealed_size) {
    if (h.payload_length > limits.max_frame_payload || sealed_size > limits.max_frame_payload + kTagBytes) __builtin_trap();
    return Status{};
  };
  for (size_t pos = 0; pos < size; pos += chunk) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    if (!parser.Feed(data + pos, n, sink).ok()) break;
  }
  (void)parser.End();
  return 0;
}
