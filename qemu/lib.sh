# Shared helpers for the qemu/ scripts (sourced, not run).
# shellcheck shell=bash
QEMU_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$QEMU_DIR/.." && pwd)
OUT=${QEMU_OUT:-$QEMU_DIR/out}
mkdir -p "$OUT"

log() { printf '[qemu] %s\n' "$*" >&2; }
die() { printf '[qemu] error: %s\n' "$*" >&2; exit 1; }

kver() { cat "$OUT/kernel/kver" 2>/dev/null || die "no kernel: run qemu/deps.sh (make qemu-deps)"; }
kmoddir() { echo "$OUT/kernel/lib/modules/$(kver)"; }
