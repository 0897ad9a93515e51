#!/usr/bin/env bash
# Builds a second copy of the native addon (and the engine's unit-test executable) with clang,
# AddressSanitizer and UBSan into build/asan/src/build/Release/, beside the normal build.
# Run tests on it with scripts/test-native-asan.sh (it preloads the ASan runtime into node).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
stage=build/asan/src
mkdir -p "$stage"
# node-gyp builds in ./build of its working directory: a staging directory of links keeps this
# build apart from build/Release.
ln -sfn "$root/binding.gyp" "$stage/binding.gyp"
ln -sfn "$root/native" "$stage/native"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
prefix=$(cd "$(dirname "$(command -v node)")/.." && pwd)
nodedir=()
[ -f "$prefix/include/node/node_api.h" ] && nodedir=(--nodedir="$prefix")
gyp=$(node -p "require.resolve('node-gyp/bin/node-gyp.js')")
cd "$stage"
# -shared-libasan: the addon links the runtime's shared copy, which node gets by LD_PRELOAD.
CC=clang CXX=clang++ CFLAGS="$san" CXXFLAGS="$san" LDFLAGS="$san -shared-libasan" \
  node "$gyp" rebuild --jobs=max "${nodedir[@]}" >/dev/null
echo "build-native-asan: $stage/build/Release/sluice_native.node"
