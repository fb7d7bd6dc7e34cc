#!/bin/sh
# dracut pre-pivot hook for initramfs images built without systemd: the same
# job as cfsroot.service. $NEWROOT holds the mounted physical root.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

# The unit's triggers: getarg composefs matches composefs and composefs=, not composefs.digest=.
if getarg ostree >/dev/null || getarg composefs >/dev/null || getarg composefs.digest >/dev/null; then
    info "cfsroot: preparing $NEWROOT"
    if ! /usr/bin/cfsroot "$NEWROOT"; then
        die "cfsroot refused to prepare $NEWROOT (its message is above)"
    fi
fi
