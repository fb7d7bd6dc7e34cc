/**
 * src/ostree/gvariant.ts and the commit codec of src/ostree/commit.ts against vectors
 * serialised by real GLib (test/vectors/make-gvariant-vectors.py), GLib's
 * normal-form verdict on mutated inputs, and hand-made malformed inputs.
 */

import test from 'ava';
import fc from 'fast-check';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { decode, decodeVardict, encode, encodeVardict, MAX_DEPTH, type GBasic, type GValue, type Variant } from '../src/ostree/gvariant.js';
import { encodeCommit, parseCommit } from '../src/ostree/commit.js';
import { CfsError, type ErrorCode } from '../src/errors.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'vectors/gvariant');

interface Vector {
  name: string;
  type: string;
  size: number;
  text: string;
  value: unknown;
  commit?: { timestamp: string };
}
const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as { vectors: Vector[] };
const vectors = index.vectors;
const bin = (name: string): Uint8Array => new Uint8Array(fs.readFileSync(path.join(dir, `${name}.bin`)));
const vec = (name: string): Vector => vectors.find((v) => v.name === name) ?? assertNever(name);
function assertNever(name: string): never {
  throw new Error(`no vector ${name}`);
}

/** Our value -> the generator's canonical JSON form (see the generator's docstring). */
function canon(v: GValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return { $big: v.toString() };
  if (v instanceof Uint8Array) {
    return v.length > 1024 ? { $sha256: bytesToHex(sha256(v)), len: v.length } : { $bytes: bytesToHex(v) };
  }
  if (v instanceof Map) return { $map: [...v].map(([k, x]) => [canon(k), canon(x)]) };
  if (Array.isArray(v)) return v.map(canon);
  return { $variant: v.type, value: canon(v.value) };
}

/** Canonical JSON -> our value, to encode independently of our decoder. Null if it holds only a digest. */
function uncanon(j: unknown): GValue {
  if (j === null || typeof j !== 'object') return j as GValue;
  if (Array.isArray(j)) return j.map(uncanon);
  const o = j as Record<string, unknown>;
  if ('$big' in o) return BigInt(o.$big as string);
  if ('$bytes' in o) return new Uint8Array(Buffer.from(o.$bytes as string, 'hex'));
  if ('$sha256' in o) throw new Error('digest-only value');
  if ('$map' in o) return new Map((o.$map as unknown[][]).map(([k, x]) => [uncanon(k) as GBasic, uncanon(x)]));
  return { type: o.$variant as string, value: uncanon(o.value) };
}
const complete = (j: unknown): boolean => !JSON.stringify(j).includes('"$sha256"');

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('the vector set covers the shapes the brief asks for', (t) => {
  const types = new Set(vectors.map((v) => v.type));
  for (const ty of ['(a{sv}aya(say)sstayay)', 'a{sv}', 'aay', 'ay', '(tt)', 'b', 's', 't', 'v']) t.true(types.has(ty), ty);
  const sizes = vectors.map((v) => v.size);
  t.true(sizes.some((s) => s > 255 && s <= 65535));
  t.true(sizes.some((s) => s > 65535));
  t.true(vectors.length >= 60);
});

for (const v of vectors) {
  test(`GLib vector ${v.name} (${v.type}): decodes to GLib's value and re-encodes byte-exactly`, (t) => {
    const bytes = bin(v.name);
    t.is(bytes.length, v.size);
    const value = decode(v.type, bytes);
    t.deepEqual(canon(value), v.value);
    t.is(hex(encode(v.type, value)), hex(bytes));
    if (complete(v.value)) t.is(hex(encode(v.type, uncanon(v.value))), hex(bytes), 'encoding GLib value');
  });
}

test('framing offset sizes switch 1 -> 2 -> 4 bytes where GLib switches them', (t) => {
  // One element of L bytes: GLib's total is L+1, L+2 or L+4 by offset size.
  for (const [n, total] of [
    [254, 255],
    [255, 257],
    [65533, 65535],
    [65534, 65538],
  ] as const) {
    const el = new Uint8Array(n).fill(7);
    t.is(encode('aay', [el]).length, total, `aay of ${n}`);
    t.is(vec(`aay-1elem-${n}`).size, total, `GLib agrees for ${n}`);
  }
});

test('commit vectors: parseCommit converts the big-endian timestamp and encodeCommit reproduces GLib bytes', (t) => {
  for (const name of ['commit', 'commit-root', 'commit-large-meta']) {
    const v = vec(name);
    const bytes = bin(name);
    const c = parseCommit(bytes, name);
    t.is(c.timestamp, BigInt(v.commit!.timestamp), name);
    t.is(hex(encodeCommit(c)), hex(bytes), name);
  }
  const c = parseCommit(bin('commit'), 'commit');
  t.is(c.subject, 'Subject line');
  t.is(c.body, 'Body\nwith two lines');
  t.is(c.parent.length, 32);
  t.is(c.related[0]![0], 'debian/stable');
  t.is(hex((c.metadata.get('ostree.composefs.digest.v0')!.value as Uint8Array)), bytesToHex(sha256(new TextEncoder().encode('composefs image'))));
  t.deepEqual([...c.metadata.keys()].slice(0, 2), ['ostree.composefs.digest.v0', 'version']);
});

test('parseCommit refuses a valid GVariant that is not a valid commit', (t) => {
  const c = parseCommit(bin('commit-root'), 'x');
  const bad = encode('(a{sv}aya(say)sstayay)', [new Map(), new Uint8Array(5), [], '', '', 0n, c.rootTree, c.rootMeta]);
  const e = t.throws(() => parseCommit(bad, '/r/objects/ab/cd.commit'), { instanceOf: CfsError });
  t.is(e.code, 'EOBJECT');
  t.regex(e.message, /\/r\/objects\/ab\/cd\.commit: .*parent checksum is 5 bytes/);
});

test('encodeVardict keeps the caller order; decodeVardict returns entries in file order', (t) => {
  const bytes = bin('ostree-booted');
  const dict = decodeVardict(bytes);
  t.deepEqual([...dict.keys()], ['backing-root-device-inode', 'composefs.signed', 'composefs', 'sysroot-ro']);
  t.is(hex(encodeVardict(dict)), hex(bytes));
  const reversed = encodeVardict([...dict].reverse());
  t.not(hex(reversed), hex(bytes));
  t.deepEqual([...decodeVardict(reversed).keys()], [...dict.keys()].reverse());
});

// --- strictness, with GLib as the oracle ---------------------------------

interface Mutations {
  name: string;
  prefixes: string;
  [mask: `xor${string}`]: string;
}
const mutations = JSON.parse(fs.readFileSync(path.join(dir, 'mutations.json'), 'utf8')) as Mutations[];

/** Our verdict on `bytes`: accepted (and then it must re-encode to exactly these bytes) or a CfsError. */
function verdict(type: string, bytes: Uint8Array): { ok: boolean; why: string } {
  try {
    const v = decode(type, bytes);
    return { ok: true, why: hex(encode(type, v)) === hex(bytes) ? 'roundtrip' : 'NOT-CANONICAL' };
  } catch (e) {
    if (!(e instanceof CfsError)) return { ok: false, why: `raw ${String(e)}` };
    return { ok: false, why: `${e.code} ${e.message}` };
  }
}

for (const m of mutations.filter((x) => vec(x.name).size > 0)) {
  test(`mutations of ${m.name}: accepted exactly when GLib calls them normal form`, (t) => {
    const v = vec(m.name);
    const bytes = bin(m.name);
    const cases: Array<[string, Uint8Array, string]> = [];
    for (let k = 0; k < bytes.length; k++) cases.push([`prefix ${k}`, bytes.subarray(0, k), m.prefixes[k]!]);
    for (const key of Object.keys(m).filter((k) => k.startsWith('xor'))) {
      const mask = parseInt(key.slice(3), 16);
      const verdicts = m[key as `xor${string}`] ?? '';
      for (let i = 0; i < bytes.length; i++) {
        const b = Uint8Array.from(bytes);
        b[i] = b[i]! ^ mask;
        cases.push([`${key} at ${i}`, b, verdicts[i]!]);
      }
    }
    t.true(cases.length > 0);
    for (const [label, b, glib] of cases) {
      const ours = verdict(v.type, b);
      t.false(ours.why.startsWith('raw'), `${label}: ${ours.why}`);
      if (ours.ok) t.is(ours.why, 'roundtrip', label);
      // GLib keeps duplicate dict keys; we refuse them on purpose (see readArray).
      if (glib === '1' && !ours.ok && /duplicate dictionary key/.test(ours.why)) continue;
      // GLib reads every framing offset of a 0-byte container as 0, so it
      // calls e.g. an empty (ayay) normal although it writes ([], []) as one
      // byte; we refuse the second spelling so that normal form stays unique.
      if (glib === '1' && !ours.ok && /: 0 bytes cannot hold/.test(ours.why)) continue;
      t.is(ours.ok, glib === '1', `${label}: GLib ${glib === '1' ? 'normal' : 'not normal'}, ours: ${ours.why}`);
    }
  });
}

// --- hand-made malformed inputs --------------------------------------------

function refuses(t: import('ava').ExecutionContext, type: string, bytes: number[] | Uint8Array, re: RegExp, code: ErrorCode = 'EGVARIANT'): void {
  const e = t.throws(() => decode(type, Uint8Array.from(bytes)), { instanceOf: CfsError }, `${type} ${re}`);
  t.is(e.code, code);
  t.regex(e.message, re);
}
const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];

test('strings: missing NUL, interior NUL, bad UTF-8, bad object path and signature', (t) => {
  refuses(t, 's', ascii('abc'), /'s' at offset 2: string is not NUL-terminated/);
  refuses(t, 's', [], /string is empty/);
  refuses(t, 's', ascii('a\0b\0'), /offset 1: string contains an interior NUL/);
  refuses(t, 's', [0xff, 0], /not valid UTF-8/);
  refuses(t, 's', [0xed, 0xa0, 0x80, 0], /not valid UTF-8/); // an encoded surrogate
  refuses(t, 'o', ascii('/a//b\0'), /not a valid object path/);
  refuses(t, 'g', ascii('ms\0'), /not a valid type signature/);
});

test('fixed sizes and booleans', (t) => {
  refuses(t, 't', [1, 2, 3, 4, 5, 6, 7], /size is 7 bytes, this type always has 8/);
  refuses(t, '(tt)', new Uint8Array(15), /always has 16/);
  refuses(t, 'b', [2], /boolean byte is 2/);
  refuses(t, 'ai', [1, 0, 0, 0, 2], /not a multiple of the element size 4/);
  refuses(t, '()', [1], /padding byte is 0x1/);
});

test('framing offsets: out of range, out of order, bad table size', (t) => {
  const good = [...encode('as', ['ab', 'c'])]; // "ab\0c\0" + offsets [3, 5]
  t.deepEqual(good, [...ascii('ab\0c\0'), 3, 5]);
  refuses(t, 'as', [...good.slice(0, 5), 3, 7], /last framing offset 7 points past the elements/);
  refuses(t, 'as', [...good.slice(0, 5), 5, 3], /framing offset 99 of element 0 is out of order or out of range/);
  refuses(t, 'as', [...good.slice(0, 5), 4, 5], /interior NUL|not NUL-terminated/);
  refuses(t, 'as', [...ascii('ab\0c\0'), 9, 4, 5], /out of order or out of range/);
  t.is((decode('aay', Uint8Array.from([0, 0, 0])) as Uint8Array[]).length, 3); // three empty elements: fine
  refuses(t, 'aay', [...ascii('xyz'), 2, 1, 3], /framing offset 1 of element 1 is out of order or out of range/);
  const odd = new Uint8Array(300); // 2-byte offsets; last one leaves a 3-byte table
  new DataView(odd.buffer).setUint16(298, 297, true);
  refuses(t, 'aay', odd, /offset 297: framing offset table of 3 bytes is not a multiple of 2/);
  refuses(t, '(ss)', [...ascii('a\0b\0'), 9], /member 0 \('s'\) spans 0\.\.9/);
  refuses(t, '(sy)', [...ascii('a\0'), 1, 2, 9], /unexpected bytes|spans/);
  refuses(t, '(yt)', [1, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], /offset 3: padding byte is 0x1/);
});

test('a forged 4-byte framing offset in a large container is refused without allocation', (t) => {
  const b = new Uint8Array(70000);
  b.fill(0xff, b.length - 4);
  refuses(t, 'aay', b, /last framing offset 4294967295 points past the elements/);
  // Last offset 8 makes a table of 17498 offsets; the first 17497 (zero)
  // are empty elements, which is valid: an aay of that many elements.
  const c = new Uint8Array(70000);
  new DataView(c.buffer).setUint32(c.length - 4, 8, true);
  t.is((decode('aay', c) as Uint8Array[]).length, 17498);
  new DataView(c.buffer).setUint32(c.length - 8, 9, true); // element 17496 now ends after the last one
  refuses(t, 'aay', c, /framing offset 9 of element 17496 is out of order or out of range/);
});

test('variants: empty, no separator, bad type string, value of the wrong size', (t) => {
  refuses(t, 'v', [], /variant is empty/);
  refuses(t, 'v', ascii('abc'), /no NUL separating/);
  refuses(t, 'v', [1, 0, ...ascii('z')], /bad variant type string 'z'/);
  refuses(t, 'v', [1, 0, ...ascii('(y')], /bad variant type string/);
  refuses(t, 'v', [1, 0, ...ascii('yy')], /bad variant type string/);
  refuses(t, 'v', [1, 0, 0x80], /non-type character/);
  refuses(t, 'v', [1, 2, 0, ...ascii('u')], /size is 2 bytes, this type always has 4/);
});

test('maybe: wrong size and missing marker byte', (t) => {
  refuses(t, 'mi', [1, 0, 0], /neither 0 nor the element size 4/);
  refuses(t, 'ms', ascii('x\0'), /0 marker byte|not NUL-terminated/);
});

test('a{sv} with a duplicate key is refused (GLib would keep both)', (t) => {
  const dup = encode('a{sv}', [
    ['k', { type: 'b', value: true }],
    ['k', { type: 'b', value: false }],
  ]);
  refuses(t, 'a{sv}', dup, /duplicate dictionary key "k"/);
});

test('decoding as the wrong type is EGVARIANT, never a raw exception', (t) => {
  refuses(t, '(a{sv}aya(say)sstayay)', bin('commitmeta'), /GVariant/);
  refuses(t, 'a{sv}', bin('commit'), /GVariant/);
  refuses(t, 'aay', bin('s-utf8'), /GVariant/);
  const e = t.throws(() => decode('a{vs}', new Uint8Array()), { instanceOf: CfsError });
  t.is(e.code, 'EGVARIANT');
  t.regex(e.message, /invalid GVariant type string 'a\{vs\}' at character 2: a dict entry key must be a basic type/);
  t.is(t.throws(() => decode('(i', new Uint8Array()), { instanceOf: CfsError }).code, 'EGVARIANT');
});

test('decodeVardict names the file in its messages', (t) => {
  const e = t.throws(() => decodeVardict(Uint8Array.from([1, 2, 3]), '/repo/objects/aa/bb.commitmeta'), { instanceOf: CfsError });
  t.regex(e.message, /^\/repo\/objects\/aa\/bb\.commitmeta: GVariant 'a\{sv\}' at offset/);
});

test(`nesting: variants nested ${MAX_DEPTH - 1} deep decode, deeper is ELIMIT`, (t) => {
  const nest = (n: number): Uint8Array => {
    let b = Uint8Array.of(42);
    let type = 'y';
    for (let i = 0; i < n; i++) {
      b = Uint8Array.from([...b, 0, ...ascii(type)]);
      type = 'v';
    }
    return b;
  };
  let v = decode('v', nest(MAX_DEPTH - 1)) as Variant;
  let depth = 1;
  while (v.type === 'v') {
    v = v.value as Variant;
    depth++;
  }
  t.is(depth, MAX_DEPTH - 1);
  t.is(v.value, 42);
  const e = t.throws(() => decode('v', nest(MAX_DEPTH + 5)), { instanceOf: CfsError });
  t.is(e.code, 'ELIMIT');
  t.regex(e.message, /nests deeper than 64 levels/);
  // A deep type string inside one variant.
  const deepType = 'a'.repeat(200) + 'y';
  const e2 = t.throws(() => decode('v', Uint8Array.from([0, ...ascii(deepType)])), { instanceOf: CfsError });
  t.is(e2.code, 'ELIMIT');
});

test('encode refuses values that do not fit the type', (t) => {
  const bad: Array<[string, GValue, RegExp]> = [
    ['y', 256, /integer in 0\.\.255/],
    ['n', 1.5, /integer/],
    ['u', -1, /integer/],
    ['t', -1n, /out of range/],
    ['x', 1n << 63n, /out of range/],
    ['s', 'a\0b', /NUL/],
    ['o', 'no-slash', /object path/],
    ['(ii)', [1], /2 member values/],
    ['ay', [1, 2] as GValue, /Uint8Array/],
    ['a{sv}', 'x', /Map/],
    ['v', 'x', /variant/],
    ['b', 1, /boolean/],
  ];
  for (const [type, value, re] of bad) {
    const e = t.throws(() => encode(type, value), { instanceOf: CfsError }, type);
    t.is(e.code, 'EGVARIANT');
    t.regex(e.message, re, type);
  }
  t.is(hex(encode('t', 5)), hex(encode('t', 5n)), 'x/t accept a safe-integer number');
});

// --- properties (fast-check) -------------------------------------------------

const basicArb: Array<[string, fc.Arbitrary<GValue>]> = [
  ['b', fc.boolean()],
  ['y', fc.integer({ min: 0, max: 255 })],
  ['n', fc.integer({ min: -0x8000, max: 0x7fff })],
  ['u', fc.integer({ min: 0, max: 0xffffffff })],
  ['x', fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n })],
  ['t', fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })],
  ['d', fc.double({ noNaN: true })],
  ['s', fc.string({ unit: 'grapheme' }).filter((s) => !s.includes('\0'))],
  ['ay', fc.uint8Array({ maxLength: 40 })],
];

/** A random (type, value) pair, up to `depth` containers deep. */
function typed(depth: number): fc.Arbitrary<[string, GValue]> {
  const leaf = fc.oneof(...basicArb.map(([ty, arb]) => arb.map((v): [string, GValue] => [ty, v])));
  if (depth === 0) return leaf;
  const inner = typed(depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    inner.map(([ty, v]): [string, GValue] => ['v', { type: ty, value: v }]),
    inner.map(([ty, v]): [string, GValue] => [`m${ty}`, v]).filter(([ty]) => !ty.startsWith('mm')),
    // Arrays: elements share one type, so draw a type and several values of it.
    // (ay is a leaf already: the value mapping makes it a Uint8Array, not an array.)
    fc
      .constantFrom(...basicArb.filter(([ty]) => ty !== 'y'))
      .chain(([ty, arb]) => fc.array(arb, { maxLength: 6 }).map((vs): [string, GValue] => [`a${ty}`, vs])),
    fc.array(inner, { maxLength: 4 }).map((ms): [string, GValue] => [`(${ms.map((m) => m[0]).join('')})`, ms.map((m) => m[1])]),
    fc
      .uniqueArray(fc.tuple(fc.string({ maxLength: 8 }).filter((s) => !s.includes('\0')), inner), { selector: (e) => e[0], maxLength: 5 })
      .map((es): [string, GValue] => ['a{sv}', new Map(es.map(([k, [ty, v]]) => [k, { type: ty, value: v }]))]),
  );
}

test('property: decode(encode(v)) == v and the bytes are stable, for random nested types', (t) => {
  let runs = 0;
  fc.assert(
    fc.property(typed(3), ([type, value]) => {
      const bytes = encode(type, value);
      const back = decode(type, bytes);
      // node:assert throws, which is what fast-check needs to shrink.
      assert.deepStrictEqual(back, value);
      assert.equal(hex(encode(type, back)), hex(bytes));
      runs++;
    }),
    { numRuns: 400 },
  );
  t.is(runs, 400);
});

test('property: random bytes as a{sv} / commit / v: a CfsError, or normal form that re-encodes exactly', (t) => {
  let accepted = 0;
  fc.assert(
    fc.property(fc.constantFrom('a{sv}', '(a{sv}aya(say)sstayay)', 'v', 'aay', '(tt)'), fc.uint8Array({ maxLength: 64 }), (type, bytes) => {
      const r = verdict(type, bytes);
      assert.ok(!r.why.startsWith('raw'), r.why);
      if (r.ok) {
        accepted++;
        assert.equal(r.why, 'roundtrip');
      }
    }),
    { numRuns: 3000 },
  );
  t.log(`${accepted} of 3000 random inputs were normal form`);
  t.pass();
});
