#!/usr/bin/env bash
# The guest-side benchmark of issue 15: one QEMU boot (the 6.12 guest, the
# only kernel here with fs-verity) whose init (qemu/guest-bench-init.sh) runs
# cfsroot's boot repeatedly on the test disk's deployment, each run in its
# own mount namespace, and prints one CFSBENCH line per run; bench/guest.ts
# turns them into own work per image path (verity, signed, copy, unpinned) and the
# RAM each path leaves held. Needs the test kernel (make qemu-deps) and
# build/bench/tcmd. The deployment is the host bench's (22,000 files, a
# 5.5 MB image) on an ext4 of its own. Figures are TCG's: compare them with
# each other only, never with the host's.
#
# usage: qemu/guest-bench.sh   env: GUEST_BENCH_ROUNDS (default 20: the
#        balanced order repeats every 10 rounds)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

rounds=${GUEST_BENCH_ROUNDS:-20}
[[ -f $OUT/kernel/kver ]] || die "no kernel: run make qemu-deps"
[[ -x $REPO/build/bench/tcmd ]] || die "no build/bench/tcmd: run make build/bench/tcmd"
[[ -x $REPO/dist/cfsroot ]] || die "no dist/cfsroot: run make"

# The host bench's deployment (bench/run.ts: 22,000 files, a 5.5 MB image),
# generated here the same way when the host bench has not run yet.
bench=$REPO/build/bench
if [[ ! -f $bench/sysroot.json ]]; then
  log "generating the bench deployment (22,000 files; a few minutes)"
  rm -rf "$bench/sysroot"; mkdir -p "$bench"
  (cd "$REPO" && npx tsx tools/mksysroot.ts --out "$bench/sysroot" --bulk 22000 --key-out "$bench/binding.key") > "$bench/sysroot.json.tmp"
  mv "$bench/sysroot.json.tmp" "$bench/sysroot.json"
fi
json() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(j[process.argv[2]])' "$bench/sysroot.json" "$1"; }
deploy_dir=$(json deployDir)

dir=$OUT/guest-bench
rm -rf "$dir"; mkdir -p "$dir/etc"
# ext4 with 4 KiB blocks and the verity feature: the guest enables fs-verity
# on the image itself (the boot opens no object, so they need none).
mb=$(( $(du -sm "$bench/sysroot" | cut -f1) * 2 + 64 ))
truncate -s "${mb}M" "$dir/disk.img"
mkfs.ext4 -q -b 4096 -O verity -L cfsbench -d "$bench/sysroot" "$dir/disk.img"
printf 'ROUNDS=%s\nOSTREE_KARG=%s\nIMAGE_DIGEST=%s\nDEPLOY_REL=%s\n' \
  "$rounds" "$(json ostreeKarg)" "$(json imageDigest)" "${deploy_dir#"$bench/sysroot/"}" > "$dir/etc/env"
# The boot form runs only in an initramfs, which /etc/initrd-release marks.
: > "$dir/initrd-release"
# The signed variant's trusted key, where prepare-root.conf's keypath defaults
# to (the deployment's commit is signed with its private half).
mkdir -p "$dir/ostree"
printf '%s\n' "$(json publicKeyBase64)" > "$dir/ostree/initramfs-root-binding.key"
bash "$REPO/initramfs/build.sh" --kver "$(kver)" --kmoddir "$(kmoddir)" --cfsroot "$REPO/dist/cfsroot" \
  --modules "virtio_pci virtio_blk ext4" --binary "$REPO/build/bench/tcmd" --binary fsverity \
  --init "$QEMU_DIR/guest-bench-init.sh" --include "$dir/etc:/etc/cfsbench" \
  --include "$dir/initrd-release:/etc" --include "$dir/ostree:/etc/ostree" --out "$dir/initrd.img" >&2
log "guest bench: $rounds rounds of 5 variants (TCG; several minutes)"
t=$(bash "$QEMU_DIR/boot.sh" "$dir/initrd.img" "$dir/disk.img" "$dir/console.log" 1800 "quiet") ||
  die "guest bench boot failed after ${t:-?}s (see $dir/console.log)"
tr -d '\r' < "$dir/console.log" | grep -a -o 'CFSBENCH .*' > "$dir/lines"
grep -q '^CFSBENCH done$' "$dir/lines" || die "the guest bench did not finish (see $dir/console.log)"
cd "$REPO" && npx tsx bench/guest.ts "$dir/lines"
