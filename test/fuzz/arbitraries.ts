/**
 * fast-check generators for the fuzz targets (issue 6): GVariant types with
 * matching values (SPEC §2 "GVariant serialisation"), commits, key files,
 * prepare-root.conf text, kernel command lines and symlink targets. Each
 * mixes three sources of input: pure noise, well-formed input, and
 * well-formed input with a few bytes changed — noise alone almost never gets
 * past the first check of a parser, and the mutations are what reach the
 * deep branches.
 */

import fc from 'fast-check';
import type { GValue, Variant } from '../../src/ostree/gvariant.js';
import type { Commit } from '../../src/ostree/commit.js';

// ---------------------------------------------------------------------------
// GVariant types as trees

export type TypeTree =
  | { k: 'basic'; c: string }
  | { k: 'variant' }
  | { k: 'array'; e: TypeTree }
  | { k: 'maybe'; e: TypeTree }
  | { k: 'tuple'; m: TypeTree[] }
  | { k: 'dict'; key: string; v: TypeTree };

export function typeString(t: TypeTree): string {
  switch (t.k) {
    case 'basic':
      return t.c;
    case 'variant':
      return 'v';
    case 'array':
      return `a${typeString(t.e)}`;
    case 'maybe':
      return `m${typeString(t.e)}`;
    case 'tuple':
      return `(${t.m.map(typeString).join('')})`;
    case 'dict':
      return `{${t.key}${typeString(t.v)}}`;
  }
}

export interface TypeOptions {
  /** Allow 'd' (doubles: NaN payloads do not survive a decode/encode). */
  doubles: boolean;
  /** Allow maybe types ('mmX' cannot tell Just(Nothing) from Nothing in our value mapping). */
  maybes: boolean;
}

const BASICS_NO_D = ['b', 'y', 'n', 'q', 'i', 'u', 'h', 'x', 't', 's', 'o', 'g'];
/** Dict keys: basic, but not 'd' (0 and -0 are one Map key) and not 'b' (too few distinct keys to matter). */
const DICT_KEYS = ['y', 'n', 'q', 'i', 'u', 'x', 't', 's', 'o'];

const typeArbCache = new Map<string, fc.Arbitrary<TypeTree>>();

export function typeTreeArb(o: TypeOptions, maxDepth = 4): fc.Arbitrary<TypeTree> {
  const key = `${o.doubles}:${o.maybes}:${maxDepth}`;
  const hit = typeArbCache.get(key);
  if (hit) return hit;
  const basics = o.doubles ? [...BASICS_NO_D, 'd'] : BASICS_NO_D;
  const leaf: fc.Arbitrary<TypeTree> = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...basics).map((c): TypeTree => ({ k: 'basic', c })) },
    { weight: 1, arbitrary: fc.constant<TypeTree>({ k: 'variant' }) },
  );
  // Built bottom-up, each level over the one below: generating from
  // prebuilt arbitraries is ~10x faster than building them lazily per value.
  let level = leaf;
  for (let d = maxDepth - 1; d >= 0; d--) {
    const sub = level;
    const options: Array<fc.WeightedArbitrary<TypeTree>> = [
      { weight: 4, arbitrary: leaf },
      { weight: 2, arbitrary: sub.map((e): TypeTree => ({ k: 'array', e })) },
      { weight: 2, arbitrary: fc.array(sub, { maxLength: 4 }).map((m): TypeTree => ({ k: 'tuple', m })) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(...DICT_KEYS), sub)
          .map(([key, v]): TypeTree => ({ k: 'array', e: { k: 'dict', key, v } })),
      },
    ];
    // A maybe directly inside a maybe is the one shape our mapping cannot round-trip.
    if (o.maybes) options.push({ weight: 1, arbitrary: sub.filter((t) => t.k !== 'maybe').map((e): TypeTree => ({ k: 'maybe', e })) });
    level = fc.oneof(...options);
  }
  typeArbCache.set(key, level);
  return level;
}

/** No NUL and no lone surrogate (UTF-8 cannot carry one, so it would not round-trip). */
const wellFormed = (s: string) => !s.includes('\0') && Buffer.from(s, 'utf8').toString('utf8') === s;

const objectPathArb = fc.oneof(
  fc.constant('/'),
  fc.array(fc.stringMatching(/^[A-Za-z0-9_]{1,6}$/), { minLength: 1, maxLength: 4 }).map((p) => `/${p.join('/')}`),
);

/** A value of type `t`, in the JS form the reader returns and the writer takes (src/ostree/gvariant.ts header). */
const valueArbCache = new Map<string, fc.Arbitrary<GValue>>();

export function valueArb(t: TypeTree, o: TypeOptions, depth = 0): fc.Arbitrary<GValue> {
  const key = `${o.doubles}:${o.maybes}:${depth}:${typeString(t)}`;
  let a = valueArbCache.get(key);
  if (!a) {
    a = makeValueArb(t, o, depth);
    if (valueArbCache.size < 20_000) valueArbCache.set(key, a);
  }
  return a;
}

function makeValueArb(t: TypeTree, o: TypeOptions, depth: number): fc.Arbitrary<GValue> {
  switch (t.k) {
    case 'basic':
      return basicArb(t.c, o);
    case 'variant': {
      // Inner types shallower as we go, so the recursion ends.
      const inner = typeTreeArb(o, Math.max(0, 2 - depth));
      return inner.chain((it) =>
        valueArb(it, o, depth + 1).map((value): Variant => ({ type: typeString(it), value })),
      );
    }
    case 'maybe':
      return fc.option(valueArb(t.e, o, depth + 1), { nil: null, freq: 3 });
    case 'tuple':
      return fc.tuple(...t.m.map((m) => valueArb(m, o, depth + 1)));
    case 'dict':
      return fc.tuple(basicArb(t.key, o), valueArb(t.v, o, depth + 1));
    case 'array': {
      const e = t.e;
      if (e.k === 'basic' && e.c === 'y') return fc.uint8Array({ maxLength: 40 });
      if (e.k === 'dict') {
        return fc
          .uniqueArray(fc.tuple(basicArb(e.key, o), valueArb(e.v, o, depth + 1)), {
            maxLength: 5,
            selector: ([k]) => (typeof k === 'bigint' ? `n${k}` : `${typeof k}:${String(k)}`),
          })
          .map((entries) => new Map(entries));
      }
      return fc.array(valueArb(e, o, depth + 1), { maxLength: 5 });
    }
  }
}

const basicArbCache = new Map<string, fc.Arbitrary<GValue>>();

/**
 * Cached: fast-check builds a reverse code-point table (1.1M entries) per
 * string arbitrary instance, which made fresh instances cost milliseconds
 * per case (measured with --cpu-prof).
 */
function basicArb(c: string, o: TypeOptions): fc.Arbitrary<GValue> {
  const key = `${c}:${o.doubles}:${o.maybes}`;
  let a = basicArbCache.get(key);
  if (!a) basicArbCache.set(key, (a = makeBasicArb(c, o)));
  return a;
}

const stringArb = fc.string({ unit: 'binary', maxLength: 12 }).filter((s) => wellFormed(s));

function makeBasicArb(c: string, o: TypeOptions): fc.Arbitrary<GValue> {
  switch (c) {
    case 'b':
      return fc.boolean();
    case 'y':
      return fc.integer({ min: 0, max: 0xff });
    case 'n':
      return fc.integer({ min: -0x8000, max: 0x7fff });
    case 'q':
      return fc.integer({ min: 0, max: 0xffff });
    case 'i':
    case 'h':
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case 'u':
      return fc.integer({ min: 0, max: 0xffffffff });
    case 'x':
      return fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });
    case 't':
      return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    case 'd':
      return fc.double();
    case 's':
      return stringArb;
    case 'o':
      return objectPathArb;
    case 'g':
      return typeTreeArb({ ...o, maybes: false }, 1)
        .map(typeString)
        .chain((one) => fc.constantFrom(one, '', `${one}${one}`));
    default:
      throw new Error(`no arbitrary for basic type ${c}`);
  }
}

/** A type and a value of it. */
export function typedValueArb(o: TypeOptions): fc.Arbitrary<{ type: string; value: GValue }> {
  return typeTreeArb(o).chain((t) => valueArb(t, o).map((value) => ({ type: typeString(t), value })));
}

/**
 * A canonical text of a decoded value for equality (handles bigint,
 * Uint8Array, Map, NaN and -0, which deepEqual/JSON treat loosely).
 */
export function canon(v: GValue | undefined): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString('hex')}`;
  if (v instanceof Map) return `{${[...v].map(([k, x]) => `${canon(k)}:${canon(x)}`).join(',')}}`;
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`;
  return `<${v.type}>${canon(v.value)}`;
}

// ---------------------------------------------------------------------------
// Byte mutations

export type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0xfe) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }) },
);

/** Apply mutations; positions wrap around the current length. */
export function mutate(input: Uint8Array, muts: readonly Mutation[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const m of muts) {
    if (b.length === 0 && m.op !== 'insert') continue;
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.op) {
      case 'flip':
        b[at]! ^= 1 << m.bit;
        break;
      case 'set':
        b[at] = m.byte;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert':
        b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
        break;
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.n)]);
        break;
    }
  }
  return b;
}

// ---------------------------------------------------------------------------
// OSTree commits

const checksumBytes = fc.uint8Array({ minLength: 32, maxLength: 32 });

const metadataEntryArb: fc.Arbitrary<[string, Variant]> = fc.oneof(
  fc.tuple(fc.constant('ostree.composefs.digest.v0'), fc.uint8Array({ maxLength: 40 }).map((value): Variant => ({ type: 'ay', value }))),
  fc.tuple(fc.constant('version'), fc.string({ maxLength: 8 }).filter(wellFormed).map((value): Variant => ({ type: 's', value }))),
  fc.tuple(
    fc.stringMatching(/^[a-z.]{1,12}$/),
    typedValueArb({ doubles: false, maybes: false }).map(({ type, value }): Variant => ({ type, value })),
  ),
);

export const commitArb: fc.Arbitrary<Commit> = fc.record({
  metadata: fc.uniqueArray(metadataEntryArb, { maxLength: 4, selector: ([k]) => k }).map((e) => new Map(e)),
  parent: fc.oneof(fc.constant(new Uint8Array(0)), checksumBytes),
  related: fc.array(fc.tuple(fc.string({ maxLength: 6 }).filter(wellFormed), checksumBytes), { maxLength: 2 }),
  subject: fc.string({ maxLength: 20 }).filter(wellFormed),
  body: fc.string({ maxLength: 20 }).filter(wellFormed),
  timestamp: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  rootTree: checksumBytes,
  rootMeta: checksumBytes,
});

// ---------------------------------------------------------------------------
// Text inputs

/** Characters that matter to the text parsers, plus some that should not. */
const TEXT_CHARS = ['=', '"', ' ', '\t', '\n', '\r', '[', ']', '#', ';', '/', '.', '-', '_', '+', '\\', '\0', 'a', 'Z', '0', '1', 'é', '\u{1F600}', '\v'];
export const noisyTextArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(...TEXT_CHARS), maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

/** Values a person might type for a composefs/boolean setting, right and wrong. */
export const settingWordArb = fc.oneof(
  fc.constantFrom('yes', 'no', 'maybe', 'true', 'false', '1', '0', 'signed', 'verity', 'on', 'off', 'Yes', 'TRUE', ' yes ', '', 'y', 'n', '2', 'enabled', 'digest=', 'null', '__proto__', 'constructor'),
  fc.string({ maxLength: 8 }),
);

const SECTIONS = ['composefs', 'sysroot', 'root', 'etc', 'other', '__proto__'];
const KEYS = ['enabled', 'keypath', 'readonly', 'transient', 'transient-ro', 'unknown', 'constructor'];

/** prepare-root.conf text: sections of known keys with right and wrong values, sometimes noise lines. */
export const confTextArb: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      { weight: 2, arbitrary: fc.constantFrom(...SECTIONS).map((s) => `[${s}]`) },
      { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(' = ', '=', ' =', '= '), settingWordArb).map(([k, eq, v]) => `${k}${eq}${v}`) },
      { weight: 1, arbitrary: fc.constantFrom('# comment', '; comment', '', '   ', 'keypath=/etc/k', 'novalue', '[', '[]', 'a.b=c', '[a.b]', 'k[]=v', '=v') },
      { weight: 1, arbitrary: noisyTextArb },
    ),
    { maxLength: 10 },
  )
  .map((lines) => lines.join('\n'));

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

/** One kernel argument that cfsroot reads, with a right or wrong value. */
const relevantKargArb: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.constantFrom('ostree.prepare-root.composefs', 'ot-composefs'), settingWordArb).map(([k, v]) => `${k}=${v}`),
  hex64.chain((h) => fc.constantFrom(`ot-composefs=digest=${h}`, `ot-composefs=digest=${h.slice(1)}`, `ot-composefs=digest=${h.toUpperCase()}`, `ot-composefs=digest=${h}0`)),
  fc.constantFrom('ostree.prepare-root.composefs', 'ot-composefs', 'ostree', 'ostree=', 'ostree=/ostree/boot.1/os/x/0', 'ostree=/../../etc', 'ostree=" "'),
  fc.tuple(fc.constantFrom('androidboot.slot_suffix', 'androidboot.mode'), fc.constantFrom('_a', '_b', '_c', '', 'a')).map(([k, v]) => `${k}=${v}`),
  fc.constantFrom('systemd.volatile', 'systemd.volatile=no', 'systemd.volatile=state', 'quiet', 'root=UUID=1234', 'rw', '"ostree=/a b"'),
);

/** A kernel command line: relevant arguments, filler and noise, joined by whitespace. */
export const cmdlineArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.array(relevantKargArb, { maxLength: 6 }).chain((a) => fc.constantFrom(' ', '\t', '\n', '  ').map((sep) => a.join(sep))) },
  { weight: 1, arbitrary: noisyTextArb },
);

/** Lines of a key file: valid keys, wrong lengths, bad base64, blank lines, noise. */
export const keyFileTextArb: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64')) },
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString('base64')) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(), fc.constantFrom('!', '=', ' ', '-', '_', 'A', '\r'))
          .map(([b, at, c]) => {
            const s = Buffer.from(b).toString('base64');
            const i = at % (s.length + 1);
            return s.slice(0, i) + c + s.slice(i);
          }),
      },
      { weight: 1, arbitrary: fc.constantFrom('', '   ', '\r', '#comment', '====', 'AAAA') },
      { weight: 1, arbitrary: noisyTextArb },
    ),
    { maxLength: 5 },
  )
  .map((lines) => lines.join('\n'));

/** Symlink targets for the ostree= link: the right one, escapes, loops, wrong shapes, noise. */
export function linkTargetArb(commit: string): fc.Arbitrary<string> {
  const seg = fc.constantFrom('..', '.', '', 'ostree', 'deploy', 'os', 'other', `${commit}.0`, `${commit}.x`, `${commit.toUpperCase()}.0`, `${commit}`, `${commit}.0.1`, `${commit}.99999999999999999999`, 'evil\nname', 'loop', 'file', 'fifo', 'self', 'x'.repeat(300));
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(seg, { maxLength: 8 }).map((s) => s.join('/')) },
    { weight: 2, arbitrary: fc.array(seg, { maxLength: 8 }).map((s) => `/${s.join('/')}`) },
    { weight: 1, arbitrary: fc.constantFrom(`../../../deploy/os/deploy/${commit}.0`, `../../../deploy/os/deploy/${commit}.0/`, '/', '/etc', '/proc/self/root', 'loop', '../0', '') },
    { weight: 1, arbitrary: noisyTextArb.filter((s) => !s.includes('\0')) },
  );
}
