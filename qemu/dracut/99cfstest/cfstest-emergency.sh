#!/bin/sh
# Boot-test marker: the initramfs reached emergency mode (see module-setup.sh).
echo "CFSTEST emergency" > /dev/console
systemctl --no-pager --failed > /dev/console 2>&1 || true
