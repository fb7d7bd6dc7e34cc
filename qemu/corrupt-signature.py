#!/usr/bin/python3
"""Flip one bit inside the first Ed25519 signature of an OSTree .commitmeta
(a{sv}, key ostree.sign.ed25519, type aay), in place. The GVariant framing
stays intact, so cfsroot must reject the signature itself, not the format.
Uses python3-gi's GLib (Debian's GVariant implementation) to find the bytes.

usage: corrupt-signature.py COMMITMETA
"""
import sys
from gi.repository import GLib

path = sys.argv[1]
data = bytearray(open(path, 'rb').read())
meta = GLib.Variant.new_from_bytes(GLib.VariantType.new('a{sv}'), GLib.Bytes.new(bytes(data)), False)
sigs = meta.lookup_value('ostree.sign.ed25519', GLib.VariantType.new('aay'))
if sigs is None or sigs.n_children() == 0:
    sys.exit(f'{path}: no ostree.sign.ed25519 signatures')
sig = bytes(sigs.get_child_value(0).get_data_as_bytes().get_data())
if len(sig) != 64:
    sys.exit(f'{path}: first signature is {len(sig)} bytes, expected 64')
at = bytes(data).find(sig)
if at < 0:
    sys.exit(f'{path}: signature bytes not found in the file')
data[at + 17] ^= 0x01
after = GLib.Variant.new_from_bytes(GLib.VariantType.new('a{sv}'), GLib.Bytes.new(bytes(data)), False)
if not after.is_normal_form():
    sys.exit(f'{path}: corrupting the signature broke the GVariant framing')
open(path, 'wb').write(data)
print(f'{path}: flipped bit 0 of signature byte 17 (file offset {at + 17})')
