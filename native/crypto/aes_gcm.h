// AES-256-GCM over OpenSSL's EVP API: the plain C++ core, with no N-API in it.
//
// One AesGcm256 per key. It keeps two EVP_CIPHER_CTX (encrypt, decrypt) with the key schedule
// set once; each message only sets its nonce, so no key expansion, fetch or allocation happens
// per message. Callers own every buffer, including the output. Not thread-safe: one context is
// used by one thread at a time.
#ifndef SLUICE_NATIVE_CRYPTO_AES_GCM_H_
#define SLUICE_NATIVE_CRYPTO_AES_GCM_H_

#include <cstddef>
#include <cstdint>
#include <string>

// OpenSSL's own types, declared here so users of this header need no OpenSSL include.
struct evp_cipher_ctx_st;

namespace sluice {
namespace crypto {

struct ByteView {
  const uint8_t* data;
  size_t size;
};

// Why a call failed: a stable code and a readable message (OpenSSL's reason when there is one).
// An ok Status holds no heap memory, so success paths never allocate.
struct Status {
  const char* code = nullptr;
  std::string message;
  bool ok() const { return code == nullptr; }
};

// Stable codes; the TypeScript side maps them onto CryptoError.
extern const char kErrOpenSsl[];     // "SLUICE_ERR_CRYPTO_OPENSSL": an EVP call failed
extern const char kErrDestroyed[];   // "SLUICE_ERR_CRYPTO_DESTROYED": used after Destroy()
extern const char kErrArgument[];    // "SLUICE_ERR_CRYPTO_ARG": a null buffer, a short sealed message, Init twice

enum class OpenResult { kOk, kAuthFailed, kError };

class AesGcm256 {
 public:
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kNonceBytes = 12;
  static constexpr size_t kTagBytes = 16;

  AesGcm256() = default;
  ~AesGcm256();
  AesGcm256(const AesGcm256&) = delete;
  AesGcm256& operator=(const AesGcm256&) = delete;

  // Sets `key` (kKeyBytes) into both contexts. The key is not kept anywhere else.
  bool Init(const uint8_t* key, Status* status);

  // out receives plaintext.size bytes of ciphertext followed by the kTagBytes tag.
  // out may equal plaintext.data (in place); any other overlap is the caller's bug.
  bool Seal(const uint8_t* nonce, ByteView aad, ByteView plaintext, uint8_t* out, Status* status);

  // Seal of the concatenation of `parts`, without concatenating them.
  bool SealV(const uint8_t* nonce, ByteView aad, const ByteView* parts, size_t part_count, uint8_t* out,
             Status* status);

  // sealed is ciphertext followed by the tag; out receives sealed.size - kTagBytes bytes.
  // Anything but kOk leaves out zeroed.
  OpenResult Open(const uint8_t* nonce, ByteView aad, ByteView sealed, uint8_t* out, Status* status);

  // Frees both contexts; OpenSSL clears their key schedules (OPENSSL_clear_free). Idempotent.
  void Destroy();
  bool destroyed() const { return enc_ == nullptr; }

 private:
  evp_cipher_ctx_st* enc_ = nullptr;
  evp_cipher_ctx_st* dec_ = nullptr;
};

}  // namespace crypto
}  // namespace sluice

#endif  // SLUICE_NATIVE_CRYPTO_AES_GCM_H_
