#!/bin/busybox sh
# PID 1 of the soft-RoCE guest (busybox, in the initramfs). Loads the modules, builds the root
# (the host's / read-only over 9p under a tmpfs overlay, the working directory read-write at the
# same path), then runs guest-stage2.sh chrooted into it and powers off. Failures land in the
# job directory as init-error so the host can say what went wrong.
/bin/busybox mkdir -p /dev /proc /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys

JOB_MOUNTED=0
die() {
  echo "rxe-vm init: $*"
  [ "$JOB_MOUNTED" = 1 ] && echo "$*" > /job/init-error
  sync
  poweroff -f
  sleep 10
}

while read -r m; do
  insmod "/modules/$m" || die "insmod $m failed"
done < /modules/order

P9="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /job /host /rw /newroot
mount -t 9p -o "$P9" job /job || die "cannot mount the job share"
JOB_MOUNTED=1
. /job/guest.conf
mount -t 9p -o "$P9,cache=loose,ro" hostroot /host || die "cannot mount the host root share"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "cannot mount the overlay tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || die "cannot mount the overlay root"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p "/newroot$RXEVM_WORKDIR" /newroot/run/rxe-vm
mount -t 9p -o "$P9,cache=loose" work "/newroot$RXEVM_WORKDIR" || die "cannot mount the working directory share"
mount -o move /job /newroot/run/rxe-vm || die "cannot move the job share"
JOB_MOUNTED=0

port=
for d in /sys/class/virtio-ports/*; do
  [ "$(cat "$d/name" 2>/dev/null)" = rxevm.out ] && port="/dev/${d##*/}"
done
[ -n "$port" ] || die "no virtio-serial port named rxevm.out"

chroot /newroot /bin/sh /run/rxe-vm/stage2.sh "$port"
sync
poweroff -f
sleep 10
