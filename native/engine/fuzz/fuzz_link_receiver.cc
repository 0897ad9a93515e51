// libFuzzer harness: engine-core's receiving half of an inference link (frame header checks,
// the sans-IO frame parser, AES-GCM open, reassembly) on arbitrary bytes, fed in chunks the
// input chooses. The keys are fixed, and the seeds (engine_fuzz_seeds) are frames sealed under
// them, so mutations reach reassembly and the close/rekey handling, not only the header checks.
// fuzz-build: native/engine/wire.cc native/engine/link_receiver.cc native/engine/traffic_keys.cc native/engine/key_schedule.cc native/crypto/aes_gcm.cc -lcrypto
// fuzz-seeds: link
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/inference_link.h"

using namespace sluice::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = static_cast<size_t>(data[0]) * 64 + 1;
  data++;
  size--;
  uint8_t secret[32];
  for (int i = 0; i < 32; i++) secret[i] = static_cast<uint8_t>(i);
  ReceiverLimits limits;
  limits.parser.max_message_bytes = 1 << 20;
  limits.max_reassembly_bytes = 4 << 20;
  limits.max_pending_messages = 64;
  size_t delivered = 0;
  LinkReceiver rx(limits, std::make_unique<TrafficKeys>(secret, 1, KeyLimits{}),
                  [&](const InboundMessage& m) { delivered += m.size; }, [](uint16_t, const std::string&) {});
  for (size_t pos = 0; pos < size; pos += chunk) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    if (!rx.Feed(data + pos, n).ok()) break;
  }
  (void)rx.End();
  return 0;
}
