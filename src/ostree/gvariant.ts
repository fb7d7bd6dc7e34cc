/**
 * GVariant serialisation in normal form (little-endian): a strict reader and
 * a writer. Follows SPEC §2 ("GVariant serialisation") and the GVariant
 * serialisation format as GLib implements it: values aligned to their type's
 * alignment relative to the container start, framing offsets of 1/2/4/8
 * bytes chosen by the container's total size, variants = value + NUL + type.
 *
 * The boot reads attacker-reachable bytes (.commit, .commitmeta), so the
 * reader accepts only normal form: GLib would quietly substitute default
 * values for a malformed child; we refuse with EGVARIANT instead, naming the
 * offset and type. Every length we act on is bounded by the input's length,
 * so a forged offset can neither allocate nor loop beyond the input size.
 *
 * Lengths are not enough: a 128 MiB object can frame 33.5 million empty
 * arrays, and a JS value per element would exhaust the heap. So a reader
 * takes each container's element count from its framing and spends it from
 * a budget of MAX_VALUES before visiting any element, and type strings are
 * capped at MAX_TYPE_LENGTH (SPEC §2 "Limits"). The boot does not decode
 * whole objects at all: validate checks normal form building nothing,
 * locateVardict / locateMembers find values by their framing, and
 * decodeLocated builds only the values asked for ("Lazy reading" below).
 *
 * Value mapping (other modules rely on it):
 *   b -> boolean; y n q i u h -> number; x t -> bigint; d -> number;
 *   s o g -> string; ay -> Uint8Array; other aX -> GValue[];
 *   a{KV} -> Map<key, value>; (..) and a lone {KV} -> GValue[];
 *   v -> Variant { type, value }; mX -> null (Nothing) or the value (Just).
 * (mmX cannot tell Just(Nothing) from Nothing with this mapping; the boot
 * never uses maybe types.)
 */

import { isUtf8 } from 'node:buffer';
import { CfsError } from '../errors.js';

export type GBasic = boolean | number | bigint | string;
// Map keys are always basic values (GBasic); the Map is typed loosely so callers
// can build dictionaries generically without casts.
export type GValue = GBasic | Uint8Array | GValue[] | Map<GValue, GValue> | Variant | null;

export interface Variant {
  type: string;
  value: GValue;
}

/**
 * Deepest nesting of containers and variants we decode (GLib allows 128).
 * The boot's deepest real value, a{sv} holding aay, is 4 levels deep; the
 * limit only exists so a crafted nest of variants cannot exhaust the stack.
 */
export const MAX_DEPTH = 64;

/**
 * Longest type string we parse: a variant's type and a 'g' value (D-Bus
 * caps signatures at 255). The longest the boot reads is "(a{sv}aya(say)sstayay)";
 * a type string of millions of characters would otherwise cost a parse node
 * per character.
 */
export const MAX_TYPE_LENGTH = 1024;

// ---------------------------------------------------------------------------
// Type strings

interface TypeNode {
  /** The complete type string of this node, e.g. "a{sv}". */
  str: string;
  kind: 'basic' | 'variant' | 'array' | 'maybe' | 'tuple' | 'dict';
  /** Alignment in bytes: 1, 2, 4 or 8. */
  align: number;
  /** Serialised size if every value of this type has the same size, else null. */
  fixed: number | null;
  /** array / maybe: the element type. */
  elem?: TypeNode;
  /** tuple: its members; dict entry: [key, value]. */
  members?: TypeNode[];
}

const BASIC: Record<string, { align: number; fixed: number | null }> = {
  b: { align: 1, fixed: 1 },
  y: { align: 1, fixed: 1 },
  n: { align: 2, fixed: 2 },
  q: { align: 2, fixed: 2 },
  i: { align: 4, fixed: 4 },
  u: { align: 4, fixed: 4 },
  h: { align: 4, fixed: 4 },
  x: { align: 8, fixed: 8 },
  t: { align: 8, fixed: 8 },
  d: { align: 8, fixed: 8 },
  s: { align: 1, fixed: null },
  o: { align: 1, fixed: null },
  g: { align: 1, fixed: null },
};

function badType(s: string, pos: number, why: string): never {
  throw new CfsError('EGVARIANT', `invalid GVariant type string '${s}' at character ${pos}: ${why}`);
}

function alignUp(n: number, a: number): number {
  return (n + a - 1) & ~(a - 1);
}

/** Parse one complete type starting at `pos`; returns the node and the position after it. */
function parseOne(s: string, pos: number, depth: number): [TypeNode, number] {
  if (depth > MAX_DEPTH) {
    throw new CfsError('ELIMIT', `GVariant type string '${s.slice(0, 80)}' nests deeper than ${MAX_DEPTH} levels`);
  }
  const c = s[pos];
  if (c === undefined) badType(s, pos, 'ended where a type was expected');
  const basic = BASIC[c];
  if (basic) return [{ str: c, kind: 'basic', ...basic }, pos + 1];
  switch (c) {
    case 'v':
      return [{ str: 'v', kind: 'variant', align: 8, fixed: null }, pos + 1];
    case 'a':
    case 'm': {
      const [elem, next] = parseOne(s, pos + 1, depth + 1);
      const kind = c === 'a' ? 'array' : 'maybe';
      return [{ str: s.slice(pos, next), kind, align: elem.align, fixed: null, elem }, next];
    }
    case '(': {
      const members: TypeNode[] = [];
      let p = pos + 1;
      while (s[p] !== ')') {
        if (p >= s.length) badType(s, p, "missing ')'");
        const [m, next] = parseOne(s, p, depth + 1);
        members.push(m);
        p = next;
      }
      const str = s.slice(pos, p + 1);
      return [{ str, kind: 'tuple', ...structLayout(members), members }, p + 1];
    }
    case '{': {
      const [key, p1] = parseOne(s, pos + 1, depth + 1);
      if (key.kind !== 'basic') badType(s, pos + 1, 'a dict entry key must be a basic type');
      const [value, p2] = parseOne(s, p1, depth + 1);
      if (s[p2] !== '}') badType(s, p2, "expected '}' after the dict entry value type");
      const members = [key, value];
      return [{ str: s.slice(pos, p2 + 1), kind: 'dict', ...structLayout(members), members }, p2 + 1];
    }
    default:
      badType(s, pos, `'${c}' is not a definite GVariant type`);
  }
}

/** Alignment and fixed size of a tuple / dict entry with these members. */
function structLayout(members: TypeNode[]): { align: number; fixed: number | null } {
  let align = 1;
  let off = 0;
  let fixed = true;
  for (const m of members) {
    align = Math.max(align, m.align);
    if (m.fixed === null) fixed = false;
    else off = alignUp(off, m.align) + m.fixed;
  }
  if (!fixed) return { align, fixed: null };
  // The unit tuple "()" occupies one zero byte so that arrays of it have a length.
  if (members.length === 0) return { align, fixed: 1 };
  return { align, fixed: alignUp(off, align) };
}

// Types come from our own code (a handful) and from variants in the input;
// cap the cache so crafted input cannot grow it without bound.
const typeCache = new Map<string, TypeNode>();
const TYPE_CACHE_MAX = 256;

function parseType(s: string): TypeNode {
  const hit = typeCache.get(s);
  if (hit) return hit;
  if (s.length > MAX_TYPE_LENGTH) {
    throw new CfsError('ELIMIT', `GVariant type string of ${s.length} characters, over the limit of ${MAX_TYPE_LENGTH}`);
  }
  const [node, end] = parseOne(s, 0, 0);
  if (end !== s.length) badType(s, end, 'trailing characters after one complete type');
  if (typeCache.size < TYPE_CACHE_MAX) typeCache.set(s, node);
  return node;
}

/** True if `s` is exactly one complete, definite GVariant type string. */
export function isValidType(s: string): boolean {
  try {
    parseType(s);
    return true;
  } catch {
    return false;
  }
}

// D-Bus object path: "/" or "/seg/seg" with segments of [A-Za-z0-9_]+.
const OBJECT_PATH = /^\/(?:[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*)?$/;

/** GLib's 'g': zero or more complete types, without maybe types (D-Bus has none). */
function isSignature(s: string): boolean {
  if (s.includes('m')) return false;
  let p = 0;
  try {
    while (p < s.length) p = parseOne(s, p, 0)[1];
  } catch {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Framing offsets

/** Offset size the reader infers from a container's total size. */
function offsetSizeForTotal(total: number): number {
  if (total === 0) return 0;
  if (total <= 0xff) return 1;
  if (total <= 0xffff) return 2;
  if (total <= 0xffffffff) return 4;
  return 8;
}

/** Smallest offset size whose range covers the body plus `n` offsets of that size (also src/ostree/booted.ts's writer). */
export function offsetSizeForBody(body: number, n: number): number {
  if (body + n <= 0xff) return 1;
  if (body + 2 * n <= 0xffff) return 2;
  if (body + 4 * n <= 0xffffffff) return 4;
  return 8;
}

// ---------------------------------------------------------------------------
// Reader

/**
 * Most values one decode or one check visits (SPEC §2 "Limits"): every
 * array element, tuple member and dictionary-entry member counts one; an
 * `ay` counts one whatever its length. A container's count is taken from its
 * framing before any element is read, so an array of millions of empty
 * elements (an `aay` of 33.5 M empty arrays fits in 128 MiB) is refused at
 * once, without a loop or an allocation per element. The largest real
 * objects the boot meets, commits whose metadata lists every package of the
 * image (`rpmostree.rpmdb.pkglist`, a(stsss): 6 values a package, a few
 * thousand packages), stay below 1/30 of it. It bounds the time of a check
 * and the memory of a decode whatever the bytes say.
 */
export const MAX_VALUES = 1 << 20;

/**
 * Most entries of a dictionary cfsroot looks keys up in (locateVardict: a
 * `.commitmeta`, a commit's metadata). ostree writes a handful; a commit
 * made by rpm-ostree or bootc carries a few dozen.
 */
export const MAX_VARDICT_ENTRIES = 4096;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lossy = new TextDecoder('utf-8');

function prefix(where: string | undefined): string {
  return where ? `${where}: ` : '';
}

class Reader {
  readonly view: DataView;
  /** Values this reader may still visit (MAX_VALUES in all). */
  private budget = MAX_VALUES;
  /** The dictionary keys around the value being read, outermost first (node, start, end): named in limit errors. */
  private readonly keys: Array<[TypeNode, number, number]> = [];
  constructor(
    readonly buf: Uint8Array,
    readonly where: string,
    /** Where `buf` starts in the object: offsets in messages are the object's. */
    readonly base: number,
    /** False: check normal form only, building no value (read returns null). */
    readonly build: boolean,
    /** The dictionary key `buf` is the value of, if any (for messages). */
    readonly outerKey?: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  bad(t: TypeNode, at: number, why: string): never {
    throw new CfsError('EGVARIANT', `${this.where}GVariant '${t.str}' at offset ${this.base + at}: ${why}`);
  }

  /** ` (key "a" > "b")`: the dictionary keys the value being read sits under. */
  keyNote(): string {
    const names = this.outerKey === undefined ? [] : [this.outerKey];
    for (const [k, s, e] of this.keys) {
      names.push(k.fixed === null ? utf8Lossy.decode(this.buf.subarray(s, Math.min(e - 1, s + 80))) : String(this.readBasic(k, s, e)));
    }
    return names.length === 0 ? '' : ` (key ${names.map((n) => JSON.stringify(n)).join(' > ')})`;
  }

  /** Take `n` values from the budget, or refuse naming the container, its key and the limit. */
  spend(n: number, t: TypeNode, at: number): void {
    if (n > this.budget) {
      const used = MAX_VALUES - this.budget;
      throw new CfsError(
        'ELIMIT',
        `${this.where}GVariant '${t.str}' at offset ${this.base + at}${this.keyNote()}: ${n} elements, over the limit of ` +
          `${MAX_VALUES} values per object${used > 0 ? ` (${used} already read)` : ''}`,
      );
    }
    this.budget -= n;
  }

  readOffset(t: TypeNode, at: number, size: number): number {
    switch (size) {
      case 1:
        return this.view.getUint8(at);
      case 2:
        return this.view.getUint16(at, true);
      case 4:
        return this.view.getUint32(at, true);
      default: {
        const v = this.view.getBigUint64(at, true);
        // Any real offset is below the input length, far under 2^53.
        if (v > BigInt(this.buf.length)) this.bad(t, at, `framing offset ${v} is beyond the data`);
        return Number(v);
      }
    }
  }

  /** Bytes [from, to) must be zero: normal form pads with zeros only. */
  checkPadding(t: TypeNode, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if (this.buf[i] !== 0) this.bad(t, i, `padding byte is 0x${this.buf[i]!.toString(16)}, normal form requires 0`);
    }
  }

  read(t: TypeNode, start: number, end: number, depth: number): GValue {
    if (depth > MAX_DEPTH) {
      throw new CfsError('ELIMIT', `${this.where}GVariant nests deeper than ${MAX_DEPTH} levels at offset ${this.base + start}`);
    }
    const len = end - start;
    if (t.fixed !== null && len !== t.fixed) {
      this.bad(t, start, `size is ${len} bytes, this type always has ${t.fixed}`);
    }
    switch (t.kind) {
      case 'basic':
        return this.readBasic(t, start, end);
      case 'array':
        return this.readArray(t, start, end, depth);
      case 'maybe':
        return this.readMaybe(t, start, end, depth);
      case 'tuple':
      case 'dict':
        return this.readStruct(t, start, end, depth);
      case 'variant':
        return this.readVariant(t, start, end, depth);
    }
  }

  readBasic(t: TypeNode, start: number, end: number): GValue {
    const v = this.view;
    switch (t.str) {
      case 'b': {
        const b = v.getUint8(start);
        if (b > 1) this.bad(t, start, `boolean byte is ${b}, expected 0 or 1`);
        return b === 1;
      }
      case 'y':
        return v.getUint8(start);
      case 'n':
        return v.getInt16(start, true);
      case 'q':
        return v.getUint16(start, true);
      case 'i':
      case 'h':
        return v.getInt32(start, true);
      case 'u':
        return v.getUint32(start, true);
      case 'x':
        return v.getBigInt64(start, true);
      case 't':
        return v.getBigUint64(start, true);
      case 'd':
        return v.getFloat64(start, true);
      default:
        return this.readString(t, start, end, this.build);
    }
  }

  /** A string (s, o, g): checked in full; returned if `keep`, else null. */
  readString(t: TypeNode, start: number, end: number, keep: boolean): string | null {
    if (end === start) this.bad(t, start, 'string is empty, expected at least its terminating NUL');
    if (this.buf[end - 1] !== 0) this.bad(t, end - 1, 'string is not NUL-terminated');
    const body = this.buf.subarray(start, end - 1);
    const nul = body.indexOf(0);
    if (nul !== -1) this.bad(t, start + nul, 'string contains an interior NUL byte');
    // A check needs no JS string for 's': validating the bytes allocates nothing.
    if (!keep && t.str === 's') {
      if (!isUtf8(body)) this.bad(t, start, 'string is not valid UTF-8');
      return null;
    }
    if (t.str === 'g' && body.length > MAX_TYPE_LENGTH) {
      throw new CfsError('ELIMIT', `${this.where}GVariant 'g' at offset ${this.base + start}${this.keyNote()}: a type signature of ${body.length} characters, over the limit of ${MAX_TYPE_LENGTH}`);
    }
    let s: string;
    try {
      s = utf8.decode(body);
    } catch {
      this.bad(t, start, 'string is not valid UTF-8');
    }
    if (t.str === 'o' && !OBJECT_PATH.test(s)) this.bad(t, start, `'${s}' is not a valid object path`);
    if (t.str === 'g' && !isSignature(s)) this.bad(t, start, `'${s}' is not a valid type signature`);
    return keep ? s : null;
  }

  /**
   * An array's element count, from its size (fixed-size elements) or its
   * last framing offset alone; for variable-size elements also the offset
   * size and where the offset table starts (`last`, relative to `start`).
   */
  arrayFraming(t: TypeNode, start: number, end: number): { n: number; osize: number; last: number } {
    const elem = t.elem!;
    const len = end - start;
    if (elem.fixed !== null) {
      if (len % elem.fixed !== 0) {
        this.bad(t, start, `size ${len} is not a multiple of the element size ${elem.fixed}`);
      }
      return { n: len / elem.fixed, osize: 0, last: len };
    }
    if (len === 0) return { n: 0, osize: 0, last: 0 };
    const osize = offsetSizeForTotal(len);
    if (len < osize) this.bad(t, start, `${len} bytes cannot hold a ${osize}-byte framing offset`);
    const last = this.readOffset(t, end - osize, osize);
    if (last > len - osize) this.bad(t, end - osize, `last framing offset ${last} points past the elements (size ${len})`);
    const tableLen = len - last;
    if (tableLen % osize !== 0) {
      this.bad(t, start + last, `framing offset table of ${tableLen} bytes is not a multiple of ${osize}`);
    }
    return { n: tableLen / osize, osize, last };
  }

  /** Call `visit` with each element's span, in order, checking framing offsets and padding; the count is spent first. */
  forEachElement(t: TypeNode, start: number, end: number, visit: (s: number, e: number) => void): void {
    const elem = t.elem!;
    const { n, osize, last } = this.arrayFraming(t, start, end);
    this.spend(n, t, start);
    if (elem.fixed !== null) {
      for (let p = start; p < end; p += elem.fixed) visit(p, p + elem.fixed);
      return;
    }
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const s = alignUp(pos, elem.align);
      const at = start + last + i * osize;
      const e = this.readOffset(t, at, osize);
      if (s > e || e > last) {
        this.bad(t, at, `framing offset ${e} of element ${i} is out of order or out of range (element starts at ${s}, data ends at ${last})`);
      }
      this.checkPadding(t, start + pos, start + s);
      visit(start + s, start + e);
      pos = e;
    }
  }

  readArray(t: TypeNode, start: number, end: number, depth: number): GValue {
    const elem = t.elem!;
    if (elem.str === 'y') return this.build ? this.buf.slice(start, end) : null;
    if (!this.build) {
      if (elem.kind === 'basic' && elem.fixed !== null && elem.str !== 'b') {
        // Every byte pattern is a valid number: only the size can be wrong.
        this.spend(this.arrayFraming(t, start, end).n, t, start);
      } else {
        this.forEachElement(t, start, end, (s, e) => void this.read(elem, s, e, depth + 1));
      }
      return null;
    }
    if (elem.kind !== 'dict') {
      const out: GValue[] = [];
      this.forEachElement(t, start, end, (s, e) => void out.push(this.read(elem, s, e, depth + 1)));
      return out;
    }
    const map = new Map<GBasic, GValue>();
    this.forEachElement(t, start, end, (s, e) => {
      const [k, val] = this.read(elem, s, e, depth + 1) as [GBasic, GValue];
      // GLib keeps duplicates and lookups return the first; a Map cannot
      // represent that faithfully, and an ambiguous dictionary in boot
      // metadata is better refused than resolved silently.
      if (map.has(k)) this.bad(t, s, `duplicate dictionary key ${JSON.stringify(String(k))}`);
      map.set(k, val);
    });
    return map;
  }

  readMaybe(t: TypeNode, start: number, end: number, depth: number): GValue {
    const elem = t.elem!;
    const len = end - start;
    if (len === 0) return null;
    if (elem.fixed !== null) {
      if (len !== elem.fixed) this.bad(t, start, `size ${len} is neither 0 nor the element size ${elem.fixed}`);
      return this.read(elem, start, end, depth + 1);
    }
    // A Just of a variable-size value carries one extra zero byte.
    if (this.buf[end - 1] !== 0) this.bad(t, end - 1, 'maybe value does not end in its 0 marker byte');
    return this.read(elem, start, end - 1, depth + 1);
  }

  /** Call `visit` with each member's type and span, in order, checking framing offsets, padding and trailing bytes. */
  forEachMember(t: TypeNode, start: number, end: number, visit: (m: TypeNode, s: number, e: number, i: number) => void): void {
    const members = t.members!;
    const len = end - start;
    this.spend(members.length, t, start);
    if (members.length === 0) {
      // Size already checked (fixed 1); the byte must be zero.
      this.checkPadding(t, start, end);
      return;
    }
    const osize = offsetSizeForTotal(len);
    let used = 0; // framing offsets consumed from the end
    let pos = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      const s = alignUp(pos, m.align);
      let e: number;
      if (m.fixed !== null) {
        e = s + m.fixed;
      } else if (i === members.length - 1) {
        e = len - used * osize;
      } else {
        used++;
        const at = len - used * osize;
        if (osize === 0 || at < 0) this.bad(t, start, `${len} bytes cannot hold ${used} framing offset(s)`);
        e = this.readOffset(t, start + at, osize);
      }
      const limit = len - used * osize;
      if (s > limit || e < s || e > limit) {
        this.bad(t, start + s, `member ${i} ('${m.str}') spans ${s}..${e}, outside the ${limit} bytes of member data`);
      }
      this.checkPadding(t, start + pos, start + s);
      visit(m, start + s, start + e, i);
      pos = e;
    }
    if (t.fixed !== null) {
      this.checkPadding(t, start + pos, end);
    } else if (pos !== len - used * osize) {
      this.bad(t, start + pos, `${len - used * osize - pos} unexpected bytes after the last member`);
    }
  }

  readStruct(t: TypeNode, start: number, end: number, depth: number): GValue {
    const out: GValue[] = [];
    const entry = t.kind === 'dict';
    let keyEnd = start;
    this.forEachMember(t, start, end, (m, s, e, i) => {
      // A dict entry's value: its key (member 0, read just before) names it in limit errors.
      if (entry && i === 1) this.keys.push([t.members![0]!, start, keyEnd]);
      out.push(this.read(m, s, e, depth + 1));
      if (entry && i === 1) this.keys.pop();
      keyEnd = e;
    });
    return this.build ? out : null;
  }

  /** A variant's parts: `sep`, the NUL that ends its value, and its inner type. */
  splitVariant(t: TypeNode, start: number, end: number): { sep: number; typeStr: string; inner: TypeNode } {
    if (end === start) this.bad(t, start, 'variant is empty, expected value + NUL + type string');
    // The type string follows the last NUL; look no further back than the longest one read.
    const from = Math.max(start, end - MAX_TYPE_LENGTH - 1);
    const found = this.buf.subarray(from, end).lastIndexOf(0);
    if (found < 0 && from > start) {
      throw new CfsError('ELIMIT', `${this.where}GVariant 'v' at offset ${this.base + start}${this.keyNote()}: type string longer than the limit of ${MAX_TYPE_LENGTH} characters`);
    }
    if (found < 0) this.bad(t, start, 'variant has no NUL separating value and type string');
    const sep = from + found;
    const typeBytes = this.buf.subarray(sep + 1, end);
    let typeStr = '';
    for (const b of typeBytes) {
      if (b < 0x21 || b > 0x7e) this.bad(t, sep + 1, 'variant type string contains a non-type character');
      typeStr += String.fromCharCode(b);
    }
    let inner: TypeNode;
    try {
      inner = parseType(typeStr);
    } catch (e) {
      if (e instanceof CfsError && e.code === 'ELIMIT') throw new CfsError('ELIMIT', `${this.where}GVariant 'v' at offset ${this.base + start}${this.keyNote()}: ${e.message}`);
      this.bad(t, sep + 1, `bad variant type string '${typeStr}'`);
    }
    return { sep, typeStr, inner };
  }

  readVariant(t: TypeNode, start: number, end: number, depth: number): GValue {
    const { sep, typeStr, inner } = this.splitVariant(t, start, end);
    const value = this.read(inner, start, sep, depth + 1);
    return this.build ? { type: typeStr, value } : null;
  }
}

/**
 * Decode `bytes` as a normal-form GVariant of `type`. `where` (a file path,
 * say) prefixes error messages. Throws EGVARIANT on anything malformed,
 * ELIMIT on excessive nesting or more than MAX_VALUES values.
 */
export function decode(type: string, bytes: Uint8Array, where?: string): GValue {
  const t = parseType(type);
  return new Reader(bytes, prefix(where), 0, true).read(t, 0, bytes.length, 0);
}

/** Decode an `a{sv}` dictionary (commit metadata, .commitmeta, /run/ostree-booted). */
export function decodeVardict(bytes: Uint8Array, where?: string): Map<string, Variant> {
  return decode('a{sv}', bytes, where) as Map<string, Variant>;
}

// ---------------------------------------------------------------------------
// Lazy reading: check everything, build only what is asked for

/**
 * A value found inside serialised data and not decoded yet: its type, its
 * bytes (a view into the data, at the alignment the data gave it), where
 * they start in the object, and the dictionary key it is the value of.
 */
export interface Located {
  type: string;
  bytes: Uint8Array;
  offset: number;
  key?: string;
}

/** A whole object as a Located value. */
export function whole(type: string, bytes: Uint8Array): Located {
  return { type, bytes, offset: 0 };
}

function readerFor(v: Located, where: string | undefined, build: boolean): Reader {
  return new Reader(v.bytes, prefix(where), v.offset, build, v.key);
}

/**
 * Check that `v` is normal form, as decode would, without building its
 * value: time linear in its size (at most MAX_VALUES values visited), no
 * allocation per element. Duplicate dictionary keys are not looked for here
 * (that needs every key in memory); locateVardict and decode refuse them in
 * every dictionary a value is taken from.
 */
export function validate(v: Located, where?: string): void {
  readerFor(v, where, false).read(parseType(v.type), 0, v.bytes.length, 0);
}

/** Decode a located value (as decode, with offsets and the key named in messages). */
export function decodeLocated(v: Located, where?: string): GValue {
  return readerFor(v, where, true).read(parseType(v.type), 0, v.bytes.length, 0);
}

/** The members of a tuple, located from its framing; the members themselves are not read. */
export function locateMembers(v: Located, where?: string): Located[] {
  const t = parseType(v.type);
  if (t.kind !== 'tuple') throw new CfsError('EINTERNAL', `locateMembers: '${v.type}' is not a tuple type`);
  const r = readerFor(v, where, false);
  if (t.fixed !== null && v.bytes.length !== t.fixed) r.bad(t, 0, `size is ${v.bytes.length} bytes, this type always has ${t.fixed}`);
  const out: Located[] = [];
  r.forEachMember(t, 0, v.bytes.length, (m, s, e) => {
    out.push({ type: m.str, bytes: v.bytes.subarray(s, e), offset: v.offset + s, ...(v.key === undefined ? {} : { key: v.key }) });
  });
  return out;
}

/** How many elements an array holds, from its framing alone. */
export function countElements(v: Located, where?: string): number {
  const t = parseType(v.type);
  if (t.kind !== 'array') throw new CfsError('EINTERNAL', `countElements: '${v.type}' is not an array type`);
  return readerFor(v, where, false).arrayFraming(t, 0, v.bytes.length).n;
}

const VARDICT = 'a{sv}';

/**
 * The entries of an `a{sv}`, each value located but not read: reads the
 * dictionary's framing, its keys and the variants' type strings, at most
 * MAX_VARDICT_ENTRIES of them (refused from the framing before any key is
 * read). A duplicate key is refused. Check the values with validate and
 * decode only those needed with decodeLocated.
 */
export function locateVardict(v: Located, where?: string): Map<string, Located> {
  if (v.type !== VARDICT) throw new CfsError('EINTERNAL', `locateVardict: '${v.type}' is not ${VARDICT}`);
  const t = parseType(VARDICT);
  const entry = t.elem!;
  const r = readerFor(v, where, false);
  const { n } = r.arrayFraming(t, 0, v.bytes.length);
  if (n > MAX_VARDICT_ENTRIES) {
    throw new CfsError(
      'ELIMIT',
      `${prefix(where)}GVariant '${VARDICT}' at offset ${v.offset}${r.keyNote()}: ${n} entries, over the limit of ${MAX_VARDICT_ENTRIES} for a dictionary cfsroot looks keys up in`,
    );
  }
  const out = new Map<string, Located>();
  r.forEachElement(t, 0, v.bytes.length, (s, e) => {
    let key = '';
    r.forEachMember(entry, s, e, (m, ms, me, i) => {
      if (i === 0) {
        key = r.readString(m, ms, me, true)!;
        return;
      }
      if (out.has(key)) r.bad(t, s, `duplicate dictionary key ${JSON.stringify(key)}`);
      const { sep, typeStr } = r.splitVariant(m, ms, me);
      out.set(key, { type: typeStr, bytes: v.bytes.subarray(ms, sep), offset: v.offset + ms, key });
    });
  });
  return out;
}

// ---------------------------------------------------------------------------
// Writer

const utf8enc = new TextEncoder();

function cannot(t: TypeNode, why: string): never {
  throw new CfsError('EGVARIANT', `cannot encode GVariant '${t.str}': ${why}`);
}

/**
 * One serialised value, written front to back into one growing buffer.
 * Positions are from the start of the whole value: GVariant aligns each
 * child relative to its container, and every container starts at a
 * multiple of its own alignment, so the two agree. (One buffer, not a
 * byte array per member: a boot encodes /run/ostree-booted once, on cold
 * code, where each small allocation costs about a microsecond.)
 */
class Writer {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  pos = 0;
  /** Room for n more bytes; what lies past pos is zero (the buffer only grows). */
  room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }
  pad(align: number): void {
    const to = alignUp(this.pos, align);
    this.room(to - this.pos);
    this.pos = to;
  }
  byte(b: number): void {
    this.room(1);
    this.buf[this.pos++] = b;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** `s` as UTF-8, without a terminator. */
  utf8(s: string): void {
    this.room(s.length * 3);
    this.pos += utf8enc.encodeInto(s, this.buf.subarray(this.pos)).written;
  }
  /** The framing offsets `ends` (positions, made relative to `start`) of a container that began at `start`. */
  offsets(start: number, ends: readonly number[]): void {
    const size = offsetSizeForBody(this.pos - start, ends.length);
    this.room(ends.length * size);
    for (const end of ends) {
      const o = end - start;
      if (size === 1) this.view.setUint8(this.pos, o);
      else if (size === 2) this.view.setUint16(this.pos, o, true);
      else if (size === 4) this.view.setUint32(this.pos, o, true);
      else this.view.setBigUint64(this.pos, BigInt(o), true);
      this.pos += size;
    }
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const INT_RANGE: Record<string, [number, number]> = {
  y: [0, 0xff],
  n: [-0x8000, 0x7fff],
  q: [0, 0xffff],
  i: [-0x80000000, 0x7fffffff],
  h: [-0x80000000, 0x7fffffff],
  u: [0, 0xffffffff],
};
const INT64_RANGE: [bigint, bigint] = [-(1n << 63n), (1n << 63n) - 1n];
const UINT64_RANGE: [bigint, bigint] = [0n, (1n << 64n) - 1n];

function writeBasic(w: Writer, t: TypeNode, v: GValue): void {
  const c = t.str;
  if (c === 'b') {
    if (typeof v !== 'boolean') cannot(t, `expected a boolean, got ${typeof v}`);
    w.byte(v ? 1 : 0);
    return;
  }
  if (c === 's' || c === 'o' || c === 'g') {
    if (typeof v !== 'string') cannot(t, `expected a string, got ${typeof v}`);
    if (v.includes('\0')) cannot(t, 'string contains a NUL character');
    if (c === 'o' && !OBJECT_PATH.test(v)) cannot(t, `'${v}' is not a valid object path`);
    if (c === 'g' && !isSignature(v)) cannot(t, `'${v}' is not a valid type signature`);
    w.utf8(v);
    w.byte(0);
    return;
  }
  const range = INT_RANGE[c];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      cannot(t, `expected an integer in ${range[0]}..${range[1]}, got ${String(v)}`);
    }
    w.room(t.fixed!);
    if (c === 'y') w.view.setUint8(w.pos, v);
    else if (c === 'n') w.view.setInt16(w.pos, v, true);
    else if (c === 'q') w.view.setUint16(w.pos, v, true);
    else if (c === 'u') w.view.setUint32(w.pos, v, true);
    else w.view.setInt32(w.pos, v, true);
    w.pos += t.fixed!;
    return;
  }
  if (c === 'd') {
    if (typeof v !== 'number') cannot(t, `expected a number, got ${typeof v}`);
    w.room(8);
    w.view.setFloat64(w.pos, v, true);
    w.pos += 8;
    return;
  }
  // x, t: bigint, or a safe-integer number for convenience (st_dev, sizes).
  let big: bigint;
  if (typeof v === 'bigint') big = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) big = BigInt(v);
  else cannot(t, `expected a bigint, got ${String(v)}`);
  const [lo, hi] = c === 'x' ? INT64_RANGE : UINT64_RANGE;
  if (big < lo || big > hi) cannot(t, `${big} is out of range`);
  w.room(8);
  if (c === 'x') w.view.setBigInt64(w.pos, big, true);
  else w.view.setBigUint64(w.pos, big, true);
  w.pos += 8;
}

function write(w: Writer, t: TypeNode, v: GValue, depth: number): void {
  if (depth > MAX_DEPTH) throw new CfsError('ELIMIT', `cannot encode GVariant nested deeper than ${MAX_DEPTH} levels`);
  switch (t.kind) {
    case 'basic':
      return writeBasic(w, t, v);
    case 'variant': {
      if (v === null || typeof v !== 'object' || !('type' in v) || typeof v.type !== 'string') {
        cannot(t, 'expected a { type, value } variant');
      }
      const inner = parseType(v.type);
      write(w, inner, v.value, depth + 1);
      w.byte(0);
      w.utf8(v.type);
      return;
    }
    case 'maybe': {
      if (v === null) return;
      const elem = t.elem!;
      write(w, elem, v, depth + 1);
      if (elem.fixed === null) w.byte(0);
      return;
    }
    case 'array':
      return writeArray(w, t, v, depth);
    case 'tuple':
    case 'dict':
      return writeStruct(w, t, v, depth);
  }
}

function writeArray(w: Writer, t: TypeNode, v: GValue, depth: number): void {
  const elem = t.elem!;
  if (elem.str === 'y') {
    if (!(v instanceof Uint8Array)) cannot(t, 'expected a Uint8Array');
    w.bytes(v);
    return;
  }
  let items: GValue[];
  if (elem.kind === 'dict') {
    if (v instanceof Map) items = [...v].map(([k, val]) => [k, val]);
    else if (Array.isArray(v)) items = v;
    else cannot(t, 'expected a Map (or an array of [key, value] pairs)');
  } else {
    if (!Array.isArray(v)) cannot(t, 'expected an array');
    items = v;
  }
  if (elem.fixed !== null) {
    for (const item of items) write(w, elem, item, depth + 1);
    return;
  }
  if (items.length === 0) return;
  const start = w.pos;
  const ends: number[] = [];
  for (const item of items) {
    w.pad(elem.align);
    write(w, elem, item, depth + 1);
    ends.push(w.pos);
  }
  w.offsets(start, ends);
}

function writeStruct(w: Writer, t: TypeNode, v: GValue, depth: number): void {
  const members = t.members!;
  if (!Array.isArray(v) || v.length !== members.length) {
    cannot(t, `expected an array of ${members.length} member values`);
  }
  if (members.length === 0) {
    w.byte(0);
    return;
  }
  const start = w.pos;
  const ends: number[] = [];
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    w.pad(m.align);
    write(w, m, v[i]!, depth + 1);
    // Every variable-size member but the last records where it ends.
    if (m.fixed === null && i !== members.length - 1) ends.push(w.pos);
  }
  if (t.fixed !== null) {
    w.pad(t.align);
    return;
  }
  // Offsets are stored last-member-first.
  if (ends.length > 0) w.offsets(start, ends.reverse());
}

/** Serialise `value` as a normal-form GVariant of `type`. Throws EGVARIANT if the value does not fit the type. */
export function encode(type: string, value: GValue): Uint8Array {
  const w = new Writer();
  write(w, parseType(type), value, 0);
  return w.result();
}

/** Serialise an `a{sv}` with its entries in the order given (the caller chooses the order). */
export function encodeVardict(entries: Iterable<[string, Variant]>): Uint8Array {
  const items: GValue[] = [];
  for (const [k, v] of entries) items.push([k, v]);
  return encode('a{sv}', items);
}
