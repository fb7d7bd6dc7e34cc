#!/usr/bin/env bash
# Build the content of the boot-test commit: a tiny busybox-static system in
# the usrmerged OSTree layout (everything in /usr, top-level symlinks), whose
# /sbin/init is qemu/rootfs-init.sh. It is used twice: as the --tree of
# tools/mksysroot.ts (the composefs scenarios) and as a plain ext4 root (the
# infrastructure smoke test, no OSTree at all).
#
# usage: qemu/mkrootfs.sh [OUTDIR]   (default qemu/out/rootfs)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dest=${1:-$OUT/rootfs}
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
cd "$dest.tmp"

mkdir -p usr/bin usr/sbin usr/lib/cfstest usr/share/cfstest usr/etc etc \
         dev proc sys run tmp var sysroot mnt
ln -s usr/bin bin; ln -s usr/sbin sbin; ln -s usr/lib lib
chmod 1777 tmp

busybox=$(command -v busybox)
file -L "$busybox" | grep -q 'statically linked' || die "$busybox is not static (install busybox-static)"
cp "$busybox" usr/bin/busybox
for applet in $(usr/bin/busybox --list); do
  [[ -e usr/bin/$applet ]] || ln -s busybox "usr/bin/$applet"
done
install -m 0755 "$QEMU_DIR/rootfs-init.sh" usr/lib/cfstest/init
ln -sf ../lib/cfstest/init usr/sbin/init

# switch-root under systemd refuses a root without os-release.
cat > usr/lib/os-release <<'OS'
NAME="cfsroot test root"
ID=cfstest
VERSION_ID=1
PRETTY_NAME="cfsroot boot-test root (busybox)"
OS
# Default configuration lives in usr/etc, as in an OSTree commit; the
# deployment's /etc starts as a copy of it.
ln -s ../lib/os-release usr/etc/os-release
echo cfstest > usr/etc/hostname
printf 'root:x:0:0:root:/root:/bin/sh\n' > usr/etc/passwd
printf 'root:x:0:\n' > usr/etc/group

# The distribution's prepare-root.conf, which the initramfs carries a copy of
# (qemu/mkdisk.sh copies it into initrd-extra): cfsroot preflight's config
# check compares the two.
mkdir -p usr/lib/ostree
printf '[composefs]\nenabled = signed\n' > usr/lib/ostree/prepare-root.conf

# Files read through the booted root. Larger than composefs' inline limit
# (64 bytes) and than one fs-verity block, so each has a backing object with
# a multi-block Merkle tree; the victim is the one the tampered-object
# scenario replaces.
for name in hello victim; do
  { echo "cfsroot boot test: $name"; seq 1 1200 | sed "s/^/$name line /"; } > "usr/share/cfstest/$name.txt"
done

# 3,000 more files of one content (one repo object): about 80 bytes of
# composefs image each, so the image (308 KiB, measured) is well above what a
# boot itself keeps in /run (the addon while it is mapped, the state files).
# The *-small-run scenarios shrink /run to just below the image's size.
mkdir -p usr/share/cfstest/bulk
line='a file of the bulk tree, there to make the composefs image larger than the boot'\''s own use of /run'
for i in $(seq 1 3000); do echo "$line" > "usr/share/cfstest/bulk/$i"; done

cd ..
rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "test root tree in $dest ($(du -sh "$dest" | cut -f1))"
