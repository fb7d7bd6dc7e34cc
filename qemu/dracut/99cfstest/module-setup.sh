#!/bin/bash
# Test-only dracut module (never installed by `make install`): makes a failed
# boot end fast and recognisably. dracut's emergency service runs the
# "shutdown-emergency" hooks when rd.shell=0, then honours rd.emergency=poweroff;
# this hook prints the marker qemu/check.sh looks for. With cfstest.run-free=
# on the kernel command line, /run is shrunk before cfsroot runs and given back
# after it (cfstest-run-fill.sh, cfstest-run-unfill.sh).

check() { return 255; }
depends() { echo dracut-systemd; return 0; }
install() {
    inst_hook shutdown-emergency 10 "$moddir/cfstest-emergency.sh"
    inst_multiple sed stat mount cat rm
    inst_simple "$moddir/cfstest-run-fill.sh" /usr/lib/cfstest/run-fill.sh
    inst_simple "$moddir/cfstest-run-unfill.sh" /usr/lib/cfstest/run-unfill.sh
    inst_simple "$moddir/cfstest-run-fill.service" "$systemdsystemunitdir/cfstest-run-fill.service"
    inst_simple "$moddir/cfstest-run-unfill.service" "$systemdsystemunitdir/cfstest-run-unfill.service"
    $SYSTEMCTL -q --root "$initdir" enable cfstest-run-fill.service cfstest-run-unfill.service
}
