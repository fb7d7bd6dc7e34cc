#!/usr/bin/env bash
# Install what the QEMU boot tests need (Debian packages, only those missing)
# and unpack Debian's 6.12 kernel into qemu/out/kernel/ without installing it
# on the host: the host keeps its own /boot and /lib/modules, and no
# initramfs hook of the host runs.
#
# QEMU_KERNEL=6.16 (or another series trixie-backports carries) unpacks that
# Debian kernel instead, into $QEMU_OUT/kernel (use an out dir of its own:
# the disks and initramfs images there are built with its modules), e.g.
#   make qemu-check QEMU_OUT=qemu/out-6.16 QEMU_KERNEL=6.16
# It is fetched with curl and checked as apt would check it: the suite's
# InRelease signature against debian-archive-keyring, Packages.xz against
# InRelease, the .deb against Packages.
#
# Output: qemu/out/kernel/{vmlinuz,kver,lib/modules/KVER/...} with modules
# uncompressed and depmod run, so dracut (--kmoddir) and the busybox
# initramfs builder can both take modules from there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

packages=(qemu-system-x86 dracut-core systemd udev kmod cpio e2fsprogs fsverity
          busybox-static erofs-utils attr util-linux xz-utils zstd)
series=${QEMU_KERNEL:-6.12}
[[ $series == 6.12 ]] || packages+=(curl gpgv debian-archive-keyring)

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
  have=$(cat "$kdir/kver")
  [[ $have == "$series".* ]] ||
    die "$kdir holds kernel $have, not $series: give QEMU_OUT a directory of its own for each kernel"
  log "kernel $have already unpacked"
  exit 0
fi
rm -rf "$kdir" "$kdir.tmp" "$OUT/deb"
mkdir -p "$OUT/deb" "$kdir.tmp"

# A kernel of another series, from trixie-backports, checked link by link.
fetch_backports_kernel() { # SERIES: leaves the .deb in $OUT/deb, prints its kernel release
  local suite=trixie-backports base=http://deb.debian.org/debian d=$OUT/deb sum entry
  curl -fsS -o "$d/InRelease" "$base/dists/$suite/InRelease" || die "cannot fetch $suite's InRelease"
  gpgv --quiet --keyring /usr/share/keyrings/debian-archive-keyring.gpg --output "$d/Release" "$d/InRelease" 2>/dev/null ||
    die "$suite's InRelease does not verify against debian-archive-keyring"
  sum=$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$d/Release")
  [[ -n $sum ]] || die "$suite's Release lists no main/binary-amd64/Packages.xz"
  curl -fsS -o "$d/Packages.xz" "$base/dists/$suite/main/binary-amd64/Packages.xz" || die "cannot fetch $suite's Packages.xz"
  echo "$sum  $d/Packages.xz" | sha256sum --quiet -c - || die "$suite's Packages.xz does not match its Release"
  # "<release> <file> <sha256>" of each linux-image-SERIES.N+debNN-amd64, the newest last.
  entry=$(xz -dc "$d/Packages.xz" | awk -v series="$1" '
    /^Package: / { p = $2 } /^Filename: / { f = $2 } /^SHA256: / { h = $2 }
    /^$/ { r = p; sub(/^linux-image-/, "", r)
           if (p ~ /^linux-image-[0-9]+\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64$/ && index(r, series ".") == 1) print r, f, h
           p = f = h = "" }' | sort -V | tail -n1)
  [[ -n $entry ]] || die "$suite has no linux-image-$1.*-amd64"
  read -r kver file sum <<< "$entry"
  log "fetching $(basename "$file") from $suite (kernel $kver)"
  curl -fsS -o "$d/kernel.deb" "$base/$file" || die "cannot fetch $base/$file"
  echo "$sum  $d/kernel.deb" | sha256sum --quiet -c - || die "$(basename "$file") does not match $suite's Packages"
  echo "$kver"
}

if [[ $series != 6.12 ]]; then
  kver=$(fetch_backports_kernel "$series")
  dpkg-deb -x "$OUT/deb/kernel.deb" "$kdir.tmp"
  # trixie's packages put the modules under /usr/lib (merged /usr); the scripts look in lib/.
  if [[ -d $kdir.tmp/usr/lib/modules ]]; then mkdir -p "$kdir.tmp/lib" && mv "$kdir.tmp/usr/lib/modules" "$kdir.tmp/lib/modules"; fi
else
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
  # apt fetches as the unprivileged _apt user when it can write the target dir
  # (else it warns and downloads unsandboxed as root).
  id _apt >/dev/null 2>&1 && chown _apt "$OUT/deb"
  (cd "$OUT/deb" && apt-get download -q "$pkg" >/dev/null)
  dpkg-deb -x "$OUT"/deb/"$pkg"_*.deb "$kdir.tmp"
fi
# Debian ships modules as .ko.xz; busybox insmod cannot read those, so
# unpack them once here and let depmod index the plain .ko files.
find "$kdir.tmp/lib/modules/$kver" -name '*.ko.xz' -print0 | xargs -0 -r -P "$(nproc)" -n 64 xz -d
depmod -b "$kdir.tmp" "$kver"
cp "$kdir.tmp/boot/vmlinuz-$kver" "$kdir.tmp/vmlinuz"
echo "$kver" > "$kdir.tmp/kver"
mv "$kdir.tmp" "$kdir"
rm -rf "$OUT/deb"
log "kernel $kver unpacked in $kdir"
