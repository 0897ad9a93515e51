// The one N-API binding file. Argument shapes are checked in TypeScript too, but every JS
// argument is checked here again (count, type, byte length, range): a wrong one throws a
// TypeError or RangeError with a `code` (SLUICE_ERR_CRYPTO_ARG for the AEAD, the code the
// TypeScript checks use; SLUICE_ERR_NATIVE_ARG otherwise), never reaches the core, never aborts.
// Hot-path methods create no JS objects: they return undefined or a boolean, and throw only
// on failure ({code, message} from the core).
#include <napi.h>

#include <cmath>
#include <vector>

#include "crypto/aes_gcm.h"
#include "engine/engine.h"
#include "engine/grpc_ingress.h"
#include "engine/policy_table.h"
#include "runtime/malloc_tuning.h"
#include "runtime/thread_control.h"

#include <atomic>
#include <memory>
#include <string>
#ifdef SLUICE_WITH_VERBS
#include <uv.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "verbs/connection.h"
#include "verbs/device.h"
#include "verbs/error.h"
#endif

namespace {

using sluice::crypto::AesGcm256;
using sluice::crypto::ByteView;
using sluice::crypto::OpenResult;
using sluice::crypto::Status;

struct MutableBytes {
  uint8_t* data;
  size_t size;
};

// Codes of wrong JS arguments (src/crypto/errors.ts CryptoErrorCode.ARG for the AEAD).
constexpr char kCryptoArg[] = "SLUICE_ERR_CRYPTO_ARG";
constexpr char kNativeArg[] = "SLUICE_ERR_NATIVE_ARG";

[[noreturn]] void ThrowArgError(napi_env env, bool range, const char* code, const std::string& message) {
  Napi::Error error = range ? Napi::Error(Napi::RangeError::New(env, message)) : Napi::Error(Napi::TypeError::New(env, message));
  error.Set("code", Napi::String::New(env, code));
  throw error;
}

// A TypeError unless the call has at least `n` arguments.
void NeedArgs(const Napi::CallbackInfo& info, size_t n, const char* signature, const char* code) {
  if (info.Length() < n) ThrowArgError(info.Env(), false, code, std::string(signature) + ": expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()));
}

// One napi call per argument (node-addon-api's Uint8Array wrapper queries the array twice).
// Another typed array, a DataView or a non-array is a TypeError (`what` names the argument).
MutableBytes BytesOf(napi_env env, napi_value value, const char* what = "argument", const char* code = kNativeArg) {
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  const napi_status status = napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr);
  if (status != napi_ok || type != napi_uint8_array) ThrowArgError(env, false, code, std::string(what) + " must be a Uint8Array");
  return {static_cast<uint8_t*>(data), length};
}

ByteView ViewOf(napi_env env, napi_value value, const char* what = "argument", const char* code = kNativeArg) {
  const MutableBytes bytes = BytesOf(env, value, what, code);
  return {bytes.data, bytes.size};
}

// A byte length the call needs exactly; a RangeError names the argument and both lengths.
void NeedLength(napi_env env, const char* what, size_t got, size_t want, const char* code = kCryptoArg) {
  if (got != want) ThrowArgError(env, true, code, std::string(what) + " must be " + std::to_string(want) + " bytes, got " + std::to_string(got));
}

// A JS number that must be an integer in [min, max].
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max) {
  const Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowArgError(info.Env(), false, kNativeArg, std::string(what) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < min || d > max) {
    ThrowArgError(info.Env(), true, kNativeArg, std::string(what) + " must be an integer in " + std::to_string(static_cast<int64_t>(min)) + ".." + std::to_string(static_cast<int64_t>(max)));
  }
  return static_cast<int64_t>(d);
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
    NeedArgs(info, 1, "new AeadContext(key)", kCryptoArg);
    const ByteView key = ViewOf(info.Env(), info[0], "key", kCryptoArg);
    NeedLength(info.Env(), "key", key.size, AesGcm256::kKeyBytes);
    Status status;
    if (!aead_.Init(key.data, &status)) ThrowStatus(info.Env(), status);
    parts_.reserve(16);
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), kNativeBytes);
    accounted_ = true;
  }

  void Finalize(Napi::Env env) override { Release(env); }

  // seal(nonce, aad, plaintext, out): out = ciphertext || tag.
  void Seal(const Napi::CallbackInfo& info) {
    NeedArgs(info, 4, "seal(nonce, aad, plaintext, out)", kCryptoArg);
    napi_env env = info.Env();
    const ByteView nonce = ViewOf(env, info[0], "nonce", kCryptoArg);
    const ByteView aad = ViewOf(env, info[1], "aad", kCryptoArg);
    const ByteView plaintext = ViewOf(env, info[2], "plaintext", kCryptoArg);
    const MutableBytes out = BytesOf(env, info[3], "out", kCryptoArg);
    NeedLength(env, "nonce", nonce.size, AesGcm256::kNonceBytes);
    NeedLength(env, "out (plaintext + tag)", out.size, plaintext.size + AesGcm256::kTagBytes);
    Status status;
    if (!aead_.Seal(nonce.data, aad, plaintext, out.data, &status)) ThrowStatus(info.Env(), status);
  }

  // sealv(nonce, aad, parts[], out): seal of the concatenated parts.
  void SealV(const Napi::CallbackInfo& info) {
    NeedArgs(info, 4, "sealv(nonce, aad, parts, out)", kCryptoArg);
    napi_env env = info.Env();
    const ByteView nonce = ViewOf(env, info[0], "nonce", kCryptoArg);
    const ByteView aad = ViewOf(env, info[1], "aad", kCryptoArg);
    const MutableBytes out = BytesOf(env, info[3], "out", kCryptoArg);
    uint32_t count = 0;
    bool is_array = false;
    napi_status status = napi_is_array(env, info[2], &is_array);
    if (status != napi_ok || !is_array || napi_get_array_length(env, info[2], &count) != napi_ok) {
      ThrowArgError(env, false, kCryptoArg, "parts must be an array of Uint8Array");
    }
    // parts_ keeps its capacity across calls: no allocation once it has grown to the usual count.
    parts_.clear();
    size_t total = 0;
    for (uint32_t i = 0; i < count; i++) {
      napi_value part;
      if (napi_get_element(env, info[2], i, &part) != napi_ok) ThrowArgError(env, false, kCryptoArg, "parts must be an array of Uint8Array");
      parts_.push_back(ViewOf(env, part, "every part", kCryptoArg));
      total += parts_.back().size;
    }
    NeedLength(env, "nonce", nonce.size, AesGcm256::kNonceBytes);
    NeedLength(env, "out (parts + tag)", out.size, total + AesGcm256::kTagBytes);
    Status result;
    if (!aead_.SealV(nonce.data, aad, parts_.data(), parts_.size(), out.data, &result)) {
      ThrowStatus(info.Env(), result);
    }
  }

  // open(nonce, aad, sealed, out) -> boolean; false leaves out zeroed.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    NeedArgs(info, 4, "open(nonce, aad, sealed, out)", kCryptoArg);
    napi_env env = info.Env();
    const ByteView nonce = ViewOf(env, info[0], "nonce", kCryptoArg);
    const ByteView aad = ViewOf(env, info[1], "aad", kCryptoArg);
    const ByteView sealed = ViewOf(env, info[2], "sealed", kCryptoArg);
    const MutableBytes out = BytesOf(env, info[3], "out", kCryptoArg);
    NeedLength(env, "nonce", nonce.size, AesGcm256::kNonceBytes);
    if (sealed.size < AesGcm256::kTagBytes) {
      ThrowArgError(env, true, kCryptoArg, "sealed must be at least " + std::to_string(AesGcm256::kTagBytes) + " bytes (the tag), got " + std::to_string(sealed.size));
    }
    NeedLength(env, "out (sealed - tag)", out.size, sealed.size - AesGcm256::kTagBytes);
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
  NeedArgs(info, 2, "tuneMalloc(mmapThreshold, trimThreshold)", kNativeArg);
  // Up to 2^53 (exact in a double, and far past any threshold glibc takes).
  const int64_t mmap_threshold = IntegerArg(info, 0, "mmapThreshold", 0, 9007199254740992.0);
  const int64_t trim_threshold = IntegerArg(info, 1, "trimThreshold", 0, 9007199254740992.0);
  const bool applied = sluice::runtime::TuneMallocForLargeBuffers(static_cast<size_t>(mmap_threshold),
                                                                   static_cast<size_t>(trim_threshold));
  return Napi::Boolean::New(info.Env(), applied);
}

// ============================================================================================
// Threads and sockets (native/runtime/thread_control.h): the training plane's priority and
// name, and DSCP / SO_PRIORITY on link sockets. Not on a hot path (once per thread or socket).
// ============================================================================================
namespace thread_binding {

Napi::Object PriorityObject(Napi::Env env, const sluice::runtime::ThreadPriority& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("policy", p.policy);
  o.Set("nice", p.nice);
  o.Set("tid", p.tid);
  return o;
}

[[noreturn]] void Throw(Napi::Env env, const sluice::runtime::ThreadStatus& s) {
  Napi::Error error = Napi::Error::New(env, s.message);
  error.Set("code", Napi::String::New(env, s.code));
  throw error;
}

// setThreadName(name): names the calling thread.
void SetThreadName(const Napi::CallbackInfo& info) {
  NeedArgs(info, 1, "setThreadName(name)", kNativeArg);
  if (!info[0].IsString()) ThrowArgError(info.Env(), false, kNativeArg, "name must be a string");
  sluice::runtime::ThreadStatus status;
  if (!sluice::runtime::SetCurrentThreadName(info[0].As<Napi::String>().Utf8Value(), &status)) Throw(info.Env(), status);
}

// lowerThreadPriority(tryIdle) -> {policy, nice, tid} of the calling thread afterwards.
Napi::Value LowerThreadPriority(const Napi::CallbackInfo& info) {
  NeedArgs(info, 1, "lowerThreadPriority(tryIdle)", kNativeArg);
  if (!info[0].IsBoolean()) ThrowArgError(info.Env(), false, kNativeArg, "tryIdle must be a boolean");
  sluice::runtime::ThreadPriority p;
  sluice::runtime::ThreadStatus status;
  if (!sluice::runtime::LowerCurrentThreadPriority(info[0].As<Napi::Boolean>().Value(), &p, &status)) Throw(info.Env(), status);
  return PriorityObject(info.Env(), p);
}

// threadPriority() -> {policy, nice, tid} of the calling thread.
Napi::Value ThreadPriority(const Napi::CallbackInfo& info) {
  return PriorityObject(info.Env(), sluice::runtime::CurrentThreadPriority());
}

// setSocketClass(fd, dscp, priority).
void SetSocketClass(const Napi::CallbackInfo& info) {
  NeedArgs(info, 3, "setSocketClass(fd, dscp, priority)", kNativeArg);
  // fd, dscp and priority are checked by the core (SLUICE_ERR_SOCKET_CLASS); here only that each is an int.
  const int fd = static_cast<int>(IntegerArg(info, 0, "fd", -2147483648.0, 2147483647.0));
  const int dscp = static_cast<int>(IntegerArg(info, 1, "dscp", -2147483648.0, 2147483647.0));
  const int priority = static_cast<int>(IntegerArg(info, 2, "priority", -2147483648.0, 2147483647.0));
  sluice::runtime::ThreadStatus status;
  if (!sluice::runtime::SetSocketClass(fd, dscp, priority, &status)) {
    Throw(info.Env(), status);
  }
}

// getSocketClass(fd) -> {tos, priority, family}.
Napi::Value GetSocketClass(const Napi::CallbackInfo& info) {
  NeedArgs(info, 1, "getSocketClass(fd)", kNativeArg);
  const int fd = static_cast<int>(IntegerArg(info, 0, "fd", -2147483648.0, 2147483647.0));
  sluice::runtime::SocketClass c;
  sluice::runtime::ThreadStatus status;
  if (!sluice::runtime::GetSocketClass(fd, &c, &status)) Throw(info.Env(), status);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("tos", c.tos);
  o.Set("priority", c.priority);
  o.Set("family", c.ipv6 ? "ipv6" : "ipv4");
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("setThreadName", Napi::Function::New(env, SetThreadName, "setThreadName"));
  exports.Set("lowerThreadPriority", Napi::Function::New(env, LowerThreadPriority, "lowerThreadPriority"));
  exports.Set("threadPriority", Napi::Function::New(env, ThreadPriority, "threadPriority"));
  exports.Set("setSocketClass", Napi::Function::New(env, SetSocketClass, "setSocketClass"));
  exports.Set("getSocketClass", Napi::Function::New(env, GetSocketClass, "getSocketClass"));
}

}  // namespace thread_binding

// ============================================================================================
// RDMA verbs (native/verbs/*): devices, connections, completions through uv_poll.
// Owned by the RDMA transport; everything verbs-specific in this file lives in this section.
// ============================================================================================
#ifdef SLUICE_WITH_VERBS
namespace verbs_binding {

using sluice::verbs::Completion;
using sluice::verbs::Connection;
using sluice::verbs::ConnectionOptions;
using sluice::verbs::Device;
using sluice::verbs::Endpoint;

Napi::Error ToJs(Napi::Env env, const sluice::verbs::Error& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  err.Set("code", Napi::String::New(env, e.code()));
  return err;
}

Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<sluice::verbs::DeviceInfo> devs;
  try {
    devs = sluice::verbs::list_devices();
  } catch (const sluice::verbs::Error& e) {
    throw ToJs(env, e);
  }
  Napi::Array out = Napi::Array::New(env, devs.size());
  for (size_t i = 0; i < devs.size(); i++) {
    const auto& d = devs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", d.name);
    o.Set("nodeGuid", d.node_guid);
    o.Set("transport", d.transport);
    Napi::Array ports = Napi::Array::New(env, d.ports.size());
    for (size_t p = 0; p < d.ports.size(); p++) {
      const auto& pi = d.ports[p];
      Napi::Object po = Napi::Object::New(env);
      po.Set("port", pi.port);
      po.Set("state", pi.state);
      po.Set("linkLayer", pi.link_layer);
      po.Set("maxMtu", pi.max_mtu);
      po.Set("activeMtu", pi.active_mtu);
      po.Set("lid", pi.lid);
      Napi::Array gids = Napi::Array::New(env, pi.gids.size());
      for (size_t g = 0; g < pi.gids.size(); g++) {
        Napi::Object go = Napi::Object::New(env);
        go.Set("index", pi.gids[g].index);
        go.Set("gid", pi.gids[g].gid);
        go.Set("type", pi.gids[g].type);
        go.Set("netdev", pi.gids[g].netdev);
        gids.Set(g, go);
      }
      po.Set("gids", gids);
      ports.Set(p, po);
    }
    o.Set("ports", ports);
    out.Set(i, o);
  }
  return out;
}

class DeviceWrap : public Napi::ObjectWrap<DeviceWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VerbsDevice", {InstanceMethod<&DeviceWrap::Info>("info"), InstanceMethod<&DeviceWrap::Close>("close")});
  }
  explicit DeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceWrap>(info) {
    NeedArgs(info, 1, "new Device(name)", kNativeArg);
    if (!info[0].IsString()) ThrowArgError(info.Env(), false, kNativeArg, "name must be a string");
    try {
      device_ = std::make_shared<Device>(info[0].As<Napi::String>().Utf8Value());
    } catch (const sluice::verbs::Error& e) {
      throw ToJs(info.Env(), e);
    }
    // Tagged, so a Connection can tell a Device from any other wrapped object before unwrapping.
    napi_type_tag_object(info.Env(), info.This(), &kTag);
  }
  std::shared_ptr<Device> device() const { return device_; }

  // The DeviceWrap behind `value`, or a TypeError (never an unchecked cast).
  static DeviceWrap* From(Napi::Env env, Napi::Value value) {
    bool tagged = false;
    if (!value.IsObject() || napi_check_object_type_tag(env, value, &kTag, &tagged) != napi_ok || !tagged) {
      ThrowArgError(env, false, kNativeArg, "device must be a verbs Device");
    }
    return Unwrap(value.As<Napi::Object>());
  }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!device_) throw Napi::Error::New(env, "device closed");
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", device_->name());
    o.Set("port", device_->port());
    o.Set("gidIndex", device_->gid_index());
    o.Set("gid", sluice::verbs::gid_to_string(device_->gid()));
    o.Set("lid", device_->lid());
    o.Set("ethernet", device_->is_ethernet());
    o.Set("activeMtu", sluice::verbs::mtu_bytes(device_->active_mtu()));
    return o;
  }
  // Connections keep their own reference: the device really closes with the last of them.
  void Close(const Napi::CallbackInfo&) { device_.reset(); }

  static constexpr napi_type_tag kTag = {0x736c75696365ull, 0x7665726273646576ull};  // "sluice", "verbsdev"
  std::shared_ptr<Device> device_;
};

class ConnectionWrap : public Napi::ObjectWrap<ConnectionWrap> {
 public:

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VerbsConnection",
                       {InstanceMethod<&ConnectionWrap::Local>("local"), InstanceMethod<&ConnectionWrap::Connect>("connect"),
                        InstanceMethod<&ConnectionWrap::PostSend>("postSend"), InstanceMethod<&ConnectionWrap::Repost>("repost"),
                        InstanceMethod<&ConnectionWrap::Poll>("poll"), InstanceMethod<&ConnectionWrap::Close>("close"),
                         InstanceMethod<&ConnectionWrap::InjectFault>("injectFault"),
                        InstanceMethod<&ConnectionWrap::TrafficClass>("trafficClass")});
  }

  // new VerbsConnection(device, sendMemory, recvMemory, counters, completions, onCompletions, options)
  explicit ConnectionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ConnectionWrap>(info) {
    Napi::Env env = info.Env();
    NeedArgs(info, 7, "new Connection(device, sendMemory, recvMemory, counters, completions, onCompletions, options)", kNativeArg);
    DeviceWrap* dev = DeviceWrap::From(env, info[0]);
    if (!dev->device()) throw Napi::Error::New(env, "device closed");
    if (!info[1].IsArrayBuffer() || !info[2].IsArrayBuffer()) ThrowArgError(env, false, kNativeArg, "sendMemory and recvMemory must be ArrayBuffers");
    // The core writes kCounterCount counters and reads whole completions: shorter arrays would be overrun.
    const auto uint32s = [&](size_t i, const char* what, size_t min) {
      if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
        ThrowArgError(env, false, kNativeArg, std::string(what) + " must be a Uint32Array");
      }
      const size_t n = info[i].As<Napi::TypedArray>().ElementLength();
      if (n < min) ThrowArgError(env, true, kNativeArg, std::string(what) + " must hold at least " + std::to_string(min) + " entries, got " + std::to_string(n));
    };
    uint32s(3, "counters", sluice::verbs::kCounterCount);
    uint32s(4, "completions", sizeof(Completion) / sizeof(uint32_t));
    if (!info[5].IsFunction()) ThrowArgError(env, false, kNativeArg, "onCompletions must be a function");
    if (!info[6].IsObject()) ThrowArgError(env, false, kNativeArg, "options must be an object");
    Napi::ArrayBuffer send_mem = info[1].As<Napi::ArrayBuffer>();
    Napi::ArrayBuffer recv_mem = info[2].As<Napi::ArrayBuffer>();
    Napi::Uint32Array counters = info[3].As<Napi::Uint32Array>();
    Napi::Uint32Array completions = info[4].As<Napi::Uint32Array>();
    Napi::Object o = info[6].As<Napi::Object>();
    ConnectionOptions opts;
    opts.send_slots = o.Get("sendSlots").As<Napi::Number>().Uint32Value();
    opts.recv_window = o.Get("recvWindow").As<Napi::Number>().Uint32Value();
    opts.slot_bytes = o.Get("slotBytes").As<Napi::Number>().Uint32Value();
    opts.timeout = static_cast<uint8_t>(o.Get("timeout").As<Napi::Number>().Uint32Value());
    opts.retry_cnt = static_cast<uint8_t>(o.Get("retryCount").As<Napi::Number>().Uint32Value());
    if (o.Has("trafficClass")) opts.traffic_class = static_cast<uint8_t>(o.Get("trafficClass").As<Napi::Number>().Uint32Value());
    opts.send_mem = static_cast<uint8_t*>(send_mem.Data());
    opts.send_len = send_mem.ByteLength();
    opts.recv_mem = static_cast<uint8_t*>(recv_mem.Data());
    opts.recv_len = recv_mem.ByteLength();
    opts.counters = counters.Data();
    completions_ = reinterpret_cast<Completion*>(completions.Data());
    completion_cap_ = completions.ElementLength() / (sizeof(Completion) / sizeof(uint32_t));
    try {
      conn_ = std::make_unique<Connection>(dev->device(), opts);
    } catch (const sluice::verbs::Error& e) {
      throw ToJs(env, e);
    }
    // The registered memory must outlive the registration: hold it until close.
    send_ref_ = Napi::Persistent(send_mem.As<Napi::Object>());
    recv_ref_ = Napi::Persistent(recv_mem.As<Napi::Object>());
    counters_ref_ = Napi::Persistent(counters.As<Napi::Object>());
    completions_ref_ = Napi::Persistent(completions.As<Napi::Object>());
    callback_ = Napi::Persistent(info[5].As<Napi::Function>());
    async_context_ = std::make_unique<Napi::AsyncContext>(env, "sluice:verbs-completions");

    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      conn_.reset();
      throw Napi::Error::New(env, "napi_get_uv_event_loop failed");
    }
    poll_ = new uv_poll_t;
    poll_->data = this;
    if (int rc = uv_poll_init(loop, poll_, conn_->fd()); rc != 0) {
      delete poll_;
      poll_ = nullptr;
      conn_.reset();
      throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(rc));
    }
    uv_poll_start(poll_, UV_READABLE, &ConnectionWrap::OnReadable);
    napi_add_env_cleanup_hook(env, &ConnectionWrap::OnEnvTeardown, this);
    hooked_ = true;
  }

  ~ConnectionWrap() override { Shutdown(false); }

 private:
  static void OnReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
    auto* self = static_cast<ConnectionWrap*>(handle->data);
    if (self == nullptr || !self->conn_ || self->env_gone_) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    self->Drain(env);
  }

  // A verbs error here (polling, re-arming, a repost inside poll) is this connection's: it is
  // marked failed and reported to its callback as (0, error), and the link on top fails. It
  // used to be napi_fatal_exception, which ended the process with every other link in it.
  void Drain(Napi::Env env) {
    if (error_reported_) return;
    try {
      conn_->consume_events();
      for (;;) {
        const size_t n = conn_->poll(completions_, completion_cap_);
        if (n > 0) {
          in_callback_ = true;
          callback_.MakeCallback(Value(), {Napi::Number::New(env, static_cast<double>(n))}, *async_context_);
          in_callback_ = false;
          if (close_requested_ || !conn_) break;
        }
        if (n < completion_cap_) break;
      }
    } catch (const sluice::verbs::Error& e) {
      in_callback_ = false;
      ReportError(env, ToJs(env, e));
    } catch (const Napi::Error& e) {
      // The JS callback threw (it guards its handlers, so this is a bug there): fail this
      // connection with it rather than the process.
      in_callback_ = false;
      ReportError(env, e);
    }
    if (close_requested_) Shutdown(false);
  }

  void ReportError(Napi::Env env, const Napi::Error& err) {
    if (error_reported_ || !conn_) return;
    error_reported_ = true;
    conn_->mark_failed();
    in_callback_ = true;
    try {
      callback_.MakeCallback(Value(), {Napi::Number::New(env, 0), err.Value()}, *async_context_);
    } catch (const Napi::Error&) {
      // The callback failed again: the connection stays failed; nothing more to tell it.
    }
    in_callback_ = false;
  }

  static void OnEnvTeardown(void* arg) {
    auto* self = static_cast<ConnectionWrap*>(arg);
    self->env_gone_ = true;
    self->hooked_ = false;
    self->Shutdown(true);
  }

  // Stops polling and releases the verbs objects, then the memory they registered.
  void Shutdown(bool env_gone) {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    conn_.reset();
    if (hooked_) {
      napi_remove_env_cleanup_hook(Env(), &ConnectionWrap::OnEnvTeardown, this);
      hooked_ = false;
    }
    if (!env_gone) {
      send_ref_.Reset();
      recv_ref_.Reset();
      counters_ref_.Reset();
      completions_ref_.Reset();
      callback_.Reset();
    }
  }

  Connection& conn(Napi::Env env) {
    if (!conn_) throw Napi::Error::New(env, "connection closed");
    return *conn_;
  }

  // trafficClass() -> the GRH traffic class of the queue pair (ibv_query_qp), -1 if unreadable.
  Napi::Value TrafficClass(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), conn(info.Env()).query_traffic_class());
  }

  Napi::Value Local(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Endpoint e = conn(env).local();
    Napi::Object o = Napi::Object::New(env);
    o.Set("qpn", e.qpn);
    o.Set("psn", e.psn);
    o.Set("gid", Napi::Buffer<uint8_t>::Copy(env, e.gid, 16));
    o.Set("lid", e.lid);
    o.Set("mtu", e.mtu);
    return o;
  }

  // connect({qpn, psn, gid: Buffer(16), lid, mtu}, remoteWindow)
  void Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object r = info[0].As<Napi::Object>();
    Endpoint e;
    e.qpn = r.Get("qpn").As<Napi::Number>().Uint32Value();
    e.psn = r.Get("psn").As<Napi::Number>().Uint32Value();
    Napi::Buffer<uint8_t> gid = r.Get("gid").As<Napi::Buffer<uint8_t>>();
    if (gid.Length() != 16) throw Napi::TypeError::New(env, "gid must be 16 bytes");
    std::memcpy(e.gid, gid.Data(), 16);
    e.lid = static_cast<uint16_t>(r.Get("lid").As<Napi::Number>().Uint32Value());
    e.mtu = r.Get("mtu").As<Napi::Number>().Uint32Value();
    try {
      conn(env).connect(e, info[1].As<Napi::Number>().Uint32Value());
    } catch (const sluice::verbs::Error& err) {
      throw ToJs(env, err);
    }
  }

  void PostSend(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      conn(env).post_send(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value());
    } catch (const sluice::verbs::Error& err) {
      throw ToJs(env, err);
    }
  }

  void Repost(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    try {
      conn(env).repost(info[0].As<Napi::Number>().Uint32Value());
    } catch (const sluice::verbs::Error& err) {
      throw ToJs(env, err);
    }
  }

  // Drains the completion queue now, without waiting for the event loop (e.g. before deciding
  // that a peer whose side channel ended sent nothing more). A no-op inside a completion callback,
  // whose drain loop is still running.
  void Poll(const Napi::CallbackInfo& info) {
    if (in_callback_ || !conn_ || env_gone_) return;
    Drain(info.Env());
  }

  // Test-only: injectFault(kind) makes the next poll (1), re-arm (2) or receive post (3) fail.
  // Refused unless SLUICE_VERBS_FAULT_INJECTION=1 is in the environment.
  void InjectFault(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* allowed = std::getenv("SLUICE_VERBS_FAULT_INJECTION");
    if (allowed == nullptr || std::strcmp(allowed, "1") != 0) throw Napi::Error::New(env, "fault injection is off (SLUICE_VERBS_FAULT_INJECTION=1 turns it on, for tests)");
    try {
      conn(env).inject_fault(info[0].As<Napi::Number>().Uint32Value());
    } catch (const sluice::verbs::Error& err) {
      throw ToJs(env, err);
    }
  }

  // Inside a completion callback the drain loop still runs: close once it unwinds.
  void Close(const Napi::CallbackInfo&) {
    if (in_callback_) close_requested_ = true;
    else Shutdown(false);
  }

  std::unique_ptr<Connection> conn_;
  uv_poll_t* poll_ = nullptr;
  Completion* completions_ = nullptr;
  size_t completion_cap_ = 0;
  Napi::ObjectReference send_ref_, recv_ref_, counters_ref_, completions_ref_;
  Napi::FunctionReference callback_;
  Napi::ObjectReference ring_view_;  // the latency ring's memory, written by the loop thread
  std::unique_ptr<Napi::AsyncContext> async_context_;
  bool in_callback_ = false;
  bool close_requested_ = false;
  bool error_reported_ = false;
  bool env_gone_ = false;
  bool hooked_ = false;
};

Napi::Value WcStatusString(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ibv_wc_status_str(static_cast<ibv_wc_status>(info[0].As<Napi::Number>().Uint32Value())));
}

Napi::Value LiveConnections(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Connection::live_count()); }

void Init(Napi::Env env, Napi::Object exports) {
  Napi::Object v = Napi::Object::New(env);
  v.Set("listDevices", Napi::Function::New<ListDevices>(env, "listDevices"));
  v.Set("wcStatusString", Napi::Function::New<WcStatusString>(env, "wcStatusString"));
  v.Set("liveConnections", Napi::Function::New<LiveConnections>(env, "liveConnections"));
  v.Set("Device", DeviceWrap::Define(env));
  v.Set("Connection", ConnectionWrap::Define(env));
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("counterCount", static_cast<uint32_t>(sluice::verbs::kCounterCount));
  layout.Set("completionWords", static_cast<uint32_t>(sizeof(Completion) / sizeof(uint32_t)));
  layout.Set("ctrlSlots", Connection::kCtrlSlots);
  v.Set("layout", layout);
  exports.Set("verbs", v);
}

}  // namespace verbs_binding
#endif  // SLUICE_WITH_VERBS
// ============================================================================================


// ============================================================================================
// The inference engine (native/engine/*): one object per `new Engine(onEvents)`. No static
// mutable state: every env (worker thread) gets its own engines. Events reach JS in batches
// through one threadsafe function; counters through a BigUint64Array over native memory.
// ============================================================================================
namespace engine_binding {

using sluice::engine::Engine;
using sluice::engine::EngineEvent;
using sluice::engine::EventType;
using sluice::engine::LinkOptions;

uint32_t U32(const Napi::Object& o, const char* name, uint32_t fallback) {
  Napi::Value v = o.Get(name);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : fallback;
}

double F64(const Napi::Object& o, const char* name, double fallback) {
  Napi::Value v = o.Get(name);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

// Link options from {segment, key, maxMessageBytes, ...}; TypeScript validated them.
LinkOptions LinkOptionsOf(Napi::Env env, const Napi::Object& o) {
  LinkOptions opts;
  Napi::Value seg = o.Get("segment");
  if (seg.IsString()) opts.segment = seg.As<Napi::String>().Utf8Value();
  Napi::Value key = o.Get("key");
  if (!key.IsTypedArray()) throw Napi::TypeError::New(env, "key must be a Uint8Array of 32 bytes");
  const MutableBytes k = BytesOf(env, key);
  if (k.size != 32) throw Napi::TypeError::New(env, "key must be a Uint8Array of 32 bytes");
  std::memcpy(opts.key, k.data, 32);
  opts.max_message_bytes = U32(o, "maxMessageBytes", opts.max_message_bytes);
  opts.high_water_bytes = static_cast<uint64_t>(F64(o, "highWaterBytes", static_cast<double>(opts.high_water_bytes)));
  opts.frame_bytes_inference = U32(o, "frameBytesInference", opts.frame_bytes_inference);
  opts.frame_bytes_control = U32(o, "frameBytesControl", opts.frame_bytes_control);
  opts.max_reassembly_bytes = static_cast<uint64_t>(F64(o, "maxReassemblyBytes", static_cast<double>(opts.max_reassembly_bytes)));
  opts.seal_ahead_bytes = U32(o, "sealAheadBytes", opts.seal_ahead_bytes);
  opts.close_timeout_ms = U32(o, "closeTimeoutMs", opts.close_timeout_ms);
  opts.handshake_timeout_ms = U32(o, "handshakeTimeoutMs", opts.handshake_timeout_ms);
  opts.max_handshakes = U32(o, "maxHandshakes", opts.max_handshakes);
  opts.keepalive_timeout_ms = U32(o, "keepaliveTimeoutMs", opts.keepalive_timeout_ms);
  opts.tail_witness_ms = U32(o, "tailWitnessMs", opts.tail_witness_ms);
  opts.dscp = static_cast<int>(U32(o, "dscp", static_cast<uint32_t>(opts.dscp)));
  opts.key_limits.max_frames_per_key = static_cast<uint64_t>(F64(o, "maxFramesPerKey", static_cast<double>(opts.key_limits.max_frames_per_key)));
  opts.key_limits.max_bytes_per_key = static_cast<uint64_t>(F64(o, "maxBytesPerKey", static_cast<double>(opts.key_limits.max_bytes_per_key)));
  // RDMA links (verbs_link.h): {rdma: {device?, sendSlots, recvWindow, ackTimeout, retryCount, busyPoll, busyPollUs}}
  Napi::Value rdma = o.Get("rdma");
  if (rdma.IsObject()) {
    const Napi::Object r = rdma.As<Napi::Object>();
    opts.rdma = true;
    Napi::Value dev = r.Get("device");
    if (dev.IsString()) opts.rdma_device = dev.As<Napi::String>().Utf8Value();
    opts.rdma_send_slots = std::max<uint32_t>(1, std::min<uint32_t>(4096, U32(r, "sendSlots", opts.rdma_send_slots)));
    opts.rdma_recv_window = std::max<uint32_t>(1, std::min<uint32_t>(4096, U32(r, "recvWindow", opts.rdma_recv_window)));
    opts.rdma_ack_timeout = static_cast<uint8_t>(std::min<uint32_t>(31, U32(r, "ackTimeout", opts.rdma_ack_timeout)));
    opts.rdma_retry_count = static_cast<uint8_t>(std::min<uint32_t>(7, U32(r, "retryCount", opts.rdma_retry_count)));
    Napi::Value busy = r.Get("busyPoll");
    opts.rdma_busy_poll = busy.IsBoolean() && busy.As<Napi::Boolean>().Value();
    opts.rdma_busy_poll_us = std::min<uint32_t>(10000, U32(r, "busyPollUs", opts.rdma_busy_poll_us));
  }
  return opts;
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod<&EngineWrap::Start>("start"), InstanceMethod<&EngineWrap::Stop>("stop"),
                        InstanceMethod<&EngineWrap::Counters>("counters"), InstanceMethod<&EngineWrap::Listen>("listen"),
                        InstanceMethod<&EngineWrap::Dial>("dial"), InstanceMethod<&EngineWrap::ConfigureEgress>("configureEgress"),
                        InstanceMethod<&EngineWrap::BeginShutdown>("beginShutdown"), InstanceMethod<&EngineWrap::Send>("send"),
                        InstanceMethod<&EngineWrap::CloseLink>("closeLink"), InstanceMethod<&EngineWrap::QueryLink>("queryLink"), InstanceMethod<&EngineWrap::Drain>("drain"),
                        InstanceMethod<&EngineWrap::StartIngress>("startIngress"), InstanceMethod<&EngineWrap::PublishPolicy>("publishPolicy"),
                        InstanceMethod<&EngineWrap::AddVerifiedToken>("addVerifiedToken"), InstanceMethod<&EngineWrap::ReleaseAudit>("releaseAudit"),
                        InstanceMethod<&EngineWrap::DrainIngress>("drainIngress"), InstanceMethod<&EngineWrap::FrontCall>("frontCall"),
                        InstanceMethod<&EngineWrap::CancelFrontCall>("cancelFrontCall"), InstanceMethod<&EngineWrap::ReloadTls>("reloadTls"),
                        InstanceMethod<&EngineWrap::SetClientAllowlist>("setClientAllowlist"), InstanceMethod<&EngineWrap::SetLatencyRing>("setLatencyRing"), InstanceMethod<&EngineWrap::SetTensorTap>("setTensorTap"), InstanceMethod<&EngineWrap::SetRateBuckets>("setRateBuckets"),
                        InstanceMethod<&EngineWrap::TakeRequestTally>("takeRequestTally"),
                        InstanceMethod<&EngineWrap::TakeUpstreamTally>("takeUpstreamTally"), InstanceMethod<&EngineWrap::SetTracing>("setTracing"),
                        InstanceMethod<&EngineWrap::PeerLinkCounters>("peerLinkCounters"),
                        InstanceMethod<&EngineWrap::SetThreadSlice>("setThreadSlice"), InstanceMethod<&EngineWrap::ThreadSchedule>("threadSchedule")});
  }

  // new Engine(onEvents(batch: object[]))
  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "new Engine(onEvents) needs a function");
    callback_ = Napi::Persistent(info[0].As<Napi::Function>());
    auto shared = std::make_shared<Shared>();
    shared_ = shared;
    napi_value name;
    napi_create_string_utf8(env, "sluice:engine-events", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, this, &EngineWrap::OnTsfn, &tsfn_) != napi_ok) {
      throw Napi::Error::New(env, "napi_create_threadsafe_function failed");
    }
    // Like a listening server, a running engine keeps the process up until stop().
    shared->tsfn.store(tsfn_);
    std::weak_ptr<Shared> weak = shared;
    engine_ = std::make_shared<Engine>([weak] {
      if (auto s = weak.lock()) {
        napi_threadsafe_function f = s->tsfn.load();
        if (f != nullptr) napi_call_threadsafe_function(f, nullptr, napi_tsfn_nonblocking);
      }
    });
    napi_add_env_cleanup_hook(env, &EngineWrap::OnEnvTeardown, this);
    hooked_ = true;
  }

  ~EngineWrap() override { Shutdown(); }

 private:
  struct Shared {
    std::atomic<napi_threadsafe_function> tsfn{nullptr};
  };

  static void OnEnvTeardown(void* arg) {
    auto* self = static_cast<EngineWrap*>(arg);
    self->hooked_ = false;  // the hook is being run: nothing to remove
    self->Shutdown();
  }

  void Shutdown() {
    if (engine_) engine_->Stop();  // joins the I/O thread: nothing calls the tsfn after this
    if (shared_) shared_->tsfn.store(nullptr);
    if (tsfn_ != nullptr) {
      napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
      tsfn_ = nullptr;
    }
    if (hooked_) {
      napi_remove_env_cleanup_hook(Env(), &EngineWrap::OnEnvTeardown, this);
      hooked_ = false;
    }
  }

  static void OnTsfn(napi_env env, napi_value, void* context, void*) {
    if (env == nullptr) return;
    auto* self = static_cast<EngineWrap*>(context);
    Napi::HandleScope scope(env);
    try {
      Napi::Value batch = self->TakeBatch(Napi::Env(env));
      if (batch.IsArray() && batch.As<Napi::Array>().Length() > 0) self->callback_.Call({batch});
    } catch (const Napi::Error& e) {
      // A listener's bug is the application's: surface it like any callback exception.
      napi_throw(env, e.Value());
    }
  }

  Napi::Value TakeBatch(Napi::Env env) {
    if (!engine_) return Napi::Array::New(env, 0);
    engine_->events()->Drain(&scratch_);
    Napi::Array out = Napi::Array::New(env, scratch_.size());
    for (size_t i = 0; i < scratch_.size(); i++) {
      const EngineEvent& e = scratch_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("type", static_cast<uint32_t>(e.type));
      o.Set("link", e.link);
      o.Set("a", static_cast<double>(e.a));
      o.Set("b", static_cast<double>(e.b));
      o.Set("c", static_cast<double>(e.c));
      if (!e.code.empty()) o.Set("code", e.code);
      if (!e.text.empty()) o.Set("text", e.text);
      if (!e.extra.empty()) o.Set("extra", e.extra);
      if (!e.request_id.empty()) o.Set("requestId", e.request_id);
      if (!e.model.empty()) o.Set("model", e.model);
      if (!e.err.empty()) o.Set("err", e.err);
      if (e.type == EventType::kRequestDone || e.type == EventType::kEgressCallDone) {
        o.Set("tenant", e.access.tenant);
        o.Set("peer", e.access.peer);
        o.Set("attempts", e.access.attempts);
        o.Set("bytesIn", static_cast<double>(e.access.bytes_in));
        o.Set("bytesOut", static_cast<double>(e.access.bytes_out));
        o.Set("queueUs", static_cast<double>(e.access.queue_us));
        o.Set("upstreamUs", static_cast<double>(e.access.upstream_us));
      }
      if (!e.tenant.empty()) o.Set("tenantName", e.tenant);
      if (e.type == EventType::kMessage || e.type == EventType::kPolicyDenied || (e.type == EventType::kFrontCallDone && !e.body.empty()) ||
          e.type == EventType::kTlsAudit || e.type == EventType::kSpan) {
        o.Set("body", Napi::Buffer<uint8_t>::Copy(env, e.body.data(), e.body.size()));
      }
      out.Set(static_cast<uint32_t>(i), o);
    }
    scratch_.clear();
    return out;
  }

  Engine& engine(Napi::Env env) {
    if (!engine_) throw Napi::Error::New(env, "engine stopped");
    return *engine_;
  }

  void Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string error;
    const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "sluice-infer";
    if (!engine(env).Start(name, &error)) {
      Napi::Error err = Napi::Error::New(env, "engine did not start: " + error);
      err.Set("code", Napi::String::New(env, "SLUICE_ERR_ENGINE_SYSTEM"));
      throw err;
    }
  }

  void Stop(const Napi::CallbackInfo&) { Shutdown(); }

  // threadSchedule() -> {tid, policy, nice, sliceUs} of the engine's loop thread (sliceUs 0:
  // the kernel reports none).
  Napi::Value ThreadSchedule(const Napi::CallbackInfo& info) {
    const int tid = engine(info.Env()).loop()->thread_id();
    Napi::Object o = thread_binding::PriorityObject(info.Env(), sluice::runtime::ThreadPriorityOf(tid));
    o.Set("sliceUs", static_cast<double>(sluice::runtime::ThreadSliceNs(tid)) / 1000.0);
    return o;
  }

  // setThreadSlice(us): the loop thread's EEVDF slice (thread_control.h), then threadSchedule().
  Napi::Value SetThreadSlice(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "setThreadSlice(us) needs a number");
    const double us = info[0].As<Napi::Number>().DoubleValue();
    if (!(us >= 0 && us <= 100000)) throw Napi::RangeError::New(env, "slice must be 0..100000 us");
    sluice::runtime::ThreadStatus status;
    if (!sluice::runtime::SetThreadSlice(engine(env).loop()->thread_id(), static_cast<uint64_t>(us * 1000.0), &status)) thread_binding::Throw(env, status);
    return ThreadSchedule(info);
  }

  // A BigUint64Array over the counter block (kept alive by the view, after the engine too).
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto* keep = new std::shared_ptr<Engine>(engine_);
    if (!engine_) {
      delete keep;
      throw Napi::Error::New(env, "engine stopped");
    }
    napi_value ab;
    const napi_status st = napi_create_external_arraybuffer(
        env, engine_->counters()->data(), sluice::engine::CounterBlock::bytes(),
        [](napi_env, void*, void* hint) { delete static_cast<std::shared_ptr<Engine>*>(hint); }, keep, &ab);
    if (st != napi_ok) {
      delete keep;
      throw Napi::Error::New(env, "cannot create the counters view");
    }
    napi_value view;
    napi_create_typedarray(env, napi_biguint64_array, sluice::engine::kCount, ab, 0, &view);
    return Napi::Value(env, view);
  }

  // listen(host, port, linkOptions): the kListening / kListenFailed event answers.
  void Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const LinkOptions opts = LinkOptionsOf(env, info[2].As<Napi::Object>());
    engine(env).Listen(info[0].As<Napi::String>().Utf8Value(), static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()), opts);
  }

  // dial(host, port, linkOptions) -> dialer id
  Napi::Value Dial(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const LinkOptions opts = LinkOptionsOf(env, info[2].As<Napi::Object>());
    const uint32_t id = engine(env).Dial(info[0].As<Napi::String>().Utf8Value(), static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()), opts);
    return Napi::Number::New(env, id);
  }

  // configureEgress({routes: [{model, addresses}], tenants: [{id, name, models}], maxMessageBytes, connectTimeoutMs, accessRecords?})
  void ConfigureEgress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    sluice::engine::EgressConfig config;
    Napi::Array routes = o.Get("routes").As<Napi::Array>();
    for (uint32_t i = 0; i < routes.Length(); i++) {
      Napi::Object r = routes.Get(i).As<Napi::Object>();
      sluice::engine::UpstreamRoute route;
      route.model = r.Get("model").As<Napi::String>().Utf8Value();
      Napi::Array addrs = r.Get("addresses").As<Napi::Array>();
      for (uint32_t j = 0; j < addrs.Length(); j++) route.addresses.push_back(addrs.Get(j).As<Napi::String>().Utf8Value());
      config.routes.push_back(std::move(route));
    }
    Napi::Value tv = o.Get("tenants");
    if (tv.IsArray()) {
      Napi::Array tenants = tv.As<Napi::Array>();
      for (uint32_t i = 0; i < tenants.Length(); i++) {
        Napi::Object t = tenants.Get(i).As<Napi::Object>();
        sluice::engine::TenantPolicy p;
        p.id = t.Get("id").As<Napi::Number>().Uint32Value();
        p.name = t.Get("name").As<Napi::String>().Utf8Value();
        Napi::Array models = t.Get("models").As<Napi::Array>();
        for (uint32_t j = 0; j < models.Length(); j++) {
          std::string m = models.Get(j).As<Napi::String>().Utf8Value();
          if (m == "*") p.all_models = true;
          else p.models.push_back(std::move(m));
        }
        config.tenants.push_back(std::move(p));
      }
    }
    config.max_message_bytes = U32(o, "maxMessageBytes", config.max_message_bytes);
    config.connect_timeout_ms = U32(o, "connectTimeoutMs", config.connect_timeout_ms);
    // accessRecords: an EGRESS_CALL_DONE record per model-server call (telemetry.accessLog).
    Napi::Value access = o.Get("accessRecords");
    engine(env).SetEveryCallEvent(access.IsBoolean() && access.As<Napi::Boolean>().Value());
    engine(env).ConfigureEgress(config);
  }

  void BeginShutdown(const Napi::CallbackInfo& info) { engine(info.Env()).BeginShutdown(); }

  // send(link, cls, kind, stream, tenant, body): the slow path (bytes copied now).
  void Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const MutableBytes body = BytesOf(env, info[5]);
    engine(env).SendFromJs(info[0].As<Napi::Number>().Uint32Value(), static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value()),
                           static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()), info[3].As<Napi::Number>().Uint32Value(),
                           info[4].As<Napi::Number>().Uint32Value(), std::vector<uint8_t>(body.data, body.data + body.size));
  }

  void CloseLink(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    engine(env).CloseLink(info[0].As<Napi::Number>().Uint32Value(), static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value()),
                          info[2].As<Napi::String>().Utf8Value());
  }

  // queryLink(link): the kLinkStats event answers.
  void QueryLink(const Napi::CallbackInfo& info) { engine(info.Env()).QueryLink(info[0].As<Napi::Number>().Uint32Value()); }

  // startIngress({host, port, relayPath, maxRequestMessageBytes, defaultTimeoutMs, maxConnections,
  //               handshakeTimeoutMs, idleTimeoutMs}):
  // the kListening / kListenFailed event with b = 3 answers.
  void StartIngress(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "startIngress(config) needs an object");
    Napi::Object o = info[0].As<Napi::Object>();
    sluice::engine::IngressConfig config;
    config.host = o.Get("host").As<Napi::String>().Utf8Value();
    config.port = static_cast<uint16_t>(U32(o, "port", 0));
    Napi::Value relay = o.Get("relayPath");
    if (relay.IsString()) config.relay_path = relay.As<Napi::String>().Utf8Value();
    config.limits.max_request_message_bytes = U32(o, "maxRequestMessageBytes", config.limits.max_request_message_bytes);
    config.default_timeout_ms = U32(o, "defaultTimeoutMs", config.default_timeout_ms);
    config.max_connections = U32(o, "maxConnections", config.max_connections);
    config.limits.handshake_timeout_ms = U32(o, "handshakeTimeoutMs", static_cast<uint32_t>(config.limits.handshake_timeout_ms));
    config.limits.idle_timeout_ms = U32(o, "idleTimeoutMs", static_cast<uint32_t>(config.limits.idle_timeout_ms));
    Napi::Value tls = o.Get("tls");
    if (tls.IsObject()) {
      config.tls = TlsContextOf(env, tls.As<Napi::Object>());
      config.client_allowlist = AllowlistOf(env, tls.As<Napi::Object>().Get("allowlist"));
    }
    // scheduling.{upstreams,retries,shedding}: the TypeScript UpstreamPolicy's keys, flattened.
    Napi::Value up = o.Get("upstreamPolicy");
    if (up.IsObject()) {
      Napi::Object u = up.As<Napi::Object>();
      auto& pc = config.upstream_policy;
      pc.decay_ms = F64(u, "decayMs", pc.decay_ms);
      pc.consecutive_failures = U32(u, "consecutiveFailures", pc.consecutive_failures);
      pc.base_ejection_ms = F64(u, "baseEjectionMs", pc.base_ejection_ms);
      pc.max_ejection_ms = F64(u, "maxEjectionMs", pc.max_ejection_ms);
      pc.max_ejected_fraction = F64(u, "maxEjectedFraction", pc.max_ejected_fraction);
      pc.max_attempts = U32(u, "maxAttempts", pc.max_attempts);
      pc.budget_ratio = F64(u, "budgetRatio", pc.budget_ratio);
      pc.min_per_sec = F64(u, "minPerSec", pc.min_per_sec);
      pc.min_remaining_ms = F64(u, "minRemainingMs", pc.min_remaining_ms);
      pc.parallelism = U32(u, "parallelism", pc.parallelism);
      pc.max_queue_delay_ms = F64(u, "maxQueueDelayMs", pc.max_queue_delay_ms);
      pc.max_in_flight = U32(u, "maxInFlight", pc.max_in_flight);
    }
    Napi::Value every = o.Get("everyCallEvent");
    engine(env).SetEveryCallEvent(every.IsBoolean() && every.As<Napi::Boolean>().Value());
    engine(env).StartIngress(config);
  }

  // {cert, key, ca?, minVersion, ciphers, requireClientCert} (PEM buffers, src/security/tls-options.ts
  // TlsMaterial) -> a TLS context built here, on the calling thread: bad material throws
  // SLUICE_ERR_TLS_CONFIG before anything reaches the engine thread.
  static std::shared_ptr<const sluice::engine::TlsContext> TlsContextOf(Napi::Env env, Napi::Object t) {
    sluice::engine::TlsSettings s;
    auto pem = [&](const char* name) {
      Napi::Value v = t.Get(name);
      if (!v.IsBuffer() && !v.IsTypedArray()) return std::string();
      const MutableBytes b = BytesOf(env, v);
      return std::string(reinterpret_cast<const char*>(b.data), b.size);
    };
    s.cert_pem = pem("cert");
    s.key_pem = pem("key");
    s.ca_pem = pem("ca");
    s.tls13_only = t.Get("minVersion").IsString() && t.Get("minVersion").As<Napi::String>().Utf8Value() == "TLSv1.3";
    if (t.Get("ciphers").IsString()) s.ciphers = t.Get("ciphers").As<Napi::String>().Utf8Value();
    s.require_client_cert = t.Get("requireClientCert").ToBoolean().Value();
    std::string error;
    std::shared_ptr<const sluice::engine::TlsContext> ctx = sluice::engine::TlsContext::Create(s, &error);
    if (ctx == nullptr) {
      Napi::Error err = Napi::Error::New(env, "engine TLS: " + error);
      err.Set("code", Napi::String::New(env, "SLUICE_ERR_TLS_CONFIG"));
      throw err;
    }
    return ctx;
  }

  static std::unordered_set<std::string> AllowlistOf(Napi::Env env, Napi::Value v) {
    std::unordered_set<std::string> out;
    if (!v.IsArray()) return out;
    Napi::Array a = v.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value fp = a.Get(i);
      if (!fp.IsString()) throw Napi::TypeError::New(env, "allowlist: fingerprints are strings");
      out.insert(fp.As<Napi::String>().Utf8Value());
    }
    return out;
  }

  // reloadTls(material): new handshakes use the new certificate (throws on bad material).
  void ReloadTls(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "reloadTls(material) needs an object");
    engine(env).ReloadIngressTls(TlsContextOf(env, info[0].As<Napi::Object>()));
  }

  // setClientAllowlist(fingerprints): lowercase hex SHA-256; live connections of removed ones close.
  void SetClientAllowlist(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::unordered_set<std::string> set = AllowlistOf(env, info.Length() > 0 ? info[0] : env.Undefined());
    engine(env).SetIngressClientAllowlist(std::vector<std::string>(set.begin(), set.end()));
  }

  // publishPolicy(blob): parsed here (a bad blob throws with the parser's message), then swapped in.
  void PublishPolicy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const MutableBytes blob = BytesOf(env, info[0]);
    std::shared_ptr<sluice::engine::PolicyTable> table;
    const sluice::engine::CallError e = sluice::engine::PolicyTable::Parse(blob.data, blob.size, &table);
    if (!e.ok()) {
      Napi::Error err = Napi::Error::New(env, "bad policy table: " + e.message);
      err.Set("code", Napi::String::New(env, "SLUICE_ERR_ENGINE_POLICY"));
      throw err;
    }
    engine(env).PublishPolicy(std::move(table));
  }

  // frontCall(slot, dialer, tenant, timeoutMs, header, payload): a CALL on the dialer's link
  // (front_calls.h); the bytes are copied into the slot now. One kFrontCallDone event answers.
  void FrontCall(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const MutableBytes header = BytesOf(env, info[4]);
    const MutableBytes payload = BytesOf(env, info[5]);
    if (!engine(env).SubmitFrontCall(info[0].As<Napi::Number>().Uint32Value(), info[1].As<Napi::Number>().Uint32Value(),
                                     info[2].As<Napi::Number>().Uint32Value(), info[3].As<Napi::Number>().Uint32Value(), header.data, header.size,
                                     payload.data, payload.size)) {
      throw Napi::RangeError::New(env, "front call slot out of range");
    }
  }

  // cancelFrontCall(slot): CANCEL(CALLER) if the call is still out (its kFrontCallDone says cancelled).
  void CancelFrontCall(const Napi::CallbackInfo& info) { engine(info.Env()).CancelFrontCall(info[0].As<Napi::Number>().Uint32Value()); }

  // addVerifiedToken(digest: 32 bytes, tenantIndex, caps, expMs, actor): a bearer token
  // TypeScript verified joins the ingress's cache (bounded there).
  void AddVerifiedToken(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsString()) {
      throw Napi::TypeError::New(env, "addVerifiedToken(digest, tenantIndex, caps, expMs, actor)");
    }
    const MutableBytes digest = BytesOf(env, info[0]);
    if (digest.size != 32) throw Napi::RangeError::New(env, "addVerifiedToken: the digest must be 32 bytes (SHA-256)");
    sluice::engine::TokenEntry entry;
    entry.tenant = info[1].As<Napi::Number>().Uint32Value();
    entry.caps = info[2].As<Napi::Number>().Uint32Value();
    entry.exp_ms = info[3].As<Napi::Number>().DoubleValue();
    entry.actor = info[4].As<Napi::String>().Utf8Value();
    if (entry.actor.size() > 512) entry.actor.resize(512);
    engine(env).AddVerifiedToken(digest.data, entry);
  }

  // releaseAudit(tickets: number[], durable: boolean): TypeScript recorded those gate decisions.
  void ReleaseAudit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsBoolean()) throw Napi::TypeError::New(env, "releaseAudit(tickets, durable)");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<uint64_t> tickets;
    tickets.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value v = a.Get(i);
      if (v.IsNumber()) tickets.push_back(static_cast<uint64_t>(v.As<Napi::Number>().Int64Value()));
    }
    engine(env).ReleaseAudit(std::move(tickets), info[1].As<Napi::Boolean>().Value());
  }

  // setLatencyRing(view: Int32Array over a LatencySampleRing's SharedArrayBuffer, nowMs:
  // performance.timeOrigin + performance.now()): the engine writes the round trip of every
  // answered fast-path call into it (engine/latency_ring.h). The view stays referenced while
  // this object lives; the loop thread is joined (Shutdown) before the reference goes.
  void SetLatencyRing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "setLatencyRing(view, nowMs) needs an Int32Array and a number");
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_int32_array) {
      throw Napi::TypeError::New(env, "setLatencyRing: the view must be an Int32Array");
    }
    const size_t bytes = length * 4;
    if (!sluice::engine::LatencyRing::Fits(data, bytes)) throw Napi::RangeError::New(env, "setLatencyRing: the view does not hold a latency ring");
    if (!ring_view_.IsEmpty()) throw Napi::Error::New(env, "setLatencyRing: a ring is already attached");
    Engine& e = engine(env);
    ring_view_ = Napi::Persistent(info[0].As<Napi::Object>());
    const double offset = info[1].As<Napi::Number>().DoubleValue() - sluice::engine::LatencyRing::MonotonicMs();
    e.AttachLatencyRing(static_cast<uint8_t*>(data), bytes, offset);
  }

  // setTensorTap(view: Uint8Array over the tap ring's SharedArrayBuffer, sampleRate): a sample
  // of fast-path ModelInfer calls copy their numeric inputs into it (engine/tensor_tap.h). The
  // view stays referenced while this object lives, as the latency ring's.
  void SetTensorTap(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "setTensorTap(view, sampleRate) needs a Uint8Array and a number");
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array) {
      throw Napi::TypeError::New(env, "setTensorTap: the view must be a Uint8Array");
    }
    if (!sluice::engine::TensorTap::Fits(data, length)) throw Napi::RangeError::New(env, "setTensorTap: the view does not hold a tap ring (64-byte header, power-of-two data of 4 KiB .. 1 GiB)");
    if (!tap_view_.IsEmpty()) throw Napi::Error::New(env, "setTensorTap: a ring is already attached");
    const double rate = info[1].As<Napi::Number>().DoubleValue();
    if (!(rate >= 0 && rate <= 1)) throw Napi::RangeError::New(env, "setTensorTap: sampleRate must be within 0..1");
    Engine& e = engine(env);
    tap_view_ = Napi::Persistent(info[0].As<Napi::Object>());
    e.AttachTensorTap(static_cast<uint8_t*>(data), length, rate);
  }

  // setRateBuckets(view: BigInt64Array over a SharedArrayBuffer): the ingress's per-tenant
  // buckets are these slots, which TypeScript's limiter takes from too (shared_rate_buckets.h).
  // The view stays referenced while this object lives.
  void SetRateBuckets(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "setRateBuckets(view) needs a BigInt64Array");
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_bigint64_array) {
      throw Napi::TypeError::New(env, "setRateBuckets: the view must be a BigInt64Array");
    }
    if (length == 0 || length > 1u << 20 || reinterpret_cast<uintptr_t>(data) % 8 != 0) throw Napi::RangeError::New(env, "setRateBuckets: 1 .. 1048576 aligned slots");
    if (!buckets_view_.IsEmpty()) throw Napi::Error::New(env, "setRateBuckets: buckets are already attached");
    Engine& e = engine(env);
    buckets_view_ = Napi::Persistent(info[0].As<Napi::Object>());
    e.AttachRateBuckets(static_cast<int64_t*>(data), static_cast<uint32_t>(length));
  }

  // drainIngress(): stop accepting gRPC clients, GOAWAY to each connection.
  void DrainIngress(const Napi::CallbackInfo& info) { engine(info.Env()).DrainIngress(); }

  // drain() -> the events queued now (tests and shutdown: no wait for the threadsafe call).
  Napi::Value Drain(const Napi::CallbackInfo& info) { return TakeBatch(info.Env()); }

  // takeRequestTally() -> [{model, status, counts: number[] (per latency bucket, +Inf last), sumUs}]:
  // the ingress's request metrics since the last take (request_tally.h); [] after stop().
  // takeUpstreamTally(): the engine egress's model-server calls since the last take (same shape).
  Napi::Value TakeUpstreamTally(const Napi::CallbackInfo& info) {
    if (engine_) engine_->upstream_tally()->Take(&tally_scratch_);
    return TallyArray(info.Env());
  }

  // peerLinkCounters(key) -> the link counters (kLink* .. kLinksClosedError) of one peer's
  // links, or undefined before its first link (key: "dialer:<id>" or the remote host).
  Napi::Value PeerLinkCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "peerLinkCounters(key) needs a string");
    uint64_t values[sluice::engine::kCount];
    if (!engine_ || !engine_->CopyPeerCounters(info[0].As<Napi::String>().Utf8Value(), values)) return env.Undefined();
    const uint32_t n = static_cast<uint32_t>(sluice::engine::kLinksClosedError) + 1;
    Napi::Array out = Napi::Array::New(env, n);
    for (uint32_t i = 0; i < n; i++) out.Set(i, static_cast<double>(values[i]));
    return out;
  }

  // setTracing(enabled, sampleRatio): telemetry.otlp for the ingress's and egress's spans.
  void SetTracing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsBoolean() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "setTracing(enabled, ratio) needs a boolean and a number");
    engine(env).tracing()->Set(info[0].As<Napi::Boolean>().Value(), info[1].As<Napi::Number>().DoubleValue());
  }

  Napi::Value TakeRequestTally(const Napi::CallbackInfo& info) {
    if (engine_) engine_->request_tally()->Take(&tally_scratch_);
    return TallyArray(info.Env());
  }

  Napi::Value TallyArray(Napi::Env env) {
    Napi::Array out = Napi::Array::New(env, tally_scratch_.size());
    for (size_t i = 0; i < tally_scratch_.size(); i++) {
      const auto& s = tally_scratch_[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("model", s.model);
      o.Set("status", s.status);
      Napi::Array counts = Napi::Array::New(env, sluice::engine::RequestTally::kBuckets);
      for (uint32_t b = 0; b < sluice::engine::RequestTally::kBuckets; b++) counts.Set(b, static_cast<double>(s.counts[b]));
      o.Set("counts", counts);
      o.Set("sumUs", static_cast<double>(s.sum_us));
      out.Set(static_cast<uint32_t>(i), o);
    }
    tally_scratch_.clear();
    return out;
  }

  std::shared_ptr<Engine> engine_;
  std::shared_ptr<Shared> shared_;
  napi_threadsafe_function tsfn_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::ObjectReference ring_view_;  // the latency ring's memory, written by the loop thread
  Napi::ObjectReference tap_view_;   // the tensor tap's ring, written by the loop thread
  Napi::ObjectReference buckets_view_;  // the shared rate-limit buckets, taken from by the loop thread
  std::vector<EngineEvent> scratch_;
  std::vector<sluice::engine::RequestTally::Series> tally_scratch_;
  bool hooked_ = false;
};

// engineParseTraceparent(header, rules: 0 propagator | 1 envelope, sampleRatio) -> null or
// { traceId, spanId, flags, sampled (the ratio sampler on its trace id) }: the engine's parser
// (native/engine/trace_context.h), for the differential property test. The header is taken as
// latin1, as node hands header values to the TypeScript path.
Napi::Value ParseTraceparentForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "engineParseTraceparent(header, rules, ratio)");
  }
  size_t len = 0;
  napi_get_value_string_latin1(env, info[0], nullptr, 0, &len);
  std::string h(len, '\0');
  napi_get_value_string_latin1(env, info[0], h.data(), len + 1, &len);
  sluice::engine::TraceContext t;
  const auto rules = info[1].As<Napi::Number>().Int32Value() == 1 ? sluice::engine::TraceparentRules::kEnvelope : sluice::engine::TraceparentRules::kPropagator;
  if (!sluice::engine::ParseTraceparent(h, rules, &t)) return env.Null();
  std::string tp;
  sluice::engine::FormatTraceparent(t.trace_id, t.span_id, t.flags, &tp);
  Napi::Object o = Napi::Object::New(env);
  o.Set("traceId", tp.substr(3, 32));
  o.Set("spanId", tp.substr(36, 16));
  o.Set("flags", t.flags);
  o.Set("sampled", sluice::engine::RatioSampled(t.trace_id, info[2].As<Napi::Number>().DoubleValue()));
  return o;
}

void Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Define(env));
  exports.Set("engineParseTraceparent", Napi::Function::New(env, ParseTraceparentForTest, "engineParseTraceparent"));
  exports.Set("engineCounterCount", Napi::Number::New(env, sluice::engine::kCount));
  {
    // The request tally's latency bounds (us), for TypeScript to check against its histograms'.
    Napi::Array bounds = Napi::Array::New(env);
    for (uint32_t i = 0; i + 1 < sluice::engine::RequestTally::kBuckets; i++) bounds.Set(i, static_cast<double>(sluice::engine::RequestTally::kBoundsUs[i]));
    exports.Set("engineRequestBoundsUs", bounds);
  }
}

}  // namespace engine_binding

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
#ifdef SLUICE_WITH_VERBS
  exports.Set("withVerbs", Napi::Boolean::New(env, true));
  verbs_binding::Init(env, exports);
#else
  exports.Set("withVerbs", Napi::Boolean::New(env, false));
#endif
  exports.Set("AeadContext", AeadContext::Define(env));
  exports.Set("tuneMalloc", Napi::Function::New(env, TuneMalloc, "tuneMalloc"));
  engine_binding::Init(env, exports);
  thread_binding::Init(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sluice_native, Init)
