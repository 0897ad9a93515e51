// Events from the engine to JS, in batches: a bounded ring of fixed-size records that the loop
// thread fills and the JS thread drains. The producer signals the consumer (a uv_async /
// threadsafe function in the binding) only when the ring goes from empty to non-empty, so a
// burst of events costs one cross-thread wake-up, not one per event; JS then takes everything
// queued in one call. When JS falls behind and the ring is full, records are dropped and counted
// (kEventsDropped) rather than blocking the I/O thread.
//
// What travels here: link lifecycle (opened, closed with code), handshake refusals, log
// records (level + text), and messages the engine does not consume itself (delivered to JS with
// a copy of the body: the slow path, e.g. control messages or tests). Never one event per
// inference call on the hot path.
#ifndef SLUICE_NATIVE_ENGINE_EVENT_CHANNEL_H_
#define SLUICE_NATIVE_ENGINE_EVENT_CHANNEL_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "engine/counters.h"

namespace sluice {
namespace engine {

enum class EventType : uint32_t {
  kLog = 1,             // level, text
  kLinkOpened = 2,      // link, text = "<role> <remote address> <link id hex>"
  kLinkClosed = 3,      // link, a = close code, b = by (0 local, 1 peer, 2 error), code = error code, text = reason
  kHandshakeFailed = 4, // code = SLUICE_ERR_HANDSHAKE_*, text = remote + reason
  kMessage = 5,         // link, a = kind, b = stream id, c = tenant, body = message bytes (a copy)
  kListening = 6,       // a = port actually bound, text = host
  kDialFailed = 7,      // link (the dialer's id), code, text
  kListenFailed = 8,    // code, text
  kDrain = 9,           // link: the link's queue fell below half the high-water mark
  kPolicyDenied = 10,   // egress tenant policy refused a call: c = tenant id, code = request id, text = reason,
                        // body = model name (UTF-8), b = 1 when the tenant is known (its name in `extra`)
  kRequestDone = 11,    // a fast-path gRPC request ended at the ingress: a unary ModelInfer call or one
                        // message of a ModelStreamInfer stream (failed ones; every one with
                        // SetEveryCallEvent: the request metrics are in the RequestTally): a = grpc status, b = duration (us),
                        // c = 1 for a stream message (request id "<stream's id>:<n>"; the stream itself has no record),
                        // model = the request's model, access = the access record's numbers (that
                        // message's alone), extra = trace id (hex) (JS writes the line when telemetry.accessLog is on)
  kFrontCallDone = 12,  // a call JS sent on the engine's links ended (front_calls.h): a = slot,
                        // b = FrontOutcome, c = the slot's generation, code/text = why not, body = the REPLY envelope
  kGateDecision = 13,   // an ingress gate decision TypeScript records (security event, audit entry):
                        // a = audit ticket (0: nothing waits), b = request bytes, c = credential (bits 0-1:
                        // 0 none, 1 api_key, 2 jwt) | 4 allowed | 8 throttled | 16 streaming | grpc status << 8,
                        // request_id, model, code, text = message, err = gate, extra = actor, tenant
  kConnectionRefused = 14,  // the gRPC ingress closed a connection before it did useful work: text = reason
                            // (max_connections, handshake_timeout, tls_handshake_failed, idle_timeout)
  kTlsAudit = 15,       // a TLS security event of the gRPC ingress: code = type (tls.handshake_failed,
                        // tls.client_refused, tls.client_revoked), text = remote, err = message or reason,
                        // c = suppressed failures / connections closed, extra = the TLS error code
                        // (handshake_failed) or the certificate's fingerprint, model = subject CN,
                        // request_id = issuer CN, body = serial (hex)
  kSpan = 16,           // a sampled call's span record (trace_context.h SpanRecord in body; ingress or
                        // egress side), request_id, model
  kTensorTap = 17,      // the tensor tap's ring (tensor_tap.h) has records and JS had re-armed it: drain it
  kLinkStats = 18,      // answer to Engine::QueryLink: link, text = JSON of the link's carrier (a verbs link:
                        // trafficClass from ibv_query_qp, requests, signalled, inlined, postCalls, cqEvents,
                        // busyHits, maxInline; {} for a TCP link or none)
  kEgressCallDone = 19, // a model-server call of the egress ended (only with SetEveryCallEvent: the access
                        // log): link = the link the CALL came in on, a = grpc status, b = duration (us),
                        // c = CALL method, request_id, model, text = model server address ("" : no route),
                        // extra = trace id (hex), access.tenant/bytes_in/bytes_out/queue_us/upstream_us
};

enum class LogLevel : uint32_t { kDebug = 20, kInfo = 30, kWarn = 40, kError = 50 };

struct EngineEvent {
  EventType type = EventType::kLog;
  uint32_t link = 0;   // engine link id (not the handshake's link id)
  uint64_t a = 0, b = 0, c = 0;
  std::string code;    // a stable SLUICE_ERR_* code or ""
  std::string text;
  std::string extra;
  // Structured log fields (kLog): the request, its model and the error text, as the TypeScript
  // egress logs them (request_id, model, err).
  std::string request_id;
  std::string model;
  std::string err;
  std::string tenant;  // kGateDecision: the audit entry's tenant ("" : none)
  std::vector<uint8_t> body;
  // kRequestDone: the access record (src/telemetry/access-log.ts); durations in microseconds.
  struct Access {
    uint32_t tenant = 0, peer = 0, attempts = 0;
    uint64_t bytes_in = 0, bytes_out = 0, queue_us = 0, upstream_us = 0;
  } access;
};

class EventChannel {
 public:
  // `notify` is called (on the producer's thread) when the first event after a drain is queued
  // (deferred events: see PushDeferred).
  EventChannel(size_t capacity, CounterBlock* counters, std::function<void()> notify);

  // Producer side (any thread). False when the ring was full (the event is counted as dropped).
  bool Push(EngineEvent&& event);
  // An event JS may see later (a call's access record): queued without waking JS unless the
  // ring is a quarter full; *wake_later is set when the caller must call Flush() within its
  // bound (the first deferred event since JS was last woken). Events pushed with Push() after
  // it still wake JS at once and take the deferred ones along.
  bool PushDeferred(EngineEvent&& event, bool* wake_later);
  // Wakes JS if events wait and it has not been woken since it last drained.
  void Flush();
  void Log(LogLevel level, std::string text);
  // A log record with the request's fields (any may be empty).
  void Log(LogLevel level, std::string text, std::string code, std::string request_id, std::string model, std::string err);

  // Consumer side: moves every queued event into *out (cleared first); returns the count. The
  // vector keeps its capacity, and the ring's slots keep theirs, so steady-state draining does
  // not allocate beyond the events' own strings.
  size_t Drain(std::vector<EngineEvent>* out);

  size_t capacity() const { return ring_.size(); }

 private:
  std::mutex mutex_;
  std::vector<EngineEvent> ring_;
  size_t head_ = 0;  // next to read
  size_t size_ = 0;
  bool signaled_ = false;  // notify_ called since the last Drain: JS will drain what is queued
  CounterBlock* counters_;
  std::function<void()> notify_;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_EVENT_CHANNEL_H_
