// Unit tests of the engine's ingress pieces (sans-IO): the gRPC server session driven by a real
// nghttp2 client, the deframer, grpc-encoding and the KServe scanner. Built by binding.gyp as
// `engine_ingress_tests` and run by test/native/engine-ingress.test.ts (and on the ASan build).
// `--scan` mode: reads length-prefixed requests on stdin and writes one JSON line per request
// (the differential property test against src/kserve/infer-request-scan.ts).
#include <zlib.h>

#include <cstdio>
#include <functional>
#include <iostream>
#include <string>

#include <atomic>
#include <memory>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <vector>
#include <thread>

#include "engine/event_loop.h"
#include "engine/latency_ring.h"
#include "engine/pooled_map.h"
#include "engine/stream_table.h"
#include "engine/rx_timestamp.h"
#include "engine/grpc_compression.h"
#include "engine/grpc_deframer.h"
#include "engine/grpc_server_session.h"
#include "engine/kserve_scan.h"
#include "engine/policy_table.h"
#include "engine/test/h2_test_client.h"

using namespace sluice::engine;
using sluice::engine::test::GrpcFrame;
using sluice::engine::test::H2TestClient;

namespace {

int failures = 0;
int checks = 0;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    checks++;                                                                        \
    if (!(cond)) {                                                                   \
      failures++;                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                                \
  } while (0)
#define CHECK_EQ(a, b)                                                                                        \
  do {                                                                                                        \
    checks++;                                                                                                 \
    auto va = (a);                                                                                            \
    auto vb = (b);                                                                                            \
    if (!(va == vb)) {                                                                                        \
      failures++;                                                                                             \
      std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK_EQ failed: " #a " == " #b " (" << va << " vs " << vb << ")\n"; \
    }                                                                                                         \
  } while (0)

// Records what the session tells its handler; answers per test.
struct RecordingHandler final : GrpcServerSession::Handler {
  GrpcServerSession* session = nullptr;
  std::vector<std::string> events;
  std::function<CallKind(int32_t, const RequestHead&)> route = [](int32_t, const RequestHead& h) {
    return h.path == "/inference.GRPCInferenceService/ModelStreamInfer" ? CallKind::kStreaming
           : h.path.rfind("/inference.", 0) == 0                        ? CallKind::kUnary
                                                                        : CallKind::kRelay;
  };
  std::function<void(int32_t, const uint8_t*, size_t)> on_message;
  std::string last_request_id;
  std::string last_authorization;
  uint32_t last_authorization_count = 0;

  CallKind Route(int32_t id, const RequestHead& h) override {
    events.push_back("route " + std::string(h.path));
    return route(id, h);
  }
  void OnCall(int32_t, const RequestHead& h) override {
    events.push_back("call");
    last_request_id = std::string(h.x_request_id);
    last_authorization = std::string(h.authorization);
    last_authorization_count = h.authorization_count;
  }
  void OnMessage(int32_t id, const uint8_t* d, size_t n) override {
    events.push_back("message " + std::to_string(n));
    if (on_message) on_message(id, d, n);
  }
  void OnHalfClose(int32_t id) override {
    events.push_back("halfclose");
    HeaderField rid{"x-request-id", "rid-1"};
    session->Finish(id, GrpcStatus::kOk, "", &rid, 1);
  }
  void OnCancel(int32_t) override { events.push_back("cancel"); }
  void OnDeadline(int32_t id) override {
    events.push_back("deadline");
    HeaderField rid{"x-request-id", "rid-d"};
    session->Finish(id, GrpcStatus::kDeadlineExceeded, "deadline of 5 ms exceeded", &rid, 1);
  }
  void OnRelayData(int32_t, const uint8_t*, size_t n, bool end) override {
    events.push_back("relay " + std::to_string(n) + (end ? " end" : ""));
  }
  bool Saw(const std::string& e) const {
    for (const auto& x : events) if (x == e) return true;
    return false;
  }
};

struct Pair {
  RecordingHandler handler;
  GrpcSessionLimits limits;
  std::unique_ptr<GrpcServerSession> server;
  H2TestClient client;
  uint64_t now = 1000;

  explicit Pair(GrpcSessionLimits l = {}) : limits(l) {
    server = std::make_unique<GrpcServerSession>(&handler, limits, now);
    handler.session = server.get();
  }
  // Moves bytes both ways until neither side has anything to send.
  void Pump() {
    for (int i = 0; i < 64; i++) {
      std::string c = client.Pull();
      if (!c.empty()) server->Feed(reinterpret_cast<const uint8_t*>(c.data()), c.size(), now);
      server->FillOutput();
      size_t n = server->output_size();
      if (n > 0) {
        client.Feed(std::string(reinterpret_cast<const char*>(server->output()), n));
        server->ConsumeOutput(n);
      }
      if (c.empty() && n == 0) return;
    }
  }
};

// --- protobuf helpers (ModelInferRequest) ---
void Varint(std::string* o, uint64_t v) {
  while (v >= 0x80) {
    o->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  o->push_back(static_cast<char>(v));
}
void LenField(std::string* o, uint32_t field, const std::string& v) {
  Varint(o, (field << 3) | 2);
  Varint(o, v.size());
  o->append(v);
}
std::string Input(const std::string& name, const std::string& dt, std::vector<uint64_t> shape, const std::string& contents = "") {
  std::string in;
  LenField(&in, 1, name);
  LenField(&in, 2, dt);
  std::string packed;
  for (uint64_t d : shape) Varint(&packed, d);
  LenField(&in, 3, packed);
  if (!contents.empty()) LenField(&in, 5, contents);
  return in;
}
std::string SimpleRequest() {
  std::string req;
  LenField(&req, 1, "simple");
  LenField(&req, 3, "req-7");
  LenField(&req, 5, Input("INPUT0", "INT32", {1, 16}));
  LenField(&req, 5, Input("INPUT1", "INT32", {1, 16}));
  LenField(&req, 7, std::string(64, '\x01'));
  LenField(&req, 7, std::string(64, '\x02'));
  return req;
}

std::string Gzip(const std::string& in, int window_bits) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

const std::string kInfer = "/inference.GRPCInferenceService/ModelInfer";

void TestUnaryEcho() {
  Pair p;
  p.handler.on_message = [&](int32_t id, const uint8_t* d, size_t n) { p.server->SendMessage(id, d, n); };
  int32_t id = p.client.Request(kInfer, {{"x-request-id", "abc"}, {"authorization", "Bearer t1"}}, GrpcFrame("hello"));
  p.Pump();
  const auto& r = p.client.responses[id];
  CHECK_EQ(r.Header(":status"), std::string("200"));
  CHECK_EQ(r.Header("content-type"), std::string("application/grpc"));
  CHECK_EQ(r.data, GrpcFrame("hello"));
  CHECK_EQ(r.Header("grpc-status"), std::string("0"));
  CHECK_EQ(r.Header("x-request-id"), std::string("rid-1"));
  CHECK(r.closed);
  CHECK_EQ(p.handler.last_request_id, std::string("abc"));
  CHECK_EQ(p.handler.last_authorization, std::string("Bearer t1"));
  CHECK(p.handler.Saw("call") && p.handler.Saw("message 5") && p.handler.Saw("halfclose"));
  CHECK_EQ(p.server->open_streams(), size_t{0});
}

void TestSplitMessageAndDuplicateAuth() {
  Pair p;
  int32_t id = p.client.Request(kInfer, {{"authorization", "Bearer a"}, {"authorization", "Bearer b"}}, "", false);
  p.Pump();
  std::string framed = GrpcFrame(std::string(100000, 'x'));
  p.client.Write(id, framed.substr(0, 3), false);
  p.Pump();
  p.client.Write(id, framed.substr(3, 50000), false);
  p.Pump();
  p.client.Write(id, framed.substr(50003), true);
  p.Pump();
  CHECK(p.handler.Saw("message 100000"));
  CHECK_EQ(p.handler.last_authorization_count, 2u);
  CHECK_EQ(p.client.responses[id].Header("grpc-status"), std::string("0"));
}

void TestOversizeMessage() {
  GrpcSessionLimits l;
  l.max_request_message_bytes = 1024;
  Pair p(l);
  int32_t id = p.client.Request(kInfer, {}, GrpcFrame(std::string(4096, 'x')));
  p.Pump();
  const auto& r = p.client.responses[id];
  CHECK_EQ(r.Header("grpc-status"), std::string("8"));
  CHECK_EQ(r.Header("grpc-message"), std::string("request message larger than max (4096 vs 1024 bytes)"));
  CHECK(r.data.empty());
  CHECK(p.handler.Saw("cancel"));
  CHECK(!p.handler.Saw("message 4096"));
  // The connection keeps serving.
  int32_t id2 = p.client.Request(kInfer, {}, GrpcFrame("ok"));
  p.Pump();
  CHECK_EQ(p.client.responses[id2].Header("grpc-status"), std::string("0"));
  CHECK(!p.client.goaway);
}

void TestNotGrpcAndBadTimeoutAndMethod() {
  Pair p;
  int32_t a = p.client.Request(kInfer, {}, "{}", true, "application/json");
  int32_t b = p.client.Request(kInfer, {{"grpc-timeout", "abc"}}, GrpcFrame("x"));
  int32_t c = p.client.Request(kInfer, {{"grpc-encoding", "snappy"}}, GrpcFrame("x"));
  int32_t d = p.client.Request(kInfer, {}, GrpcFrame("a") + GrpcFrame("b"));
  int32_t e = p.client.Request(kInfer, {}, "");
  int32_t f = p.client.Request(kInfer, {}, GrpcFrame("abcdef").substr(0, 7));
  int32_t g = p.client.Request(kInfer, {}, GrpcFrame("x", true));
  p.Pump();
  CHECK_EQ(p.client.responses[a].Header(":status"), std::string("415"));
  CHECK_EQ(p.client.responses[a].data, std::string("content-type must be application/grpc, not application/json\n"));
  CHECK_EQ(p.client.responses[b].Header("grpc-status"), std::string("3"));
  CHECK_EQ(p.client.responses[b].Header("grpc-message"), std::string("malformed grpc-timeout \"abc\""));
  CHECK_EQ(p.client.responses[c].Header("grpc-status"), std::string("12"));
  CHECK_EQ(p.client.responses[c].Header("grpc-accept-encoding"), std::string("identity,deflate,gzip"));
  CHECK_EQ(p.client.responses[d].Header("grpc-message"), std::string("a unary call carries exactly one request message; got more"));
  CHECK_EQ(p.client.responses[e].Header("grpc-message"), std::string("a unary call carries exactly one request message; got none"));
  CHECK_EQ(p.client.responses[f].Header("grpc-message"), std::string("the request stream ended inside a message"));
  CHECK_EQ(p.client.responses[g].Header("grpc-status"), std::string("13"));
}

void TestCompression(int window_bits, const std::string& name) {
  Pair p;
  std::string msg(50000, 'z');
  p.handler.on_message = [&](int32_t id, const uint8_t* d, size_t n) {
    CHECK_EQ(std::string(reinterpret_cast<const char*>(d), n), msg);
    p.server->SendMessage(id, d, n);
  };
  int32_t id = p.client.Request(kInfer, {{"grpc-encoding", name}, {"grpc-accept-encoding", "gzip, deflate"}}, GrpcFrame(Gzip(msg, window_bits), true));
  p.Pump();
  const auto& r = p.client.responses[id];
  CHECK_EQ(r.Header("grpc-status"), std::string("0"));
  CHECK_EQ(r.Header("grpc-encoding"), name);
  CHECK(r.data.size() > 5 && r.data[0] == 1);
  CompressionCodec codec;
  CallError e = codec.Inflate(ParseGrpcEncoding(name), reinterpret_cast<const uint8_t*>(r.data.data()) + 5, r.data.size() - 5, 1 << 20);
  CHECK(e.ok());
  CHECK_EQ(std::string(reinterpret_cast<const char*>(codec.data()), codec.size()), msg);
}

void TestZipBomb() {
  GrpcSessionLimits l;
  l.max_request_message_bytes = 64 * 1024;
  Pair p(l);
  int32_t id = p.client.Request(kInfer, {{"grpc-encoding", "gzip"}}, GrpcFrame(Gzip(std::string(10 << 20, '\0'), 31), true));
  p.Pump();
  CHECK_EQ(p.client.responses[id].Header("grpc-status"), std::string("8"));
  CHECK(!p.handler.Saw("message 10485760"));
  int32_t id2 = p.client.Request(kInfer, {{"grpc-encoding", "gzip"}}, GrpcFrame("not gzip at all", true));
  p.Pump();
  CHECK_EQ(p.client.responses[id2].Header("grpc-status"), std::string("13"));
}

void TestStreamingAndCancel() {
  Pair p;
  p.handler.on_message = [&](int32_t id, const uint8_t* d, size_t n) { p.server->SendMessage(id, d, n); };
  int32_t id = p.client.Request("/inference.GRPCInferenceService/ModelStreamInfer", {}, GrpcFrame("one") + GrpcFrame("two").substr(0, 4), false);
  p.Pump();
  CHECK(p.handler.Saw("message 3"));
  p.client.Write(id, GrpcFrame("two").substr(4) + GrpcFrame("three"), false);
  p.Pump();
  CHECK(p.handler.Saw("message 5"));
  CHECK_EQ(p.client.responses[id].data, GrpcFrame("one") + GrpcFrame("two") + GrpcFrame("three"));
  p.client.Rst(id);
  p.Pump();
  CHECK(p.handler.Saw("cancel"));
  CHECK_EQ(p.server->open_streams(), size_t{0});
}

void TestDeadline() {
  Pair p;
  int32_t id = p.client.Request(kInfer, {{"grpc-timeout", "5m"}}, GrpcFrame("x"), false);
  p.Pump();
  p.now += 4;
  p.server->Tick(p.now);
  CHECK(!p.handler.Saw("deadline"));
  p.now += 2;
  p.server->Tick(p.now);
  p.Pump();
  CHECK(p.handler.Saw("deadline"));
  CHECK_EQ(p.client.responses[id].Header("grpc-status"), std::string("4"));
  CHECK_EQ(p.client.responses[id].Header("x-request-id"), std::string("rid-d"));
}

void TestRelay() {
  Pair p;
  int32_t id = p.client.Request("/grpc.health.v1.Health/Check", {}, GrpcFrame("h"));
  p.Pump();
  CHECK(p.handler.Saw("relay 6") && p.handler.Saw("relay 0 end"));
  HeaderField hs[] = {{":status", "200"}, {"content-type", "application/grpc"}};
  p.server->SubmitRawHeaders(id, hs, 2, false);
  std::string body = GrpcFrame("served");
  p.server->SendRawData(id, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  HeaderField tr[] = {{"grpc-status", "0"}};
  p.server->FinishRaw(id, tr, 1);
  p.Pump();
  CHECK_EQ(p.client.responses[id].data, body);
  CHECK_EQ(p.client.responses[id].Header("grpc-status"), std::string("0"));
}

void FeedRaw(GrpcServerSession& s, const std::string& bytes, uint64_t now) {
  s.Feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), now);
  s.FillOutput();
}

void TestBrokenPreface() {
  RecordingHandler h;
  GrpcServerSession s(&h, {}, 0);
  h.session = &s;
  FeedRaw(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
  CHECK(s.closing());
}

void TestDataOnStreamZero() {
  Pair p;
  p.Pump();
  // A DATA frame (type 0) on stream 0: a connection error (RFC 9113 6.1).
  std::string frame = std::string("\x00\x00\x01\x00\x00\x00\x00\x00\x00", 9) + "x";
  p.server->Feed(reinterpret_cast<const uint8_t*>(frame.data()), frame.size(), p.now);
  p.server->FillOutput();
  std::string out(reinterpret_cast<const char*>(p.server->output()), p.server->output_size());
  p.client.Feed(out);
  p.server->ConsumeOutput(out.size());
  CHECK(p.client.goaway);
  CHECK_EQ(p.client.goaway_code, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  CHECK(p.server->wants_close());
}

void TestRapidReset() {
  GrpcSessionLimits l;
  l.max_resets_per_second = 50;
  Pair p(l);
  for (int i = 0; i < 200 && !p.client.goaway; i++) {
    int32_t id = p.client.Request(kInfer, {}, "", false);
    p.Pump();
    p.client.Rst(id);
  }
  p.Pump();
  CHECK(p.client.goaway);
  CHECK(p.server->counters().flood_closes >= 1);
}

void TestTimeouts() {
  GrpcSessionLimits l;
  l.handshake_timeout_ms = 100;
  l.idle_timeout_ms = 1000;
  {
    RecordingHandler h;
    GrpcServerSession s(&h, l, 0);
    s.Tick(50);
    CHECK(!s.closing());
    s.Tick(150);
    CHECK(s.closing());
  }
  {
    Pair p(l);
    p.Pump();
    p.server->Tick(p.now + 500);
    CHECK(!p.server->closing());
    p.server->Tick(p.now + 1500);
    p.Pump();
    CHECK(p.client.goaway);
    CHECK_EQ(p.client.goaway_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  }
}

void TestEmptyDataFlood() {
  GrpcSessionLimits l;
  l.max_empty_data_frames = 10;
  Pair p(l);
  int32_t id = p.client.Request(kInfer, {}, "", false);
  p.Pump();
  std::string frames;
  for (int i = 0; i < 20; i++) {
    frames += std::string("\x00\x00\x00\x00\x00", 5);
    frames.push_back(static_cast<char>(id >> 24));
    frames.push_back(static_cast<char>(id >> 16));
    frames.push_back(static_cast<char>(id >> 8));
    frames.push_back(static_cast<char>(id));
  }
  p.server->Feed(reinterpret_cast<const uint8_t*>(frames.data()), frames.size(), p.now);
  p.Pump();
  CHECK(p.client.goaway);
  CHECK_EQ(p.client.goaway_code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
}

void TestBackpressure() {
  GrpcSessionLimits l;
  l.initial_stream_window = 65535;
  Pair p(l);
  int32_t id = p.client.Request("/inference.GRPCInferenceService/ModelStreamInfer", {}, "", false);
  p.Pump();
  p.server->PauseInput(id);
  p.client.Write(id, GrpcFrame(std::string(200000, 'q')), false);
  p.Pump();
  CHECK(!p.handler.Saw("message 200000"));
  p.server->ResumeInput(id);
  p.Pump();
  CHECK(p.handler.Saw("message 200000"));
}

void TestScanner() {
  KServeScanner sc;
  std::string req = SimpleRequest();
  CallError e = sc.ScanInferRequest(reinterpret_cast<const uint8_t*>(req.data()), req.size());
  CHECK(e.ok());
  const uint8_t* b = reinterpret_cast<const uint8_t*>(req.data());
  CHECK_EQ(std::string(KServeScanner::View(b, sc.head().model_name)), std::string("simple"));
  CHECK_EQ(std::string(KServeScanner::View(b, sc.head().id)), std::string("req-7"));
  CHECK_EQ(sc.inputs().size(), size_t{2});
  CHECK_EQ(sc.raw().size(), size_t{2});
  std::string bad;
  LenField(&bad, 1, "simple");
  LenField(&bad, 5, Input("INPUT0", "INT32", {1, 16}));
  LenField(&bad, 7, std::string(60, '\0'));
  e = sc.ScanInferRequest(reinterpret_cast<const uint8_t*>(bad.data()), bad.size());
  CHECK_EQ(std::string(e.code), std::string(err::kTensorSize));
  CHECK_EQ(e.message, std::string("input 'INPUT0' (INT32 [1,16]) needs 64 bytes; raw_input_contents[0] has 60"));
  std::string noModel;
  LenField(&noModel, 5, Input("INPUT0", "FP32", {0}));
  e = sc.ScanInferRequest(reinterpret_cast<const uint8_t*>(noModel.data()), noModel.size());
  CHECK_EQ(e.message, std::string("the request names no model"));
  std::string trunc = req.substr(0, req.size() - 3);
  e = sc.ScanInferRequest(reinterpret_cast<const uint8_t*>(trunc.data()), trunc.size());
  CHECK_EQ(std::string(e.code), std::string(err::kMalformedProtobuf));
}

void TestDeframerLimits() {
  struct Count final : GrpcDeframer::Sink {
    int n = 0;
    bool OnMessage(bool, const uint8_t*, size_t) override {
      n++;
      return true;
    }
  } sink;
  GrpcDeframer d(10);
  std::string ok = GrpcFrame("0123456789") + GrpcFrame("");
  CHECK(d.Push(reinterpret_cast<const uint8_t*>(ok.data()), ok.size(), false, sink).ok());
  CHECK_EQ(sink.n, 2);
  std::string big = GrpcFrame("01234567890").substr(0, 5);  // only the prefix: refused before the body
  CallError e = d.Push(reinterpret_cast<const uint8_t*>(big.data()), big.size(), false, sink);
  CHECK(e.status == GrpcStatus::kResourceExhausted);
}

// --scan: u32le length + bytes per request on stdin; one JSON line each on stdout.
void JsonString(std::string* o, std::string_view s) {
  *o += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      *o += '\\';
      *o += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      *o += b;
    } else {
      *o += static_cast<char>(c);
    }
  }
  *o += '"';
}

int ScanMode() {
  KServeScanner sc;
  std::string buf;
  for (;;) {
    unsigned char lenb[4];
    if (std::fread(lenb, 1, 4, stdin) != 4) return 0;
    uint32_t len = lenb[0] | (lenb[1] << 8) | (lenb[2] << 16) | (static_cast<uint32_t>(lenb[3]) << 24);
    buf.resize(len);
    if (len > 0 && std::fread(buf.data(), 1, len, stdin) != len) return 1;
    const uint8_t* b = reinterpret_cast<const uint8_t*>(buf.data());
    CallError e = sc.ScanInferRequest(b, len);
    std::string out = "{";
    if (e.ok()) {
      out += "\"ok\":true,\"model\":";
      JsonString(&out, KServeScanner::View(b, sc.head().model_name));
      out += ",\"id\":";
      JsonString(&out, KServeScanner::View(b, sc.head().id));
      out += ",\"inputs\":" + std::to_string(sc.inputs().size());
    } else {
      out += "\"ok\":false,\"status\":" + std::to_string(static_cast<int>(e.status)) + ",\"code\":\"" + e.code + "\",\"message\":";
      JsonString(&out, e.message);
    }
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
}

// --gate: first line the policy blob in hex; then one query per line, tab-separated:
// authorization, x-api-key, x-sluice-tenant, model, bytes, wall ms, monotonic ms (empty: absent).
// One JSON line per query: the gates' outcome and, for a refusal, status, code and message.
int GateMode() {
  std::string line;
  if (!std::getline(std::cin, line)) return 1;
  std::string blob;
  for (size_t i = 0; i + 1 < line.size(); i += 2) blob.push_back(static_cast<char>(std::stoi(line.substr(i, 2), nullptr, 16)));
  std::shared_ptr<PolicyTable> table;
  CallError pe = PolicyTable::Parse(reinterpret_cast<const uint8_t*>(blob.data()), blob.size(), &table);
  if (!pe.ok()) {
    std::printf("{\"parse\":false,\"message\":\"%s\"}\n", pe.message.c_str());
    return 0;
  }
  std::printf("{\"parse\":true}\n");
  std::fflush(stdout);
  TokenCache cache;
  RateLimiter limiter;
  while (std::getline(std::cin, line)) {
    std::vector<std::string> f;
    size_t start = 0;
    for (;;) {
      size_t tab = line.find('\t', start);
      f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    f.resize(7);
    GateHeaders h;
    h.authorization = f[0];
    h.authorization_count = f[0].empty() ? 0 : 1;
    h.api_key = f[1];
    h.api_key_count = f[1].empty() ? 0 : 1;
    h.tenant = f[2];
    GateResult r = PolicyGates::Check(*table, cache, limiter, h, f[3], std::stod(f[4].empty() ? "0" : f[4]), std::stod(f[5].empty() ? "0" : f[5]),
                                      std::stod(f[6].empty() ? "0" : f[6]));
    std::string out = "{\"outcome\":\"";
    out += r.outcome == GateOutcome::kAllow ? "allow" : r.outcome == GateOutcome::kRefuse ? "refuse" : "ask";
    out += "\",\"tenantId\":" + std::to_string(r.tenant_id);
    if (r.outcome != GateOutcome::kAllow && !r.error.ok()) {
      out += ",\"status\":" + std::to_string(static_cast<int>(r.error.status)) + ",\"code\":\"" + r.error.code + "\",\"message\":";
      JsonString(&out, r.error.message);
    }
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  return 0;
}

void TestPolicyBlobRejects() {
  std::shared_ptr<PolicyTable> t;
  const uint8_t junk[] = {'S', 'L', 'P', 'T', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  CHECK(!PolicyTable::Parse(junk, sizeof junk, &t).ok());
  CHECK(!PolicyTable::Parse(junk, 3, &t).ok());
}

// A one-tenant table (limited, burst 2, 0.001/s) of `generation` whose tenant has `slot`.
std::shared_ptr<PolicyTable> OneTenantTable(uint64_t generation, uint32_t slot) {
  std::string b;
  auto put = [&b](const void* p, size_t n) { b.append(static_cast<const char*>(p), n); };
  auto u16 = [&](uint16_t v) { put(&v, 2); };
  auto u32 = [&](uint32_t v) { put(&v, 4); };
  auto f64 = [&](double v) { put(&v, 8); };
  u32(kPolicyMagic);
  u16(kPolicyVersion);
  u16(0);
  put(&generation, 8);
  u32(1), u32(0), u32(0), u32(0);
  u32(7), u32(1 | 4), f64(0.001), f64(2), f64(1e6);
  u16(1), b.push_back('t');
  u32(0), u32(slot);
  std::shared_ptr<PolicyTable> t;
  CHECK(PolicyTable::Parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), &t).ok());
  return t;
}

// Shared buckets: a tenant with a slot takes from it (another taker sees the same tokens) and
// keeps them across a new table generation; without shared memory the buckets restart.
void TestSharedRateBuckets() {
  alignas(8) int64_t slots[2] = {0, 0};
  RateLimiter shared;
  shared.AttachShared(slots, 2);
  auto g1 = OneTenantTable(1, 1);
  if (!g1) return;
  CHECK(shared.Take(*g1, 0, 0) == 0);
  CHECK(slots[1] != 0 && slots[0] == 0);
  CHECK(GcraTake(&slots[1], 0.001, 2, MonotonicMicros()) == 0);  // the other taker: the last token
  CHECK(shared.Take(*g1, 0, 0) > 0);
  auto g2 = OneTenantTable(2, 1);
  CHECK(g2 && shared.Take(*g2, 0, 0) > 0);  // a republish does not refill
  RateLimiter own;
  CHECK(own.Take(*g1, 0, 0) == 0 && own.Take(*g1, 0, 0) == 0 && own.Take(*g1, 0, 0) > 0);
  CHECK(g2 && own.Take(*g2, 0, 0) == 0);  // the engine's own buckets restart
  auto none = OneTenantTable(3, kNoBucket);
  CHECK(none && shared.Take(*none, 0, 0) == 0);  // no slot: the engine's own bucket
}

}  // namespace

// An object freed from inside its own callback is handed to EventLoop::Defer. Post drops its task
// once a stop is requested; a link that closed in the same turn as the engine's stop was then
// freed while its OnEvents was still on the stack (ASan: heap-use-after-free in CI). Defer must
// keep the object alive until the callback returns, stop or not, and free it before the loop
// thread ends.
void TestDeferDuringStop() {
  struct Tracked {
    std::atomic<int>* alive;
    explicit Tracked(std::atomic<int>* a) : alive(a) { ++*alive; }
    ~Tracked() { --*alive; }
  };
  std::atomic<int> alive{0};
  std::atomic<int> still_alive_after_defer{-1};
  {
    EventLoop loop;
    std::string error;
    CHECK(loop.Start("sluice-test-loop", &error));
    CHECK(loop.Post([&] {
      auto owner = std::make_shared<Tracked>(&alive);
      loop.RequestStop();  // the stop lands inside this turn, as engine.stop() can
      loop.Defer([owner] {});
      owner.reset();
      still_alive_after_defer = alive.load();  // the callback's object must outlive the turn
    }));
    loop.Stop();
  }
  CHECK_EQ(still_alive_after_defer.load(), 1);
  CHECK_EQ(alive.load(), 0);  // freed before the loop thread ended
}

// The latency ring's writer follows the slots offset the ring declares (latency-sample-ring.ts
// writes it): across several laps every sample lands in slot index % capacity at that offset,
// and the stats between the prefix and the slots are never touched. A ring that declares a bad
// offset is refused.
void TestLatencyRingLayout() {
  using sluice::engine::LatencyRing;
  constexpr size_t kOffset = 8 + 6 * 8;  // the JS side's: index, offset, 6 stats
  constexpr size_t kCapacity = 16;
  alignas(8) uint8_t mem[kOffset + kCapacity * 16];
  std::memset(mem, 0xAB, sizeof mem);
  const int32_t zero = 0, offset = kOffset;
  std::memcpy(mem, &zero, 4);
  std::memcpy(mem + 4, &offset, 4);
  CHECK(LatencyRing::Fits(mem, sizeof mem));
  LatencyRing ring;
  ring.Attach(mem, sizeof mem, 0);
  CHECK(ring.attached());
  for (int i = 0; i < 3 * static_cast<int>(kCapacity) + 5; i++) ring.Record(static_cast<double>(i));
  int32_t written = 0;
  std::memcpy(&written, mem, 4);
  CHECK_EQ(written, 3 * static_cast<int>(kCapacity) + 5);
  for (int i = written - static_cast<int>(kCapacity); i < written; i++) {
    double v[2];
    std::memcpy(v, mem + kOffset + static_cast<size_t>(i % kCapacity) * 16, sizeof v);
    CHECK_EQ(v[1], static_cast<double>(i));
  }
  for (size_t b = 8; b < kOffset; b++) CHECK_EQ(static_cast<int>(mem[b]), 0xAB);
  for (const int32_t bad : {0, 4, 12, static_cast<int32_t>(sizeof mem), static_cast<int32_t>(sizeof mem - 8 * 16)}) {
    std::memcpy(mem + 4, &bad, 4);
    CHECK(!LatencyRing::Fits(mem, sizeof mem));
  }
}

// The governor's round trip starts at the kernel's receive timestamp: bytes that waited 60 ms in
// the socket before the read must be dated 60 ms back, not at the read.
void TestReadStampedDatesTheArrival() {
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  CHECK(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(lfd, 1) == 0);
  CHECK(getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &alen) == 0);
  int cfd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(cfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  int sfd = accept(lfd, nullptr, nullptr);
  CHECK(sfd >= 0);
  CHECK(EnableRxTimestamps(sfd));
  // The kernel turns stamping on for the first such socket through deferred work: give it a
  // moment (in the engine the first reads after start may go undated, and fall back to the read).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto steady_us = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
  };
  const uint64_t sent = steady_us();
  CHECK(write(cfd, "request", 7) == 7);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  uint8_t buf[64];
  uint64_t arrival = 0;
  CHECK_EQ(ReadStamped(sfd, buf, sizeof buf, &arrival), static_cast<ssize_t>(7));
  const uint64_t read_at = steady_us();
  CHECK(arrival != 0);
  CHECK(arrival + 50000 <= read_at);  // dated at the arrival, not at the read
  CHECK(arrival + 5000 >= sent);      // and not before the send (5 ms for the clocks' grain)
  // Without timestamps on the socket the read is undated.
  CHECK(write(sfd, "reply", 5) == 5);
  CHECK_EQ(ReadStamped(cfd, buf, sizeof buf, &arrival), static_cast<ssize_t>(5));
  CHECK_EQ(arrival, static_cast<uint64_t>(0));
  close(cfd);
  close(sfd);
  close(lfd);
}

// Calls by stream id: ids that only grow append; one out of order still lands in order; an
// erase in the middle keeps the rest findable; a put of a present id replaces it.
void TestStreamTable() {
  sluice::engine::StreamTable<int> t;
  int v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int i = 1; i <= 7; i += 2) t.Put(i, &v[i]);
  CHECK_EQ(t.size(), size_t{4});
  CHECK(t.Find(3) == &v[3] && t.Find(7) == &v[7] && t.Find(2) == nullptr && t.Find(9) == nullptr);
  CHECK(t.Erase(3));
  CHECK(!t.Erase(3));
  CHECK(t.Find(1) == &v[1] && t.Find(5) == &v[5] && t.Find(7) == &v[7] && t.Find(3) == nullptr);
  t.Put(4, &v[4]);  // out of order
  t.Put(5, &v[0]);  // replace
  int prev = 0;
  for (const auto& [id, p] : t) {
    CHECK(id > prev);
    prev = id;
  }
  CHECK(t.Find(4) == &v[4] && t.Find(5) == &v[0]);
  CHECK_EQ(t.size(), size_t{4});
}

// A map whose erased nodes are reused: after a round of inserts and erases, a second round of
// the same size inserts into recycled nodes (no allocation is what pooled_map.h is for; here
// the contents are checked: a recycled node never keeps a stale key or value).
void TestPooledMap() {
  sluice::engine::PooledMap<uint64_t, int*> m;
  int v[64];
  for (int round = 0; round < 3; round++) {
    for (uint64_t k = 0; k < 64; k++) m.Put((k << 32) | static_cast<uint64_t>(round), &v[k]);
    CHECK_EQ(m.size(), size_t{64});
    for (uint64_t k = 0; k < 64; k++) {
      auto it = m.find((k << 32) | static_cast<uint64_t>(round));
      CHECK(it != m.end() && it->second == &v[k]);
      CHECK(m.find((k << 32) | static_cast<uint64_t>(round + 1)) == m.end());
    }
    for (auto it = m.begin(); it != m.end();) it = (it->first >> 32) % 2 == 0 ? m.erase(it) : std::next(it);
    CHECK_EQ(m.size(), size_t{32});
    CHECK_EQ(m.erase((uint64_t{1} << 32) | static_cast<uint64_t>(round)), size_t{1});
    CHECK_EQ(m.erase((uint64_t{1} << 32) | static_cast<uint64_t>(round)), size_t{0});
    m.clear();
    CHECK(m.empty());
  }
}

// Timers in reused slots: a cancelled timer never runs, an id that fired or was cancelled
// never reaches the timer that took its slot, and timers due at the same ms run in order.
void TestTimerSlots() {
  EventLoop loop;
  std::string error;
  CHECK(loop.Start("sluice-timers", &error));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> ran;
  bool done = false;
  CHECK(loop.Post([&] {
    std::mutex* m = &mu;
    std::vector<int>* r = &ran;
    auto note = [m, r](int n) { return [m, r, n] { std::lock_guard<std::mutex> g(*m); r->push_back(n); }; };
    const EventLoop::TimerId a = loop.AddTimer(5, note(1));
    loop.CancelTimer(a);
    const EventLoop::TimerId b = loop.AddTimer(5, note(2));  // takes a's slot
    CHECK(b != a);
    loop.CancelTimer(a);  // a stale id: b must still run
    for (int i = 3; i <= 6; i++) loop.AddTimer(10, note(i));
    // Captures by value: this turn's locals are gone when the timers run.
    EventLoop* l = &loop;
    bool* d = &done;
    std::condition_variable* c = &cv;
    loop.AddTimer(30, [l, note, b, m, d, c] {
      l->AddTimer(1, note(7));
      l->CancelTimer(b);  // fired long ago: the new timer (maybe in b's slot) must still run
      l->AddTimer(20, [m, d, c] {
        std::lock_guard<std::mutex> g(*m);
        *d = true;
        c->notify_all();
      });
    });
  }));
  {
    std::unique_lock<std::mutex> g(mu);
    cv.wait_for(g, std::chrono::seconds(5), [&] { return done; });
  }
  loop.Stop();
  CHECK(done);
  CHECK(ran == (std::vector<int>{2, 3, 4, 5, 6, 7}));
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--scan") return ScanMode();
  if (argc > 1 && std::string(argv[1]) == "--gate") return GateMode();
  TestPolicyBlobRejects();
  TestSharedRateBuckets();
  TestUnaryEcho();
  TestSplitMessageAndDuplicateAuth();
  TestOversizeMessage();
  TestNotGrpcAndBadTimeoutAndMethod();
  TestCompression(31, "gzip");
  TestCompression(15, "deflate");
  TestZipBomb();
  TestStreamingAndCancel();
  TestDeadline();
  TestRelay();
  TestBrokenPreface();
  TestDataOnStreamZero();
  TestRapidReset();
  TestTimeouts();
  TestEmptyDataFlood();
  TestBackpressure();
  TestScanner();
  TestDeframerLimits();
  TestDeferDuringStop();
  TestReadStampedDatesTheArrival();
  TestLatencyRingLayout();
  TestStreamTable();
  TestPooledMap();
  TestTimerSlots();
  std::printf("engine ingress tests: %d checks, %d failures\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
