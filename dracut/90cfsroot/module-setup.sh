#!/bin/bash
# dracut module "cfsroot" (SPEC §7): puts cfsroot, its unit (or a pre-pivot
# hook when the initramfs has no systemd), prepare-root.conf, the root-binding
# public key and the kernel modules composefs needs into the initramfs.
#
# The binary is taken from $CFSROOT_BINARY when set (tests point it at
# dist/cfsroot), else from dracut's search path DRACUT_PATH (default
# /sbin /bin /usr/sbin /usr/bin; dracut replaces $PATH with it, so
# /usr/local/bin is not searched): make install PREFIX=/usr puts it there.

# Where the binary comes from; empty when there is none.
cfsroot_binary() {
    if [[ -n ${CFSROOT_BINARY:-} ]]; then
        [[ -x $CFSROOT_BINARY ]] && echo "$CFSROOT_BINARY"
        return 0
    fi
    find_binary cfsroot 2>/dev/null || true
}

# called by dracut
check() {
    [[ -n "$(cfsroot_binary)" ]] || {
        derror "cfsroot: no cfsroot binary in DRACUT_PATH (make install PREFIX=/usr) and CFSROOT_BINARY is not set"
        return 1
    }
    # A host-only image of a booted OSTree system needs it; anyone else asks
    # for it with --add cfsroot.
    [[ $hostonly ]] && [[ -f /run/ostree-booted ]] && return 0
    return 255
}

# called by dracut
depends() {
    return 0
}

# called by dracut
installkernel() {
    # erofs holds the composefs image, overlay stacks it on the repo objects,
    # loop backs erofs on kernels without file-backed erofs (< 6.12).
    # fs-verity itself is built into the kernel, not a module.
    hostonly='' instmods erofs overlay loop
}

# The keypath prepare-root.conf names (its [composefs] section), if any.
cfsroot_conf_keypath() {
    awk -F= '
        /^[ \t]*\[/ { sect = $0; gsub(/[][ \t]/, "", sect); next }
        sect == "composefs" {
            key = $1; gsub(/[ \t]/, "", key)
            if (key == "keypath") { v = substr($0, index($0, "=") + 1); gsub(/^[ \t]+|[ \t]+$/, "", v); print v }
        }' "$1" | tail -n1
}

# called by dracut
install() {
    local bin conf used_conf='' keypath
    bin=$(cfsroot_binary)
    # inst_binary resolves and installs the shared libraries it links to.
    inst_binary "$bin" /usr/bin/cfsroot || dfatal "cfsroot: could not install $bin"
    # dracut strips every executable in the image (strip -g) unless told not
    # to. binutils strip re-lays out the ELF file and moves the note segment
    # that holds the Node single-executable blob: the stripped cfsroot then
    # dies with SIGSEGV at start (seen under dracut 059 + binutils 2.40).
    # install() runs in dracut's own shell, so this turns the step off for
    # this image; Debian's binaries are shipped stripped already.
    if [[ ${do_strip:-} == yes ]]; then
        dinfo "cfsroot: not stripping the initramfs (strip breaks the cfsroot single executable)"
        do_strip=no
    fi

    if dracut_module_included "systemd"; then
        inst_simple "$moddir/cfsroot.service" "$systemdsystemunitdir/cfsroot.service"
        $SYSTEMCTL -q --root "$initdir" enable cfsroot.service
    else
        inst_hook pre-pivot 50 "$moddir/cfsroot-hook.sh"
    fi

    # The /etc file, when present, replaces the /usr/lib one (SPEC §1);
    # install both so that the initramfs sees the same choice.
    for conf in /usr/lib/ostree/prepare-root.conf /etc/ostree/prepare-root.conf; do
        if [[ -f "${dracutsysrootdir}$conf" ]]; then
            inst_simple "${dracutsysrootdir}$conf" "$conf"
            used_conf=$conf
        fi
    done
    keypath=/etc/ostree/initramfs-root-binding.key
    if [[ -n $used_conf ]]; then
        conf=$(cfsroot_conf_keypath "${dracutsysrootdir}$used_conf")
        [[ -n $conf ]] && keypath=$conf
    fi
    if [[ -f "${dracutsysrootdir}$keypath" ]]; then
        inst_simple "${dracutsysrootdir}$keypath" "$keypath"
    fi

    # The composefs-native mode's config (SPEC §6), read from the initramfs.
    conf=/usr/lib/composefs/setup-root-conf.toml
    if [[ -f "${dracutsysrootdir}$conf" ]]; then
        inst_simple "${dracutsysrootdir}$conf" "$conf"
    fi
}
