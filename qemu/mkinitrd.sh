#!/usr/bin/env bash
# Build the initramfs images the boot tests use, all for the kernel unpacked
# by qemu/deps.sh:
#   initrd-dracut.img         dracut 059 + systemd + cfsroot module (+ test module)
#   initrd-dracut-unsigned.img  as initrd-dracut.img, with EXTRA_ROOT_DIR-unsigned (enabled = maybe)
#   initrd-dracut-etc-transient.img  as initrd-dracut.img, with a setup-root-conf.toml
#                             saying [etc] mount = "transient" (composefs-native)
#   initrd-dracut-plain.img   the same without cfsroot (size/boot-time baseline)
#   initrd-dracut-hook.img    dracut 059 without systemd: cfsroot runs from its pre-pivot hook
#   initrd-mini.img           initramfs/build.sh (busybox, no systemd) + cfsroot
#   initrd-mini-plain.img     the same without cfsroot
#
# usage: qemu/mkinitrd.sh CFSROOT_BIN [EXTRA_ROOT_DIR]
#   EXTRA_ROOT_DIR is copied into every cfsroot initramfs root (prepare-root.conf, key).
#
# dracut has no option for an extra module folder, so it runs on a private
# copy of its base dir (dracutbasedir) holding our modules; --conf /dev/null
# and an empty --confdir keep the host's dracut configuration out.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# QEMU_COMPRESS=zstd|gzip|none (default zstd: see initramfs/build.sh).
compress=${QEMU_COMPRESS:-zstd}
case $compress in
  zstd) dracut_compress="zstd -10 -q -T0" ;;
  gzip) dracut_compress=gzip ;;
  none) dracut_compress=cat ;;
  *) die "QEMU_COMPRESS=$compress: expected zstd, gzip or none" ;;
esac

cfsroot=${1:?usage: mkinitrd.sh CFSROOT_BIN [EXTRA_ROOT_DIR]}
extra=${2:-}
cfsroot=$(readlink -f "$cfsroot")
k=$(kver)
kmods=$(kmoddir)

base=$OUT/dracut-base
rm -rf "$base" "$OUT/dracut-confdir"
cp -a /usr/lib/dracut "$base"
cp -a "$REPO/dracut/90cfsroot" "$base/modules.d/90cfsroot"
cp -a "$QEMU_DIR/dracut/99cfstest" "$base/modules.d/99cfstest"
mkdir -p "$OUT/dracut-confdir"

dracut_modules="systemd systemd-initrd dracut-systemd base rootfs-block kernel-modules fs-lib udev-rules shutdown cfstest"
# virtio disk + ext4 for the test disk; the cfsroot module adds erofs/overlay/loop.
drivers="virtio_pci virtio_blk ext4"

run_dracut() {
  local out=$1; shift
  local t0=$SECONDS
  dracutbasedir=$base CFSROOT_BINARY=$cfsroot dracut -q --force --no-hostonly --no-hostonly-cmdline \
    --conf /dev/null --confdir "$OUT/dracut-confdir" --kver "$k" --kmoddir "$kmods" \
    --no-early-microcode --compress "$dracut_compress" --drivers "$drivers" "$@" "$out" \
    2> >(grep -v -e 'dracut-install: ERROR: installing' -e '^$' >&2)
  log "$(basename "$out"): $(stat -c %s "$out") bytes, built in $((SECONDS - t0))s"
}

inc=()
[[ -n $extra ]] && inc=(--include "$extra" /)
run_dracut "$OUT/initrd-dracut.img" --modules "$dracut_modules cfsroot" "${inc[@]}"
if [[ -n $extra && -d $extra-unsigned ]]; then
  run_dracut "$OUT/initrd-dracut-unsigned.img" --modules "$dracut_modules cfsroot" --include "$extra-unsigned" /
fi
# composefs-native with [etc] mount = "transient" (scenario native-etc-transient).
# The TOML is put in here, not by the cfsroot dracut module, so the image is
# the same whether or not that module installs setup-root-conf.toml itself.
if [[ -n $extra ]]; then
  etc_transient=$OUT/initrd-extra-etc-transient
  rm -rf "$etc_transient"
  cp -a "$extra" "$etc_transient"
  mkdir -p "$etc_transient/usr/lib/composefs"
  printf '[etc]\nmount = "transient"\n' > "$etc_transient/usr/lib/composefs/setup-root-conf.toml"
  run_dracut "$OUT/initrd-dracut-etc-transient.img" --modules "$dracut_modules cfsroot" --include "$etc_transient" /
fi
run_dracut "$OUT/initrd-dracut-plain.img" --modules "$dracut_modules"
# No systemd: dracut's own shell init, and the cfsroot module's pre-pivot hook
# in place of its unit (and no cfstest: it needs dracut-systemd).
run_dracut "$OUT/initrd-dracut-hook.img" --modules "base rootfs-block kernel-modules fs-lib udev-rules shutdown cfsroot" \
  --omit "systemd systemd-initrd dracut-systemd" "${inc[@]}"

mini_inc=()
[[ -n $extra ]] && mini_inc=(--include "$extra:/")
bash "$REPO/initramfs/build.sh" --kver "$k" --kmoddir "$kmods" --cfsroot "$cfsroot" --compress "$compress" \
  --modules "virtio_pci virtio_blk ext4" "${mini_inc[@]}" --out "$OUT/initrd-mini.img" >&2
bash "$REPO/initramfs/build.sh" --kver "$k" --kmoddir "$kmods" --no-cfsroot --compress "$compress" \
  --modules "virtio_pci virtio_blk ext4" --out "$OUT/initrd-mini-plain.img" >&2
