#!/usr/bin/python3
"""Generate GVariant test vectors with GLib (python3-gi), the reference implementation.

Run:  /usr/bin/python3 test/vectors/make-gvariant-vectors.py
Writes test/vectors/gvariant/<name>.bin (the serialised value, normal form, no
header) and test/vectors/gvariant/index.json listing, per vector, its type,
a GLib text rendering and the value in a canonical JSON form that
test/gvariant.test.ts compares against what src/gvariant.ts decodes:

  b -> true/false; y n q i u h d -> number; x t -> {"$big": "decimal"};
  s o g -> string; ay -> {"$bytes": hex} (over 1024 bytes: {"$sha256": hex, "len": n});
  a{KV} -> {"$map": [[k, v], ...]}; other arrays, tuples, dict entries -> list;
  v -> {"$variant": type, "value": ...}; maybe -> null or the value.
"""
import hashlib
import json
import os
import sys

from gi.repository import GLib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'gvariant')
BIG_BYTES = 1024


def canon(v):
    t = v.get_type_string()
    c = t[0]
    if c == 'b':
        return bool(v.get_boolean())
    if c == 'h':
        return v.get_handle()
    if c in 'ynqiu':
        return v.unpack()
    if c in 'xt':
        return {'$big': str(v.unpack())}
    if c == 'd':
        return v.get_double()
    if c in 'sog':
        return v.get_string()
    if c == 'v':
        inner = v.get_variant()
        return {'$variant': inner.get_type_string(), 'value': canon(inner)}
    if t == 'ay':
        data = bytes(v.get_data_as_bytes().get_data())
        if len(data) > BIG_BYTES:
            return {'$sha256': hashlib.sha256(data).hexdigest(), 'len': len(data)}
        return {'$bytes': data.hex()}
    children = [v.get_child_value(i) for i in range(v.n_children())] if c in 'a({' else []
    if c == 'a' and t[1] == '{':
        return {'$map': [[canon(e.get_child_value(0)), canon(e.get_child_value(1))] for e in children]}
    if c in 'a({':
        return [canon(ch) for ch in children]
    if c == 'm':
        m = v.get_maybe()
        return None if m is None else canon(m)
    raise ValueError('unhandled type ' + t)


def V(t, value):
    return GLib.Variant(t, value)


def pattern(n, seed=0):
    return bytes((i * 31 + seed) & 0xff for i in range(n))


def be_timestamp(ts):
    # ostree stores GUINT64_TO_BE(timestamp) in the 't'; GVariant then writes
    # that integer little-endian, so the file holds the timestamp big-endian.
    return int.from_bytes(ts.to_bytes(8, 'big'), 'little')


vectors = []


def add(name, t, value, **extra):
    v = GLib.Variant(t, value)
    assert v.is_normal_form(), name
    data = bytes(v.get_data_as_bytes().get_data())
    with open(os.path.join(OUT, name + '.bin'), 'wb') as f:
        f.write(data)
    entry = {'name': name, 'type': t, 'size': len(data), 'text': v.print_(True)[:300], 'value': canon(v)}
    entry.update(extra)
    vectors.append(entry)


# Basic types.
add('b-true', 'b', True)
add('b-false', 'b', False)
add('y', 'y', 255)
add('n', 'n', -2)
add('q', 'q', 65535)
add('i', 'i', -123456)
add('u', 'u', 4294967295)
add('h', 'h', 7)
add('x-min', 'x', -9223372036854775808)
add('t-max', 't', 18446744073709551615)
add('d', 'd', -1234.5)
add('s-utf8', 's', 'h\u00e9llo \u2713 \U0001f600')
add('s-empty', 's', '')
add('o', 'o', '/org/ostree/Sysroot_1')
add('o-root', 'o', '/')
add('g', 'g', 'a{sv}(tt)ayv')

# Variants, nested.
add('v-nested', 'v', V('v', V('(is)', (-1, 'deep'))))
add('v-in-array', 'av', [V('s', 'x'), V('t', 1), V('ay', b'\x00\x01'), V('()', ())])

# Tuples: alignment, padding, framing offsets.
add('tt', '(tt)', (66306, 123456789012))
add('yt', '(yt)', (1, 2))
add('ty-fixed-padded', '(ty)', (3, 4))
add('ys', '(ys)', (5, 'five'))
add('sy', '(sy)', ('six', 6))
add('syt', '(syt)', ('a', 7, 8))
add('ssas', '(ssas)', ('', 'b', ['c', '']))
add('unit', '()', ())
add('unit-array', 'a()', [(), (), ()])
add('nested-tuple', '((yq)(s(ti))v)', ((1, 2), ('x', (3, -4)), V('b', True)))
add('dict-entry', '{sv}', ('k', V('u', 9)))

# Arrays.
add('as', 'as', ['a', 'bc', '', 'def'])
add('as-empty', 'as', [])
add('ay-empty', 'ay', b'')
add('aay-empty', 'aay', [])
add('asv-empty', 'a{sv}', {})
add('aay', 'aay', [b'\x01', b'', b'\x02\x03', pattern(64)])
add('ai', 'ai', [1, -1, 2147483647])
add('at', 'at', [0, 18446744073709551615])
add('ab', 'ab', [True, False, True])
add('aas', 'aas', [['a'], [], ['b', 'c']])
add('a-yt', 'a(yt)', [(1, 2), (3, 4)])
add('a-sx', 'a(sx)', [('one', -1), ('', 2)])
add('a-say', 'a(say)', [('ref', pattern(32, 1)), ('other', b'')])
add('ass', 'a{ss}', {'k1': 'v1', 'k2': ''})
add('ais', 'a{is}', {-5: 'minus five', 7: 'seven'})
add('aty', 'a{ty}', {1: 2, 18446744073709551615: 255})
add('asv-nested', 'a{sv}', {
    'nested': V('v', V('v', V('s', 'three deep'))),
    'dict': V('a{sv}', {'inner': V('b', False), 'n': V('x', -3)}),
    'array': V('av', [V('s', 'a'), V('v', V('y', 1))]),
    'aay': V('aay', [pattern(64, 2), pattern(64, 3)]),
})

# Maybe types.
add('ms-nothing', 'ms', None)
add('ms-just', 'ms', 'x')
add('ms-just-empty', 'ms', '')
add('mi-nothing', 'mi', None)
add('mi-just', 'mi', 5)
add('may', 'may', b'ab')
add('m-ii', 'm(ii)', (1, 2))

# OSTree shapes.
digest = hashlib.sha256(b'composefs image').digest()
ts = 1700000000
add('commit', '(a{sv}aya(say)sstayay)', (
    {
        'ostree.composefs.digest.v0': V('ay', digest),
        'version': V('s', '42.1'),
        'ostree.ref-binding': V('as', ['debian/stable']),
        'ostree.container.image-config': V('s', '{"config":{}}'),
        'x.bool': V('b', True),
        'x.u64': V('t', 1 << 40),
        'x.nested': V('v', V('v', V('s', 'n'))),
        'x.aay': V('aay', [b'a', b'bc']),
        'x.tt': V('(tt)', (1, 2)),
        'x.dict': V('a{sv}', {'k': V('i', -1)}),
    },
    hashlib.sha256(b'parent').digest(),
    [('debian/stable', hashlib.sha256(b'related').digest())],
    'Subject line',
    'Body\nwith two lines',
    be_timestamp(ts),
    hashlib.sha256(b'dirtree').digest(),
    hashlib.sha256(b'dirmeta').digest(),
), commit={'timestamp': str(ts)})
add('commit-root', '(a{sv}aya(say)sstayay)', (
    {}, b'', [], '', '', be_timestamp(1), hashlib.sha256(b't').digest(), hashlib.sha256(b'm').digest(),
), commit={'timestamp': '1'})
add('commitmeta', 'a{sv}', {'ostree.sign.ed25519': V('aay', [pattern(64, 4), pattern(64, 5)])})
add('ostree-booted', 'a{sv}', {
    'backing-root-device-inode': V('(tt)', (66306, 1234567)),
    'composefs.signed': V('s', '/etc/ostree/initramfs-root-binding.key'),
    'composefs': V('b', True),
    'sysroot-ro': V('b', True),
})

# Framing-offset size boundaries. aay with one element of L bytes: total is
# L + 1 while that fits in 255 (1-byte offsets), else L + 2 while it fits in
# 65535 (2-byte), else L + 4.
for n in (253, 254, 255, 256):
    add(f'aay-1elem-{n}', 'aay', [pattern(n, n)])
for n in (65533, 65534):
    add(f'aay-1elem-{n}', 'aay', [pattern(n, n)])
# Tuple with one framing offset around the same boundaries.
for n in (253, 254, 255):
    add(f'ayay-{n}', '(ayay)', (pattern(n, 7), b'z'))
# a{sv} and a(say) with many entries, well past 255 and 65535 bytes.
add('asv-large', 'a{sv}', {f'key.{i:03d}': V('s', 'v' * (i % 7)) for i in range(40)})
add('a-say-large', 'a(say)', [(f'ref/{i}', pattern(1100, i)) for i in range(62)])
add('commit-large-meta', '(a{sv}aya(say)sstayay)', (
    {'ostree.composefs.digest.v0': V('ay', digest), 'big': V('ay', pattern(70000, 9))},
    b'', [], 'big', '', be_timestamp(ts), hashlib.sha256(b'dirtree').digest(), hashlib.sha256(b'dirmeta').digest(),
), commit={'timestamp': str(ts)})

with open(os.path.join(OUT, 'index.json'), 'w') as f:
    # One vector per line: readable, and diffs stay local.
    f.write('{"generator": "test/vectors/make-gvariant-vectors.py",\n')
    f.write(' "glib": "%d.%d.%d",\n' % (GLib.MAJOR_VERSION, GLib.MINOR_VERSION, GLib.MICRO_VERSION))
    f.write(' "vectors": [\n')
    f.write(',\n'.join('  ' + json.dumps(v, ensure_ascii=False) for v in vectors))
    f.write('\n]}\n')
# Strictness oracle: for every small vector, GLib's verdict (is the input in
# normal form?) on each prefix and on each single-byte mutation (XOR with a
# mask at each position). One character per case: '1' normal, '0' not.
MUTATION_MASKS = ('01', '80', 'ff')


def glib_normal(t, data):
    v = GLib.Variant.new_from_bytes(GLib.VariantType.new(t), GLib.Bytes.new(data), False)
    return '1' if v.is_normal_form() else '0'


mutations = []
for vec in vectors:
    if vec['size'] > 600:
        continue
    with open(os.path.join(OUT, vec['name'] + '.bin'), 'rb') as f:
        data = f.read()
    entry = {'name': vec['name'], 'prefixes': ''.join(glib_normal(vec['type'], data[:k]) for k in range(len(data)))}
    for m in MUTATION_MASKS:
        mask = int(m, 16)
        entry['xor' + m] = ''.join(
            glib_normal(vec['type'], data[:i] + bytes([data[i] ^ mask]) + data[i + 1:]) for i in range(len(data)))
    mutations.append(entry)
with open(os.path.join(OUT, 'mutations.json'), 'w') as f:
    f.write('[\n' + ',\n'.join(json.dumps(m) for m in mutations) + '\n]\n')

print(f'{len(vectors)} vectors written to {OUT}', file=sys.stderr)
