#!/bin/sh
# Runs in the guest, chrooted into the host's userspace: brings up the network and the two
# soft-RoCE devices (rxe0 on eth0, rxe1 on a dummy netdev: a second segment), then runs the job
# with its output on the virtio-serial port ($1) and its exit status in the job directory.
JOB=/run/rxe-vm
out=$1
fail() {
  { echo "$*"; echo '--- dmesg tail ---'; dmesg | tail -n 8; } > "$JOB/init-error"
  exit 1
}
. "$JOB/guest.conf"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
ip link set lo up || fail "ip link set lo up failed"
ip link set eth0 up && ip addr add "$RXEVM_ETH0_ADDR" dev eth0 || fail "cannot configure eth0"
# The dummy module creates dummy0 itself when loaded (numdummies=1).
{ ip link show dummy0 >/dev/null 2>&1 || ip link add dummy0 type dummy; } && ip link set dummy0 up && ip addr add "$RXEVM_DUMMY0_ADDR" dev dummy0 ||
  fail "cannot create dummy0"
rdma link add rxe0 type rxe netdev eth0 2>"$JOB/rdma.err" || fail "rdma link add rxe0 failed: $(cat "$JOB/rdma.err")"
rdma link add rxe1 type rxe netdev dummy0 2>"$JOB/rdma.err" || fail "rdma link add rxe1 failed: $(cat "$JOB/rdma.err")"
# Ports go ACTIVE once the netdev has carrier; wait a bounded while.
i=0
until [ "$(rdma link show | grep -c 'state ACTIVE')" -ge 2 ]; do
  i=$((i + 1))
  [ $i -gt 100 ] && fail "rxe ports not ACTIVE after 10 s: $(rdma link show)"
  sleep 0.1
done
cd "$RXEVM_WORKDIR" || fail "cannot enter $RXEVM_WORKDIR"
sh "$JOB/cmd.sh" >"$out" 2>&1 </dev/null
echo $? > "$JOB/status"
sync
