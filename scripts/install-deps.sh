#!/usr/bin/env bash
# Installs the Debian packages sluice needs to build and test (idempotent; root on Debian 12).
#  - build-essential, python3: node-gyp builds the native addon
#  - openssl: the TLS tests make their certificates with the openssl CLI
#  - libibverbs-dev, ibverbs-providers: the verbs half of the addon (headers, libibverbs, the rxe provider)
#  - nginx-light: the benchmarks' grpc_pass comparison path
#  - curl: the demo test runs the curl line `sluice demo` prints
#  - libnghttp2-dev, zlib1g-dev: the native engine's HTTP/2 (nghttp2) and grpc-encoding (zlib)
#  - nghttp2-client: h2load, the benchmarks' independent gRPC client; nghttp, the client that sends a
#    repeated HTTP/2 header in test/security/credential-headers.test.ts
#  - clang: the sanitizer (ASan/UBSan) build of the addon and the libFuzzer harnesses in CI
#  - libclang-rt-14-dev: clang's runtimes for those (libFuzzer, the ASan runtime node preloads)
#  - python3-grpcio, python3-protobuf, protobuf-compiler, protobuf-compiler-grpc: the independent
#    (protoc-generated Python) KServe client in the compatibility tests
# Opt-in groups (flags; the soft-RoCE VM harness passes --rdma-vm itself on first use):
#  --rdma-vm: qemu-system-x86, busybox-static, kmod, xz-utils, iproute2, ibverbs-utils, librdmacm-dev,
#             rdmacm-utils, perftest (see docs/rdma.md)
set -euo pipefail
PKGS=(build-essential python3 openssl curl libibverbs-dev ibverbs-providers nginx-light
  libnghttp2-dev zlib1g-dev nghttp2-client clang libclang-rt-14-dev python3-grpcio python3-protobuf protobuf-compiler
  protobuf-compiler-grpc
  # iproute2: `ss --tos` reads the DSCP and priority of the training thread's link sockets in tests
  iproute2
  # libssl-dev: libssl/libcrypto for the engine's test executables and fuzzers (the addon uses node's own)
  libssl-dev)
RDMA_VM_PKGS=(qemu-system-x86 busybox-static kmod xz-utils iproute2 ibverbs-providers ibverbs-utils
  libibverbs-dev librdmacm-dev rdmacm-utils perftest)
for arg in "$@"; do
  case "$arg" in
    --rdma-vm) PKGS+=("${RDMA_VM_PKGS[@]}") ;;
    *) echo "install-deps: unknown option $arg (known: --rdma-vm)" >&2; exit 2 ;;
  esac
done
[ -n "${SLUICE_DEPS_EXTRA:-}" ] && read -r -a EXTRA <<<"$SLUICE_DEPS_EXTRA" && PKGS+=("${EXTRA[@]}")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
