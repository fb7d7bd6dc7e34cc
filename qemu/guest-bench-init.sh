#!/bin/sh
# /init of the guest-side benchmark (qemu/guest-bench.sh, issue 15): runs
# the boot over and over on the disk's one deployment, inside the 6.12 guest
# (the only kernel here with fs-verity), each run in a fresh private mount
# namespace with a fresh tmpfs /run, as an initramfs runs it, and prints one
# "CFSBENCH ..." line per run. Variants, rotated round by round:
#   version   cfsroot --version (start-up alone: subtracted to get own work)
#   unpinned  ot-composefs=on: the image mounted straight from its descriptor
#   verity    ot-composefs=digest=<its digest>, the image has fs-verity:
#             the kernel measures it, no copy
#   signed    ot-composefs=signed, the image has fs-verity: the commit's
#             Ed25519 signature checked against the initramfs's key, then
#             the kernel measures the image against the digest it pins
#   copy      ot-composefs=digest=, the image a copy without fs-verity (same
#             bytes, swapped in by hard link): private copy + user-space digest
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
while read -r ko; do insmod "$ko" 2>/dev/null || true; done < /etc/initramfs/modules
. /etc/cfsbench/env
n=0
while [ ! -b /dev/vda ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
mkdir -p /sysroot
mount -t ext4 -o rw /dev/vda /sysroot || { echo "CFSBENCH fail mount"; poweroff -f; }

img=/sysroot/$DEPLOY_REL/.ostree.cfs
if ! fsverity measure "$img" >/dev/null 2>&1; then
  fsverity enable "$img" || { echo "CFSBENCH fail fsverity enable $img"; poweroff -f; }
fi
echo "CFSBENCH image $(stat -c %s "$img") bytes, $(fsverity measure "$img")"
ln -f "$img" /sysroot/cfsbench-verity.cfs
cp "$img" /sysroot/cfsbench-plain.cfs
sync
use_image() { ln -f "/sysroot/cfsbench-$1.cfs" "$img"; }


# One run: VARIANT, then cfsroot's arguments. Timed by tcmd (posix_spawn ->
# wait4), which appends "<wall ns> <rss KiB> <status> <user us> <sys us>";
# a boot also prints its phases (CFSROOT_TIMINGS=1), the same extra line for
# every path.
# The namespace lives until the shell exits, so the Shmem growth it measures
# after cfsroot is what the mounted root keeps in RAM (the image copy).
run() {
  variant=$1; shift
  rm -f /tmp/res
  unshare -m sh -c '
    mount --make-rprivate /
    mount -t tmpfs -o mode=0755 tmpfs /run
    before=$(awk "/^Shmem:/ { print \$2 }" /proc/meminfo)
    CFSROOT_TIMINGS=1 tcmd /tmp/res "$@" >/tmp/out 2>&1
    after=$(awk "/^Shmem:/ { print \$2 }" /proc/meminfo)
    echo "$((after - before))" > /tmp/held
  ' sh "$@"
  # The namespace's mounts (and the copy's loop device) are torn down after
  # its last process exits, partly by the kernel's workers: on the one vCPU
  # that work would land in the next run's time. Let it finish first.
  sleep 0.3
  res=$(cat /tmp/res 2>/dev/null)
  echo "CFSBENCH run $variant $res held=$(cat /tmp/held 2>/dev/null)"
  # The boot's own phases (CFSROOT_TIMINGS): its work without the start-up and exit around it.
  grep -q 'timings (ms):' /tmp/out && echo "CFSBENCH tim $variant $(grep -o 'timings (ms): [^;]*' /tmp/out)"
  case $res in
    *" 0 "*) ;;
    *) echo "CFSBENCH fail $variant: $(tail -n 3 /tmp/out | tr '\n' ' ')" ;;
  esac
}

ostree="ostree=$OSTREE_KARG"
unpinned="$ostree ot-composefs=on"
pinned="$ostree ot-composefs=digest=$IMAGE_DIGEST"
signed="$ostree ot-composefs=signed"

# Once each, untimed, with the timings line: which image path each took.
for v in unpinned verity signed copy; do
  case $v in
    unpinned) use_image verity; c=$unpinned ;;
    verity) use_image verity; c=$pinned ;;
    signed) use_image verity; c=$signed ;;
    copy) use_image plain; c=$pinned ;;
  esac
  unshare -m sh -c 'mount --make-rprivate /; mount -t tmpfs tmpfs /run; CFSROOT_TIMINGS=1 cfsroot /sysroot "$1"' sh "$c" > /tmp/info 2>&1
  echo "CFSBENCH info $v status=$? $(grep -v '^$' /tmp/info | tail -n 2 | tr '\n' ' ')"
done

i=0
while [ $i -lt "$ROUNDS" ]; do
  # A balanced design (Williams, for five variants: two Latin squares, the
  # second the first reversed): over ten rounds each variant runs twice in
  # each position, and right after each other variant twice. A plain
  # rotation kept the cyclic order, so --version always followed the copy
  # and paid for its teardown (the loop device, 6 MiB freed), and unpinned
  # always followed --version, which leaves nothing to tear down.
  case $((i % 10)) in
    0) order="version unpinned copy verity signed" ;;
    1) order="unpinned verity version signed copy" ;;
    2) order="verity signed unpinned copy version" ;;
    3) order="signed copy verity version unpinned" ;;
    4) order="copy version signed unpinned verity" ;;
    5) order="signed verity copy unpinned version" ;;
    6) order="copy signed version verity unpinned" ;;
    7) order="version copy unpinned signed verity" ;;
    8) order="unpinned version verity copy signed" ;;
    9) order="verity unpinned signed version copy" ;;
  esac
  for v in $order; do
    case $v in
      version) run version /usr/bin/cfsroot --version ;;
      unpinned) use_image verity; run unpinned /usr/bin/cfsroot /sysroot "$unpinned" ;;
      verity) use_image verity; run verity /usr/bin/cfsroot /sysroot "$pinned" ;;
      signed) use_image verity; run signed /usr/bin/cfsroot /sysroot "$signed" ;;
      copy) use_image plain; run copy /usr/bin/cfsroot /sysroot "$pinned" ;;
    esac
  done
  i=$((i + 1))
done
use_image verity
rm -f /sysroot/cfsbench-verity.cfs /sysroot/cfsbench-plain.cfs
umount /sysroot
echo "CFSBENCH done"
poweroff -f
