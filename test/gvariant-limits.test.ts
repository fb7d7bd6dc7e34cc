/**
 * The GVariant readers' bounds (issue 13 item 1, SPEC §2 "Limits"): the
 * value budget counted from a container's framing, the key path in limit
 * messages, the type-string cap, the dictionary entry cap of
 * locateVardict, and the lazy readers (validate, locateMembers,
 * countElements, decodeLocated, openCommit) against decode/parseCommit.
 * Pure core; the same bounds through the binary at 128 MiB are in
 * test/limits.test.ts.
 */
import test from 'ava';
import {
  countElements,
  decode,
  decodeLocated,
  decodeVardict,
  encode,
  encodeVardict,
  locateMembers,
  locateVardict,
  MAX_TYPE_LENGTH,
  MAX_VALUES,
  MAX_VARDICT_ENTRIES,
  validate,
  whole,
} from '../src/ostree/gvariant.js';
import { COMMIT_TYPE, encodeCommit, openCommit, parseCommit, type Commit } from '../src/ostree/commit.js';
import { CfsError } from '../src/errors.js';
import { commitWith, str, tuple, uniformArray, vardict, variant } from './helpers/hostile-gvariant.js';

const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const aay = (n: number, size = 0) => u8(uniformArray(n, size));

function refusal(fn: () => unknown): CfsError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CfsError) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

test(`an aay of MAX_VALUES + 1 empty arrays is refused from its framing, by decode and validate`, (t) => {
  const bytes = aay(MAX_VALUES + 1);
  for (const read of [() => decode('aay', bytes, 'x.commitmeta'), () => validate(whole('aay', bytes), 'x.commitmeta')]) {
    const e = refusal(read);
    t.is(e.code, 'ELIMIT');
    t.is(e.message, `x.commitmeta: GVariant 'aay' at offset 0: ${MAX_VALUES + 1} elements, over the limit of ${MAX_VALUES} values per object`);
  }
});

test('the count is taken before any element is read: broken element offsets are never reached', (t) => {
  // Every offset but the last (which frames the table) is garbage: walking
  // the elements would stop at the first with EGVARIANT.
  const bytes = aay(MAX_VALUES + 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < 1000; i++) view.setUint32(i * 4, 0xfffffff0, true);
  t.is(refusal(() => decode('aay', bytes)).code, 'ELIMIT');
  t.is(refusal(() => validate(whole('aay', bytes))).code, 'ELIMIT');
  // Under the limit the same garbage is found.
  const small = aay(1000);
  new DataView(small.buffer, small.byteOffset).setUint32(0, 0xfff0, true);
  t.is(refusal(() => validate(whole('aay', small))).code, 'EGVARIANT');
});

test('exactly MAX_VALUES elements pass validate (which builds nothing)', (t) => {
  t.notThrows(() => validate(whole('aay', aay(MAX_VALUES))));
  t.notThrows(() => validate(whole('at', new Uint8Array(8 * MAX_VALUES))));
});

test('the budget is per object: two halves that together exceed it are refused at the second, saying how many were read', (t) => {
  const half = uniformArray(MAX_VALUES / 2, 0);
  const bytes = u8(tuple([
    { bytes: half, align: 1, fixed: false },
    { bytes: half, align: 1, fixed: false },
  ]));
  const e = refusal(() => validate(whole('(aayaay)', bytes)));
  t.is(e.code, 'ELIMIT');
  t.regex(e.message, new RegExp(`^GVariant 'aay' at offset ${half.length}: ${MAX_VALUES / 2} elements, over the limit of ${MAX_VALUES} values per object \\(${MAX_VALUES / 2 + 2} already read\\)$`));
});

test('a limit error names the key path it sits under', (t) => {
  const inner = vardict([['inner', uniformArray(MAX_VALUES + 1, 0), 'aay']]);
  const bytes = u8(vardict([['first', str('x'), 's'], ['outer', inner, 'a{sv}']]));
  for (const read of [() => decodeVardict(bytes, 'm'), () => validate(whole('a{sv}', bytes), 'm')]) {
    const e = refusal(read);
    t.is(e.code, 'ELIMIT');
    t.regex(e.message, /^m: GVariant 'aay' at offset \d+ \(key "outer" > "inner"\): 1048577 elements, over the limit/);
  }
  // Through a located value the outer key is named too.
  const outer = locateVardict(whole('a{sv}', bytes), 'm').get('outer')!;
  t.regex(refusal(() => decodeLocated(outer, 'm')).message, /\(key "outer" > "inner"\)/);
});

test('offsets in messages are the object\'s, also for a located value', (t) => {
  const bytes = u8(vardict([['a', str('x'), 's'], ['bad', Buffer.from([2]), 'b']]));
  const direct = refusal(() => decodeVardict(bytes));
  const located = refusal(() => decodeLocated(locateVardict(whole('a{sv}', bytes)).get('bad')!));
  t.is(direct.code, 'EGVARIANT');
  t.regex(direct.message, /GVariant 'b' at offset (\d+): boolean byte is 2/);
  t.is(/at offset (\d+)/.exec(located.message)![1], /at offset (\d+)/.exec(direct.message)![1]);
});

test(`type strings: ${MAX_TYPE_LENGTH} characters are read, longer ones are refused as a limit`, (t) => {
  const members = (n: number) => `(${'y'.repeat(n - 2)})`;
  const ok = members(MAX_TYPE_LENGTH);
  t.notThrows(() => decode('v', u8(variant(Buffer.alloc(MAX_TYPE_LENGTH - 2), ok))));
  const long = members(MAX_TYPE_LENGTH + 1);
  const e = refusal(() => decode('v', u8(variant(Buffer.alloc(MAX_TYPE_LENGTH - 1), long)), 'f'));
  t.is(e.code, 'ELIMIT');
  t.regex(e.message, /^f: GVariant 'v' at offset 0: type string longer than the limit of 1024 characters$/);
  const g = refusal(() => decode('g', u8(str('y'.repeat(MAX_TYPE_LENGTH + 1))), 'f'));
  t.is(g.code, 'ELIMIT');
  t.regex(g.message, /a type signature of 1025 characters, over the limit of 1024/);
  t.is(refusal(() => decode('a'.repeat(MAX_TYPE_LENGTH) + 'y', new Uint8Array(0))).code, 'ELIMIT');
});

test(`locateVardict reads at most ${MAX_VARDICT_ENTRIES} entries, refused from the framing`, (t) => {
  const entries = (n: number) => u8(vardict(Array.from({ length: n }, (_, i): [string, Buffer, string] => [`k${i}`, Buffer.alloc(0), 'ay'])));
  t.is(locateVardict(whole('a{sv}', entries(MAX_VARDICT_ENTRIES))).size, MAX_VARDICT_ENTRIES);
  const e = refusal(() => locateVardict(whole('a{sv}', entries(MAX_VARDICT_ENTRIES + 1)), 'f.commitmeta'));
  t.is(e.code, 'ELIMIT');
  t.is(e.message, `f.commitmeta: GVariant 'a{sv}' at offset 0: ${MAX_VARDICT_ENTRIES + 1} entries, over the limit of ${MAX_VARDICT_ENTRIES} for a dictionary cfsroot looks keys up in`);
});

test('locateVardict: keys, types and values as decodeVardict; values not read until asked; duplicates refused', (t) => {
  const bytes = encodeVardict([
    ['ostree.sign.ed25519', { type: 'aay', value: [new Uint8Array(64).fill(1)] }],
    ['n', { type: 't', value: 7n }],
    ['nested', { type: 'a{sv}', value: new Map([['x', { type: 's', value: 'y' }]]) }],
  ]);
  const located = locateVardict(whole('a{sv}', bytes));
  const full = decodeVardict(bytes);
  t.deepEqual([...located.keys()], [...full.keys()]);
  for (const [k, v] of located) {
    t.is(v.type, full.get(k)!.type);
    t.deepEqual(decodeLocated(v), full.get(k)!.value);
    t.is(v.key, k);
  }
  t.is(countElements(located.get('ostree.sign.ed25519')!), 1);
  // A broken value under one key: located (not read), refused when decoded and by validate.
  const broken = u8(vardict([['ok', str('fine'), 's'], ['bad', Buffer.from([2]), 'b']]));
  const l = locateVardict(whole('a{sv}', broken));
  t.is(decodeLocated(l.get('ok')!), 'fine');
  t.is(refusal(() => decodeLocated(l.get('bad')!)).code, 'EGVARIANT');
  t.is(refusal(() => validate(whole('a{sv}', broken))).code, 'EGVARIANT');
  const dup = u8(vardict([['k', str('a'), 's'], ['k', str('b'), 's']]));
  t.regex(refusal(() => locateVardict(whole('a{sv}', dup))).message, /duplicate dictionary key "k"/);
});

test('countElements reads the framing only: an aay at 128 MiB is counted at once', (t) => {
  const bytes = aay(2 ** 25 - 9);
  t.is(countElements(whole('aay', bytes)), 2 ** 25 - 9);
  t.is(countElements(whole('ay', new Uint8Array(5))), 5);
  t.is(countElements(whole('aay', aay(3, 64))), 3);
});

test('locateMembers splits a tuple by its framing', (t) => {
  const bytes = encode('(sayt)', ['abc', new Uint8Array([1, 2]), 9n]);
  const m = locateMembers(whole('(sayt)', bytes));
  t.deepEqual(m.map((x) => x.type), ['s', 'ay', 't']);
  t.deepEqual(m.map((x) => decodeLocated(x)), ['abc', new Uint8Array([1, 2]), 9n]);
});

const commit: Commit = {
  metadata: new Map([
    ['ostree.composefs.digest.v0', { type: 'ay', value: new Uint8Array(32).fill(3) }],
    ['rpmostree.rpmdb.pkglist', { type: 'a(stsss)', value: Array.from({ length: 3000 }, (_, i) => [`pkg${i}`, 0n, '1.0', '1.fc41', 'x86_64']) }],
  ]),
  parent: new Uint8Array(32).fill(9),
  related: [],
  subject: 's',
  body: 'b',
  timestamp: 1_700_000_000n,
  rootTree: new Uint8Array(32).fill(1),
  rootMeta: new Uint8Array(32).fill(2),
};

test('openCommit: the parent and the metadata as parseCommit, a 3000-package list left undecoded', (t) => {
  const bytes = encodeCommit(commit);
  const view = openCommit(bytes, 'c');
  const full = parseCommit(bytes, 'c');
  t.deepEqual(view.parent, full.parent);
  t.deepEqual([...view.metadata.keys()], [...full.metadata.keys()]);
  t.deepEqual(decodeLocated(view.metadata.get('ostree.composefs.digest.v0')!), new Uint8Array(32).fill(3));
  t.is(view.metadata.get('rpmostree.rpmdb.pkglist')!.type, 'a(stsss)');
  t.is(countElements(view.metadata.get('rpmostree.rpmdb.pkglist')!), 3000);
});

test('openCommit refuses what parseCommit refuses about the checksums, and a bomb in the metadata', (t) => {
  const short = encodeCommit({ ...commit, rootTree: new Uint8Array(31) });
  t.regex(refusal(() => openCommit(short, 'c')).message, /^c: malformed commit object: root dirtree checksum is 31 bytes, expected 32$/);
  const meta = vardict([['bomb', uniformArray(MAX_VALUES + 1, 0), 'aay']]);
  const bomb = u8(commitWith(meta, ''));
  t.notThrows(() => locateMembers(whole(COMMIT_TYPE, bomb)), 'well framed');
  const e = refusal(() => openCommit(bomb, 'c.commit'));
  t.is(e.code, 'ELIMIT');
  t.regex(e.message, /^c\.commit: GVariant 'aay' at offset \d+ \(key "bomb"\): 1048577 elements, over the limit of 1048576 values per object \(11 already read\)$/);
});
