#include "engine/policy_table.h"

#include <openssl/sha.h>

#include <cmath>
#include <cstring>

namespace sluice::engine {

namespace {

struct BlobReader {
  const uint8_t* p;
  size_t len;
  size_t pos = 0;
  bool ok = true;

  bool Need(size_t n) {
    if (!ok || len - pos < n) {
      ok = false;
      return false;
    }
    return true;
  }
  uint8_t U8() { return Need(1) ? p[pos++] : 0; }
  uint16_t U16() {
    if (!Need(2)) return 0;
    uint16_t v = static_cast<uint16_t>(p[pos] | (p[pos + 1] << 8));
    pos += 2;
    return v;
  }
  uint32_t U32() {
    if (!Need(4)) return 0;
    uint32_t v = static_cast<uint32_t>(p[pos]) | (static_cast<uint32_t>(p[pos + 1]) << 8) | (static_cast<uint32_t>(p[pos + 2]) << 16) |
                 (static_cast<uint32_t>(p[pos + 3]) << 24);
    pos += 4;
    return v;
  }
  uint64_t U64() {
    uint64_t lo = U32();
    uint64_t hi = U32();
    return lo | (hi << 32);
  }
  double F64() {
    uint64_t bits = U64();
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  std::string Str() {
    uint16_t n = U16();
    if (!Need(n)) return {};
    std::string s(reinterpret_cast<const char*>(p + pos), n);
    pos += n;
    return s;
  }
  std::string Digest() {
    if (!Need(32)) return {};
    std::string s(reinterpret_cast<const char*>(p + pos), 32);
    pos += 32;
    return s;
  }
};

CallError BadBlob(const std::string& what) {
  return CallError::Of(GrpcStatus::kInternal, err::kInternal, "bad policy table: " + what);
}

std::string DigestKey(const uint8_t d[32]) { return std::string(reinterpret_cast<const char*>(d), 32); }

CallError Refuse(GrpcStatus s, const char* code, std::string m) { return CallError::Of(s, code, std::move(m)); }

std::string Clip(std::string_view s, size_t n) { return std::string(s.substr(0, n)); }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// /^Bearer\s+(\S+)\s*$/i: the token, or false.
bool BearerToken(std::string_view h, std::string_view* token) {
  if (h.size() < 7 || !IEquals(h.substr(0, 6), "bearer") || !IsSpace(h[6])) return false;
  size_t i = 6;
  while (i < h.size() && IsSpace(h[i])) i++;
  size_t start = i;
  while (i < h.size() && !IsSpace(h[i])) i++;
  if (i == start) return false;
  *token = h.substr(start, i - start);
  while (i < h.size() && IsSpace(h[i])) i++;
  return i == h.size();
}

bool IsKeySecretChar(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

// key:<id> of a well-formed API key (/^slk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/), else "".
std::string KeyActor(std::string_view key) {
  if (key.size() != 4 + 12 + 1 + 43 || key.substr(0, 4) != "slk_" || key[16] != '_') return "";
  for (size_t i = 4; i < 16; i++) {
    if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return "";
  }
  for (size_t i = 17; i < key.size(); i++) {
    if (!IsKeySecretChar(key[i])) return "";
  }
  return "key:" + std::string(key.substr(4, 12));
}

}  // namespace

void Sha256(const void* data, size_t len, uint8_t out[32]) { SHA256(static_cast<const unsigned char*>(data), len, out); }

CallError PolicyTable::Parse(const uint8_t* data, size_t len, std::shared_ptr<PolicyTable>* out) {
  BlobReader r{data, len};
  if (r.U32() != kPolicyMagic) return BadBlob("magic");
  if (r.U16() != kPolicyVersion) return BadBlob("version");
  auto t = std::make_shared<PolicyTable>();
  t->flags_ = r.U16();
  t->generation_ = r.U64();
  uint32_t tenants = r.U32(), routes = r.U32(), keys = r.U32(), tokens = r.U32();
  if (!r.ok) return BadBlob("truncated header");
  // Every entry takes at least 8 bytes: counts past that cannot be real (no huge reserve).
  if ((static_cast<uint64_t>(tenants) + routes + keys + tokens) * 8 > len) return BadBlob("counts larger than the blob");
  t->tenants_.reserve(tenants);
  for (uint32_t i = 0; i < tenants && r.ok; i++) {
    TenantEntry e;
    e.id = r.U32();
    uint32_t f = r.U32();
    e.all_models = (f & 1) != 0;
    e.slow_path = (f & 2) != 0;
    e.limited = (f & 4) != 0;
    e.requests_per_second = r.F64();
    e.burst = r.F64();
    e.max_request_bytes = r.F64();
    e.name = r.Str();
    uint32_t n = r.U32();
    if (static_cast<uint64_t>(n) * 2 > len) return BadBlob("model count");
    for (uint32_t k = 0; k < n && r.ok; k++) e.models.push_back(r.Str());
    e.bucket = r.U32();
    if (e.limited && (!(e.requests_per_second > 0) || !(e.burst >= 1) || !(e.max_request_bytes > 0))) return BadBlob("tenant limits");
    t->tenant_by_name_[e.name] = i;
    t->tenants_.push_back(std::move(e));
  }
  for (uint32_t i = 0; i < routes && r.ok; i++) {
    std::string model = r.Str();
    uint32_t n = r.U32();
    if (static_cast<uint64_t>(n) * 4 > len) return BadBlob("peer count");
    std::vector<uint32_t> peers;
    for (uint32_t k = 0; k < n && r.ok; k++) peers.push_back(r.U32());
    t->route_by_model_[model] = t->routes_.size();
    t->routes_.emplace_back(std::move(model), std::move(peers));
  }
  for (uint32_t i = 0; i < keys && r.ok; i++) {
    std::string digest = r.Digest();
    ApiKeyEntry e;
    e.key_id = r.Str();
    e.tenant_name = r.Str();
    e.tenant = r.U32();
    e.caps = r.U32();
    e.expires_ms = r.F64();
    e.revoked = r.U8() != 0;
    if (e.tenant != kNoTenant && e.tenant >= tenants) return BadBlob("key tenant index");
    t->keys_[digest] = std::move(e);
  }
  for (uint32_t i = 0; i < tokens && r.ok; i++) {
    std::string digest = r.Digest();
    TokenEntry e;
    e.tenant = r.U32();
    e.caps = r.U32();
    e.exp_ms = r.F64();
    e.actor = r.Str();
    if (e.tenant != kNoTenant && e.tenant >= tenants) return BadBlob("token tenant index");
    t->tokens_[digest] = std::move(e);
  }
  if (!r.ok) return BadBlob("truncated");
  if (r.pos != len) return BadBlob("trailing bytes");
  *out = std::move(t);
  return CallError::Ok();
}

const std::vector<uint32_t>* PolicyTable::PeersFor(std::string_view model) const {
  auto it = route_by_model_.find(std::string(model));
  if (it == route_by_model_.end()) it = route_by_model_.find("*");
  return it == route_by_model_.end() ? nullptr : &routes_[it->second].second;
}

const ApiKeyEntry* PolicyTable::FindKey(const uint8_t digest[32]) const {
  auto it = keys_.find(DigestKey(digest));
  return it == keys_.end() ? nullptr : &it->second;
}

const TokenEntry* PolicyTable::FindToken(const uint8_t digest[32]) const {
  auto it = tokens_.find(DigestKey(digest));
  return it == tokens_.end() ? nullptr : &it->second;
}

double RateLimiter::Take(const PolicyTable& table, uint32_t tenant, double now_ms) {
  if (table.generation() != generation_) {
    generation_ = table.generation();
    buckets_.assign(table.tenants().size(), Bucket{});
  }
  if (tenant >= buckets_.size() || !table.tenants()[tenant].limited) return 0;
  const TenantEntry& t = table.tenants()[tenant];
  if (shared_ != nullptr && t.bucket < shared_count_) return GcraTake(&shared_[t.bucket], t.requests_per_second, t.burst, MonotonicMicros());
  Bucket& b = buckets_[tenant];
  if (!b.init) {
    b.init = true;
    b.tokens = t.burst;
    b.at = now_ms;
  } else {
    double refill = ((now_ms - b.at) / 1000) * t.requests_per_second;
    b.tokens = std::min(t.burst, b.tokens + refill);
    b.at = now_ms;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return 0;
  }
  return std::ceil(((1 - b.tokens) / t.requests_per_second) * 1000);
}

void TokenCache::Add(const uint8_t digest[32], const TokenEntry& entry, size_t max_entries) {
  if (entries_.size() >= max_entries) entries_.clear();  // bounded: a flood of tokens cannot grow it
  entries_[DigestKey(digest)] = entry;
}

const TokenEntry* TokenCache::Find(const uint8_t digest[32]) const {
  auto it = entries_.find(DigestKey(digest));
  return it == entries_.end() ? nullptr : &it->second;
}

GateResult PolicyGates::Check(const PolicyTable& table, const TokenCache& cache, RateLimiter& limiter, const GateHeaders& h,
                              std::string_view model, double bytes, double now_ms, double mono_ms) {
  GateResult r;
  const uint16_t flags = table.flags();
  // Break-glass is an admin's audited override: always TypeScript's to decide.
  if (h.break_glass) {
    r.outcome = GateOutcome::kAskControlPlane;
    return r;
  }
  auto refuse = [&](const char* gate, GrpcStatus s, const char* code, std::string m) {
    r.outcome = GateOutcome::kRefuse;
    r.audit = (flags & kPolicyAuditRefusals) != 0;
    r.gate = gate;
    r.error = Refuse(s, code, std::move(m));
    return r;
  };
  if (h.authorization_count > 1) {
    return refuse("identity", GrpcStatus::kInvalidArgument, err::kBadRequest, "more than one Authorization header");
  }
  if (h.api_key_count > 1) return refuse("identity", GrpcStatus::kInvalidArgument, err::kBadRequest, "more than one x-api-key header");
  std::string_view bearer;
  bool has_bearer = h.authorization_count == 1 && BearerToken(h.authorization, &bearer);
  if (h.api_key_count == 1 && has_bearer && bearer != h.api_key) {
    return refuse("identity", GrpcStatus::kInvalidArgument, err::kBadRequest, "Authorization and x-api-key name different credentials; send one");
  }
  r.credential = h.api_key_count > 0 ? "api_key" : has_bearer ? (bearer.substr(0, 4) == "slk_" ? "api_key" : "jwt") : "none";
  if ((flags & kPolicyAuthRequired) != 0) {
    std::string_view credential;
    if (h.api_key_count == 1) {
      credential = h.api_key;
    } else if (h.authorization_count == 1) {
      if (!has_bearer) {
        return refuse("identity", GrpcStatus::kUnauthenticated, err::kUnauthenticated, "the Authorization header must be \"Bearer <token or API key>\"");
      }
      credential = bearer;
    }
    if (credential.empty()) {
      return refuse("identity", GrpcStatus::kUnauthenticated, err::kUnauthenticated, "credentials required: send \"Authorization: Bearer <token or API key>\"");
    }
    uint8_t digest[32];
    Sha256(credential.data(), credential.size(), digest);
    if (credential.substr(0, 4) == "slk_") {
      if ((flags & kPolicyApiKeys) == 0) return refuse("identity", GrpcStatus::kUnauthenticated, err::kUnauthenticated, "API keys are not accepted here");
      const ApiKeyEntry* k = table.FindKey(digest);
      if (k == nullptr) {
        r.actor_owned = KeyActor(credential);
        return refuse("identity", GrpcStatus::kUnauthenticated, err::kUnauthenticated, "the API key is not valid");
      }
      if (k->revoked || (k->expires_ms > 0 && now_ms >= k->expires_ms)) {
        r.principal.actor = k->key_id;  // the audit entry names the key, as gates.ts does
        return refuse("identity", GrpcStatus::kUnauthenticated, err::kUnauthenticated, "the API key is revoked or expired");
      }
      if (k->tenant == kNoTenant) {
        r.principal.actor = k->key_id;
        r.tenant_name = k->tenant_name;
        if (!h.tenant.empty() && h.tenant != k->tenant_name) {
          return refuse("tenant", GrpcStatus::kPermissionDenied, err::kTenantDenied,
                        "credentials of tenant \"" + k->tenant_name + "\" cannot act for tenant \"" + Clip(h.tenant, 64) + "\"");
        }
        return refuse("tenant", GrpcStatus::kPermissionDenied, err::kTenantDenied, "tenant \"" + Clip(k->tenant_name, 64) + "\" is not configured");
      }
      r.principal.tenant = k->tenant;
      r.principal.caps = k->caps;
      r.principal.actor = k->key_id;
    } else {
      if ((flags & kPolicyJwt) == 0) {
        return refuse("identity", GrpcStatus::kUnauthenticated, err::kUnauthenticated, "bearer tokens are not accepted here; use an API key");
      }
      const TokenEntry* t = cache.Find(digest);
      if (t == nullptr) t = table.FindToken(digest);
      if (t == nullptr || now_ms >= t->exp_ms) {
        // First sight (or expired in the cache): TypeScript verifies and answers once.
        r.outcome = GateOutcome::kAskControlPlane;
        std::memcpy(r.token_digest, digest, 32);
        return r;
      }
      r.principal.tenant = t->tenant;
      r.principal.caps = t->caps;
      r.principal.actor = t->actor;
    }
  }
  // Tenant binding: credentials act for their own tenant only (no break-glass here).
  if (r.principal.tenant != kNoTenant) {
    const TenantEntry& t = table.tenants()[r.principal.tenant];
    r.tenant_name = t.name;
    if (!h.tenant.empty() && h.tenant != t.name) {
      return refuse("tenant", GrpcStatus::kPermissionDenied, err::kTenantDenied,
                    "credentials of tenant \"" + t.name + "\" cannot act for tenant \"" + Clip(h.tenant, 64) + "\"");
    }
    r.tenant_id = t.id;
    if (t.slow_path) {
      r.outcome = GateOutcome::kAskControlPlane;
      return r;
    }
    if (!t.all_models) {
      bool allowed = false;
      for (const std::string& m : t.models) allowed = allowed || m == model;
      if (!allowed) {
        return refuse("isolation", GrpcStatus::kPermissionDenied, err::kTenantDenied,
                      "tenant \"" + t.name + "\" may not use model \"" + Clip(model, 128) + "\"");
      }
    }
  }
  if (r.principal.tenant == kNoTenant && (flags & kPolicyNoTenantSlow) != 0) {
    r.outcome = GateOutcome::kAskControlPlane;
    return r;
  }
  if ((r.principal.caps & kCapInfer) == 0) {
    return refuse("policy", GrpcStatus::kPermissionDenied, err::kPermissionDenied, "the credentials lack the \"infer\" capability");
  }
  if (r.principal.tenant != kNoTenant && table.tenants()[r.principal.tenant].limited) {
    const TenantEntry& t = table.tenants()[r.principal.tenant];
    if (bytes > t.max_request_bytes) {
      char b[160];
      std::snprintf(b, sizeof b, "request of %.0f bytes exceeds tenant \"%s\"'s limit of %.0f", bytes, Clip(t.name, 64).c_str(), t.max_request_bytes);
      return refuse("policy", GrpcStatus::kResourceExhausted, err::kTooLarge, b);
    }
    double wait = limiter.Take(table, r.principal.tenant, mono_ms);
    if (wait > 0) {
      char b[200];
      std::snprintf(b, sizeof b, "tenant \"%s\" is over its rate limit of %g/s; retry in %.0f ms", Clip(t.name, 64).c_str(), t.requests_per_second, wait);
      r.outcome = GateOutcome::kRefuse;  // throttled refusals are summarised, not audited one by one
      r.throttled = true;
      r.gate = "policy";
      r.error = Refuse(GrpcStatus::kResourceExhausted, err::kRateLimited, b);
      return r;
    }
  }
  r.audit = (flags & kPolicyAuditAllowed) != 0;
  return r;
}

}  // namespace sluice::engine
