#!/usr/bin/env bash
# Build the boot-test disks from nothing:
#   plain.img  ext4 holding the test root tree as is (no OSTree): smoke test
#   base.img   ext4 (-O verity) holding an OSTree sysroot made by
#              tools/mksysroot.ts from that tree, with fs-verity enabled on
#              every repo object and on .ostree.cfs by a one-time guest boot
#              (the host kernel has no fs-verity)
# plus qemu/out/initrd-extra/ (prepare-root.conf + the commit's public key,
# copied into every cfsroot initramfs) and qemu/out/disk.env (facts the
# scenarios need: ostree= value, image digest, victim object path...).
#
# usage: qemu/mkdisk.sh   (after deps.sh)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

os=cfstest
bash "$QEMU_DIR/mkrootfs.sh" "$OUT/rootfs"


# The plain root needs /etc where a plain system has it: the tree keeps the
# default configuration in usr/etc, as OSTree commits do.
rm -rf "$OUT/plainroot"
cp -a "$OUT/rootfs" "$OUT/plainroot"
cp -a "$OUT/plainroot/usr/etc/." "$OUT/plainroot/etc/"
mkext4 "$OUT/plainroot" "$OUT/plain.img"
rm -rf "$OUT/plainroot"

# The OSTree sysroot, signed with a fresh key whose public half goes into the
# initramfs, with the tree's prepare-root.conf asking for signed composefs (the
# distro location /usr/lib/ostree; the kargs of some scenarios override it).
rm -rf "$OUT/sysroot" "$OUT/initrd-extra" "$OUT/initrd-extra-unsigned"
mkdir -p "$OUT/initrd-extra/usr/lib/ostree" "$OUT/initrd-extra/etc/ostree"
cp "$OUT/rootfs/usr/lib/ostree/prepare-root.conf" "$OUT/initrd-extra/usr/lib/ostree/prepare-root.conf"
# A karg never lowers enabled = signed (issue 13 item 7: refused, naming both),
# so the scenarios whose kargs ask for less (ot-composefs=off, =maybe) boot an
# initramfs whose configuration does not ask for a signature.
mkdir -p "$OUT/initrd-extra-unsigned/usr/lib/ostree"
printf '[composefs]\nenabled = maybe\n' > "$OUT/initrd-extra-unsigned/usr/lib/ostree/prepare-root.conf"
(cd "$REPO" && npx tsx tools/mksysroot.ts --out "$OUT/sysroot" --tree "$OUT/rootfs" --os "$os" \
   --key-out "$OUT/initrd-extra/etc/ostree/initramfs-root-binding.key") > "$OUT/sysroot.json"
# The top-level directories `ostree admin init-fs` gives a sysroot. dracut's
# own (non-systemd) init refuses a root without proc, sys and dev.
mkdir -p "$OUT"/sysroot/{boot,dev,home,proc,root,run,sys,tmp}
json() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=j[process.argv[2]]; if (v==null) process.exit(1); console.log(v)' "$OUT/sysroot.json" "$1"; }
ostree_karg=$(json ostreeKarg)
image_digest=$(json imageDigest)
commit=$(json commit)
deploy_dir=$(json deployDir)
deploy_rel=${deploy_dir#"$OUT/sysroot/"}

# The backing object of usr/share/cfstest/victim.txt: the object the checkout
# hard-links to (same inode), found without assuming how objects are named.
victim_ino=$(stat -c %i "$deploy_dir/usr/share/cfstest/victim.txt")
victim_obj=$(cd "$OUT/sysroot" && find ostree/repo/objects -inum "$victim_ino" -name '*.file' | head -n1)
[[ -n $victim_obj ]] || die "no repo object for victim.txt"
# Its replacement: same size, different bytes; gets fs-verity too, so the
# kernel sees a verity file whose digest is not the one in the image.
sed '1s/victim/VICTIM/' "$OUT/sysroot/$victim_obj" > "$OUT/sysroot/cfstest-tampered"
cmp -s "$OUT/sysroot/$victim_obj" "$OUT/sysroot/cfstest-tampered" && die "tampered copy equals the original"

mkext4 "$OUT/sysroot" "$OUT/base.img.tmp"

log "prepare boot: enabling fs-verity inside the guest"
bash "$REPO/initramfs/build.sh" --kver "$(kver)" --kmoddir "$(kmoddir)" --no-cfsroot \
  --modules "virtio_pci virtio_blk ext4" --binary fsverity --init "$QEMU_DIR/prepare-init.sh" \
  --out "$OUT/initrd-prepare.img" >&2
t=$(bash "$QEMU_DIR/boot.sh" "$OUT/initrd-prepare.img" "$OUT/base.img.tmp" "$OUT/prepare.log" 300 "quiet") ||
  die "prepare boot failed (see $OUT/prepare.log)"
grep -a -q 'CFSPREP done' "$OUT/prepare.log" || die "prepare boot did not finish (see $OUT/prepare.log)"
grep -a -o 'CFSPREP enabled.*' "$OUT/prepare.log" | tr -d '\r' | grep -q 'failed 0$' || die "fs-verity enable failed (see $OUT/prepare.log)"
mv "$OUT/base.img.tmp" "$OUT/base.img"
log "prepare boot: $(grep -a -o 'CFSPREP enabled.*' "$OUT/prepare.log" | tr -d '\r') in ${t}s"

cat > "$OUT/disk.env" <<ENV
OSTREE_KARG=$ostree_karg
IMAGE_DIGEST=$image_digest
COMMIT=$commit
DEPLOY_REL=$deploy_rel
VICTIM_OBJ=$victim_obj
HELLO_SHA256=$(sha256sum "$OUT/rootfs/usr/share/cfstest/hello.txt" | cut -d' ' -f1)
VICTIM_SHA256=$(sha256sum "$OUT/rootfs/usr/share/cfstest/victim.txt" | cut -d' ' -f1)
ENV
log "disks ready: plain.img, base.img (commit ${commit:0:12}, image digest ${image_digest:0:12}...)"
