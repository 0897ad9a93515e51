// See key_schedule.h.
#include "engine/key_schedule.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>
#include <vector>

namespace sluice {
namespace engine {

namespace {
const uint8_t kZeroSalt[32] = {0};
}

bool HmacSha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t out[32]) {
  unsigned int out_len = 0;
  static const uint8_t kEmpty[1] = {0};
  if (key_len == 0) {
    key = kZeroSalt;  // HMAC pads keys with zeros: an empty key equals 32 zero bytes
    key_len = sizeof kZeroSalt;
  }
  return HMAC(EVP_sha256(), key, static_cast<int>(key_len), data == nullptr ? kEmpty : data, len, out, &out_len) != nullptr &&
         out_len == 32;
}

bool Hkdf32(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len, const uint8_t* info, size_t info_len,
            uint8_t out[32]) {
  uint8_t prk[32];
  if (!HmacSha256(salt, salt_len, ikm, ikm_len, prk)) return false;
  // One block of expand is 32 bytes: T(1) = HMAC(PRK, info || 0x01).
  uint8_t stack[128];
  std::vector<uint8_t> heap;
  uint8_t* msg = stack;
  if (info_len + 1 > sizeof stack) {
    heap.resize(info_len + 1);
    msg = heap.data();
  }
  if (info_len > 0) std::memcpy(msg, info, info_len);
  msg[info_len] = 1;
  const bool ok = HmacSha256(prk, sizeof prk, msg, info_len + 1, out);
  OPENSSL_cleanse(prk, sizeof prk);
  return ok;
}

bool Sha256(const uint8_t* data, size_t len, uint8_t out[32]) {
  unsigned int n = 0;
  return EVP_Digest(data, len, out, &n, EVP_sha256(), nullptr) == 1 && n == 32;
}

bool NextTrafficSecret(const uint8_t secret[32], uint8_t out[32]) {
  static const char kLabel[] = "sluice/1 next";
  return Hkdf32(secret, 32, nullptr, 0, reinterpret_cast<const uint8_t*>(kLabel), sizeof kLabel - 1, out);
}

bool TrafficKey(const uint8_t secret[32], uint32_t tenant, uint8_t out[32]) {
  if (tenant == 0) {
    static const char kLabel[] = "sluice/1 aead key";
    return Hkdf32(secret, 32, nullptr, 0, reinterpret_cast<const uint8_t*>(kLabel), sizeof kLabel - 1, out);
  }
  static const char kLabel[] = "sluice/1 tenant aead key";
  uint8_t info[sizeof kLabel - 1 + 4];
  std::memcpy(info, kLabel, sizeof kLabel - 1);
  info[sizeof kLabel - 1] = static_cast<uint8_t>(tenant >> 24);
  info[sizeof kLabel] = static_cast<uint8_t>(tenant >> 16);
  info[sizeof kLabel + 1] = static_cast<uint8_t>(tenant >> 8);
  info[sizeof kLabel + 2] = static_cast<uint8_t>(tenant);
  return Hkdf32(secret, 32, nullptr, 0, info, sizeof info, out);
}

bool RandomBytes(uint8_t* out, size_t len) { return RAND_bytes(out, static_cast<int>(len)) == 1; }

bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t len) { return CRYPTO_memcmp(a, b, len) == 0; }

void Wipe(void* p, size_t len) { OPENSSL_cleanse(p, len); }

}  // namespace engine
}  // namespace sluice
