#!/usr/bin/env bash
# Install what the QEMU boot tests need (Debian packages, only those missing)
# and unpack Debian's 6.12 kernel into qemu/out/kernel/ without installing it
# on the host: the host keeps its own /boot and /lib/modules, and no
# initramfs hook of the host runs.
#
# Output: qemu/out/kernel/{vmlinuz,kver,lib/modules/KVER/...} with modules
# uncompressed and depmod run, so dracut (--kmoddir) and the busybox
# initramfs builder can both take modules from there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

packages=(qemu-system-x86 dracut-core systemd udev kmod cpio e2fsprogs fsverity
          busybox-static erofs-utils attr util-linux xz-utils zstd)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
updated=0
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  apt-get update -q >/dev/null
  updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

kdir=$OUT/kernel
if [[ -s $kdir/kver && -f $kdir/vmlinuz ]]; then
  log "kernel $(cat "$kdir/kver") already unpacked"
  exit 0
fi

# Newest Debian 6.12 generic amd64 kernel the archive offers: picked by
# pattern, so a point release does not break the build.
pick_kernel() {
  apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' \
    | awk '{print $1}' | sort -V | tail -n1
}
pkg=$(pick_kernel)
if [[ -z $pkg && $updated == 0 ]]; then
  apt-get update -q >/dev/null
  pkg=$(pick_kernel)
fi
[[ -n $pkg ]] || die "no linux-image-6.12.*+deb12-amd64-unsigned package in the apt lists"
kver=${pkg#linux-image-}
kver=${kver%-unsigned}
log "fetching $pkg (kernel $kver)"

rm -rf "$kdir" "$OUT/deb"
mkdir -p "$OUT/deb" "$kdir.tmp"
# apt fetches as the unprivileged _apt user when it can write the target dir
# (else it warns and downloads unsandboxed as root).
id _apt >/dev/null 2>&1 && chown _apt "$OUT/deb"
(cd "$OUT/deb" && apt-get download -q "$pkg" >/dev/null)
dpkg-deb -x "$OUT"/deb/"$pkg"_*.deb "$kdir.tmp"
# Debian ships modules as .ko.xz; busybox insmod cannot read those, so
# unpack them once here and let depmod index the plain .ko files.
find "$kdir.tmp/lib/modules/$kver" -name '*.ko.xz' -print0 | xargs -0 -r -P "$(nproc)" -n 64 xz -d
depmod -b "$kdir.tmp" "$kver"
cp "$kdir.tmp/boot/vmlinuz-$kver" "$kdir.tmp/vmlinuz"
echo "$kver" > "$kdir.tmp/kver"
mv "$kdir.tmp" "$kdir"
rm -rf "$OUT/deb"
log "kernel $kver unpacked in $kdir"
