#!/bin/sh
# The soft-RoCE VM harness: boots a QEMU guest with rdma_rxe (rxe0 on eth0, rxe1 on dummy0) over
# the host's userspace and runs a command in it. See scripts/rxe-vm/cli.ts and docs/rdma.md.
root=$(cd "$(dirname "$0")/.." && pwd)
exec node --import "file://$root/node_modules/tsx/dist/loader.mjs" "$root/scripts/rxe-vm/cli.ts" "$@"
