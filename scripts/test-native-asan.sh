#!/usr/bin/env bash
# Runs the native and link tests on the ASan/UBSan build of the addon (scripts/build-native-asan.sh).
# node itself is not instrumented, so the ASan runtime is preloaded (LD_PRELOAD) and the addon
# is chosen with SLUICE_NATIVE_ADDON; the engine's unit-test executable runs from the same build.
# Leak checking is off for node (V8 keeps memory until exit by design); UBSan and ASan errors are
# fatal. Usage: scripts/test-native-asan.sh [test files...]
set -euo pipefail
cd "$(dirname "$0")/.."
rel=build/asan/src/build/Release
[ -f "$rel/sluice_native.node" ] || bash scripts/build-native-asan.sh
runtime=$(clang++ -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$runtime" ] || { echo "test-native-asan: $runtime missing (install libclang-rt-14-dev)" >&2; exit 1; }
if [ $# -gt 0 ]; then
  files=("$@")
else
  files=(test/native/*.test.ts test/crypto/aes-gcm.test.ts test/transport/tcp.test.ts test/transport/tcp-faults.test.ts
    test/transport/seal-ring.test.ts test/wire/*.test.ts)
  [ -d test/engine ] && files+=(test/engine/*.test.ts)
fi
# The addon is checked to be the instrumented one before the tests count.
LD_PRELOAD="$runtime" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 node -e "
  const a = require('./$rel/sluice_native.node');
  if (typeof a.AeadContext !== 'function') process.exit(3);
  console.log('test-native-asan: addon loaded under ASan');"
LD_PRELOAD="$runtime" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_odr_violation=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 SLUICE_SANITIZED=1 \
  SLUICE_NATIVE_ADDON="$rel/sluice_native.node" SLUICE_ENGINE_TESTS_BIN="$rel/engine_ingress_tests" SLUICE_ENGINE_MAIN_BIN="$rel/engine_ingress_main" \
  node --import tsx --test "${files[@]}"
