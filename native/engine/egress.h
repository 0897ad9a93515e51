// The egress in the engine (src/egress/egress-service.ts, http2-grpc-client.ts,
// upstream-client.ts, upstream-pool.ts): CALL envelopes from inference-segment links are
// forwarded to model servers over pooled HTTP/2 (nghttp2) gRPC client sessions; the answer
// goes back as a REPLY on the same link and stream. CANCEL or the link closing resets the
// upstream stream (RST_STREAM CANCEL). A dead upstream answers UNAVAILABLE; nothing crashes.
// Loop thread only.
#ifndef SLUICE_NATIVE_ENGINE_EGRESS_H_
#define SLUICE_NATIVE_ENGINE_EGRESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/pooled_map.h"
#include "engine/engine.h"
#include "engine/inference_link.h"
#include "engine/trace_context.h"

namespace sluice {
namespace engine {

class UpstreamSession;
struct UpstreamCall;

// Envelope kinds (src/wire/message-kinds.ts).
constexpr uint16_t kKindCall = 0x20;
constexpr uint16_t kKindReply = 0x21;
constexpr uint16_t kKindCancel = 0x22;

class Egress {
 public:
  Egress(Engine* engine, const EgressConfig& config);
  ~Egress();
  void Configure(const EgressConfig& config);
  // True when the message was an envelope of the egress (CALL / CANCEL) and was handled.
  bool OnMessage(InferenceLink* link, const InboundMessage& msg);
  // The link is gone: cancel its calls upstream.
  void OnLinkClosed(InferenceLink* link);
  void BeginShutdown() { shutting_down_ = true; }

  // ---- for UpstreamSession ----
  // The call settled (status in the call): reply on its link, then recycle it.
  void CallFinished(UpstreamCall* call);
  Engine* engine() { return engine_; }
  const EgressConfig& config() const { return config_; }

 private:
  struct Pool {
    std::vector<UpstreamSession*> sessions;  // per address, owned by sessions_
    size_t next = 0;
  };
  UpstreamSession* Pick(const std::string& model, std::string* error);
  // Tracing: the egress and upstream spans of a sampled call (trace_context.h).
  void StartSpan(UpstreamCall* call);
  // The call ended with `status`: the upstream tally and, when sampled, its span record.
  void Observe(UpstreamCall* call, uint8_t status);
  // Stops the call upstream (RST_STREAM when it started) and returns it to the free list.
  void Release(UpstreamCall* call);
  void Reply(InferenceLink* link, uint32_t stream, uint32_t tenant, const std::string& request_id, uint8_t status, const char* code,
             const std::string& message, const BytePart* payload, size_t payload_parts);
  // Envelope version the next Reply() writes: that of the CALL it answers (set by the caller;
  // everything runs on the engine thread).
  uint8_t reply_version_ = 1;

  Engine* engine_;
  EgressConfig config_;
  bool shutting_down_ = false;
  std::unordered_map<std::string, std::unique_ptr<UpstreamSession>> sessions_;  // by address
  std::unordered_map<std::string, Pool> by_model_;
  Pool wildcard_;
  // Calls in flight: (link id << 32 | stream) -> call.
  PooledMap<uint64_t, UpstreamCall*> inflight_;
  std::string scratch_traceparent_, scratch_request_id_, scratch_model_;  // OnMessage (see there)
  std::vector<uint8_t> reply_header_;  // reused
  std::vector<UpstreamCall*> free_calls_;  // recycled calls (their buffers keep their capacity)
  TraceIds trace_ids_;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_EGRESS_H_
