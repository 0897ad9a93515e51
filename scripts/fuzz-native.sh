#!/usr/bin/env bash
# Builds every libFuzzer harness under native/engine/fuzz/ with clang's fuzzer, AddressSanitizer
# and UBSan (UB is fatal) and runs each for SLUICE_FUZZ_RUNS inputs (default 100000) from a seed
# corpus. A harness names its sources and seed set in its header:
#   // fuzz-build: native/engine/x.cc -lz        (sources and libraries besides the harness)
#   // fuzz-seeds: h2                            (a set written by engine_fuzz_seeds; optional)
# Any crash, sanitizer report, leak or timeout fails the script (exit != 0); the crashing input
# is left in $OUT/artifacts. Needs clang and libclang-rt-14-dev (scripts/install-deps.sh).
# Usage: scripts/fuzz-native.sh [harness-name-substring ...]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${SLUICE_FUZZ_RUNS:-100000}
OUT=${SLUICE_FUZZ_DIR:-build/fuzz}
CXX=${SLUICE_FUZZ_CXX:-clang++}
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
CXXFLAGS=(-std=c++17 -g -O1 -Inative)
mkdir -p "$OUT/bin" "$OUT/artifacts"

# Seeds: real HTTP/2 client connections and KServe requests (built without the fuzzer runtime).
"$CXX" "${CXXFLAGS[@]}" native/engine/fuzz/fuzz_seeds.cc native/engine/wire.cc native/engine/link_receiver.cc \
  native/engine/traffic_keys.cc native/engine/key_schedule.cc native/crypto/aes_gcm.cc -lnghttp2 -lcrypto -o "$OUT/bin/engine_fuzz_seeds"
rm -rf "$OUT/seeds"
"$OUT/bin/engine_fuzz_seeds" "$OUT/seeds"

status=0
for src in native/engine/fuzz/fuzz_*.cc; do
  name=$(basename "$src" .cc)
  [ "$name" = fuzz_seeds ] && continue
  if [ $# -gt 0 ]; then
    keep=0
    for f in "$@"; do [[ "$name" == *"$f"* ]] && keep=1; done
    [ $keep = 1 ] || continue
  fi
  read -r -a extra <<<"$(sed -n 's#^// fuzz-build: ##p' "$src" | head -1)"
  seedset=$(sed -n 's#^// fuzz-seeds: ##p' "$src" | head -1)
  echo "fuzz: building $name"
  "$CXX" "${CXXFLAGS[@]}" "${SAN[@]}" "$src" "${extra[@]}" -o "$OUT/bin/$name"
  corpus="$OUT/corpus/$name"
  mkdir -p "$corpus"
  dirs=("$corpus")
  [ -n "$seedset" ] && [ -d "$OUT/seeds/$seedset" ] && dirs+=("$OUT/seeds/$seedset")
  echo "fuzz: running $name for $RUNS inputs"
  start=$(date +%s)
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    "$OUT/bin/$name" -runs="$RUNS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$name-" "${dirs[@]}" >"$OUT/$name.log" 2>&1; then
    echo "fuzz: $name FAILED (log: $OUT/$name.log)" >&2
    tail -40 "$OUT/$name.log" >&2
    status=1
    continue
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$name.log" | tail -1)
  echo "fuzz: $name ok: ${execs:-?} inputs in $(($(date +%s) - start)) s"
done
exit $status
