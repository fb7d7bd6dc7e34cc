#!/usr/bin/env bash
# Boot the test kernel once under TCG and log the serial console.
#
# usage: qemu/boot.sh INITRD DISK LOG TIMEOUT_S "KERNEL ARGS"
# Prints "<seconds>" (wall time until qemu exited) on stdout; exit status is
# qemu's (124 = killed by the timeout). KVM is not usable here, and -smp 2
# oopses under TCG, hence one vCPU.
# QEMU_CPU (default Nehalem): the guest's CPU model. Not the host's on
# purpose: the single executable is built here and must start on other CPUs
# (issue 12); Nehalem (x86-64-v2, no AVX) is older than any build machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

initrd=$1 disk=$2 logf=$3 limit=$4 args=$5
fmt=raw
[[ $disk == *.qcow2 ]] && fmt=qcow2
t0=$(date +%s.%N)
rc=0
timeout --kill-after=5 "$limit" qemu-system-x86_64 -accel tcg -cpu "${QEMU_CPU:-Nehalem}" -smp 1 -m 1G \
  -nodefaults -nographic -serial stdio -monitor none -no-reboot \
  -kernel "$OUT/kernel/vmlinuz" -initrd "$initrd" \
  -drive "file=$disk,format=$fmt,if=virtio,cache=unsafe" \
  -append "console=ttyS0 panic=-1 $args" </dev/null >"$logf" 2>&1 || rc=$?
t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }'
exit $rc
