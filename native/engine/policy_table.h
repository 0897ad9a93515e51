// The ingress's policy tables, compiled by TypeScript (src/engine/policy-compiler.ts) into one
// binary blob and swapped atomically (PolicyStore): routes (model -> peer set), tenants (id,
// allowed models, limits, slow path), API-key SHA-256 digests -> (key id, tenant, caps, expiry,
// state), and the cache of verified JWTs (token digest -> tenant, caps, exp, actor). The gate
// logic is src/security/gates.ts's, with the same statuses, codes and messages; what the tables
// cannot decide (a bearer token not in the cache, break-glass) is answered kAskControlPlane, and
// the engine relays that call to TypeScript, which verifies the token once and adds its answer
// to the engine's TokenCache (Engine::AddVerifiedToken), so the token's next calls stay native.
// Audit is not decided here: GateResult.audit says the decision must be durable in the audit log
// before the client hears it, and the ingress holds the answer until TypeScript says so.
// Rate-limit buckets are engine-thread state beside the immutable table (RateLimiter), or the
// shared per-tenant buckets TypeScript's limiter takes from too (shared_rate_buckets.h).
//
// Blob layout (little-endian), version 2:
//   header: "SLPT" u32 magic, u16 version, u16 flags, u64 generation, u32 tenants, u32 routes,
//           u32 keys, u32 tokens
//   tenant: u32 id, u32 flags (1 all models, 2 slow path, 4 rate/size limited), f64 rps, f64 burst,
//           f64 max bytes, str name, u32 n, n x str model, u32 shared bucket slot (0xffffffff: none)
//   route:  str model ("*": every model), u32 n, n x u32 peer
//   key:    32 B digest, str actor (key:<id>), str tenant name, u32 tenant index (none: the
//           tenant is not configured), u32 caps, f64 expires ms (0: never), u8 revoked
//   token:  32 B digest, u32 tenant index, u32 caps, f64 exp ms, str actor
//   str = u16 length + bytes. Caps: 1 infer, 2 train, 4 admin. Tenant index 0xffffffff: none.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/grpc_status.h"
#include "engine/shared_rate_buckets.h"

namespace sluice::engine {

inline constexpr uint32_t kPolicyMagic = 0x54504c53;  // "SLPT"
inline constexpr uint16_t kPolicyVersion = 2;
inline constexpr uint32_t kNoTenant = 0xffffffffu;

enum PolicyFlags : uint16_t {
  kPolicyAuthRequired = 1,
  kPolicyApiKeys = 2,
  kPolicyJwt = 4,
  // Allowed requests are audited; the answer waits until the entry is durable.
  kPolicyAuditAllowed = 8,
  // Refusals are audited; the refusal waits until the entry is durable.
  kPolicyAuditRefusals = 16,
  // Calls without a tenant (authentication off) take the TypeScript slow path (a catch-all PII
  // policy, or the anonymous tenant in a threat profile).
  kPolicyNoTenantSlow = 32,
};

enum Caps : uint32_t { kCapInfer = 1, kCapTrain = 2, kCapAdmin = 4 };

struct TenantEntry {
  uint32_t id = 0;
  bool all_models = false;
  bool slow_path = false;
  bool limited = false;
  double requests_per_second = 0;
  double burst = 0;
  double max_request_bytes = 0;
  uint32_t bucket = kNoBucket;  // slot in the shared buckets (kNoBucket: the engine's own)
  std::string name;
  std::vector<std::string> models;
};

struct ApiKeyEntry {
  std::string key_id;       // the audit actor, key:<id>
  std::string tenant_name;  // as the key record names it
  uint32_t tenant = kNoTenant;
  uint32_t caps = 0;
  double expires_ms = 0;
  bool revoked = false;
};

struct TokenEntry {
  uint32_t tenant = kNoTenant;
  uint32_t caps = 0;
  double exp_ms = 0;
  std::string actor;
};

// Who a call speaks for.
struct Principal {
  uint32_t tenant = kNoTenant;  // index into tenants(); kNoTenant: system tenant (auth off)
  uint32_t caps = kCapInfer | kCapTrain | kCapAdmin;
  std::string_view actor = "anonymous";
};

enum class GateOutcome : uint8_t { kAllow, kRefuse, kAskControlPlane };

struct GateResult {
  GateOutcome outcome = GateOutcome::kAllow;
  Principal principal;
  uint32_t tenant_id = 0;      // frame tenant (0: system)
  CallError error;             // kRefuse
  const char* gate = "";       // identity | tenant | isolation | policy (audit detail)
  const char* credential = "none";  // api_key | jwt | none
  uint8_t token_digest[32] = {};    // kAskControlPlane: the bearer token's digest
  // The decision must be durable in the audit log before the answer (audit.allowedRequests for
  // an allow, audit on for a refusal; never for a throttled refusal, which is summarised).
  bool audit = false;
  bool throttled = false;            // a rate-limit refusal
  std::string_view tenant_name;      // the audit entry's tenant ("" : none); points into the table
  // The audit actor when the table has no record to point at (an unknown API key names its
  // public id, key:<id>, as gates.ts does); empty: principal.actor.
  std::string actor_owned;
};

// Headers the gates read (lower-case names).
struct GateHeaders {
  std::string_view authorization;
  uint32_t authorization_count = 0;
  std::string_view api_key;
  uint32_t api_key_count = 0;
  std::string_view tenant;       // x-sluice-tenant
  bool break_glass = false;      // x-sluice-break-glass present
};

class PolicyTable {
 public:
  // Parses a blob (bounds-checked: a bad blob is an error, never a crash).
  static CallError Parse(const uint8_t* data, size_t len, std::shared_ptr<PolicyTable>* out);

  uint64_t generation() const { return generation_; }
  uint16_t flags() const { return flags_; }
  const std::vector<TenantEntry>& tenants() const { return tenants_; }
  // The peer set of a model's route (the "*" route when none names it); null: no route.
  const std::vector<uint32_t>* PeersFor(std::string_view model) const;
  const ApiKeyEntry* FindKey(const uint8_t digest[32]) const;
  const TokenEntry* FindToken(const uint8_t digest[32]) const;

 private:
  uint64_t generation_ = 0;
  uint16_t flags_ = 0;
  std::vector<TenantEntry> tenants_;
  std::unordered_map<std::string, uint32_t> tenant_by_name_;
  std::vector<std::pair<std::string, std::vector<uint32_t>>> routes_;
  std::unordered_map<std::string, size_t> route_by_model_;
  std::unordered_map<std::string, ApiKeyEntry> keys_;    // by raw 32-byte digest
  std::unordered_map<std::string, TokenEntry> tokens_;  // by raw 32-byte digest
  friend class PolicyGates;
};

// Per-tenant token buckets (src/security/rate-limiter.ts), engine-thread state.
class RateLimiter {
 public:
  // 0 when allowed, else milliseconds until the next token. A tenant with a shared slot takes
  // from it (its state outlives republishes; TypeScript's limiter takes from the same slot);
  // other buckets reset when the table generation changes (limits may have changed).
  double Take(const PolicyTable& table, uint32_t tenant, double now_ms);
  // The shared buckets (`count` 64-bit slots; the binding keeps the memory alive). Loop thread.
  void AttachShared(int64_t* slots, uint32_t count) {
    shared_ = slots;
    shared_count_ = count;
  }

 private:
  int64_t* shared_ = nullptr;
  uint32_t shared_count_ = 0;
  struct Bucket {
    double tokens = 0;
    double at = 0;
    bool init = false;
  };
  uint64_t generation_ = UINT64_MAX;
  std::vector<Bucket> buckets_;
};

// Verified tokens TypeScript answered for, beside the table's own (engine-thread state).
class TokenCache {
 public:
  void Add(const uint8_t digest[32], const TokenEntry& entry, size_t max_entries = 65536);
  const TokenEntry* Find(const uint8_t digest[32]) const;
  void Clear() { entries_.clear(); }

 private:
  std::unordered_map<std::string, TokenEntry> entries_;
};

// The gate pipeline of gates.ts over the tables: identity, tenant, isolation, policy.
class PolicyGates {
 public:
  // `model`: the request's model; `bytes`: its size; `now_ms`: wall-clock ms (expiry) and a
  // monotonic clock for buckets (`mono_ms`).
  static GateResult Check(const PolicyTable& table, const TokenCache& cache, RateLimiter& limiter, const GateHeaders& headers,
                          std::string_view model, double bytes, double now_ms, double mono_ms);
};

// SHA-256 (OpenSSL's, from node or libcrypto).
void Sha256(const void* data, size_t len, uint8_t out[32]);

// Holds the current table; Publish from any thread, Current from the engine thread.
class PolicyStore {
 public:
  void Publish(std::shared_ptr<const PolicyTable> table) { std::atomic_store(&current_, std::move(table)); }
  std::shared_ptr<const PolicyTable> Current() const { return std::atomic_load(&current_); }

 private:
  std::shared_ptr<const PolicyTable> current_;
};

}  // namespace sluice::engine
