// See engine.h.
#include "engine/engine.h"

#include <unistd.h>

#include <array>
#include <cstring>

#include "engine/egress.h"
#include "engine/front_calls.h"
#include "engine/grpc_ingress.h"
#include "engine/link_endpoints.h"
#ifdef SLUICE_WITH_VERBS
#include "engine/verbs_link.h"
#endif

namespace sluice {
namespace engine {

namespace {
// "host:port" / "[v6]:port" -> the host (the TypeScript egress labels accepted links by it).
std::string HostOf(const std::string& remote) {
  if (!remote.empty() && remote[0] == '[') {
    const size_t close = remote.find(']');
    return close == std::string::npos ? remote : remote.substr(1, close - 1);
  }
  const size_t colon = remote.rfind(':');
  return colon == std::string::npos ? remote : remote.substr(0, colon);
}
}  // namespace

namespace {
constexpr size_t kEventRingCapacity = 16384;
}

Engine::Engine(std::function<void()> notify_events)
    : events_(kEventRingCapacity, &counters_, std::move(notify_events)), front_(std::make_unique<FrontCalls>(&loop_, this)) {}

Engine::~Engine() { Stop(); }

bool Engine::Start(const std::string& thread_name, std::string* error) { return loop_.Start(thread_name, error); }

void Engine::Stop() {
  if (!loop_.running()) return;
  // Tear down on the loop thread: links are told GOING_AWAY (best effort), then everything goes.
  loop_.Post([this] {
    stopping_ = true;
    for (auto& [id, link] : links_) link->Close(kCloseGoingAway, "shutting down");
    listeners_.clear();
    dialers_.clear();
    handshakes_.clear();
    ingress_.reset();
    egress_.reset();
    front_.reset();
    links_.clear();  // destructors close the sockets
    verbs_devices_.reset();
    loop_.RequestStop();
  });
  loop_.Stop();
}

void Engine::Listen(const std::string& host, uint16_t port, const LinkOptions& options) {
  loop_.Post([this, host, port, options] {
    auto listener = std::make_unique<LinkListener>(this, options);
    std::string error;
    EngineEvent e;
    if (!listener->Listen(host, port, &error)) {
      e.type = EventType::kListenFailed;
      e.code = codes::kSystem;
      e.text = error;
      Emit(std::move(e));
      return;
    }
    e.type = EventType::kListening;
    e.a = listener->port();
    e.text = host;
    listeners_.push_back(std::move(listener));
    Emit(std::move(e));
  });
}

uint32_t Engine::Dial(const std::string& host, uint16_t port, const LinkOptions& options) {
  const uint32_t id = __atomic_fetch_add(&next_dialer_id_, 1, __ATOMIC_RELAXED);
  loop_.Post([this, id, host, port, options] {
    auto d = std::make_unique<LinkDialer>(this, id, host, port, options);
    LinkDialer* raw = d.get();
    dialers_[id] = std::move(d);
    raw->Dial();
  });
  return id;
}

void Engine::ConfigureEgress(const EgressConfig& config) {
  loop_.Post([this, config] {
    if (egress_) egress_->Configure(config);
    else egress_ = std::make_unique<Egress>(this, config);
    if (config.shutting_down) egress_->BeginShutdown();
  });
}

void Engine::BeginShutdown() {
  loop_.Post([this] {
    if (egress_) egress_->BeginShutdown();
  });
}

void Engine::SendFromJs(uint32_t link_id, uint8_t cls, uint16_t kind, uint32_t stream, uint32_t tenant, std::vector<uint8_t> body) {
  loop_.Post([this, link_id, cls, kind, stream, tenant, body = std::move(body)] {
    InferenceLink* link = FindLink(link_id);
    Status st;
    if (link == nullptr) {
      st = Status::Error(codes::kLinkClosed, "engine link " + std::to_string(link_id) + " is closed");
    } else {
      const BytePart part{body.data(), body.size()};
      OutboundMessage m;
      m.cls = cls;
      m.kind = kind;
      m.stream_id = stream;
      m.tenant = tenant;
      m.parts = &part;
      m.part_count = 1;
      bool below = true;
      st = link->Send(m, &below);
    }
    if (!st.ok()) {
      EngineEvent e;
      e.type = EventType::kLog;
      e.a = static_cast<uint64_t>(LogLevel::kWarn);
      e.link = link_id;
      e.code = st.code;
      e.text = "send on engine link failed: " + st.message;
      Emit(std::move(e));
    }
  });
}

void Engine::CloseLink(uint32_t link_id, uint16_t code, const std::string& reason) {
  loop_.Post([this, link_id, code, reason] {
    if (InferenceLink* link = FindLink(link_id)) link->Close(code, reason);
  });
}

void Engine::QueryLink(uint32_t link_id) {
  loop_.Post([this, link_id] {
    EngineEvent e;
    e.type = EventType::kLinkStats;
    e.link = link_id;
    e.text = "{}";
#ifdef SLUICE_WITH_VERBS
    if (verbs_devices_) {
      if (VerbsInferenceLink* v = verbs_devices_->Find(link_id)) e.text = v->StatsJson();
    }
#endif
    Emit(std::move(e));
  });
}

void Engine::StartHandshake(int fd, Role role, const LinkOptions& options, const std::string& remote, LinkListener* listener, uint32_t dialer,
                            bool connecting) {
  auto h = std::make_unique<PendingHandshake>(this, fd, role, options, remote, listener, dialer, connecting);
  PendingHandshake* raw = h.get();
  handshakes_[raw] = std::move(h);
  raw->Begin();
}

void Engine::HandshakeFinished(PendingHandshake* h, const Status& status, const LinkOptions& options, const LinkSecrets* secrets,
                               const std::vector<uint8_t>* early, const std::string& remote) {
  if (h->listener() != nullptr) h->listener()->HandshakeEnded();
  const uint32_t dialer = h->dialer();
  int fd = -1;
  if (status.ok()) fd = h->ReleaseFd();
  // The handshake object is inside its own callback: free it after this turn.
  auto it = handshakes_.find(h);
  if (it != handshakes_.end()) {
    std::shared_ptr<PendingHandshake> dying(it->second.release());
    handshakes_.erase(it);
    loop_.Defer([dying] {});
  }
  if (!status.ok()) {
    EngineEvent e;
    e.type = dialer != 0 ? EventType::kDialFailed : EventType::kHandshakeFailed;
    e.link = dialer;
    e.code = status.code;
    e.text = status.message;
    Emit(std::move(e));
    if (dialer != 0) {
      auto d = dialers_.find(dialer);
      if (d != dialers_.end()) d->second->Retry(false);
    }
    return;
  }
  const uint32_t id = next_link_id_++;
  std::unique_ptr<InferenceLink> link = MakeLink(id, fd, dialer != 0 ? Role::kInitiator : Role::kAcceptor, options, *secrets, remote);
  if (link == nullptr) {
    if (dialer != 0) {
      auto d = dialers_.find(dialer);
      if (d != dialers_.end()) d->second->Retry(false);
    }
    return;
  }
  InferenceLink* raw = link.get();
  raw->SetPeerCounters(PeerCounters(dialer != 0 ? "dialer:" + std::to_string(dialer) : HostOf(remote)));
  links_[id] = std::move(link);
  if (dialer != 0) link_dialer_[id] = dialer;
  EngineEvent e;
  e.type = EventType::kLinkOpened;
  e.link = id;
  e.a = dialer;
  e.b = dialer != 0 ? 1 : 2;  // role: 1 initiator, 2 acceptor
  e.text = remote + " " + raw->link_id_hex();
  Emit(std::move(e));
  raw->Start(*early);
}

bool Engine::EmitDeferred(EngineEvent&& e) {
  bool wake_later = false;
  const bool queued = events_.PushDeferred(std::move(e), &wake_later);
  if (wake_later && event_batch_timer_ == EventLoop::kNoTimer) {
    event_batch_timer_ = loop_.AddTimer(kEventBatchMs, [this] {
      event_batch_timer_ = EventLoop::kNoTimer;
      events_.Flush();
    });
  }
  return queued;
}

std::unique_ptr<InferenceLink> Engine::MakeLink(uint32_t id, int fd, Role role, const LinkOptions& options, const LinkSecrets& secrets,
                                               const std::string& remote) {
  if (!options.rdma) return std::make_unique<TcpInferenceLink>(&loop_, &counters_, this, id, fd, role, options, secrets, remote);
#ifdef SLUICE_WITH_VERBS
  if (!verbs_devices_) verbs_devices_ = std::make_shared<VerbsDevices>(&loop_);
  return std::make_unique<VerbsInferenceLink>(&loop_, &counters_, this, verbs_devices_.get(), id, fd, role, options, secrets, remote);
#else
  close(fd);
  EngineEvent e;
  e.type = role == Role::kInitiator ? EventType::kDialFailed : EventType::kHandshakeFailed;
  e.code = "SLUICE_ERR_RDMA_UNAVAILABLE";
  e.text = remote + ": this build of the engine has no verbs (RDMA) support";
  Emit(std::move(e));
  return nullptr;
#endif
}

InferenceLink* Engine::FindLink(uint32_t id) {
  auto it = links_.find(id);
  return it == links_.end() || !it->second->open() ? nullptr : it->second.get();
}

// The ingress reaches egress peers through the links the dialers keep up.

CounterBlock* Engine::PeerCounters(const std::string& key) {
  std::lock_guard<std::mutex> lock(peer_counters_mutex_);
  auto it = peer_counters_.find(key);
  if (it != peer_counters_.end()) return it->second.get();
  const std::string& k = peer_counters_.size() >= kMaxPeerBlocks ? std::string("_other") : key;
  auto& slot = peer_counters_[k];
  if (!slot) slot = std::make_unique<CounterBlock>();
  return slot.get();
}

bool Engine::CopyPeerCounters(const std::string& key, uint64_t out[kCount]) {
  std::lock_guard<std::mutex> lock(peer_counters_mutex_);
  auto it = peer_counters_.find(key);
  if (it == peer_counters_.end()) return false;
  for (uint32_t i = 0; i < kCount; i++) out[i] = it->second->Get(static_cast<Counter>(i));
  return true;
}

bool Engine::EmitSpan(const SpanRecord& span, const std::string& request_id, const std::string& model, const std::string& err) {
  EngineEvent e;
  e.type = EventType::kSpan;
  e.err = err;
  e.request_id = request_id;
  e.model = model;
  span.Encode(&e.body);
  return events_.Push(std::move(e));
}

class IngressLinks final : public IngressBackend {
 public:
  explicit IngressLinks(Engine* engine) : engine_(engine) {}
  InferenceLink* LinkForPeer(uint32_t peer) override { return engine_->LinkOfDialer(peer); }
  void OnCallOpened() override {
    engine_->counters()->Add(kIngressCallsInflight);
    engine_->counters()->Add(kIngressFastCalls);
  }
  void OnCallClosed() override { engine_->counters()->Sub(kIngressCallsInflight); }
  void OnCallRelayed() override { engine_->counters()->Add(kIngressRelayedCalls); }
  void OnCallAnswered(uint64_t elapsed_us) override { engine_->latency_ring()->Record(static_cast<double>(elapsed_us) / 1000.0); }
  void OnInferAdmitted(uint32_t tenant, std::string_view model, std::string_view request_id, const uint8_t* msg, size_t len,
                       const KServeScanner& scan) override {
    TensorTap* tap = engine_->tensor_tap();
    if (!tap->Sample()) return;
    if (!tap->Offer(tenant, model, request_id, msg, len, scan)) return;
    // JS had drained the ring: wake it once, kTapWakeMs later, so the samples of that time go in
    // one batch (one wake-up per batch, not per sample; the detectors do not need them sooner).
    Engine* engine = engine_;
    engine->loop()->AddTimer(kTapWakeMs, [engine] {
      EngineEvent e;
      e.type = EventType::kTensorTap;
      if (!engine->Emit(std::move(e))) engine->tensor_tap()->Rearm();  // the event ring is full: the next sample tries again
    });
  }
  static constexpr uint64_t kTapWakeMs = 10;
  void OnShed(ShedCause cause) override {
    engine_->counters()->Add(cause == ShedCause::kInFlight ? kIngressShedInFlight : cause == ShedCause::kQueueDelay ? kIngressShedQueueDelay : kIngressShedDeadline);
  }
  void OnConnectionRefused(RefusalReason r) override {
    engine_->counters()->Add(r == RefusalReason::kMaxConnections     ? kIngressRefusedMaxConnections
                             : r == RefusalReason::kHandshakeTimeout ? kIngressRefusedHandshakeTimeout
                             : r == RefusalReason::kIdleTimeout      ? kIngressRefusedIdleTimeout
                                                                     : kIngressRefusedProtocolError);
  }
  // The log lines of segment-forwarder.ts; code "dialer:N" names the peer (engine-log.ts maps it).
  void OnRetry(bool granted, uint32_t failed_peer, const std::string& request_id) override {
    engine_->counters()->Add(granted ? kIngressRetries : kIngressRetriesDenied);
    if (granted) engine_->events()->Log(LogLevel::kInfo, "request retried on another egress peer", "dialer:" + std::to_string(failed_peer), request_id, "", "");
  }
  const TraceSettings* Tracing() override { return engine_->tracing(); }
  void OnSpan(const SpanRecord& span, const std::string& request_id, const std::string& model, const std::string& err) override {
    (void)engine_->EmitSpan(span, request_id, model, err);
  }
  void OnPeerEjected(uint32_t peer, const std::string& error) override {
    engine_->counters()->Add(kIngressPeersEjected);
    engine_->events()->Log(LogLevel::kWarn, "egress peer ejected after consecutive failures", "dialer:" + std::to_string(peer), "", "", error);
  }
  void OnStreamMessageDone(const CallOutcome& o) override {
    // A stream counts per message: each message is a request with its own metrics and access
    // record, as on the TypeScript ingress; the stream itself is none.
    engine_->request_tally()->Record(o.model, static_cast<uint32_t>(o.status), o.duration_us);
    RequestDone(o);
  }
  void OnCallFinished(const CallOutcome& o) override {
    engine_->request_tally()->Record(o.model, static_cast<uint32_t>(o.status), o.duration_us);
    RequestDone(o);
  }
  // Metrics: counted above, taken by JS at scrape time. A request becomes an event only when it
  // failed (its log line) or the access log wants every request: otherwise a successful one
  // neither wakes JS nor runs JS. Deferred: one JS wake-up per batch, dropped and counted when
  // the ring is full.
  void RequestDone(const CallOutcome& o) {
    if (o.status == GrpcStatus::kOk && !engine_->every_call_event()) return;
    EngineEvent e;
    e.type = EventType::kRequestDone;
    e.a = static_cast<uint64_t>(o.status);
    e.b = o.duration_us;
    e.c = o.streaming ? 1 : 0;
    e.model = o.model;
    e.request_id = o.request_id;
    const CallAccess& x = o.access;
    const uint64_t end = o.started_us + o.duration_us;
    e.access.tenant = x.tenant;
    e.access.peer = x.peer;
    e.access.attempts = x.attempts;
    e.access.bytes_in = x.bytes_in;
    e.access.bytes_out = x.bytes_out;
    // As the TypeScript access log: arrival -> first CALL (or the end), last CALL -> its reply.
    e.access.queue_us = (x.first_sent_us != 0 ? x.first_sent_us : end) - o.started_us;
    e.access.upstream_us = x.sent_us == 0 ? 0 : (x.replied_us != 0 ? x.replied_us : end) - x.sent_us;
    if (o.trace_id != nullptr) {
      static const char kHex[] = "0123456789abcdef";
      e.extra.resize(32);
      for (int i = 0; i < 16; i++) {
        e.extra[2 * i] = kHex[o.trace_id[i] >> 4];
        e.extra[2 * i + 1] = kHex[o.trace_id[i] & 15];
      }
    }
    if (o.status != GrpcStatus::kOk) {
      e.code = std::string(o.code);
      e.err = o.message;
    }
    engine_->EmitDeferred(std::move(e));
  }
  bool OnGateEvent(const GateEventInfo& g) override {
    EngineEvent e;
    e.type = EventType::kGateDecision;
    e.a = g.ticket;
    e.b = g.bytes;
    uint64_t credential = g.credential == "api_key" ? 1 : g.credential == "jwt" ? 2 : 0;
    e.c = credential | (g.allowed ? 4u : 0u) | (g.throttled ? 8u : 0u) | (g.streaming ? 16u : 0u) | (static_cast<uint64_t>(g.status) << 8);
    e.request_id = std::string(g.request_id);
    e.model = std::string(g.model);
    e.code = std::string(g.code);
    e.text = std::string(g.message);
    e.err = std::string(g.gate);
    e.extra = std::string(g.actor);
    e.tenant = std::string(g.tenant);
    return engine_->Emit(std::move(e));
  }
  void OnTlsRefused(std::string_view reason) override {
    EngineEvent e;
    e.type = EventType::kConnectionRefused;
    e.a = 1;
    e.text = std::string(reason);
    engine_->Emit(std::move(e));
  }
  void OnTlsAudit(const TlsAuditEvent& t) override {
    EngineEvent e;
    e.type = EventType::kTlsAudit;
    e.code = std::string(t.type);
    e.text = std::string(t.remote);
    e.err = std::string(t.message);
    e.c = t.count;
    if (t.cert != nullptr) {
      e.extra = t.cert->fingerprint;
      e.model = t.cert->subject;
      e.request_id = t.cert->issuer;
      e.body.assign(t.cert->serial.begin(), t.cert->serial.end());
    } else {
      e.extra = std::string(t.code);
    }
    engine_->Emit(std::move(e));
  }

 private:
  Engine* engine_;
};

void Engine::AddVerifiedToken(const uint8_t digest[32], const TokenEntry& entry) {
  std::array<uint8_t, 32> d;
  std::memcpy(d.data(), digest, 32);
  loop_.Post([this, d, entry] {
    if (ingress_) ingress_->AddVerifiedToken(d.data(), entry);
  });
}

void Engine::ReleaseAudit(std::vector<uint64_t> tickets, bool durable) {
  loop_.Post([this, tickets = std::move(tickets), durable] {
    if (!ingress_) return;
    for (uint64_t t : tickets) ingress_->ReleaseAudit(t, durable);
  });
}

void Engine::StartIngress(const IngressConfig& config) {
  loop_.Post([this, config] {
    ingress_links_ = std::make_unique<IngressLinks>(this);
    ingress_ = std::make_unique<GrpcIngress>(&loop_, ingress_links_.get(), &policy_, config);
    if (rate_buckets_ != nullptr) ingress_->AttachRateBuckets(rate_buckets_, rate_bucket_count_);
    std::string error;
    EngineEvent e;
    if (!ingress_->Listen(&error)) {
      ingress_.reset();
      e.type = EventType::kListenFailed;
      e.code = codes::kSystem;
      e.text = error;
      e.b = 3;
      Emit(std::move(e));
      return;
    }
    e.type = EventType::kListening;
    e.a = ingress_->port();
    e.b = 3;  // the gRPC ingress (not a link listener)
    e.text = config.host;
    Emit(std::move(e));
  });
}

void Engine::ReloadIngressTls(std::shared_ptr<const TlsContext> tls) {
  loop_.Post([this, tls] {
    if (ingress_) ingress_->SetTls(tls);
  });
}

void Engine::SetIngressClientAllowlist(std::vector<std::string> fingerprints) {
  loop_.Post([this, fps = std::move(fingerprints)] {
    if (ingress_) ingress_->SetClientAllowlist(std::unordered_set<std::string>(fps.begin(), fps.end()));
  });
}

void Engine::AttachLatencyRing(uint8_t* mem, size_t bytes, double clock_offset_ms) {
  loop_.Post([this, mem, bytes, clock_offset_ms] { latency_ring_.Attach(mem, bytes, clock_offset_ms); });
}

void Engine::AttachRateBuckets(int64_t* slots, uint32_t count) {
  loop_.Post([this, slots, count] {
    rate_buckets_ = slots;
    rate_bucket_count_ = count;
    if (ingress_) ingress_->AttachRateBuckets(slots, count);
  });
}

void Engine::AttachTensorTap(uint8_t* mem, size_t bytes, double sample_rate) {
  loop_.Post([this, mem, bytes, sample_rate] { tensor_tap_.Attach(mem, bytes, sample_rate); });
}

void Engine::DrainIngress() {
  loop_.Post([this] {
    if (ingress_) ingress_->Drain();
  });
}

bool Engine::SubmitFrontCall(uint32_t slot, uint32_t dialer, uint32_t tenant, uint32_t timeout_ms, const uint8_t* header, size_t header_len,
                             const uint8_t* payload, size_t payload_len) {
  return front_ != nullptr && front_->Submit(slot, dialer, tenant, timeout_ms, header, header_len, payload, payload_len);
}

void Engine::CancelFrontCall(uint32_t slot) {
  if (front_ != nullptr) front_->Cancel(slot);
}

InferenceLink* Engine::LinkOfDialer(uint32_t dialer) {
  for (const auto& [link, d] : link_dialer_) {
    if (d == dialer) return FindLink(link);
  }
  return nullptr;
}

void Engine::OnLinkMessage(InferenceLink* link, const InboundMessage& msg) {
  if (front_ && link->role() == Role::kInitiator && front_->OnLinkMessage(link, msg)) return;
  if (ingress_ && link->role() == Role::kInitiator && ingress_->OnLinkMessage(link, msg)) return;
  if (egress_ && egress_->OnMessage(link, msg)) return;
  // Not for the engine: JS gets a copy (the slow path; control messages, tests).
  EngineEvent e;
  e.type = EventType::kMessage;
  e.link = link->id();
  e.a = msg.kind | (static_cast<uint64_t>(msg.cls) << 16);
  e.b = msg.stream_id;
  e.c = msg.tenant;
  e.body.assign(msg.body, msg.body + msg.size);
  Emit(std::move(e));
}

void Engine::OnLinkDrain(InferenceLink* link) {
  EngineEvent e;
  e.type = EventType::kDrain;
  e.link = link->id();
  Emit(std::move(e));
}

void Engine::OnLinkClosed(InferenceLink* link, const LinkCloseInfo& info) {
  if (egress_) egress_->OnLinkClosed(link);
  if (ingress_) ingress_->OnLinkClosed(link);
  if (front_) front_->OnLinkClosed(link, info);
  const uint32_t id = link->id();
  EngineEvent e;
  e.type = EventType::kLinkClosed;
  e.link = id;
  e.a = info.code;
  e.b = info.by;
  e.code = info.error_code == nullptr ? "" : info.error_code;
  e.text = info.reason;
  Emit(std::move(e));
  uint32_t dialer = 0;
  auto d = link_dialer_.find(id);
  if (d != link_dialer_.end()) {
    dialer = d->second;
    link_dialer_.erase(d);
  }
  // Free the link after this turn (we are inside its call stack).
  auto it = links_.find(id);
  if (it != links_.end()) {
    std::shared_ptr<InferenceLink> dying(it->second.release());
    links_.erase(it);
    loop_.Defer([dying] {});
  }
  if (dialer != 0 && !stopping_) {
    auto dd = dialers_.find(dialer);
    if (dd != dialers_.end()) dd->second->Retry(true);
  }
}

}  // namespace engine
}  // namespace sluice
