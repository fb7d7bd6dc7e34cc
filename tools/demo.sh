#!/usr/bin/env bash
# The newcomer's demo: generate an example OSTree sysroot with a signed
# composefs deployment, then run the real binary's `verify` and `plan` on it,
# and show one refusal (the same sysroot with its image changed by one byte).
# Needs root (the image carries trusted.* xattrs). Writes only under build/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/demo
rm -rf "$out"
mkdir -p "$out/initramfs/etc/ostree" "$out/initramfs/usr/lib/ostree"

echo "== generating an example sysroot in $out/sysroot"
npx tsx tools/mksysroot.ts --out "$out/sysroot" --os demo \
  --key-out "$out/initramfs/usr/lib/ostree/initramfs-root-binding.key" > "$out/sysroot.json"
# conf/signed.conf names keypath /usr/lib/ostree/initramfs-root-binding.key
cp conf/signed.conf "$out/initramfs/usr/lib/ostree/prepare-root.conf"
karg=$(node -p "require('./$out/sysroot.json').cmdline")
cmdline="root=UUID=0000 rw $karg"

run() { echo; echo "\$ cfsroot $*"; dist/cfsroot "$@"; }
run verify --sysroot "$out/sysroot" --initramfs-root "$out/initramfs" --cmdline "$cmdline"
run plan --sysroot "$out/sysroot" --initramfs-root "$out/initramfs" --cmdline "$cmdline"

echo; echo "== the same boot with one byte of the image changed:"
image=$(node -p "require('./$out/sysroot.json').image")
printf '\x01' | dd of="$image" bs=1 seek=2000 conv=notrunc status=none
set +e
run verify --sysroot "$out/sysroot" --initramfs-root "$out/initramfs" --cmdline "$cmdline"
echo "(exit status $?)"
