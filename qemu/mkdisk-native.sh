#!/usr/bin/env bash
# Build the composefs-native boot-test disks (SPEC §6, issue 14):
#   native-sha512.img  ext4 (-O verity) holding a composefs-rs style repository,
#                      meta.json algorithm fsverity-sha512-12
#   native-sha256.img  the same with fsverity-sha256-12
# Each is made by tools/mknative.ts from the test root tree (qemu/out/rootfs,
# with its usr/etc as /etc: composefs images carry /etc), then one prepare
# boot per disk (qemu/prepare-init.sh) enables fs-verity in the repository's
# algorithm on the objects, the image and the replacement files below, and
# checks it: `fsverity measure` of every image and object equals its name, and
# hello.txt/victim.txt read with the right content through a verity=require
# overlay of the image. Facts for qemu/check.sh go to qemu/out/native.env.
#
# Replacement files at the disk's top level (the scenarios swap them in with debugfs):
#   cfstest-tampered        victim.txt's object with other bytes of the same size
#   cfstest-tampered-image  the image with one byte changed in the free space before the
#                           EROFS superblock: still a valid image, another digest
#
# usage: qemu/mkdisk-native.sh   (after mkdisk.sh: uses qemu/out/rootfs)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[[ -d $OUT/rootfs ]] || die "no test root tree in $OUT/rootfs: run qemu/mkdisk.sh first"


# The prepare initramfs of mkdisk.sh plus erofs/overlay/loop, for the overlay check.
prep=$OUT/initrd-prepare-native.img
bash "$REPO/initramfs/build.sh" --kver "$(kver)" --kmoddir "$(kmoddir)" --no-cfsroot \
  --modules "virtio_pci virtio_blk ext4 erofs overlay loop" --binary fsverity --init "$QEMU_DIR/prepare-init.sh" \
  --out "$prep" >&2

tree=$OUT/native-tree
rm -rf "$tree"
cp -a "$OUT/rootfs" "$tree"
cp -a "$tree/usr/etc/." "$tree/etc/"

hello_sha=$(sha256sum "$tree/usr/share/cfstest/hello.txt" | cut -d' ' -f1)
victim_sha=$(sha256sum "$tree/usr/share/cfstest/victim.txt" | cut -d' ' -f1)
env=$OUT/native.env.tmp
{
  echo "NATIVE_HOSTNAME_SHA256=$(sha256sum "$tree/etc/hostname" | cut -d' ' -f1)"
} > "$env"

for alg in sha512 sha256; do
  sys=$OUT/native-$alg
  rm -rf "$sys"
  (cd "$REPO" && npx tsx tools/mknative.ts --out "$sys" --tree "$tree" --alg "$alg") > "$OUT/native-$alg.json"
  json() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=process.argv.slice(2).reduce((o,k)=>o==null?o:o[k],j); if (v==null) process.exit(1); console.log(v)' "$OUT/native-$alg.json" "$@"; }
  digest=$(json digest)
  image_file=$(json imageFile)
  victim_obj=$(json objectOf usr/share/cfstest/victim.txt)
  mkdir -p "$sys/boot"

  # Same size, other bytes (as mkdisk.sh's cfstest-tampered for the ostree disk).
  sed '1s/victim/VICTIM/' "$sys/$victim_obj" > "$sys/cfstest-tampered"
  cmp -s "$sys/$victim_obj" "$sys/cfstest-tampered" && die "tampered victim equals the original"
  # Byte 512 lies after the 32-byte composefs header, before EROFS's superblock at 1024.
  cp "$sys/$image_file" "$sys/cfstest-tampered-image"
  printf '\x5a' | dd of="$sys/cfstest-tampered-image" bs=1 seek=512 conv=notrunc status=none
  cmp -s "$sys/$image_file" "$sys/cfstest-tampered-image" && die "tampered image equals the original"

  img=$OUT/native-$alg.img
  mkext4 "$sys" "$img.tmp"
  log "native-$alg: prepare boot (fs-verity $alg on the repository)"
  logf=$OUT/prepare-native-$alg.log
  t=$(bash "$QEMU_DIR/boot.sh" "$prep" "$img.tmp" "$logf" 300 "quiet") || die "prepare boot failed (see $logf)"
  pl=$(tr -d '\r' < "$logf" | grep -a -o 'CFSPREP .*')
  grep -q '^CFSPREP done' <<< "$pl" || die "prepare boot did not finish (see $logf)"
  grep -q '^CFSPREP enabled .* failed 0$' <<< "$pl" || die "fs-verity enable failed (see $logf)"

  # Every image and object is measured by the kernel as its name.
  nmeasured=0
  while read -r _ _ got rel; do
    case $rel in
      images/*) want=$alg:${rel#images/} ;;
      objects/*) want=$alg:$(tr -d / <<< "${rel#objects/}") ;;
      *) die "unexpected measured path $rel" ;;
    esac
    [[ $got == "$want" ]] || die "native-$alg: fsverity measure of $rel is '$got', expected $want (see $logf)"
    nmeasured=$((nmeasured + 1))
  done < <(grep '^CFSPREP measure ' <<< "$pl")
  nobjects=$(find "$sys/composefs/objects" -type f | wc -l)
  ((nmeasured == nobjects + 1)) || die "native-$alg: $nmeasured files measured, expected $((nobjects + 1)) (see $logf)"
  grep -q "^CFSPREP overlay usr/share/cfstest/hello.txt $hello_sha\$" <<< "$pl" &&
    grep -q "^CFSPREP overlay usr/share/cfstest/victim.txt $victim_sha\$" <<< "$pl" ||
    die "native-$alg: reading through a verity=require overlay of the image failed (see $logf)"
  mv "$img.tmp" "$img"
  log "native-$alg: $(grep '^CFSPREP enabled' <<< "$pl"), $nmeasured measured = their names, overlay reads ok, in ${t}s"

  up=${alg^^}
  cat >> "$env" <<ENV
NATIVE_${up}_DIGEST=$digest
NATIVE_${up}_IMAGE_FILE=$image_file
NATIVE_${up}_VICTIM_OBJ=$victim_obj
ENV
done
rm -rf "$tree"
mv "$env" "$OUT/native.env"
log "native disks ready: native-sha512.img, native-sha256.img"
