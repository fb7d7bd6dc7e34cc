#!/bin/sh
# /init of the one-time "prepare" boot (qemu/mkdisk.sh, qemu/mkdisk-native.sh):
# the host kernel has no fs-verity, so the guest enables it on the test disk's
# repo objects, the composefs images and the /cfstest-tampered* replacement
# files, then powers off. Prints "CFSPREP ..." lines. On a composefs-native
# disk (SYSROOT/composefs/meta.json) it uses the repository's algorithm and
# then checks the result: `fsverity measure` of every image and object, and
# one read through a verity=require overlay of the image.
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
while read -r ko; do insmod "$ko" 2>/dev/null || true; done < /etc/initramfs/modules
n=0
while [ ! -b /dev/vda ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
mkdir -p /mnt
if ! mount -t ext4 -o rw /dev/vda /mnt; then
  echo "CFSPREP fail mount"; poweroff -f
fi
ok=0 bad=0
alg=sha256
native=/mnt/composefs
if [ -f $native/meta.json ]; then
  alg=$(sed -n 's/.*"fsverity-\(sha[0-9]*\)-12".*/\1/p' $native/meta.json | head -n1)
fi
for f in $(find /mnt/ostree/repo/objects -type f -name '*.file' 2>/dev/null) \
         $(find /mnt/ostree/deploy -type f -name .ostree.cfs 2>/dev/null) \
         $(find $native/objects $native/images -type f 2>/dev/null) \
         /mnt/cfstest-tampered /mnt/cfstest-tampered-image; do
  [ -f "$f" ] || continue
  if fsverity enable --hash-alg="$alg" "$f" 2>/tmp/err; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "CFSPREP fail $f $(cat /tmp/err)"; fi
done
echo "CFSPREP enabled $ok failed $bad"
if [ -f $native/meta.json ]; then
  # "CFSPREP measure <alg>:<hex> <path>": mkdisk-native.sh checks each is its name.
  for f in $native/images/* $(cd $native && find objects -type f); do
    case $f in /*) p=$f ;; *) p=$native/$f ;; esac
    echo "CFSPREP measure $(fsverity measure "$p" 2>&1 | cut -d' ' -f1) ${p#$native/}"
  done
  mkdir -p /cfs-image /cfs-root
  for img in $native/images/*; do
    if mount -t erofs -o ro "$img" /cfs-image &&
       mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=on,verity=require,lowerdir=/cfs-image::$native/objects" /cfs-root; then
      for r in usr/share/cfstest/hello.txt usr/share/cfstest/victim.txt; do
        echo "CFSPREP overlay $r $(sha256sum /cfs-root/$r 2>&1 | cut -d' ' -f1)"
      done
      umount /cfs-root
    else
      echo "CFSPREP overlay mount failed"
    fi
    umount /cfs-image 2>/dev/null
  done
fi
umount /mnt && echo "CFSPREP done"
sync
poweroff -f
