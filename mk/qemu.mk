# QEMU boot tests (SPEC §7, qemu/): boot Debian's 6.12 kernel under TCG with
# a dracut+systemd initramfs and with the minimal busybox one, on disks built
# from nothing, and check the booted system from the serial console.
#   make qemu-deps    Debian packages + the unpacked test kernel (qemu/out/kernel)
#   make qemu-check   build disks and initramfs images as needed, run every scenario
#   make qemu-check QEMU_SCENARIOS="signed-ok bad-signature"   a subset
#   make qemu-clean   remove qemu/out (or $(QEMU_OUT))
# Everything lands in qemu/out/ (git-ignored). Needs root (mkfs, trusted.* xattrs).

# QEMU_OUT: where the kernel, disks and images go; QEMU_KERNEL: the Debian
# kernel series booted (default 6.12; another needs an out dir of its own:
# make qemu-check QEMU_OUT=qemu/out-6.16 QEMU_KERNEL=6.16, see qemu/deps.sh).
QEMU_OUT ?= qemu/out
export QEMU_OUT
export QEMU_KERNEL
QEMU_SCENARIOS ?=
# The guest's CPU model (qemu/boot.sh): not the host's, see qemu/README.md.
QEMU_CPU ?= Nehalem
export QEMU_CPU

.PHONY: qemu-deps qemu-check qemu-disks qemu-initrds qemu-clean

# deps.sh installs only missing packages and unpacks the kernel once.
qemu-deps:
	bash qemu/deps.sh

$(QEMU_OUT)/kernel/kver:
	bash qemu/deps.sh

# The sysroot is made by tools/mksysroot.ts, which uses src/ for digests,
# GVariant and the commit format.
QEMU_DISK_INPUTS := qemu/mkdisk.sh qemu/mkrootfs.sh qemu/rootfs-init.sh qemu/prepare-init.sh \
  qemu/boot.sh qemu/lib.sh initramfs/build.sh tools/mksysroot.ts \
  $(wildcard src/image/fsverity.ts src/ostree/gvariant.ts src/ostree/commit.ts)

$(QEMU_OUT)/disk.env: $(QEMU_DISK_INPUTS) $(QEMU_OUT)/kernel/kver | npm-deps
	bash qemu/mkdisk.sh

# The composefs-native disks (issue 14) are built from the test root tree
# mkdisk.sh makes (qemu/out/rootfs), hence disk.env among the inputs.
QEMU_NATIVE_INPUTS := qemu/mkdisk-native.sh qemu/prepare-init.sh qemu/boot.sh qemu/lib.sh \
  initramfs/build.sh tools/mknative.ts tools/mksysroot.ts $(wildcard src/image/fsverity.ts) $(QEMU_OUT)/disk.env

$(QEMU_OUT)/native.env: $(QEMU_NATIVE_INPUTS) | npm-deps
	bash qemu/mkdisk-native.sh

# The initramfs images embed the public key of the disk's commit (disk.env
# stands for it) and a snapshot of dist/cfsroot taken here, so later
# rebuilds of dist/ do not change images under a running check.
QEMU_INITRD_INPUTS := dist/cfsroot $(wildcard dracut/90cfsroot/*) $(wildcard qemu/dracut/*/*) \
  initramfs/build.sh initramfs/init qemu/mkinitrd.sh qemu/lib.sh $(QEMU_OUT)/disk.env

$(QEMU_OUT)/initrd.stamp: $(QEMU_INITRD_INPUTS)
	cp dist/cfsroot $(QEMU_OUT)/cfsroot
	bash qemu/mkinitrd.sh $(QEMU_OUT)/cfsroot $(QEMU_OUT)/initrd-extra
	@touch $@

qemu-disks: $(QEMU_OUT)/disk.env $(QEMU_OUT)/native.env
qemu-initrds: $(QEMU_OUT)/initrd.stamp

qemu-check: qemu-deps
	$(MAKE) --no-print-directory $(QEMU_OUT)/initrd.stamp $(QEMU_OUT)/native.env
	bash qemu/check.sh $(QEMU_SCENARIOS)

qemu-clean:
	rm -rf $(QEMU_OUT)

# The guest-side benchmark (issue 15): the boot repeated inside a QEMU guest,
# whose kernel has fs-verity, for the verity, signed, copy and unpinned image paths
# (qemu/guest-bench.sh, bench/guest.ts; results in build/bench/guest.json).
# Here, not in bench.mk: its prerequisites use QEMU_OUT, which a rule read
# before this file would see empty ("No rule to make target '/kernel/kver'").
bench-guest: deps dist/cfsroot build/bench/tcmd $(QEMU_OUT)/kernel/kver
	bash qemu/guest-bench.sh
