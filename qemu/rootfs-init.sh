#!/bin/sh
# /sbin/init of the boot-test root (qemu/mkrootfs.sh installs it as
# /usr/lib/cfstest/init). It runs as PID 1 of the booted system, prints
# machine-readable facts to the console, one per line, each starting with
# "CFSTEST ", then powers off. qemu/check.sh asserts on these lines.
#
#   CFSTEST start
#   CFSTEST uptime <seconds since the kernel started, when init began>
#   CFSTEST mnt <mountpoint> fstype=<t> source=<s> opts=<mount opts> super=<fs opts>
#   CFSTEST nomnt <mountpoint>                (not a mount point)
#   CFSTEST read <path> ok sha256=<hex> | CFSTEST read <path> fail <error text>
#   CFSTEST write <dir> ok|fail               (create+remove a file in dir)
#   CFSTEST exists <path> yes|no
#   CFSTEST same <path-a> <path-b> yes|no     (a file written via a is seen via b)
#   CFSTEST state <dir>                       (composefs-native: the image's state dir)
#   CFSTEST statfs <path> <blocks>x<bsize>    (an overlay reports its upper's size)
#   CFSTEST preflight <line>                  (cfsroot preflight's output, when present)
#   CFSTEST preflight-usage <s> s <KiB> KiB   (its wall time and peak RSS)
#   CFSTEST preflight-exit <status>
#   CFSTEST done
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

out() { echo "CFSTEST $*"; }

# The last line in mountinfo for a mount point is the one on top (what a path
# lookup sees), so keep overwriting. Fields after " - " are fstype, source, super options.
mnt() {
  awk -v mp="$1" '
    { for (i = 7; i <= NF; i++) if ($i == "-") break
      if ($5 == mp) { line = "fstype=" $(i+1) " source=" $(i+2) " opts=" $6 " super=" $(i+3) } }
    END { if (line == "") { print "CFSTEST nomnt " mp } else { print "CFSTEST mnt " mp " " line } }
  ' /proc/self/mountinfo
}

readf() {
  if err=$(cat "$1" 2>&1 >/dev/null); then
    out "read $1 ok sha256=$(sha256sum "$1" | cut -d' ' -f1)"
  else
    out "read $1 fail $(echo "$err" | tr '\n' ' ')"
  fi
}

writef() {
  f=$1/.cfstest-write.$$
  if echo probe > "$f" 2>/dev/null && rm -f "$f"; then out "write $1 ok"; else out "write $1 fail"; fi
}

exists() { if [ -e "$1" ]; then out "exists $1 yes"; else out "exists $1 no"; fi; }

# Write through path a, look for the same bytes through path b: proves e.g.
# that /var is the stateroot's var on the physical root.
same() {
  token="cfstest-$$-$(cat /proc/sys/kernel/random/uuid 2>/dev/null)"
  if echo "$token" > "$1" 2>/dev/null && [ "$(cat "$2" 2>/dev/null)" = "$token" ]; then
    out "same $1 $2 yes"
  else
    out "same $1 $2 no"
  fi
  rm -f "$1" 2>/dev/null
}

out start
out uptime "$(cut -d' ' -f1 /proc/uptime)"
out cmdline $(cat /proc/cmdline)
for m in / /etc /usr /var /sysroot /run; do mnt $m; done
exists /run/ostree-booted
exists /sysroot/ostree/repo
readf /usr/share/cfstest/hello.txt
readf /usr/share/cfstest/victim.txt
writef /etc
writef /var
writef /usr
# The ostree= deployment, as cfsroot saw it: found through the /sysroot bind.
dep=''
for d in /sysroot/ostree/deploy/*/deploy/*.0; do [ -d "$d" ] && dep=$d; done
if [ -n "$dep" ]; then
  osdir=${dep%/deploy/*}
  out deployment "$dep"
  same /var/.cfstest-same "$osdir/var/.cfstest-same"
  same /etc/.cfstest-same "$dep/etc/.cfstest-same"
fi
# composefs-native (SPEC §6): the booted image's state dir, found through the
# /sysroot mount. An overlay's statfs is its upper filesystem's, so /etc's
# size tells whether its upper is on the physical root or elsewhere (tmpfs).
st=''
for d in /sysroot/state/deploy/*; do [ -d "$d" ] && st=$d; done
if [ -n "$st" ]; then
  out state "$st"
  exists /sysroot/composefs/meta.json
  readf /etc/hostname
  for p in /etc /sysroot; do out statfs $p "$(stat -f -c '%bx%S' $p)"; done
  same /var/.cfstest-same "$st/var/.cfstest-same"
  same /etc/.cfstest-same "$st/etc/upper/.cfstest-same"
fi
# cfsroot preflight against this system's own next boot entry, when a
# preflight scenario (qemu/preflight.sh) put the binary, and the C library it
# needs (the test root has none), on the physical root. busybox time gives
# its wall time and peak RSS; busybox 1.35 takes ru_maxrss (KiB) for pages
# and prints it 4 times too big (checked against GNU time), hence the / 4.
pf=/sysroot/cfstest-preflight
if [ -x "$pf/cfsroot" ]; then
  { busybox time -f 'preflight-usage %e %M' \
      "$pf/lib/ld-linux-x86-64.so.2" --library-path "$pf/lib" "$pf/cfsroot" preflight 2>&1
    echo "preflight-exit $?"; } |
    awk '/^Command exited with/ { next }
         /^preflight-exit / { print "CFSTEST " $0; next }
         /^preflight-usage / { printf "CFSTEST preflight-usage %s s %d KiB\n", $2, $3 / 4; next }
         { print "CFSTEST preflight " $0 }'
fi
out done
sync
poweroff -f
