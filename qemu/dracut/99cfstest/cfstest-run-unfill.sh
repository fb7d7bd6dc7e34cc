#!/bin/sh
# Boot-test only: the /run tmpfs back to its size before cfstest-run-fill.sh.
[ -f /run/cfstest-run-size-kib ] || exit 0
mount -o remount,size="$(cat /run/cfstest-run-size-kib)k" /run
rm -f /run/cfstest-run-size-kib
