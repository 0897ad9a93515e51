// AES-256-GCM over EVP. The EVP symbols resolve from the node binary at load time (Node bundles
// OpenSSL and exports it), so the addon does not link libcrypto.
#include "crypto/aes_gcm.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace sluice {
namespace crypto {

const char kErrOpenSsl[] = "SLUICE_ERR_CRYPTO_OPENSSL";
const char kErrDestroyed[] = "SLUICE_ERR_CRYPTO_DESTROYED";
const char kErrArgument[] = "SLUICE_ERR_CRYPTO_ARG";

namespace {

// EVP lengths are int. Larger inputs go through in chunks; a multiple of 16 keeps every chunk
// on OpenSSL's whole-block fast path.
constexpr size_t kMaxUpdate = size_t{1} << 30;

// Fills status from OpenSSL's (thread-local) error queue and empties it, so a later failure
// never reports a stale reason.
bool Fail(Status* status, const char* what) {
  status->code = kErrOpenSsl;
  status->message = what;
  unsigned long err = ERR_get_error();
  if (err != 0) {
    char reason[256];
    ERR_error_string_n(err, reason, sizeof(reason));
    status->message += ": ";
    status->message += reason;
  }
  ERR_clear_error();
  return false;
}

// Checked in every build (no assert): callers get an error, not undefined behaviour.
bool FailArgument(Status* status, const char* what) {
  status->code = kErrArgument;
  status->message = what;
  return false;
}

bool FailDestroyed(Status* status) {
  status->code = kErrDestroyed;
  status->message = "AEAD context used after destroy()";
  return false;
}

// out == nullptr feeds additional authenticated data.
bool EncryptUpdate(EVP_CIPHER_CTX* ctx, uint8_t* out, const uint8_t* in, size_t len) {
  while (len > 0) {
    const size_t n = len < kMaxUpdate ? len : kMaxUpdate;
    int written = 0;
    if (EVP_EncryptUpdate(ctx, out, &written, in, static_cast<int>(n)) != 1) return false;
    // GCM is a stream mode: EVP writes exactly what it reads, nothing is held back.
    if (out != nullptr && static_cast<size_t>(written) != n) return false;
    if (out != nullptr) out += n;
    in += n;
    len -= n;
  }
  return true;
}

bool DecryptUpdate(EVP_CIPHER_CTX* ctx, uint8_t* out, const uint8_t* in, size_t len) {
  while (len > 0) {
    const size_t n = len < kMaxUpdate ? len : kMaxUpdate;
    int written = 0;
    if (EVP_DecryptUpdate(ctx, out, &written, in, static_cast<int>(n)) != 1) return false;
    if (out != nullptr && static_cast<size_t>(written) != n) return false;
    if (out != nullptr) out += n;
    in += n;
    len -= n;
  }
  return true;
}

EVP_CIPHER_CTX* NewContext(const EVP_CIPHER* cipher, const uint8_t* key, bool encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  // The key schedule is computed here, once. 12 bytes is GCM's default IV length, the one
  // with no GHASH of the IV, and the only one this class accepts.
  const int ok = encrypt ? EVP_EncryptInit_ex(ctx, cipher, nullptr, key, nullptr)
                         : EVP_DecryptInit_ex(ctx, cipher, nullptr, key, nullptr);
  if (ok != 1 || EVP_CIPHER_CTX_get_iv_length(ctx) != static_cast<int>(AesGcm256::kNonceBytes)) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

AesGcm256::~AesGcm256() { Destroy(); }

bool AesGcm256::Init(const uint8_t* key, Status* status) {
  if (key == nullptr) return FailArgument(status, "Init: no key");
  if (enc_ != nullptr) return FailArgument(status, "Init: the context already has a key");
  // An explicit fetch (rather than EVP_aes_256_gcm()) resolves the provider implementation once.
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr) return Fail(status, "EVP_CIPHER_fetch(AES-256-GCM) failed");
  enc_ = NewContext(cipher, key, true);
  dec_ = enc_ != nullptr ? NewContext(cipher, key, false) : nullptr;
  // Each context holds its own reference to the cipher.
  EVP_CIPHER_free(cipher);
  if (dec_ == nullptr) {
    Destroy();
    return Fail(status, "EVP_CipherInit_ex(AES-256-GCM, key) failed");
  }
  return true;
}

bool AesGcm256::Seal(const uint8_t* nonce, ByteView aad, ByteView plaintext, uint8_t* out, Status* status) {
  return SealV(nonce, aad, &plaintext, 1, out, status);
}

bool AesGcm256::SealV(const uint8_t* nonce, ByteView aad, const ByteView* parts, size_t part_count,
                      uint8_t* out, Status* status) {
  if (nonce == nullptr || out == nullptr) return FailArgument(status, "Seal: no nonce or no output buffer");
  if (enc_ == nullptr) return FailDestroyed(status);
  // Only the IV changes per message; the key schedule and H stay in the context.
  if (EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce) != 1) {
    return Fail(status, "EVP_EncryptInit_ex(nonce) failed");
  }
  if (!EncryptUpdate(enc_, nullptr, aad.data, aad.size)) return Fail(status, "EVP_EncryptUpdate(aad) failed");
  uint8_t* cursor = out;
  for (size_t i = 0; i < part_count; i++) {
    if (!EncryptUpdate(enc_, cursor, parts[i].data, parts[i].size)) {
      return Fail(status, "EVP_EncryptUpdate failed");
    }
    cursor += parts[i].size;
  }
  int tail = 0;
  if (EVP_EncryptFinal_ex(enc_, cursor, &tail) != 1 || tail != 0) return Fail(status, "EVP_EncryptFinal_ex failed");
  if (EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), cursor) != 1) {
    return Fail(status, "EVP_CTRL_GCM_GET_TAG failed");
  }
  return true;
}

OpenResult AesGcm256::Open(const uint8_t* nonce, ByteView aad, ByteView sealed, uint8_t* out,
                           Status* status) {
  if (nonce == nullptr || sealed.data == nullptr || sealed.size < kTagBytes) {
    FailArgument(status, "Open: no nonce, or the sealed message is shorter than its tag");
    return OpenResult::kError;
  }
  const size_t ciphertext_size = sealed.size - kTagBytes;
  if (out == nullptr && ciphertext_size != 0) {
    FailArgument(status, "Open: no output buffer");
    return OpenResult::kError;
  }
  const char* failed = nullptr;
  if (dec_ == nullptr) {
    FailDestroyed(status);
    return OpenResult::kError;
  }
  if (EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce) != 1) {
    failed = "EVP_DecryptInit_ex(nonce) failed";
  } else if (EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                                 const_cast<uint8_t*>(sealed.data + ciphertext_size)) != 1) {
    // Set (copied) before decrypting, so an in-place open cannot clobber the tag it checks.
    failed = "EVP_CTRL_GCM_SET_TAG failed";
  } else if (!DecryptUpdate(dec_, nullptr, aad.data, aad.size)) {
    failed = "EVP_DecryptUpdate(aad) failed";
  } else if (!DecryptUpdate(dec_, out, sealed.data, ciphertext_size)) {
    failed = "EVP_DecryptUpdate failed";
  } else {
    uint8_t tail[16];
    int tail_size = 0;
    if (EVP_DecryptFinal_ex(dec_, tail, &tail_size) == 1) return OpenResult::kOk;
    // A tag mismatch is the expected failure; it is not an error worth a message.
    ERR_clear_error();
    if (ciphertext_size > 0) OPENSSL_cleanse(out, ciphertext_size);
    return OpenResult::kAuthFailed;
  }
  if (ciphertext_size > 0) OPENSSL_cleanse(out, ciphertext_size);
  Fail(status, failed);
  return OpenResult::kError;
}

void AesGcm256::Destroy() {
  // EVP_CIPHER_CTX_free releases the provider context with OPENSSL_clear_free, which cleanses the
  // key schedule; this class keeps no other copy of the key.
  EVP_CIPHER_CTX_free(enc_);
  EVP_CIPHER_CTX_free(dec_);
  enc_ = nullptr;
  dec_ = nullptr;
}

}  // namespace crypto
}  // namespace sluice
