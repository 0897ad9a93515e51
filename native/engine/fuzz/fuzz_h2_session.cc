// libFuzzer harness: the engine's gRPC server session (nghttp2 underneath) on arbitrary bytes
// from a client, fed in chunks the input chooses, with time advancing, a handler that answers
// every call (echo, trailers, relay) and the output drained as a socket would
// (scripts/fuzz-native.sh). Seeds: valid connections written by `engine_fuzz_seeds`.
// fuzz-build: native/engine/grpc_server_session.cc native/engine/grpc_deframer.cc native/engine/grpc_compression.cc native/engine/kserve_scan.cc -lnghttp2 -lz
// fuzz-seeds: h2
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/grpc_server_session.h"
#include "engine/kserve_scan.h"

using namespace sluice::engine;

namespace {
struct EchoHandler final : GrpcServerSession::Handler {
  GrpcServerSession* s = nullptr;
  KServeScanner scanner;
  CallKind Route(int32_t, const RequestHead& h) override {
    if (h.path == "/inference.GRPCInferenceService/ModelStreamInfer") return CallKind::kStreaming;
    if (h.path == "/inference.GRPCInferenceService/ModelInfer") return CallKind::kUnary;
    return CallKind::kRelay;
  }
  void OnCall(int32_t, const RequestHead&) override {}
  void OnMessage(int32_t id, const uint8_t* d, size_t n) override {
    CallError e = scanner.ScanInferRequest(d, n);
    if (!e.ok()) {
      HeaderField rid{"x-request-id", "fuzz"};
      s->Finish(id, e.status, e.message, &rid, 1);
      return;
    }
    s->SendMessage(id, d, n);
  }
  void OnHalfClose(int32_t id) override { s->Finish(id, GrpcStatus::kOk, ""); }
  void OnCancel(int32_t) override {}
  void OnDeadline(int32_t id) override { s->Finish(id, GrpcStatus::kDeadlineExceeded, "deadline"); }
  void OnRelayData(int32_t id, const uint8_t* d, size_t n, bool end) override {
    HeaderField hs[] = {{":status", "200"}, {"content-type", "application/grpc"}};
    s->SubmitRawHeaders(id, hs, 2, false);
    s->SendRawData(id, d, n);
    if (end) {
      HeaderField tr[] = {{"grpc-status", "0"}};
      s->FinishRaw(id, tr, 1);
    }
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  GrpcSessionLimits limits;
  limits.max_request_message_bytes = 1 << 16;
  limits.max_concurrent_streams = 64;
  limits.max_buffered_bytes = 1 << 20;
  limits.handshake_timeout_ms = 50;
  limits.idle_timeout_ms = 100;
  size_t chunk = static_cast<size_t>(data[0]) * 4 + 1;
  data++;
  size--;
  EchoHandler h;
  uint64_t now = 1;
  GrpcServerSession session(&h, limits, now);
  h.s = &session;
  for (size_t pos = 0; pos < size && !session.wants_close(); pos += chunk) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    session.Feed(data + pos, n, now);
    now += 3;
    session.Tick(now);
    session.FillOutput();
    session.ConsumeOutput(session.output_size());
  }
  session.PeerGone();
  return 0;
}
