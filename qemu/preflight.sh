# The preflight scenarios of qemu/check.sh (issue 16): the booted test system
# runs `cfsroot preflight` against its own next boot entry, and its verdict
# must agree with what booting that entry did. Sourced by check.sh, after
# lib.sh and disk.env.
#
# base.img has no boot entries (the initramfs embeds facts of the disk, so it
# is built after the disk), so each scenario's disk copy gets, by debugfs:
#   /boot/loader/entries/ostree-1-cfstest.conf   options = this boot's kargs,
#       linux/initrd naming the kernel and the very initramfs QEMU boots
#   /boot/ostree/cfstest-0/{vmlinuz,initramfs}-KVER
#   /cfstest-preflight/cfsroot and lib/ (the C library the binary links: the
#       test root is busybox-static only, so qemu/rootfs-init.sh runs it
#       through lib/ld-linux-x86-64.so.2)
# The booted root is the composefs image, so these go on the physical root,
# which the booted system sees as /sysroot.
# shellcheck shell=bash

# The kernel command line QEMU gives the guest (qemu/boot.sh prepends these).
preflight_options() { # ARGS
  echo "console=ttyS0 panic=-1 $1"
}

# Write the entry, kernel, initramfs and the binary into DISK (a scenario's
# copy of base.img), grown first: the binary alone is ~115 MB.
preflight_prepare() { # DISK INITRD ARGS DIR
  local disk=$1 initrd=$2 args=$3 dir=$4 k bin=$OUT/cfsroot
  k=$(kver)
  [[ -f $bin ]] || bin=$REPO/dist/cfsroot
  mkdir -p "$dir/preflight/lib"
  local lib
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do cp -L "$lib" "$dir/preflight/lib/"; done
  [[ -f $dir/preflight/lib/ld-linux-x86-64.so.2 ]] || { reasons+=("no ld-linux-x86-64.so.2 among the binary's libraries"); return; }
  cat > "$dir/preflight/entry.conf" <<EOF
title cfsroot boot test (preflight)
version 1
options $(preflight_options "$args")
linux /ostree/cfstest-0/vmlinuz-$k
initrd /ostree/cfstest-0/initramfs-$k.img
EOF
  truncate -s +400M "$disk"
  { e2fsck -f -y "$disk" && resize2fs "$disk"; } >"$dir/resize.log" 2>&1 || { reasons+=("could not grow the disk (see $dir/resize.log)"); return; }
  {
    echo "mkdir /cfstest-preflight"
    echo "mkdir /cfstest-preflight/lib"
    echo "write $bin /cfstest-preflight/cfsroot"
    for lib in "$dir"/preflight/lib/*; do echo "write $lib /cfstest-preflight/lib/$(basename "$lib")"; done
    echo "mkdir /boot/loader"
    echo "mkdir /boot/loader/entries"
    echo "mkdir /boot/ostree"
    echo "mkdir /boot/ostree/cfstest-0"
    echo "write $OUT/kernel/vmlinuz /boot/ostree/cfstest-0/vmlinuz-$k"
    echo "write $initrd /boot/ostree/cfstest-0/initramfs-$k.img"
    echo "write $dir/preflight/entry.conf /boot/loader/entries/ostree-1-cfstest.conf"
  } | debugfs -w -f - "$disk" >/dev/null 2>"$dir/debugfs.err"
  # debugfs reports failures on stderr but exits 0: check what landed.
  local f
  for f in /cfstest-preflight/cfsroot /cfstest-preflight/lib/ld-linux-x86-64.so.2 \
           /boot/ostree/cfstest-0/initramfs-$k.img /boot/loader/entries/ostree-1-cfstest.conf; do
    debugfs -R "stat $f" "$disk" 2>/dev/null | grep -q '^Inode:' || reasons+=("debugfs did not write $f (see $dir/debugfs.err)")
  done
}

# Replace OBJ (a path on DISK) by a copy with the same bytes and no fs-verity:
# debugfs `write` makes a new inode without the verity flag.
preflight_drop_verity() { # DISK OBJ DIR
  local disk=$1 obj=$2 dir=$3
  debugfs -R "dump /$obj $dir/object" "$disk" >/dev/null 2>&1
  [[ -s $dir/object ]] || { reasons+=("could not read /$obj from the disk"); return; }
  preflight_has_verity "$disk" "/$obj" || reasons+=("/$obj has no fs-verity before the rewrite (base.img?)")
  debugfs -w -f - "$disk" >/dev/null 2>>"$dir/debugfs.err" <<EOF
rm /$obj
write $dir/object /$obj
EOF
  preflight_has_verity "$disk" "/$obj" && reasons+=("/$obj still has fs-verity after the rewrite")
  return 0
}

# Whether PATH on DISK has the inode flag EXT4_VERITY_FL (0x100000).
preflight_has_verity() { # DISK PATH
  local flags
  flags=$(debugfs -R "stat $2" "$1" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "Flags:") { print $(i + 1); exit } }')
  [[ -n $flags ]] && (( flags & 0x100000 ))
}

# Every check of preflight but those in SKIP printed OK (the checks a signed
# composefs boot with verity=require runs).
PREFLIGHT_CHECKS=(entry initramfs cfsroot runs-at-boot deployment config key decision kernel-version kernel-modules verity)
preflight_ok_except() { # CHECK...
  local c s
  for c in "${PREFLIGHT_CHECKS[@]}"; do
    for s in "$@"; do [[ $c == "$s" ]] && continue 2; done
    expect "^CFSTEST preflight OK $c: " "preflight: $c OK"
  done
}

# The entry preflight read is the one this boot used: its options are this
# boot's /proc/cmdline, and preflight named it.
preflight_same_entry() { # ARGS
  grep -q -F -x "CFSTEST cmdline $(preflight_options "$1")" <<< "$lines" ||
    reasons+=("the entry's options are not this boot's command line")
  expect "^CFSTEST preflight OK entry: ostree-1-cfstest\\.conf .*initrd /ostree/cfstest-0/initramfs-" \
    'preflight read the entry written for this boot'
}
