#!/bin/bash
# Test-only dracut module (never installed by `make install`): makes a failed
# boot end fast and recognisably. dracut's emergency service runs the
# "shutdown-emergency" hooks when rd.shell=0, then honours rd.emergency=poweroff;
# this hook prints the marker qemu/check.sh looks for.

check() { return 255; }
depends() { echo dracut-systemd; return 0; }
install() {
    inst_hook shutdown-emergency 10 "$moddir/cfstest-emergency.sh"
}
