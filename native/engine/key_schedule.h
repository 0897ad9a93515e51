// HKDF-SHA256 / HMAC-SHA256 / SHA-256 over OpenSSL (the symbols Node's binary exports), with
// the labels of src/crypto/key-schedule.ts. Plain functions, no state.
#ifndef SLUICE_NATIVE_ENGINE_KEY_SCHEDULE_H_
#define SLUICE_NATIVE_ENGINE_KEY_SCHEDULE_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace sluice {
namespace engine {

// out = HKDF-SHA256(ikm, salt, info), 32 bytes (RFC 5869; empty salt = 32 zero bytes).
bool Hkdf32(const uint8_t* ikm, size_t ikm_len, const uint8_t* salt, size_t salt_len, const uint8_t* info, size_t info_len,
            uint8_t out[32]);
bool HmacSha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t out[32]);
bool Sha256(const uint8_t* data, size_t len, uint8_t out[32]);
// secret[e+1] = HKDF(secret[e], "", "sluice/1 next")
bool NextTrafficSecret(const uint8_t secret[32], uint8_t out[32]);
// aead key of tenant t (0: "sluice/1 aead key"; t > 0: "sluice/1 tenant aead key" || u32be(t))
bool TrafficKey(const uint8_t secret[32], uint32_t tenant, uint8_t out[32]);
bool RandomBytes(uint8_t* out, size_t len);
bool ConstantTimeEqual(const uint8_t* a, const uint8_t* b, size_t len);
void Wipe(void* p, size_t len);

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_KEY_SCHEDULE_H_
