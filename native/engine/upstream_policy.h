// How the engine's ingress chooses and treats its egress peers: a port of
// src/ingress/upstream-policy.ts and the src/scheduler parts it uses, with the same config keys
// (scheduling.shedding, scheduling.upstreams, scheduling.retries), decisions and messages:
// - admission (load-shedder.ts): queue delay = (in flight + 1 - parallelism)+ / parallelism x
//   EWMA service time; refused when too many are in flight, past the queue-delay cap, or past
//   the request's remaining deadline (RESOURCE_EXHAUSTED, SLUICE_ERR_OVERLOADED);
// - power of two choices (p2c-balancer.ts) on peak-EWMA latency x (outstanding + 1), skipping
//   ejected peers (outlier-detector.ts: consecutive failures -> exponential ejection, capped
//   at a fraction of the peers; all ejected -> panic, all are candidates);
// - retries (retry-budget.ts): only failures before the model, at most maxAttempts, not with
//   less than minRemainingMs left, and within a budget of ratio x requests + minPerSec.
// Loop thread only; no allocation per call (peers are a fixed table, scratch is reused).
#ifndef SLUICE_NATIVE_ENGINE_UPSTREAM_POLICY_H_
#define SLUICE_NATIVE_ENGINE_UPSTREAM_POLICY_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice {
namespace engine {

struct UpstreamPolicyConfig {
  // scheduling.upstreams
  double decay_ms = 10'000;
  uint32_t consecutive_failures = 5;
  double base_ejection_ms = 1000;
  double max_ejection_ms = 30'000;
  double max_ejected_fraction = 0.5;
  // scheduling.retries
  uint32_t max_attempts = 2;
  double budget_ratio = 0.2;
  double min_per_sec = 10;
  double min_remaining_ms = 5;
  // scheduling.shedding
  uint32_t parallelism = 64;
  double max_queue_delay_ms = 1000;
  uint32_t max_in_flight = 4096;
};

enum class ShedCause : uint8_t { kNone = 0, kInFlight, kQueueDelay, kDeadline };

struct Admission {
  ShedCause cause = ShedCause::kNone;  // kNone: admitted
  std::string message;                 // "request shed: <reason>; retry in about N ms"
  bool admitted() const { return cause == ShedCause::kNone; }
};

class UpstreamPolicy {
 public:
  explicit UpstreamPolicy(UpstreamPolicyConfig config = {}) : cfg_(config) {
    if (cfg_.parallelism == 0) cfg_.parallelism = 1;
    if (cfg_.max_in_flight == 0) cfg_.max_in_flight = 1;
    if (cfg_.max_ejection_ms < cfg_.base_ejection_ms) cfg_.max_ejection_ms = cfg_.base_ejection_ms;
  }

  void Configure(const UpstreamPolicyConfig& config) { *this = UpstreamPolicy(config); }
  const UpstreamPolicyConfig& config() const { return cfg_; }

  // ---- admission (load-shedder.ts) ----
  Admission Admit(double remaining_ms, double now_ms) {
    const double delay = QueueDelayMs();
    const double retry_after = std::max(1.0, std::ceil(delay));
    char reason[200];
    Admission a;
    if (in_flight_ >= cfg_.max_in_flight) {
      std::snprintf(reason, sizeof reason, "%u requests in flight (limit %u)", in_flight_, cfg_.max_in_flight);
      a.cause = ShedCause::kInFlight;
    } else if (delay > cfg_.max_queue_delay_ms) {
      std::snprintf(reason, sizeof reason, "estimated queue delay %.1f ms exceeds the %s ms cap", delay, Num(cfg_.max_queue_delay_ms).c_str());
      a.cause = ShedCause::kQueueDelay;
    } else if (delay > remaining_ms) {
      std::snprintf(reason, sizeof reason, "estimated queue delay %.1f ms exceeds the %.1f ms left before the deadline", delay, std::max(0.0, remaining_ms));
      a.cause = ShedCause::kDeadline;
    } else {
      in_flight_++;
      OnRequest(now_ms);
      return a;
    }
    a.message = std::string("request shed: ") + reason + "; retry in about " + Num(retry_after) + " ms";
    return a;
  }

  // An admitted request is over after `service_ms` (any outcome).
  void Release(double service_ms) {
    if (in_flight_ > 0) in_flight_--;
    if (service_ms >= 0 && std::isfinite(service_ms)) service_ms_ += kServiceAlpha * (service_ms - service_ms_);
  }

  double QueueDelayMs() const {
    const double ahead = std::max(0.0, static_cast<double>(in_flight_) + 1 - static_cast<double>(cfg_.parallelism));
    return ahead / cfg_.parallelism * service_ms_;
  }
  uint32_t in_flight() const { return in_flight_; }

  // ---- P2C over a route's peers (p2c-balancer.ts) ----
  // Picks among `peers` those `usable` (a link is up), preferring healthy untried ones, then
  // untried (all ejected: panic), then any usable. Returns false when none is usable.
  template <typename Usable>
  bool Pick(const std::vector<uint32_t>& peers, const std::vector<uint32_t>& tried, Usable usable, double now_ms, uint32_t* out) {
    auto& c = scratch_;
    auto untried = [&](uint32_t p) { return std::find(tried.begin(), tried.end(), p) == tried.end(); };
    c.clear();
    for (uint32_t p : peers) peers_.try_emplace(p);  // every configured peer counts toward the ejection cap
    for (uint32_t p : peers) if (usable(p) && !Ejected(p, now_ms) && untried(p)) c.push_back(p);
    if (c.empty()) for (uint32_t p : peers) if (usable(p) && untried(p)) c.push_back(p);
    if (c.empty()) for (uint32_t p : peers) if (usable(p)) c.push_back(p);
    if (c.empty()) return false;
    uint32_t chosen = c[0];
    if (c.size() > 1) {
      const size_t i = static_cast<size_t>(rng_() % c.size());
      size_t j = static_cast<size_t>(rng_() % (c.size() - 1));
      if (j >= i) j++;
      chosen = Cost(c[i], now_ms) <= Cost(c[j], now_ms) ? c[i] : c[j];
    }
    Peer(chosen).outstanding++;
    *out = chosen;
    return true;
  }

  // The attempt on `peer` ended. ok: answered (rtt is a latency sample); otherwise `fault`
  // says whether the peer itself failed (counts toward ejection; rtt >= 0 costs it at least
  // that much). Returns true when this failure ejected the peer.
  bool Done(uint32_t peer, bool ok, bool fault, double rtt_ms, double now_ms) {
    PeerState& m = Peer(peer);
    if (m.outstanding > 0) m.outstanding--;
    if (ok) {
      Observe(m, rtt_ms, now_ms);
      m.consecutive = 0;
      return false;
    }
    if (!fault) return false;
    if (rtt_ms >= 0) Observe(m, std::max(rtt_ms, EwmaGet(m, now_ms)), now_ms);
    return OnFailure(m, now_ms);
  }

  double Cost(uint32_t peer, double now_ms) {
    PeerState& m = Peer(peer);
    return EwmaGet(m, now_ms) * (m.outstanding + 1);
  }

  // ---- retries (retry-budget.ts shouldRetry) ----
  bool MayRetry(bool before_model, uint32_t attempts, double remaining_ms, double now_ms) {
    if (!before_model || attempts >= cfg_.max_attempts || remaining_ms < cfg_.min_remaining_ms) return false;
    const size_t s = Slot(now_ms);
    double req = 0, ret = 0;
    for (size_t i = 0; i < kBudgetSlots; i++) {
      req += budget_requests_[i];
      ret += budget_retries_[i];
    }
    const double allowed = cfg_.budget_ratio * req + cfg_.min_per_sec * kBudgetWindowMs / 1000;
    if (ret + 1 > allowed) return false;
    budget_retries_[s] += 1;
    return true;
  }

 private:
  static constexpr double kServiceAlpha = 0.1;
  static constexpr double kDefaultRttMs = 1;
  static constexpr size_t kBudgetSlots = 10;
  static constexpr double kBudgetWindowMs = 10'000;

  struct PeerState {
    double ewma = kDefaultRttMs;
    double stamp = -1;  // < 0: no sample yet (the default counts from the first use)
    uint32_t outstanding = 0;
    uint32_t consecutive = 0;
    double ejected_until = -1;
    uint32_t ejections = 0;
    double last_ejection_end = -1;
  };

  // JavaScript's number formatting for the integers and one-decimals the messages carry.
  static std::string Num(double v) {
    char b[64];
    if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(b, sizeof b, "%.0f", v);
    else std::snprintf(b, sizeof b, "%g", v);
    return b;
  }

  PeerState& Peer(uint32_t id) { return peers_[id]; }
  bool Ejected(uint32_t id, double now_ms) {
    auto it = peers_.find(id);
    return it != peers_.end() && it->second.ejected_until > now_ms;
  }

  void Observe(PeerState& m, double rtt_ms, double now_ms) {
    if (!(rtt_ms >= 0)) return;
    if (m.stamp < 0) m.stamp = now_ms;
    if (rtt_ms > m.ewma) {
      m.ewma = rtt_ms;
    } else {
      const double w = std::exp(-std::max(0.0, now_ms - m.stamp) / cfg_.decay_ms);
      m.ewma = m.ewma * w + rtt_ms * (1 - w);
    }
    m.stamp = now_ms;
  }
  double EwmaGet(PeerState& m, double now_ms) {
    if (m.stamp < 0) m.stamp = now_ms;
    const double idle = std::max(0.0, now_ms - m.stamp);
    return idle == 0 ? m.ewma : m.ewma * std::exp(-idle / cfg_.decay_ms);
  }

  bool OnFailure(PeerState& m, double now_ms) {
    if (m.ejected_until > now_ms) return false;  // a late answer from before the ejection
    if (++m.consecutive < cfg_.consecutive_failures) return false;
    uint32_t ejected = 0;
    for (const auto& [id, p] : peers_) if (p.ejected_until > now_ms) ejected++;
    const double cap = std::max(1.0, std::floor(static_cast<double>(peers_.size()) * cfg_.max_ejected_fraction));
    if (cfg_.max_ejected_fraction == 0 || ejected >= cap) return false;
    if (m.ejected_until >= 0 && now_ms - m.last_ejection_end > cfg_.max_ejection_ms) m.ejections = 0;
    m.ejections++;
    const double duration = std::min(cfg_.max_ejection_ms, cfg_.base_ejection_ms * std::pow(2.0, m.ejections - 1));
    m.ejected_until = now_ms + duration;
    m.last_ejection_end = m.ejected_until;
    m.consecutive = 0;
    return true;
  }

  void OnRequest(double now_ms) { budget_requests_[Slot(now_ms)] += 1; }
  size_t Slot(double now_ms) {
    const double slot_ms = kBudgetWindowMs / kBudgetSlots;
    const int64_t epoch = static_cast<int64_t>(std::floor(now_ms / slot_ms));
    const size_t s = static_cast<size_t>(((epoch % static_cast<int64_t>(kBudgetSlots)) + kBudgetSlots) % kBudgetSlots);
    if (budget_epochs_[s] != epoch) {
      for (size_t i = 0; i < kBudgetSlots; i++) {
        if (budget_epochs_[i] <= epoch - static_cast<int64_t>(kBudgetSlots)) {
          budget_requests_[i] = budget_retries_[i] = 0;
          budget_epochs_[i] = INT64_MIN / 2;
        }
      }
      budget_requests_[s] = budget_retries_[s] = 0;
      budget_epochs_[s] = epoch;
    }
    return s;
  }

  UpstreamPolicyConfig cfg_;
  uint32_t in_flight_ = 0;
  double service_ms_ = 1;
  std::unordered_map<uint32_t, PeerState> peers_;  // dialer id -> state (a fixed set: the configured peers)
  std::vector<uint32_t> scratch_;
  std::mt19937_64 rng_{std::random_device{}()};
  double budget_requests_[kBudgetSlots] = {};
  double budget_retries_[kBudgetSlots] = {};
  int64_t budget_epochs_[kBudgetSlots] = {INT64_MIN / 2, INT64_MIN / 2, INT64_MIN / 2, INT64_MIN / 2, INT64_MIN / 2,
                                          INT64_MIN / 2, INT64_MIN / 2, INT64_MIN / 2, INT64_MIN / 2, INT64_MIN / 2};
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_UPSTREAM_POLICY_H_
