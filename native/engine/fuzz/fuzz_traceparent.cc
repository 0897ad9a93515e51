// libFuzzer harness: the traceparent parser (trace_context.h) on arbitrary header bytes, both
// rule sets (scripts/fuzz-native.sh). Invariants: an accepted header has non-zero ids and a
// version other than ff; its canonical form ("00-...", 55 characters) parses again to the same
// context under both rules; the span decision and the span record never read out of bounds.
// fuzz-build:
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/trace_context.h"

using namespace sluice::engine;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view h(reinterpret_cast<const char*>(data), size);
  static TraceIds ids;
  for (TraceparentRules rules : {TraceparentRules::kPropagator, TraceparentRules::kEnvelope}) {
    TraceContext t;
    const bool ok = ParseTraceparent(h, rules, &t);
    if (ok != t.valid) __builtin_trap();
    if (!ok) continue;
    if (size < 55) __builtin_trap();
    bool zero_trace = true, zero_span = true;
    for (uint8_t b : t.trace_id) zero_trace = zero_trace && b == 0;
    for (uint8_t b : t.span_id) zero_span = zero_span && b == 0;
    if (zero_trace || zero_span) __builtin_trap();
    std::string canon;
    FormatTraceparent(t.trace_id, t.span_id, t.flags, &canon);
    if (canon.size() != 55) __builtin_trap();
    for (TraceparentRules again : {TraceparentRules::kPropagator, TraceparentRules::kEnvelope}) {
      TraceContext u;
      if (!ParseTraceparent(canon, again, &u)) __builtin_trap();
      if (std::memcmp(u.trace_id, t.trace_id, 16) != 0 || std::memcmp(u.span_id, t.span_id, 8) != 0 || u.flags != t.flags) __builtin_trap();
    }
  }
  // The ingress's and egress's decision on the same bytes, at a ratio the input picks.
  const double ratio = size > 0 ? data[0] / 255.0 : 1.0;
  SpanStart s = DecideSpan(h, ratio, &ids);
  SpanRecord r;
  std::memcpy(r.trace_id, s.trace_id, 16);
  if (s.parent.valid) std::memcpy(r.parent_id, s.parent.span_id, 8);
  std::vector<uint8_t> body;
  r.Encode(&body);
  if (body.size() != SpanRecord::kBytes) __builtin_trap();
  return 0;
}
