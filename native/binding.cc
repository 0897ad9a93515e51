// The one N-API binding file: argument shapes are checked in TypeScript; here only asserts.
// Hot-path methods create no JS objects: they return undefined or a boolean, and throw only
// on failure ({code, message} from the core).
#include <napi.h>

#include <cassert>
#include <vector>

#include "crypto/aes_gcm.h"
#include "runtime/malloc_tuning.h"

namespace {

using sluice::crypto::AesGcm256;
using sluice::crypto::ByteView;
using sluice::crypto::OpenResult;
using sluice::crypto::Status;

struct MutableBytes {
  uint8_t* data;
  size_t size;
};

// One napi call per argument (node-addon-api's Uint8Array wrapper queries the array twice).
MutableBytes BytesOf(napi_env env, napi_value value) {
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  const napi_status status = napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr);
  if (status != napi_ok) throw Napi::TypeError::New(env, "expected a Uint8Array");
  assert(type == napi_uint8_array);
  return {static_cast<uint8_t*>(data), length};
}

ByteView ViewOf(napi_env env, napi_value value) {
  const MutableBytes bytes = BytesOf(env, value);
  return {bytes.data, bytes.size};
}

[[noreturn]] void ThrowStatus(Napi::Env env, const Status& status) {
  Napi::Error error = Napi::Error::New(env, status.message);
  error.Set("code", Napi::String::New(env, status.code));
  throw error;
}

// new AeadContext(key32): one AES-256-GCM key with its reused encrypt and decrypt contexts.
class AeadContext : public Napi::ObjectWrap<AeadContext> {
 public:
  // Native memory behind one context (two EVP contexts with key schedule and GHASH table), told
  // to V8 so that contexts dropped without destroy() still create GC pressure.
  static constexpr int64_t kNativeBytes = 2048;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AeadContext",
                       {
                           InstanceMethod<&AeadContext::Seal>("seal"),
                           InstanceMethod<&AeadContext::SealV>("sealv"),
                           InstanceMethod<&AeadContext::Open>("open"),
                           InstanceMethod<&AeadContext::Destroy>("destroy"),
                       });
  }

  explicit AeadContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AeadContext>(info) {
    assert(info.Length() == 1);
    const ByteView key = ViewOf(info.Env(), info[0]);
    assert(key.size == AesGcm256::kKeyBytes);
    Status status;
    if (!aead_.Init(key.data, &status)) ThrowStatus(info.Env(), status);
    parts_.reserve(16);
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), kNativeBytes);
    accounted_ = true;
  }

  void Finalize(Napi::Env env) override { Release(env); }

  // seal(nonce, aad, plaintext, out): out = ciphertext || tag.
  void Seal(const Napi::CallbackInfo& info) {
    assert(info.Length() == 4);
    napi_env env = info.Env();
    const ByteView nonce = ViewOf(env, info[0]);
    const ByteView aad = ViewOf(env, info[1]);
    const ByteView plaintext = ViewOf(env, info[2]);
    const MutableBytes out = BytesOf(env, info[3]);
    assert(nonce.size == AesGcm256::kNonceBytes);
    assert(out.size == plaintext.size + AesGcm256::kTagBytes);
    Status status;
    if (!aead_.Seal(nonce.data, aad, plaintext, out.data, &status)) ThrowStatus(info.Env(), status);
  }

  // sealv(nonce, aad, parts[], out): seal of the concatenated parts.
  void SealV(const Napi::CallbackInfo& info) {
    assert(info.Length() == 4);
    napi_env env = info.Env();
    const ByteView nonce = ViewOf(env, info[0]);
    const ByteView aad = ViewOf(env, info[1]);
    const MutableBytes out = BytesOf(env, info[3]);
    uint32_t count = 0;
    napi_status status = napi_get_array_length(env, info[2], &count);
    assert(status == napi_ok);
    // parts_ keeps its capacity across calls: no allocation once it has grown to the usual count.
    parts_.clear();
    size_t total = 0;
    for (uint32_t i = 0; i < count; i++) {
      napi_value part;
      status = napi_get_element(env, info[2], i, &part);
      assert(status == napi_ok);
      parts_.push_back(ViewOf(env, part));
      total += parts_.back().size;
    }
    (void)status;
    (void)total;
    assert(nonce.size == AesGcm256::kNonceBytes);
    assert(out.size == total + AesGcm256::kTagBytes);
    Status result;
    if (!aead_.SealV(nonce.data, aad, parts_.data(), parts_.size(), out.data, &result)) {
      ThrowStatus(info.Env(), result);
    }
  }

  // open(nonce, aad, sealed, out) -> boolean; false leaves out zeroed.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    assert(info.Length() == 4);
    napi_env env = info.Env();
    const ByteView nonce = ViewOf(env, info[0]);
    const ByteView aad = ViewOf(env, info[1]);
    const ByteView sealed = ViewOf(env, info[2]);
    const MutableBytes out = BytesOf(env, info[3]);
    assert(nonce.size == AesGcm256::kNonceBytes);
    assert(sealed.size >= AesGcm256::kTagBytes && out.size == sealed.size - AesGcm256::kTagBytes);
    Status status;
    const OpenResult result = aead_.Open(nonce.data, aad, sealed, out.data, &status);
    if (result == OpenResult::kError) ThrowStatus(info.Env(), status);
    return Napi::Boolean::New(env, result == OpenResult::kOk);
  }

  void Destroy(const Napi::CallbackInfo& info) { Release(info.Env()); }

 private:
  void Release(Napi::Env env) {
    aead_.Destroy();
    if (accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, -kNativeBytes);
    accounted_ = false;
  }

  AesGcm256 aead_;
  std::vector<ByteView> parts_;
  bool accounted_ = false;
};

// tuneMalloc(mmapThreshold, trimThreshold) -> boolean (see native/runtime/malloc_tuning.h).
Napi::Value TuneMalloc(const Napi::CallbackInfo& info) {
  assert(info.Length() == 2);
  const double mmap_threshold = info[0].As<Napi::Number>().DoubleValue();
  const double trim_threshold = info[1].As<Napi::Number>().DoubleValue();
  assert(mmap_threshold >= 0 && trim_threshold >= 0);
  const bool applied = sluice::runtime::TuneMallocForLargeBuffers(static_cast<size_t>(mmap_threshold),
                                                                   static_cast<size_t>(trim_threshold));
  return Napi::Boolean::New(info.Env(), applied);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
#ifdef SLUICE_WITH_VERBS
  exports.Set("withVerbs", Napi::Boolean::New(env, true));
#else
  exports.Set("withVerbs", Napi::Boolean::New(env, false));
#endif
  exports.Set("AeadContext", AeadContext::Define(env));
  exports.Set("tuneMalloc", Napi::Function::New(env, TuneMalloc, "tuneMalloc"));
  return exports;
}

}  // namespace

NODE_API_MODULE(sluice_native, Init)
