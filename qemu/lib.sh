# Shared helpers for the qemu/ scripts (sourced, not run).
# shellcheck shell=bash
QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$QEMU_DIR/.." && pwd)
OUT=$(realpath -m "${QEMU_OUT:-$QEMU_DIR/out}")
mkdir -p "$OUT"

log() { printf '[qemu] %s\n' "$*" >&2; }
die() { printf '[qemu] error: %s\n' "$*" >&2; exit 1; }

# The test disks (mkdisk.sh, mkdisk-native.sh): ext4 made from DIR, sized to
# the content with room for the tests' writes. fs-verity on ext4 needs the
# block size to equal the page size (4096): small images would otherwise get
# 1 KiB blocks and FS_IOC_ENABLE_VERITY fails (EINVAL).
mkext4() { # DIR IMG
  local mb
  mb=$(( $(du -sm "$1" | cut -f1) * 2 + 48 ))
  rm -f "$2"
  truncate -s "${mb}M" "$2"
  mkfs.ext4 -q -b 4096 -O verity -L cfstest -d "$1" "$2"
}

kver() { cat "$OUT/kernel/kver" 2>/dev/null || die "no kernel: run qemu/deps.sh (make qemu-deps)"; }
kmoddir() { echo "$OUT/kernel/lib/modules/$(kver)"; }
