// A whole engine in one process, for the ingress's end-to-end tests: the gRPC ingress on a
// loopback port, an inference link dialed to the engine's own link listener (a real TCP link
// with the handshake and AES-GCM frames), and the engine's egress to a model server.
//   client --h2c--> ingress --CALL/link--> egress --h2c--> model server
// Usage: engine_ingress_main --upstream HOST:PORT --policy FILE [--relay UNIX_PATH] [--timeout-ms N]
// Prints "INGRESS_PORT=<port>" once the ingress listens and the link is up, then serves until
// stdin closes. The policy table (src/engine/policy-compiler.ts) routes to peer 1 (the dialer).
// A line "allocs" on stdin answers "ALLOCS=<n>": the C++ heap allocations (operator new) the
// engine's own threads made so far, so a test can count them per call (-1 under ASan, whose
// allocator this binary does not replace).
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>

#include "engine/engine.h"
#include "engine/grpc_ingress.h"

#include "engine/sanitizers.h"

// Not under ASan: its allocator stays.
#ifdef SLUICE_ASAN
#define SLUICE_COUNT_ALLOCS 0
#else
#define SLUICE_COUNT_ALLOCS 1
#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long long> g_engine_allocs{0};
// Off on this file's own threads (main, logger): what is counted is the engine's.
thread_local bool t_not_engine = false;
}  // namespace

void* operator new(std::size_t n) {
  if (!t_not_engine) g_engine_allocs.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

using namespace sluice::engine;

static long long EngineAllocs() {
#if SLUICE_COUNT_ALLOCS
  return g_engine_allocs.load();
#else
  return -1;
#endif
}

static void NotEngineThread() {
#if SLUICE_COUNT_ALLOCS
  t_not_engine = true;
#endif
}

int main(int argc, char** argv) {
  NotEngineThread();
  std::string upstream, policy_file, relay;
  uint32_t timeout_ms = 30000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--upstream") upstream = argv[i + 1];
    else if (k == "--policy") policy_file = argv[i + 1];
    else if (k == "--relay") relay = argv[i + 1];
    else if (k == "--timeout-ms") timeout_ms = static_cast<uint32_t>(std::stoul(argv[i + 1]));
  }
  std::ifstream in(policy_file, std::ios::binary);
  std::string blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::shared_ptr<PolicyTable> table;
  CallError pe = PolicyTable::Parse(reinterpret_cast<const uint8_t*>(blob.data()), blob.size(), &table);
  if (!pe.ok()) {
    std::fprintf(stderr, "policy: %s\n", pe.message.c_str());
    return 2;
  }
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false;
  Engine engine([&] {
    std::lock_guard<std::mutex> g(mu);
    pending = true;
    cv.notify_all();
  });
  std::string error;
  if (!engine.Start("sluice-infer", &error)) {
    std::fprintf(stderr, "engine: %s\n", error.c_str());
    return 1;
  }
  LinkOptions opts;
  for (int i = 0; i < 32; i++) opts.key[i] = static_cast<uint8_t>(0x40 + i);
  EgressConfig egress;
  egress.routes.push_back({"*", {upstream}});
  engine.ConfigureEgress(egress);
  engine.PublishPolicy(table);
  engine.Listen("127.0.0.1", 0, opts);
  std::vector<EngineEvent> events;
  uint32_t dialer = 0;
  bool link_up = false;
  uint16_t ingress_port = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!(link_up && ingress_port != 0)) {
    {
      std::unique_lock<std::mutex> g(mu);
      cv.wait_until(g, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(100)), [&] { return pending; });
      pending = false;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "engine did not come up\n");
      return 1;
    }
    engine.events()->Drain(&events);
    for (const EngineEvent& e : events) {
      if (e.type == EventType::kListening && e.b != 3 && dialer == 0) {
        dialer = engine.Dial("127.0.0.1", static_cast<uint16_t>(e.a), opts);
        IngressConfig ic;
        ic.host = "127.0.0.1";
        ic.port = 0;
        ic.relay_path = relay;
        ic.default_timeout_ms = timeout_ms;
        engine.StartIngress(ic);
      } else if (e.type == EventType::kListening && e.b == 3) {
        ingress_port = static_cast<uint16_t>(e.a);
      } else if (e.type == EventType::kLinkOpened && e.a == dialer) {
        link_up = true;
      } else if (e.type == EventType::kListenFailed || e.type == EventType::kDialFailed || e.type == EventType::kHandshakeFailed) {
        std::fprintf(stderr, "engine event %u: %s %s\n", static_cast<unsigned>(e.type), e.code.c_str(), e.text.c_str());
      }
    }
  }
  std::printf("INGRESS_PORT=%u\n", ingress_port);
  std::fflush(stdout);
  // Serve until stdin closes; log engine events to stderr meanwhile.
  std::thread logger([&] {
    NotEngineThread();
    std::vector<EngineEvent> ev;
    for (;;) {
      {
        std::unique_lock<std::mutex> g(mu);
        cv.wait_for(g, std::chrono::milliseconds(200), [&] { return pending; });
        pending = false;
      }
      engine.events()->Drain(&ev);
      for (const EngineEvent& e : ev) {
        if (e.type == EventType::kLog || e.type == EventType::kLinkClosed) std::fprintf(stderr, "engine: %s %s\n", e.code.c_str(), e.text.c_str());
      }
      if (!engine.loop()->running()) return;
    }
  });
  std::string line;
  char c;
  while (::read(0, &c, 1) > 0) {
    if (c != '\n') {
      if (line.size() < 64) line.push_back(c);
      continue;
    }
    if (line == "allocs") {
      std::printf("ALLOCS=%lld\n", EngineAllocs());
      std::fflush(stdout);
    }
    line.clear();
  }
  engine.Stop();
  logger.join();
  return 0;
}
