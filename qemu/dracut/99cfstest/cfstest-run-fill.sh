#!/bin/sh
# Boot-test only (module-setup.sh): with cfstest.run-free=BYTES on the kernel
# command line, shrink the /run tmpfs before cfsroot runs so that only about
# BYTES stay free, and print what is left; cfstest-run-unfill.sh gives the
# space back after cfsroot. qemu/check.sh sets BYTES just below the
# composefs image's size: the copy path must then refuse (the copy would not
# fit), and the fs-verity path, which copies nothing, must still boot (issue 15).
# (A remount, not a filler file: a file that size needs that much free RAM.)
want=$(sed -n 's/.*cfstest\.run-free=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$want" ] || exit 0
set -- $(stat -f -c '%b %f %S' /run)
echo "$(($1 * $3 / 1024))" > /run/cfstest-run-size-kib
# What is used can grow between the look and the remount (journald), which
# then refuses a size below it: try again.
for try in 1 2 3 4 5; do
  set -- $(stat -f -c '%b %f %S' /run)
  mount -o remount,size=$((($1 - $2) * $3 + want)) /run && break
done
set -- $(stat -f -c '%a %S' /run)
echo "CFSTEST run-free $(($1 * $2))" > /dev/console
