#!/usr/bin/env bash
# Installs the Debian packages sluice needs to build and test (idempotent; root on Debian 12).
#  - build-essential, python3: node-gyp builds the native addon
#  - openssl: the TLS tests make their certificates with the openssl CLI
#  - nginx-light: the benchmarks' grpc_pass comparison path
#  - libibverbs-dev, rdma-core headers: the verbs half of the addon
#  - qemu-system-x86, busybox-static, kmod, xz-utils, iproute2, ibverbs-*, perftest: the soft-RoCE VM harness
set -euo pipefail
PKGS=(build-essential python3 openssl)
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
