// One direction's keys (src/crypto/traffic-keys.ts): epoch secret, per-tenant AEADs, nonce
// counter, bytes under the key, the ratchet.
#include <cstring>

#include "engine/inference_link.h"
#include "engine/key_schedule.h"

namespace sluice {
namespace engine {

namespace {
constexpr size_t kMaxTenantKeys = 4096;
}

TrafficKeys::TrafficKeys(const uint8_t secret[32], uint32_t direction, KeyLimits limits) : direction_(direction), limits_(limits) {
  std::memcpy(secret_, secret, 32);
}

TrafficKeys::~TrafficKeys() { Wipe(secret_, sizeof secret_); }

bool TrafficKeys::MakeAead(uint32_t tenant, crypto::AesGcm256* aead, Status* status) {
  uint8_t key[32];
  if (!TrafficKey(secret_, tenant, key)) {
    *status = Status::Error(codes::kInternal, "HKDF failed");
    return false;
  }
  crypto::Status cs;
  const bool ok = aead->Init(key, &cs);
  Wipe(key, sizeof key);
  if (!ok) *status = Status::Error(codes::kInternal, cs.message);
  return ok;
}

crypto::AesGcm256* TrafficKeys::AeadFor(uint32_t tenant, Status* status) {
  if (tenant == 0) {
    if (!system_) {
      auto a = std::make_unique<crypto::AesGcm256>();
      if (!MakeAead(0, a.get(), status)) return nullptr;
      system_ = std::move(a);
    }
    return system_.get();
  }
  auto it = tenants_.find(tenant);
  if (it != tenants_.end()) return it->second.get();
  if (tenants_.size() >= kMaxTenantKeys) {
    tenants_.erase(tenant_order_.front());
    tenant_order_.pop_front();
  }
  auto a = std::make_unique<crypto::AesGcm256>();
  if (!MakeAead(tenant, a.get(), status)) return nullptr;
  crypto::AesGcm256* raw = a.get();
  tenants_.emplace(tenant, std::move(a));
  tenant_order_.push_back(tenant);
  return raw;
}

void TrafficKeys::NextNonce(uint8_t out[12]) {
  out[0] = static_cast<uint8_t>(direction_ >> 24);
  out[1] = static_cast<uint8_t>(direction_ >> 16);
  out[2] = static_cast<uint8_t>(direction_ >> 8);
  out[3] = static_cast<uint8_t>(direction_);
  for (int i = 0; i < 8; i++) out[4 + i] = static_cast<uint8_t>(counter_ >> (56 - 8 * i));
  counter_ += 1;
}

bool TrafficKeys::NonceMatches(const uint8_t* nonce) const {
  uint8_t want[12];
  want[0] = static_cast<uint8_t>(direction_ >> 24);
  want[1] = static_cast<uint8_t>(direction_ >> 16);
  want[2] = static_cast<uint8_t>(direction_ >> 8);
  want[3] = static_cast<uint8_t>(direction_);
  for (int i = 0; i < 8; i++) want[4 + i] = static_cast<uint8_t>(counter_ >> (56 - 8 * i));
  return std::memcmp(want, nonce, 12) == 0;
}

bool TrafficKeys::RekeyDue(uint64_t frame_bytes, uint64_t rekey_frame_bytes) const {
  if (counter_ == 0) return false;
  return counter_ + 2 > limits_.max_frames_per_key || bytes_ + frame_bytes + rekey_frame_bytes > limits_.max_bytes_per_key;
}

bool TrafficKeys::Advance(Status* status) {
  if (epoch_ == 0xffffffffu) {
    *status = Status::Error(codes::kWireKey, "key epochs exhausted: the link must be re-established");
    return false;
  }
  uint8_t next[32];
  if (!NextTrafficSecret(secret_, next)) {
    *status = Status::Error(codes::kInternal, "HKDF failed");
    return false;
  }
  std::memcpy(secret_, next, 32);
  Wipe(next, sizeof next);
  system_.reset();
  tenants_.clear();
  tenant_order_.clear();
  epoch_ += 1;
  bytes_ = 0;
  counter_ = 0;
  return true;
}

}  // namespace engine
}  // namespace sluice
