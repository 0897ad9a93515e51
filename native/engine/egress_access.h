// The egress's access record (EventType::kEgressCallDone): one per model-server call while the
// access log is on (Engine::SetEveryCallEvent), with what node-telemetry.ts egressObserver writes
// on the TypeScript path: request id, tenant, model, method, status, bytes and the arrival ->
// call -> answer times, plus the link the CALL came in on and the model server's address.
// Deferred (Engine::EmitDeferred): JS takes a batch at most kEventBatchMs later, one wake-up per
// batch, never one per call; when JS falls behind the ring drops records and counts them
// (kEventsDropped). src/engine/engine-egress-access.ts writes the line. Loop thread only.
#ifndef SLUICE_NATIVE_ENGINE_EGRESS_ACCESS_H_
#define SLUICE_NATIVE_ENGINE_EGRESS_ACCESS_H_

#include <cstdint>
#include <string>

#include "engine/engine.h"

namespace sluice {
namespace engine {

struct EgressAccess {
  uint32_t link = 0;
  uint32_t tenant = 0;
  uint8_t method = 0;
  uint8_t status = 0;
  const std::string* request_id = nullptr;
  const std::string* model = nullptr;
  const std::string* upstream = nullptr;     // model server address; null: the model had no route
  const std::string* traceparent = nullptr;  // the context sent to the model server; null or "": none
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t received_ns = 0, called_ns = 0, done_ns = 0;
};

// Queues the record when the access log is on; false when it is off or the ring dropped it.
inline bool EmitEgressAccess(Engine* engine, const EgressAccess& a) {
  if (!engine->every_call_event()) return false;
  EngineEvent e;
  e.type = EventType::kEgressCallDone;
  e.link = a.link;
  e.a = a.status;
  e.b = (a.done_ns - a.received_ns) / 1000;
  e.c = a.method;
  e.request_id = *a.request_id;
  e.model = *a.model;
  if (a.upstream != nullptr) e.text = *a.upstream;
  // "00-<trace id>-<span id>-<flags>": the access line names the trace.
  if (a.traceparent != nullptr && a.traceparent->size() >= 35) e.extra.assign(*a.traceparent, 3, 32);
  e.access.tenant = a.tenant;
  e.access.bytes_in = a.bytes_in;
  e.access.bytes_out = a.bytes_out;
  e.access.queue_us = (a.called_ns - a.received_ns) / 1000;
  e.access.upstream_us = (a.done_ns - a.called_ns) / 1000;
  return engine->EmitDeferred(std::move(e));
}

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_EGRESS_ACCESS_H_
