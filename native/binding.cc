// The one N-API binding file: argument shapes are checked in TypeScript; here only asserts.
#include <napi.h>

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
#ifdef SLUICE_WITH_VERBS
  exports.Set("withVerbs", Napi::Boolean::New(env, true));
#else
  exports.Set("withVerbs", Napi::Boolean::New(env, false));
#endif
  return exports;
}

NODE_API_MODULE(sluice_native, Init)
