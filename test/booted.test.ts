/**
 * /run/ostree-booted (SPEC §5): our encoding is decoded by GLib itself
 * (python3-gi), the independent implementation, which also checks that the
 * bytes are in normal form; keys must come in the SPEC order when present.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { encodeBootedEntries, encodeOstreeBooted, ostreeBootedEntries } from '../src/ostree/booted.js';
import { encodeVardict, type Variant } from '../src/ostree/gvariant.js';
import { makeDecision, type DecisionOptions } from './integration/fixtures.js';

const GLIB_DECODE = `
import sys, json
from gi.repository import GLib
data = sys.stdin.buffer.read()
v = GLib.Variant.new_from_bytes(GLib.VariantType.new('a{sv}'), GLib.Bytes.new(data), False)
out = {'normal': v.is_normal_form(), 'keys': [], 'values': {}}
for i in range(v.n_children()):
    k = v.get_child_value(i).get_child_value(0).get_string()
    inner = v.get_child_value(i).get_child_value(1).get_variant()
    out['keys'].append(k)
    out['values'][k] = [inner.get_type_string(), inner.print_(False)]
print(json.dumps(out))
`;

function glibDecode(bytes: Uint8Array): { normal: boolean; keys: string[]; values: Record<string, [string, string]> } {
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', GLIB_DECODE], { input: Buffer.from(bytes) }).toString());
}

const ORDER = ['backing-root-device-inode', 'root.transient', 'root.transient-ro', 'composefs.signed', 'composefs', 'composefs.verity', 'sysroot-ro', 'transient-etc'];

const cases: Array<[string, DecisionOptions, string | null, Record<string, [string, string]>]> = [
  [
    'signed, read-only sysroot',
    { mode: 'signed', dev: 66306n, ino: 18446744073709551615n },
    null,
    {
      'backing-root-device-inode': ['(tt)', '(66306, 18446744073709551615)'],
      'root.transient': ['b', 'false'],
      'root.transient-ro': ['b', 'false'],
      'composefs.signed': ['s', "'/etc/ostree/initramfs-root-binding.key'"],
      composefs: ['b', 'true'],
      'composefs.verity': ['b', 'true'],
      'sysroot-ro': ['b', 'true'],
    },
  ],
  [
    'legacy, writable sysroot',
    { mode: 'off', sysrootReadonly: false, dev: 1n, ino: 2n },
    null,
    {
      'backing-root-device-inode': ['(tt)', '(1, 2)'],
      'root.transient': ['b', 'false'],
      'root.transient-ro': ['b', 'false'],
      'sysroot-ro': ['b', 'false'],
    },
  ],
  [
    'composefs=yes, transient-ro root, transient etc',
    { mode: 'yes', rootTransientRo: true, etcTransient: true, dev: 0n, ino: 0n },
    '/run/ostree/transient-etc.abcDEF',
    {
      'backing-root-device-inode': ['(tt)', '(0, 0)'],
      'root.transient': ['b', 'true'],
      'root.transient-ro': ['b', 'true'],
      composefs: ['b', 'true'],
      'composefs.verity': ['b', 'false'],
      'sysroot-ro': ['b', 'true'],
      'transient-etc': ['s', "'/run/ostree/transient-etc.abcDEF'"],
    },
  ],
];

for (const [name, opts, transientEtc, expected] of cases) {
  test(`GLib decodes /run/ostree-booted: ${name}`, (t) => {
    const got = glibDecode(encodeOstreeBooted(makeDecision(opts), { transientEtc }));
    t.true(got.normal);
    t.deepEqual(got.values, expected);
    t.deepEqual(got.keys, ORDER.filter((k) => k in expected));
  });
}

// The boot writes the record with its own fixed-shape writer (src/ostree/booted.ts);
// the general GVariant writer is the reference: the same bytes for every shape.
const MODES = ['off', 'yes', 'verity', 'signed', 'digest'] as const;
test('the record writer gives the general writer\'s bytes for every decision shape', (t) => {
  let n = 0;
  for (const mode of MODES) {
    for (const bits of [0, 1, 2, 3, 4, 5, 6, 7]) {
      for (const transientEtc of [null, '/run/ostree/transient-etc.Ab3dE9']) {
        const d = makeDecision({ mode, rootTransient: (bits & 1) !== 0, rootTransientRo: (bits & 2) !== 0, sysrootReadonly: (bits & 4) !== 0, dev: BigInt(bits) * 0x1_0000_0001n, ino: 18446744073709551615n - BigInt(bits) });
        const entries = ostreeBootedEntries(d, { transientEtc });
        t.is(Buffer.from(encodeOstreeBooted(d, { transientEtc })).toString('hex'), Buffer.from(encodeVardict(entries)).toString('hex'), `${mode} ${bits} ${transientEtc}`);
        n++;
      }
    }
  }
  t.is(n, 80);
});

test('the record writer widens its framing offsets as the general writer does (long and non-ASCII strings)', (t) => {
  // 1-byte offsets up to 255 bytes, then 2, then 4: an entry, and the array, across each bound.
  for (const len of [0, 1, 200, 230, 240, 250, 260, 300, 65_000, 65_500, 65_600, 70_000]) {
    for (const ch of ['a', 'é', '€', '😀']) {
      const s = ch.repeat(Math.ceil(len / Buffer.byteLength(ch)));
      const entries: Array<[string, Variant]> = [
        ['backing-root-device-inode', { type: '(tt)', value: [1n, 2n] }],
        ['composefs.signed', { type: 's', value: s }],
        ['root.transient', { type: 'b', value: true }],
        [`k${ch}`, { type: 's', value: '' }],
      ];
      t.is(Buffer.from(encodeBootedEntries(entries)).toString('hex'), Buffer.from(encodeVardict(entries)).toString('hex'), `${len} × ${ch}`);
    }
  }
  t.is(encodeBootedEntries([]).length, 0);
  t.is(Buffer.from(encodeBootedEntries([])).toString('hex'), Buffer.from(encodeVardict([])).toString('hex'));
});

test('the record writer refuses a value type the record never has', (t) => {
  const e = t.throws(() => encodeBootedEntries([['x', { type: 'u', value: 1 }]]));
  t.regex(e!.message, /entry x has a value of type 'u'/);
  t.throws(() => encodeBootedEntries([['x', { type: 'b', value: 'yes' }]]), { message: /type 'b'/ });
});
