#!/usr/bin/env bash
# Run the boot scenarios (SPEC §7, issue 4): one QEMU boot each, pass/fail
# decided from the serial console (the CFSTEST lines printed by the test
# root's init, qemu/rootfs-init.sh, or the emergency marker of the test dracut
# module). Ends with one "PASS|FAIL <name> <seconds>s" line per scenario and
# "N passed, M failed".
#
# usage: qemu/check.sh [SCENARIO...]   (default: all; needs deps, disks, initrds)
# env:   QEMU_BASELINE=0  skip the two boots that measure initramfs images
#                         without cfsroot (reported, never failing)
#        QEMU_TIMEOUT=S   per-boot limit (default 300)
set -uo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/preflight.sh"

all=(plain-root signed-ok digest-ok digest-mismatch bad-signature tampered-object
     legacy-off maybe-no-image minimal-initramfs dracut-hook dracut-hook-bad-signature
     native-ok native-sha256 native-tampered-image native-tampered-object native-insecure
     native-etc-transient preflight-ok preflight-no-verity image-no-verity verity-small-run copy-small-run)
if (($#)); then scenarios=("$@"); else scenarios=("${all[@]}"); fi
limit=${QEMU_TIMEOUT:-300}

[[ -f $OUT/disk.env && -f $OUT/base.img && -f $OUT/initrd-dracut.img && -f $OUT/initrd-dracut-unsigned.img ]] ||
  die "disks/initramfs missing: run make qemu-check (or qemu/mkdisk.sh and qemu/mkinitrd.sh)"
# shellcheck source=/dev/null
. "$OUT/disk.env"

# Kernel arguments every boot gets: the physical root is mounted read-write
# (cfsroot binds the deployment's /etc and the stateroot /var from it),
# no fsck, and a failed initramfs powers off instead of waiting at a shell.
common="root=/dev/vda rw fsck.mode=skip rd.shell=0 rd.emergency=poweroff"
ostree="ostree=$OSTREE_KARG"
# The composefs image's size: the *-small-run scenarios leave /run less free space than this.
image_bytes=$(debugfs -R "stat /$DEPLOY_REL/.ostree.cfs" "$OUT/base.img" 2>/dev/null | sed -n 's/.*Size: \([0-9][0-9]*\).*/\1/p' | head -n1)

# On run()'s $disk: the file at path TARGET becomes the inode now at path
# SOURCE (same size, its own fs-verity, made by the prepare boot), and SOURCE's
# name goes. debugfs's messages land in run()'s $dir/debugfs.err.
swap_in() { # TARGET SOURCE (paths on the disk, no leading slash)
  debugfs -w -f - "$disk" >/dev/null 2>"$dir/debugfs.err" <<EOF
rm /$1
ln /$2 /$1
unlink /$2
EOF
}

# ---- assertions on one boot's console -----------------------------------
lines='' console='' reasons=()
expect() { # REGEX DESCRIPTION: some CFSTEST line matches
  grep -q -E -- "$1" <<< "$lines" || reasons+=("missing: $2")
}
expect_not() {
  grep -q -E -- "$1" <<< "$lines" && reasons+=("unexpected: $2")
  return 0
}
expect_console() { # REGEX DESCRIPTION: anywhere on the console
  grep -a -q -i -E -- "$1" <<< "$console" || reasons+=("missing on console: $2")
}

booted() {
  expect '^CFSTEST start$' 'the test root init ran'
  expect '^CFSTEST done$' 'the test root init finished'
  expect_not '^CFSTEST emergency' 'emergency mode'
}
ostree_common() {
  expect '^CFSTEST exists /run/ostree-booted yes' '/run/ostree-booted'
  expect '^CFSTEST mnt /sysroot fstype=ext4 source=/dev/vda ' '/sysroot = the physical root'
  expect '^CFSTEST exists /sysroot/ostree/repo yes' 'the repo under /sysroot'
  expect '^CFSTEST write /etc ok' '/etc writable'
  expect '^CFSTEST write /var ok' '/var writable'
  expect '^CFSTEST mnt /var fstype=ext4 ' '/var is a mount of the physical root'
  expect "^CFSTEST same /var/\\.cfstest-same /sysroot/ostree/deploy/[^/]+/var/\\.cfstest-same yes" \
    '/var is the stateroot var (persistent)'
  expect "^CFSTEST same /etc/\\.cfstest-same /sysroot/$DEPLOY_REL/etc/\\.cfstest-same yes" \
    "/etc is the deployment's etc"
  expect "^CFSTEST read /usr/share/cfstest/hello.txt ok sha256=$HELLO_SHA256\$" 'hello.txt read with the right content'
  expect '^CFSTEST write /usr fail' '/usr read-only'
}
# The EROFS lower as mountinfo names it in the overlay's options. From Linux
# 6.16 the plan leaves it detached (src/plan/steps.ts detachedLayers) and
# hands the overlay the mount itself, /proc/self/fd/N; before, it is attached
# under /run/.../.private/ and unmounted lazily once the overlay holds it.
lower_form() {
  local v=$(kver) major minor
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%[!0-9]*}
  if (( major > 6 || (major == 6 && minor >= 16) )); then
    expect '^CFSTEST mnt / .*super=[^ ]*lowerdir=/proc/self/fd/[0-9]+::' "the EROFS lower detached, by descriptor (Linux $v)"
  else
    expect '^CFSTEST mnt / .*super=[^ ]*lowerdir=/run/[^ :,]*\.private/[^ :,]*lower\.[A-Za-z0-9]+::' "the EROFS lower attached under /run (Linux $v)"
  fi
}
composefs_root() { # VERITY(yes|no)
  expect '^CFSTEST mnt / fstype=overlay source=composefs opts=ro[, ]' 'root = read-only overlay, source composefs'
  # The objects dir is opened beneath SYSROOT without following symlinks and
  # handed to the kernel as that descriptor (issue 13), so before Linux 6.13
  # mountinfo names it /proc/self/fd/N; that it is the repo's objects is shown
  # by the reads below (every file's data comes through its redirect) and by
  # tampered-object's EIO.
  expect '^CFSTEST mnt / .*super=[^ ]*lowerdir=[^ ]*::(/sysroot/ostree/repo/objects|/proc/self/fd/[0-9]+)' 'data-only lower (the repo objects, by descriptor)'
  [[ $1 == yes ]] && expect '^CFSTEST mnt / .*super=[^ ]*verity=require' 'overlay verity=require'
  lower_form
  expect '^CFSTEST mnt /sysroot [^ ]* [^ ]* opts=ro[, ]' '/sysroot read-only (sysroot.readonly defaults to true)'
}
victim_ok() {
  expect "^CFSTEST read /usr/share/cfstest/victim.txt ok sha256=$VICTIM_SHA256\$" 'victim.txt read with the right content'
}
legacy_root() {
  expect '^CFSTEST mnt / fstype=ext4 source=/dev/vda ' 'root = bind of the deployment on the physical root'
  expect_not '^CFSTEST mnt / fstype=overlay' 'overlay root'
}
expect_console_not() { # REGEX DESCRIPTION: nowhere on the console
  grep -a -q -E -- "$1" <<< "$console" && reasons+=("unexpected on console: $2")
  return 0
}
run_free_below_image() { # the test module filled /run to below the image's size
  local free
  free=$(grep -o -E '^CFSTEST run-free [0-9]+' <<< "$lines" | awk '{print $3}')
  if [[ -z $free ]]; then reasons+=("no CFSTEST run-free line: /run was not filled"); return 0; fi
  ((free < image_bytes)) || reasons+=("/run kept $free bytes free, not less than the image's $image_bytes")
  return 0
}
emergency() { # KEYWORD
  expect_console 'CFSTEST emergency' 'emergency marker (initramfs emergency mode)'
  expect_not '^CFSTEST start' 'the test root booted'
  expect_console "cfsroot: .*$1" "cfsroot's message about $1"
}

# ---- composefs-native scenarios (issue 14, SPEC §6) ---------------------
# Disks from qemu/mkdisk-native.sh (one repository per disk: sha512 and
# sha256), facts in qemu/out/native.env. Each native_* function is called
# from one arm of run()'s three case statements and sets or reads run()'s
# locals (base, initrd, args, disk, dir).
# shellcheck source=/dev/null
[[ -f $OUT/native.env ]] && . "$OUT/native.env"
native_digest='' native_image='' native_victim=''

native_setup() { # NAME
  [[ -n ${NATIVE_SHA512_DIGEST:-} && -f $OUT/native-sha512.img && -f $OUT/native-sha256.img ]] ||
    die "native disks missing: run make qemu-check (or qemu/mkdisk-native.sh)"
  native_digest=$NATIVE_SHA512_DIGEST native_image=$NATIVE_SHA512_IMAGE_FILE native_victim=$NATIVE_SHA512_VICTIM_OBJ
  base=$OUT/native-sha512.img
  # Both karg forms, secure and insecure, across the scenarios.
  case $1 in
    native-ok|native-tampered-image) args="$common composefs=$native_digest" ;;
    native-sha256)
      native_digest=$NATIVE_SHA256_DIGEST native_image=$NATIVE_SHA256_IMAGE_FILE native_victim=$NATIVE_SHA256_VICTIM_OBJ
      base=$OUT/native-sha256.img
      args="$common composefs.digest=v1-sha256-12:$native_digest" ;;
    native-tampered-object) args="$common composefs.digest=v1-sha512-12:$native_digest" ;;
    native-insecure) args="$common composefs=?$native_digest" ;;
    native-etc-transient)
      initrd=$OUT/initrd-dracut-etc-transient.img
      [[ -f $initrd ]] || die "$initrd missing: run make qemu-check (or qemu/mkinitrd.sh)"
      args="$common composefs=$native_digest" ;;
  esac
}

# yes|no: the file on the disk image has fs-verity (ext4's EXT4_VERITY_FL, 0x100000).
native_has_verity() { # DISK PATH
  local flags
  flags=$(DEBUGFS_PAGER=__none__ debugfs -R "stat /$2" "$1" 2>/dev/null | grep -o -m1 'Flags: 0x[0-9a-f]*' | cut -d' ' -f2)
  [[ -n $flags ]] || { echo missing; return; }
  if ((flags & 0x100000)); then echo yes; else echo no; fi
}

native_modify() { # NAME
  case $1 in
    native-tampered-object)
      # victim.txt's object replaced by a same-size file with its own fs-verity.
      swap_in "$native_victim" cfstest-tampered
      ;;
    native-tampered-image)
      # The image replaced by one with a byte changed (valid EROFS, fs-verity
      # enabled by the prepare boot): only its digest tells it apart.
      swap_in "$native_image" cfstest-tampered-image
      ;;
    native-insecure)
      # The same bytes rewritten by debugfs: a new inode, without fs-verity.
      debugfs -R "dump -p /$native_image $dir/image" "$disk" >/dev/null 2>&1
      debugfs -w -f - "$disk" >/dev/null 2>"$dir/debugfs.err" <<EOF
rm /$native_image
write $dir/image /$native_image
EOF
      rm -f "$dir/image"
      [[ $(native_has_verity "$disk" "$native_image") == no ]] || reasons+=("could not drop the image's fs-verity")
      return ;;
  esac
  [[ $(native_has_verity "$disk" "$native_image") == yes ]] || reasons+=("the image on the disk has no fs-verity (prepare boot?)")
}

statfs_of() { grep -o -E "^CFSTEST statfs $1 [0-9]+x[0-9]+" <<< "$lines" | awk '{print $4}'; }

native_booted() { # VERITY(yes|no)
  local d=$native_digest
  booted
  expect "^CFSTEST mnt / fstype=overlay source=composefs:$d opts=ro[, ]" 'root = read-only overlay, source composefs:<digest>'
  expect '^CFSTEST mnt / .*super=[^ ]*lowerdir=[^ ]*::' 'data-only lower (the repository objects)'
  lower_form
  if [[ $1 == yes ]]; then
    expect '^CFSTEST mnt / .*super=[^ ]*verity=require' 'overlay verity=require'
  else
    expect_not '^CFSTEST mnt / .*verity=require' 'verity=require with the insecure karg'
  fi
  expect '^CFSTEST mnt /sysroot fstype=ext4 source=/dev/vda opts=ro[, ]' '/sysroot = the physical root, read-only'
  expect '^CFSTEST exists /sysroot/composefs/meta.json yes' 'the repository under /sysroot'
  expect '^CFSTEST exists /run/ostree-booted no' 'no /run/ostree-booted (not an ostree boot)'
  expect "^CFSTEST state /sysroot/state/deploy/$d\$" "the image's state dir"
  expect "^CFSTEST read /usr/share/cfstest/hello.txt ok sha256=$HELLO_SHA256\$" 'hello.txt read with the right content'
  expect "^CFSTEST read /etc/hostname ok sha256=$NATIVE_HOSTNAME_SHA256\$" "/etc/hostname from the image's /etc"
  expect '^CFSTEST write /usr fail' '/usr read-only'
  expect '^CFSTEST mnt /etc fstype=overlay ' '/etc an overlay'
  expect '^CFSTEST write /etc ok' '/etc writable'
  expect '^CFSTEST mnt /var fstype=ext4 source=/dev/vda opts=rw[, ]' '/var a read-write mount of the physical root'
  expect '^CFSTEST write /var ok' '/var writable'
  expect "^CFSTEST same /var/\\.cfstest-same /sysroot/state/deploy/$d/var/\\.cfstest-same yes" \
    "/var is the state dir's var (persistent)"
}

# An overlay's statfs is its upper filesystem's: /etc's equals /sysroot's
# exactly when the upper is on the physical root.
native_etc() { # state|transient: where /etc's overlay upper is
  local d=$native_digest etc sys
  etc=$(statfs_of /etc) sys=$(statfs_of /sysroot)
  if [[ $1 == state ]]; then
    expect "^CFSTEST same /etc/\\.cfstest-same /sysroot/state/deploy/$d/etc/upper/\\.cfstest-same yes" \
      "/etc's upper is the state dir's etc/upper"
  else
    expect "^CFSTEST same /etc/\\.cfstest-same /sysroot/state/deploy/$d/etc/upper/\\.cfstest-same no" \
      "/etc's writes not in the state dir"
  fi
  if [[ -z $etc || -z $sys ]]; then
    reasons+=("missing: statfs of /etc and /sysroot")
  elif [[ $1 == state && $etc != "$sys" ]]; then
    reasons+=("/etc's upper is not on the physical root (statfs /etc $etc, /sysroot $sys)")
  elif [[ $1 == transient && $etc == "$sys" ]]; then
    reasons+=("/etc's upper is on the physical root (statfs /etc = /sysroot = $etc), expected a tmpfs")
  fi
}

native_assert() { # NAME
  case $1 in
    native-ok|native-sha256)
      native_booted yes; native_etc state; victim_ok ;;
    native-insecure)
      native_booted no; native_etc state; victim_ok ;;
    native-etc-transient)
      native_booted yes; native_etc transient; victim_ok ;;
    native-tampered-object)
      native_booted yes; native_etc state
      expect '^CFSTEST read /usr/share/cfstest/victim.txt fail .*(I/O error|Input/output error)' \
        'victim.txt unreadable (EIO) through the root' ;;
    native-tampered-image) emergency "images/$native_digest.*\\[EDIGEST\\]" ;;
    *) reasons+=("unknown scenario") ;;
  esac
}

# ---- one scenario --------------------------------------------------------
# Sets: initrd, disk, args, and calls the assertions after the boot.
declare -A result=() seconds=() initsecs=()
run() {
  local name=$1 dir=$OUT/scenarios/$1
  rm -rf "$dir"; mkdir -p "$dir"
  local disk=$dir/disk.img initrd=$OUT/initrd-dracut.img args="$common $ostree" base=$OUT/base.img
  reasons=()
  case $name in
    plain-root) base=$OUT/plain.img; args=$common ;;
    minimal-initramfs) initrd=$OUT/initrd-mini.img ;;
    dracut-hook|dracut-hook-bad-signature) initrd=$OUT/initrd-dracut-hook.img ;;
    legacy-off) initrd=$OUT/initrd-dracut-unsigned.img; args="$args ot-composefs=off" ;;
    maybe-no-image) initrd=$OUT/initrd-dracut-unsigned.img; args="$args ot-composefs=maybe" ;;
    digest-ok|image-no-verity) args="$args ot-composefs=digest=$IMAGE_DIGEST" ;;
    # /run (the test module shrinks it, qemu/dracut/99cfstest) keeps a page less than the image free.
    verity-small-run|copy-small-run) args="$args ot-composefs=digest=$IMAGE_DIGEST cfstest.run-free=$((image_bytes - 4096))" ;;
    digest-mismatch)
      # The real digest with its last hex digit changed.
      local last=${IMAGE_DIGEST: -1} other=0
      [[ $last == 0 ]] && other=1
      args="$args ot-composefs=digest=${IMAGE_DIGEST:0:63}$other" ;;
    native-*) native_setup "$name" ;;
  esac
  cp --reflink=auto --sparse=always "$base" "$disk"
  case $name in
    tampered-object)
      # Replace the victim's backing object by /cfstest-tampered (same size,
      # other bytes, fs-verity enabled by the prepare boot): the kernel must
      # refuse it because its verity digest is not the one in the image.
      swap_in "$VICTIM_OBJ" cfstest-tampered
      ;;
    maybe-no-image)
      debugfs -w -R "rm /$DEPLOY_REL/.ostree.cfs" "$disk" >/dev/null 2>"$dir/debugfs.err" ;;
    image-no-verity|copy-small-run)
      # The same image bytes, written anew by debugfs: the file has no fs-verity
      # now, so the boot must take the copy path (issue 15) and still boot.
      local cfs=$DEPLOY_REL/.ostree.cfs
      debugfs -R "dump /$cfs $dir/image.cfs" "$disk" >/dev/null 2>&1
      debugfs -w -f - "$disk" >/dev/null 2>"$dir/debugfs.err" <<EOF
rm /$cfs
write $dir/image.cfs /$cfs
EOF
      [[ $(native_has_verity "$disk" "$cfs") == no ]] || reasons+=("the rewritten image is missing or still has fs-verity")
      ;;
    preflight-ok) preflight_prepare "$disk" "$initrd" "$args" "$dir" ;;
    preflight-no-verity)
      preflight_prepare "$disk" "$initrd" "$args" "$dir"
      preflight_drop_verity "$disk" "$VICTIM_OBJ" "$dir" ;;
    bad-signature|dracut-hook-bad-signature)
      local meta=ostree/repo/objects/${COMMIT:0:2}/${COMMIT:2}.commitmeta
      debugfs -R "dump /$meta $dir/commitmeta" "$disk" >/dev/null 2>&1
      /usr/bin/python3 "$QEMU_DIR/corrupt-signature.py" "$dir/commitmeta" >/dev/null || reasons+=("could not corrupt the signature")
      debugfs -w -f - "$disk" >/dev/null 2>"$dir/debugfs.err" <<EOF
rm /$meta
write $dir/commitmeta /$meta
EOF
      ;;
    native-*) native_modify "$name" ;;
  esac

  log "$name: booting ($(basename "$initrd"), $args)"
  local t rc=0
  t=$(bash "$QEMU_DIR/boot.sh" "$initrd" "$disk" "$dir/console.log" "$limit" "$args") || rc=$?
  ((rc == 124 || rc == 137)) && reasons+=("timed out after ${limit}s")
  console=$(tr -d '\r' < "$dir/console.log")
  lines=$(grep -a -o 'CFSTEST .*' <<< "$console")

  case $name in
    plain-root)
      booted
      expect '^CFSTEST mnt / fstype=ext4 source=/dev/vda ' 'root = the plain ext4 root'
      expect '^CFSTEST exists /run/ostree-booted no' 'no /run/ostree-booted (cfsroot.service skipped)'
      expect '^CFSTEST nomnt /sysroot' 'no /sysroot mount'
      victim_ok ;;
    signed-ok|minimal-initramfs|dracut-hook)
      booted; ostree_common; composefs_root yes; victim_ok
      expect_console 'cfsroot: .*image: fs-verity \(kernel-measured\)' 'the fs-verity path (the kernel measured the image)'
      expect_console 'cfsroot: .*signed commit' "cfsroot's note that the signed commit verified"
      if [[ $name == dracut-hook ]]; then
        expect_console 'cfsroot: preparing /sysroot' 'the pre-pivot hook ran cfsroot'
        expect_console_not 'systemd\[1\].*(initrd|Initrd)' 'systemd in the initramfs'
      fi ;;
    digest-ok)
      booted; ostree_common; composefs_root yes; victim_ok
      expect_console 'cfsroot: .*image: fs-verity \(kernel-measured\)' 'the fs-verity path (the kernel measured the image)' ;;
    image-no-verity)
      booted; ostree_common; composefs_root yes; victim_ok
      expect_console 'cfsroot: .*image: private copy, user-space digest' 'the copy path (the image has no fs-verity)'
      expect_console_not 'image: fs-verity \(kernel-measured\)' 'the fs-verity path' ;;
    verity-small-run)
      # The fs-verity path copies nothing, so a /run too small for the image does not matter.
      booted; ostree_common; composefs_root yes; victim_ok; run_free_below_image
      expect_console 'cfsroot: .*image: fs-verity \(kernel-measured\)' 'the fs-verity path (the kernel measured the image)' ;;
    copy-small-run)
      # Without fs-verity the image must be copied, and the copy would not fit: refused before any mount.
      emergency 'ELIMIT'; run_free_below_image
      expect_console "cfsroot: composefs image .* is $image_bytes bytes but /run has only [0-9]+ bytes free" 'the copy-space refusal naming the sizes' ;;
    tampered-object)
      booted; ostree_common; composefs_root yes
      expect '^CFSTEST read /usr/share/cfstest/victim.txt fail .*(I/O error|Input/output error)' \
        'victim.txt unreadable (EIO) through the root' ;;
    legacy-off|maybe-no-image)
      booted; ostree_common; legacy_root; victim_ok ;;
    preflight-ok)
      # Agreement: preflight passes every check and this very boot succeeded.
      booted; ostree_common; composefs_root yes; victim_ok
      preflight_same_entry "$args"; preflight_ok_except
      expect_not '^CFSTEST preflight FAIL' 'a failed preflight check'
      expect '^CFSTEST preflight-exit 0$' 'preflight exit 0' ;;
    preflight-no-verity)
      # Agreement: preflight fails verity naming victim.txt's object, and this
      # boot of that entry cannot read the file (EIO, verity=require).
      booted; ostree_common; composefs_root yes
      preflight_same_entry "$args"; preflight_ok_except verity
      expect "^CFSTEST preflight FAIL verity: 1 of [0-9]+ files without fs-verity .*first: /sysroot/$VICTIM_OBJ" \
        "preflight's verity check names the object without fs-verity"
      expect '^CFSTEST preflight-exit [1-9]' 'preflight exit non-zero'
      expect '^CFSTEST read /usr/share/cfstest/victim.txt fail .*(I/O error|Input/output error)' \
        'victim.txt unreadable (EIO) through the root' ;;
    digest-mismatch) emergency 'digest.*EDIGEST' ;;
    bad-signature) emergency 'signature.*ESIGNATURE' ;;
    dracut-hook-bad-signature)
      # dracut's shell init has no emergency service: die() stops the boot
      # (rd.shell=0: init exits, the kernel panics, panic=-1 ends QEMU).
      expect_not '^CFSTEST start' 'the test root booted'
      expect_console 'cfsroot: .*signature.*ESIGNATURE' "cfsroot's message about the signature"
      expect_console 'FATAL: cfsroot refused to prepare /sysroot' 'the hook stopped the boot' ;;
    native-*) native_assert "$name" ;;
    *) reasons+=("unknown scenario") ;;
  esac

  seconds[$name]=$t
  initsecs[$name]=$(grep -o -E '^CFSTEST uptime [0-9.]+' <<< "$lines" | awk '{print $3}')
  if ((${#reasons[@]})); then
    result[$name]=FAIL
    printf '%s\n' "${reasons[@]}" > "$dir/reasons"
    log "$name: FAIL in ${t}s"
    for r in "${reasons[@]}"; do log "  $name: $r"; done
    log "  console: $dir/console.log"
  else
    result[$name]=PASS
    log "$name: PASS in ${t}s"
  fi
}

for s in "${scenarios[@]}"; do run "$s"; done

# ---- measurements without cfsroot (baseline for the README) -------------
baseline=()
if [[ ${QEMU_BASELINE:-1} != 0 ]]; then
  for v in dracut-plain mini-plain; do
    dir=$OUT/scenarios/baseline-$v; rm -rf "$dir"; mkdir -p "$dir"
    cp --sparse=always "$OUT/plain.img" "$dir/disk.img"
    t=$(bash "$QEMU_DIR/boot.sh" "$OUT/initrd-$v.img" "$dir/disk.img" "$dir/console.log" "$limit" "$common") || true
    u=$(tr -d '\r' < "$dir/console.log" | grep -a -o -E 'CFSTEST uptime [0-9.]+' | awk '{print $3}')
    baseline+=("boot initrd-$v.img plain root: ${t}s total, init after ${u:-?}s")
  done
fi

# ---- report ---------------------------------------------------------------
echo
echo "initramfs sizes (compressed / as loaded by the kernel):"
for f in initrd-dracut initrd-dracut-plain initrd-dracut-hook initrd-mini initrd-mini-plain; do
  [[ -f $OUT/$f.img ]] || continue
  printf '  %-24s %6.1f MiB\n' "$f.img" "$(awk -v b="$(stat -c %s "$OUT/$f.img")" 'BEGIN { print b / 1048576 }')"
done
echo "boot times (qemu -accel tcg, wall seconds to power-off; guest uptime when the root's init started):"
for s in "${scenarios[@]}"; do
  printf '  %-18s %6ss total, init after %ss\n' "$s" "${seconds[$s]:-?}" "${initsecs[$s]:-—}"
done
for b in "${baseline[@]}"; do echo "  $b"; done
echo
pass=0 failn=0
for s in "${scenarios[@]}"; do
  echo "${result[$s]:-FAIL} $s ${seconds[$s]:-0}s"
  if [[ ${result[$s]:-FAIL} == PASS ]]; then pass=$((pass + 1)); else failn=$((failn + 1)); fi
done
echo "$pass passed, $failn failed"
((failn == 0))
