#!/bin/sh
# /init of the one-time "prepare" boot (qemu/mkdisk.sh): the host kernel has
# no fs-verity, so the guest enables it on the test disk's repo objects, the
# composefs images and /cfstest-tampered (the replacement object of the
# tampered-object scenario), then powers off. Prints "CFSPREP ..." lines.
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
for f in $(find /mnt/ostree/repo/objects /mnt/composefs -type f -name '*.file' 2>/dev/null) \
         $(find /mnt/ostree/deploy /mnt/composefs/images -type f \( -name .ostree.cfs -o -path '*/images/*' \) 2>/dev/null) \
         /mnt/cfstest-tampered; do
  [ -f "$f" ] || continue
  if fsverity enable "$f" 2>/tmp/err; then ok=$((ok + 1)); else bad=$((bad + 1)); echo "CFSPREP fail $f $(cat /tmp/err)"; fi
done
echo "CFSPREP enabled $ok failed $bad"
umount /mnt && echo "CFSPREP done"
sync
poweroff -f
