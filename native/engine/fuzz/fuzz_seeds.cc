// Writes seed corpora for the libFuzzer harnesses: real HTTP/2 client connections (made by the
// nghttp2 test client) carrying KServe requests, framed messages and raw requests.
// Usage: engine_fuzz_seeds DIR  (creates DIR/h2, DIR/deframer, DIR/scan)
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "engine/inference_link.h"
#include "engine/test/h2_test_client.h"

using sluice::engine::test::GrpcFrame;
using sluice::engine::test::H2TestClient;

namespace {
void Varint(std::string* o, uint64_t v) {
  while (v >= 0x80) {
    o->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  o->push_back(static_cast<char>(v));
}
void Len(std::string* o, uint32_t f, const std::string& v) {
  Varint(o, (f << 3) | 2);
  Varint(o, v.size());
  o->append(v);
}
std::string Request(const std::string& dt, int n, bool raw) {
  std::string in;
  Len(&in, 1, "INPUT0");
  Len(&in, 2, dt);
  std::string shape;
  Varint(&shape, 1);
  Varint(&shape, n);
  Len(&in, 3, shape);
  if (!raw) {
    std::string c, packed;
    for (int i = 0; i < n; i++) Varint(&packed, i);
    Len(&c, 2, packed);
    Len(&in, 5, c);
  }
  std::string req;
  Len(&req, 1, "simple");
  Len(&req, 2, "1");
  Len(&req, 3, "id-1");
  Len(&req, 5, in);
  if (raw) Len(&req, 7, std::string(static_cast<size_t>(n) * 4, '\x07'));
  return req;
}
void Write(const std::string& path, const std::string& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return;
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string dir = argv[1];
  for (const char* sub : {"", "/h2", "/deframer", "/scan", "/link"}) mkdir((dir + sub).c_str(), 0755);
  std::vector<std::string> reqs = {Request("INT32", 16, true), Request("INT32", 16, false), Request("BYTES", 2, true), Request("FP32", 0, true)};
  for (size_t i = 0; i < reqs.size(); i++) {
    Write(dir + "/scan/req" + std::to_string(i), reqs[i]);
    Write(dir + "/deframer/msg" + std::to_string(i), std::string("\x10\x00", 2) + GrpcFrame(reqs[i]) + GrpcFrame(reqs[i]));
  }
  const char* paths[] = {"/inference.GRPCInferenceService/ModelInfer", "/inference.GRPCInferenceService/ModelStreamInfer",
                         "/grpc.health.v1.Health/Check"};
  for (int p = 0; p < 3; p++) {
    H2TestClient c;
    int32_t id = c.Request(paths[p], {{"x-request-id", "seed"}, {"grpc-timeout", "100m"}}, GrpcFrame(reqs[p % reqs.size()]), p != 1);
    std::string bytes = c.Pull();
    if (p == 1) {
      c.Write(id, GrpcFrame(reqs[0]), true);
      bytes += c.Pull();
    }
    Write(dir + "/h2/conn" + std::to_string(p), std::string(1, '\x40') + bytes);
    Write(dir + "/h2/conn-small-chunks" + std::to_string(p), std::string(1, '\x01') + bytes);
  }
  {
    H2TestClient c;
    int32_t id = c.Request(paths[0], {{"grpc-encoding", "gzip"}}, "", false);
    std::string bytes = c.Pull();
    c.Rst(id);
    bytes += c.Pull();
    Write(dir + "/h2/reset", std::string(1, '\x10') + bytes);
  }
  // Link frames sealed under the fuzzers' fixed key (fuzz_link_receiver.cc): a one-frame
  // message, a message in three frames, and a CLOSE.
  {
    using namespace sluice::engine;
    uint8_t secret[32];
    for (int i = 0; i < 32; i++) secret[i] = static_cast<uint8_t>(i);
    FrameSealer sealer(std::make_unique<TrafficKeys>(secret, 1, KeyLimits{}), kSegmentInference);
    std::string stream;
    auto seal = [&](uint8_t type, uint8_t flags, uint32_t id, uint32_t total, const std::string& payload) {
      std::string frame(FrameSealer::FrameBytes(payload.size()), '\0');
      BytePart part{reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
      Status st = sealer.Seal(type, kClassInference, flags, id, 1, 7, total, &part, 1, payload.size(), reinterpret_cast<uint8_t*>(frame.data()));
      if (st.ok()) stream += frame;
    };
    seal(kFrameData, kFlagFirst | kFlagLast, 1, 5, "hello");
    std::string big(3000, 'm');
    seal(kFrameData, kFlagFirst, 3, 3000, big.substr(0, 1000));
    seal(kFrameData, 0, 3, 3000, big.substr(1000, 1000));
    seal(kFrameData, kFlagLast, 3, 3000, big.substr(2000));
    Write(dir + "/link/frames", std::string(1, '\x02') + stream);
    Write(dir + "/link/frames-bytewise", std::string(1, '\x00') + stream);
  }
  return 0;
}
