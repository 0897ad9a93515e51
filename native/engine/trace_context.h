// W3C trace context on the engine's fast path (src/telemetry/tracing.ts is the TypeScript side):
// the traceparent parser with the rules the TypeScript path applies, the sampler the node's
// tracer uses, span ids, and the span record the engine queues for TypeScript (one per call
// and side, in the batched event channel as EventType::kSpan; src/engine/engine-spans.ts turns
// it into OpenTelemetry spans through the node's own exporter).
//
// Two parsing rule sets, because the TypeScript path has two:
//  - kPropagator: what @opentelemetry/core's W3CTraceContextPropagator.extract accepts (the
//    parent of a span): one optional whitespace at each end, lower-case hex, version != ff, no
//    field after the flags in version 00, trace id and parent id not all zero.
//  - kEnvelope: what src/wire/inference-envelope.ts traceContextBytes() accepts (the context a
//    CALL carries when the caller's header travels unchanged, i.e. an unsampled call): all
//    surrounding whitespace trimmed, the same field checks.
// A header that fails is ignored: the call starts a new trace (as the TypeScript ingress does).
// Header-only: the addon, the test executables and the fuzz harness include it.
#ifndef SLUICE_NATIVE_ENGINE_TRACE_CONTEXT_H_
#define SLUICE_NATIVE_ENGINE_TRACE_CONTEXT_H_

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <time.h>

namespace sluice {
namespace engine {

struct TraceContext {
  uint8_t trace_id[16] = {};
  uint8_t span_id[8] = {};
  uint8_t flags = 0;
  bool valid = false;
  bool sampled() const { return (flags & 1) != 0; }
};

enum class TraceparentRules { kPropagator, kEnvelope };

namespace trace_detail {
inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
inline bool HexBytes(std::string_view s, uint8_t* out) {
  for (size_t i = 0; i < s.size(); i += 2) {
    const int hi = HexValue(s[i]), lo = HexValue(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}
inline bool AllZero(const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (b[i] != 0) return false;
  }
  return true;
}
// JavaScript's \s over the bytes a latin1 header string holds (node gives header values as
// latin1: byte 0xa0 is U+00A0, which \s and String.prototype.trim() both count).
inline bool IsJsSpace(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u == ' ' || u == '\t' || u == '\n' || u == '\v' || u == '\f' || u == '\r' || u == 0xa0;
}
}  // namespace trace_detail

// Parses a traceparent header; false (and out->valid false) when the rules refuse it.
inline bool ParseTraceparent(std::string_view h, TraceparentRules rules, TraceContext* out) {
  using namespace trace_detail;
  *out = TraceContext();
  if (rules == TraceparentRules::kPropagator) {
    // ^\s?(version)-(trace)-(parent)-(flags)(-.*)?\s?$
    if (!h.empty() && IsJsSpace(h.front())) h.remove_prefix(1);
  } else {
    // traceparent.trim(), then ^...(?:-[^]*)?$
    while (!h.empty() && IsJsSpace(h.front())) h.remove_prefix(1);
    while (!h.empty() && IsJsSpace(h.back())) h.remove_suffix(1);
  }
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
  uint8_t version = 0;
  if (!HexBytes(h.substr(0, 2), &version) || version == 0xff) return false;
  TraceContext t;
  if (!HexBytes(h.substr(3, 32), t.trace_id) || !HexBytes(h.substr(36, 16), t.span_id) || !HexBytes(h.substr(53, 2), &t.flags)) return false;
  const std::string_view rest = h.substr(55);
  if (!rest.empty()) {
    const bool one_space = rules == TraceparentRules::kPropagator && rest.size() == 1 && IsJsSpace(rest[0]);
    if (!one_space) {
      // Fields after the flags: only in a version after 00 (W3C "Versioning of traceparent").
      if (rest[0] != '-' || version == 0) return false;
      if (rules == TraceparentRules::kPropagator) {
        // `.*` stops at \n and \r; one of them may only be the final \s?.
        const std::string_view more = rest.substr(1);
        for (size_t i = 0; i + 1 < more.size(); i++) {
          if (more[i] == '\n' || more[i] == '\r') return false;
        }
      }
    }
  }
  if (AllZero(t.trace_id, 16) || AllZero(t.span_id, 8)) return false;
  t.valid = true;
  *out = t;
  return true;
}

// TraceIdRatioBasedSampler (@opentelemetry/sdk-trace): the XOR of the trace id's four 32-bit
// words against floor(ratio * 0xffffffff) (all of them at ratio 1). The node's tracer is
// ParentBased over it, so a new trace is sampled the same way in TypeScript and here.
inline bool RatioSampled(const uint8_t trace_id[16], double ratio) {
  if (!(ratio > 0)) return false;
  uint64_t bound = ratio >= 1 ? 0x100000000ull : static_cast<uint64_t>(std::floor(ratio * 4294967295.0));
  uint32_t acc = 0;
  for (int w = 0; w < 4; w++) {
    acc ^= static_cast<uint32_t>(trace_id[w * 4]) << 24 | static_cast<uint32_t>(trace_id[w * 4 + 1]) << 16 |
           static_cast<uint32_t>(trace_id[w * 4 + 2]) << 8 | trace_id[w * 4 + 3];
  }
  return acc < bound;
}

// "00-<trace>-<span>-<flags>" (55 characters).
inline void FormatTraceparent(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->assign("00-");
  for (int i = 0; i < 16; i++) {
    out->push_back(kHex[trace_id[i] >> 4]);
    out->push_back(kHex[trace_id[i] & 15]);
  }
  out->push_back('-');
  for (int i = 0; i < 8; i++) {
    out->push_back(kHex[span_id[i] >> 4]);
    out->push_back(kHex[span_id[i] & 15]);
  }
  out->push_back('-');
  out->push_back(kHex[flags >> 4]);
  out->push_back(kHex[flags & 15]);
}

// The 26 bytes of a CALL's trace context (docs/wire.md: version 0, trace id, parent id, flags).
inline void TraceContextBytes(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags, uint8_t out[26]) {
  out[0] = 0;
  std::memcpy(out + 1, trace_id, 16);
  std::memcpy(out + 17, span_id, 8);
  out[25] = flags;
}

// Tracing settings of a node (telemetry.otlp): set from JS, read on the loop thread.
class TraceSettings {
 public:
  void Set(bool enabled, double ratio) {
    ratio_.store(ratio, std::memory_order_relaxed);
    enabled_.store(enabled, std::memory_order_release);
  }
  bool enabled() const { return enabled_.load(std::memory_order_acquire); }
  double ratio() const { return ratio_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> enabled_{false};
  std::atomic<double> ratio_{1.0};
};

// Random ids (never all zero), from a generator seeded once per owner.
class TraceIds {
 public:
  TraceIds() : rng_(std::random_device{}()) {}
  void SpanId(uint8_t out[8]) {
    uint64_t v;
    do v = rng_();
    while (v == 0);
    std::memcpy(out, &v, 8);
  }
  void TraceId(uint8_t out[16]) {
    uint64_t a, b;
    do {
      a = rng_();
      b = rng_();
    } while (a == 0 && b == 0);
    std::memcpy(out, &a, 8);
    std::memcpy(out + 8, &b, 8);
  }

 private:
  std::mt19937_64 rng_;
};

// The span decision for a call that arrives with `header` (empty: none): the parent context,
// whether the call is sampled, and the trace id (the parent's, or a new one).
struct SpanStart {
  TraceContext parent;  // valid: continue it
  uint8_t trace_id[16] = {};
  bool sampled = false;
};

// The same decision from a header parsed before (kPropagator rules; `parent.valid` false: none
// or refused): a ModelStreamInfer stream parses its header once and decides per message.
inline SpanStart DecideSpanFrom(const TraceContext& parent, double ratio, TraceIds* ids) {
  SpanStart s;
  if (parent.valid) {
    s.parent = parent;
    std::memcpy(s.trace_id, parent.trace_id, 16);
    s.sampled = parent.sampled();  // ParentBased: a remote parent's flag decides
  } else {
    ids->TraceId(s.trace_id);
    s.sampled = RatioSampled(s.trace_id, ratio);
  }
  return s;
}

inline SpanStart DecideSpan(std::string_view header, double ratio, TraceIds* ids) {
  TraceContext parent;
  if (!header.empty()) (void)ParseTraceparent(header, TraceparentRules::kPropagator, &parent);  // refused: parent.valid false
  return DecideSpanFrom(parent, ratio, ids);
}

// One span record (EventType::kSpan's body), little-endian; layout mirrored by
// src/engine/engine-spans.ts decodeSpanRecord.
//   u8 side (1 ingress, 2 egress), u8 flags (1 has parent), u8 grpc status, u8 method,
//   u32 peer (ingress: the dialer id of the last attempt), u32 attempts, u32 tenant id,
//   trace id [16], span id [8], parent id [8] (zero: a root), child span id [8] (egress: the
//   upstream span's, whose id went to the model server; ingress: zero, the link span's id is
//   made in TypeScript as on the TypeScript path),
//   u64 start, end, child start, child end (CLOCK_MONOTONIC ns; ingress child = the link round
//   trip of the last attempt, egress child = the model server call), u64 bytes in, bytes out.
// Strings travel in the event's fields: request_id, model, tenant (the name, egress).
struct SpanRecord {
  static constexpr size_t kBytes = 4 + 12 + 16 + 8 + 8 + 8 + 6 * 8;
  enum Side : uint8_t { kIngress = 1, kEgress = 2 };
  uint8_t side = kIngress;
  bool has_parent = false;
  uint8_t status = 0;
  uint8_t method = 1;
  uint32_t peer = 0, attempts = 0, tenant = 0;
  uint8_t trace_id[16] = {};
  uint8_t span_id[8] = {};
  uint8_t parent_id[8] = {};
  uint8_t child_id[8] = {};
  uint64_t start_ns = 0, end_ns = 0, child_start_ns = 0, child_end_ns = 0, bytes_in = 0, bytes_out = 0;

  void Encode(std::vector<uint8_t>* out) const {
    out->resize(kBytes);
    uint8_t* p = out->data();
    p[0] = side;
    p[1] = has_parent ? 1 : 0;
    p[2] = status;
    p[3] = method;
    std::memcpy(p + 4, &peer, 4);
    std::memcpy(p + 8, &attempts, 4);
    std::memcpy(p + 12, &tenant, 4);
    std::memcpy(p + 16, trace_id, 16);
    std::memcpy(p + 32, span_id, 8);
    std::memcpy(p + 40, parent_id, 8);
    std::memcpy(p + 48, child_id, 8);
    const uint64_t v[6] = {start_ns, end_ns, child_start_ns, child_end_ns, bytes_in, bytes_out};
    std::memcpy(p + 56, v, sizeof v);
  }
};

inline uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_TRACE_CONTEXT_H_
