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
 * Value mapping (other modules rely on it):
 *   b -> boolean; y n q i u h -> number; x t -> bigint; d -> number;
 *   s o g -> string; ay -> Uint8Array; other aX -> GValue[];
 *   a{KV} -> Map<key, value>; (..) and a lone {KV} -> GValue[];
 *   v -> Variant { type, value }; mX -> null (Nothing) or the value (Just).
 * (mmX cannot tell Just(Nothing) from Nothing with this mapping; the boot
 * never uses maybe types.)
 */

import { CfsError } from './errors.js';

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

/** Smallest offset size whose range covers the body plus `n` offsets of that size. */
function offsetSizeForBody(body: number, n: number): number {
  if (body + n <= 0xff) return 1;
  if (body + 2 * n <= 0xffff) return 2;
  if (body + 4 * n <= 0xffffffff) return 4;
  return 8;
}

// ---------------------------------------------------------------------------
// Reader

const utf8 = new TextDecoder('utf-8', { fatal: true });

class Reader {
  readonly view: DataView;
  constructor(
    readonly buf: Uint8Array,
    readonly where: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  bad(t: TypeNode, at: number, why: string): never {
    throw new CfsError('EGVARIANT', `${this.where}GVariant '${t.str}' at offset ${at}: ${why}`);
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
      throw new CfsError('ELIMIT', `${this.where}GVariant nests deeper than ${MAX_DEPTH} levels at offset ${start}`);
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
        return this.readString(t, start, end);
    }
  }

  readString(t: TypeNode, start: number, end: number): string {
    if (end === start) this.bad(t, start, 'string is empty, expected at least its terminating NUL');
    if (this.buf[end - 1] !== 0) this.bad(t, end - 1, 'string is not NUL-terminated');
    const body = this.buf.subarray(start, end - 1);
    const nul = body.indexOf(0);
    if (nul !== -1) this.bad(t, start + nul, 'string contains an interior NUL byte');
    let s: string;
    try {
      s = utf8.decode(body);
    } catch {
      this.bad(t, start, 'string is not valid UTF-8');
    }
    if (t.str === 'o' && !OBJECT_PATH.test(s)) this.bad(t, start, `'${s}' is not a valid object path`);
    if (t.str === 'g' && !isSignature(s)) this.bad(t, start, `'${s}' is not a valid type signature`);
    return s;
  }

  readArray(t: TypeNode, start: number, end: number, depth: number): GValue {
    const elem = t.elem!;
    const len = end - start;
    const isDict = elem.kind === 'dict';
    const out: GValue[] = [];
    const map = new Map<GBasic, GValue>();
    const add = (value: GValue, at: number): void => {
      if (!isDict) {
        out.push(value);
        return;
      }
      const [k, val] = value as [GBasic, GValue];
      // GLib keeps duplicates and lookups return the first; a Map cannot
      // represent that faithfully, and an ambiguous dictionary in boot
      // metadata is better refused than resolved silently.
      if (map.has(k)) this.bad(t, at, `duplicate dictionary key ${JSON.stringify(String(k))}`);
      map.set(k, val);
    };

    if (elem.fixed !== null) {
      if (len % elem.fixed !== 0) {
        this.bad(t, start, `size ${len} is not a multiple of the element size ${elem.fixed}`);
      }
      if (elem.str === 'y') return this.buf.slice(start, end);
      for (let p = start; p < end; p += elem.fixed) add(this.read(elem, p, p + elem.fixed, depth + 1), p);
      return isDict ? map : out;
    }

    if (len === 0) return isDict ? map : out;
    const osize = offsetSizeForTotal(len);
    if (len < osize) this.bad(t, start, `${len} bytes cannot hold a ${osize}-byte framing offset`);
    const last = this.readOffset(t, end - osize, osize);
    if (last > len - osize) this.bad(t, end - osize, `last framing offset ${last} points past the elements (size ${len})`);
    const tableLen = len - last;
    if (tableLen % osize !== 0) {
      this.bad(t, start + last, `framing offset table of ${tableLen} bytes is not a multiple of ${osize}`);
    }
    const n = tableLen / osize;
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const s = alignUp(pos, elem.align);
      const at = start + last + i * osize;
      const e = this.readOffset(t, at, osize);
      if (s > e || e > last) {
        this.bad(t, at, `framing offset ${e} of element ${i} is out of order or out of range (element starts at ${s}, data ends at ${last})`);
      }
      this.checkPadding(t, start + pos, start + s);
      add(this.read(elem, start + s, start + e, depth + 1), start + s);
      pos = e;
    }
    return isDict ? map : out;
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

  readStruct(t: TypeNode, start: number, end: number, depth: number): GValue {
    const members = t.members!;
    const len = end - start;
    if (members.length === 0) {
      // Size already checked (fixed 1); the byte must be zero.
      this.checkPadding(t, start, end);
      return [];
    }
    const osize = offsetSizeForTotal(len);
    let used = 0; // framing offsets consumed from the end
    let pos = 0;
    const out: GValue[] = [];
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
      out.push(this.read(m, start + s, start + e, depth + 1));
      pos = e;
    }
    if (t.fixed !== null) {
      this.checkPadding(t, start + pos, end);
    } else if (pos !== len - used * osize) {
      this.bad(t, start + pos, `${len - used * osize - pos} unexpected bytes after the last member`);
    }
    return out;
  }

  readVariant(t: TypeNode, start: number, end: number, depth: number): GValue {
    if (end === start) this.bad(t, start, 'variant is empty, expected value + NUL + type string');
    const sep = this.buf.lastIndexOf(0, end - 1);
    if (sep < start) this.bad(t, start, 'variant has no NUL separating value and type string');
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
      if (e instanceof CfsError && e.code === 'ELIMIT') throw e;
      this.bad(t, sep + 1, `bad variant type string '${typeStr}'`);
    }
    return { type: typeStr, value: this.read(inner, start, sep, depth + 1) };
  }
}

/**
 * Decode `bytes` as a normal-form GVariant of `type`. `where` (a file path,
 * say) prefixes error messages. Throws EGVARIANT on anything malformed,
 * ELIMIT on excessive nesting.
 */
export function decode(type: string, bytes: Uint8Array, where?: string): GValue {
  const t = parseType(type);
  const r = new Reader(bytes, where ? `${where}: ` : '');
  return r.read(t, 0, bytes.length, 0);
}

/** Decode an `a{sv}` dictionary (commit metadata, .commitmeta, /run/ostree-booted). */
export function decodeVardict(bytes: Uint8Array, where?: string): Map<string, Variant> {
  return decode('a{sv}', bytes, where) as Map<string, Variant>;
}

// ---------------------------------------------------------------------------
// Writer

const utf8enc = new TextEncoder();

function cannot(t: TypeNode, why: string): never {
  throw new CfsError('EGVARIANT', `cannot encode GVariant '${t.str}': ${why}`);
}

/** Accumulates byte chunks; alignment is relative to the chunk list's start. */
class Builder {
  parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  pad(align: number): void {
    const n = alignUp(this.length, align) - this.length;
    if (n > 0) this.push(new Uint8Array(n));
  }
  pushOffsets(offsets: number[], size: number): void {
    const b = new Uint8Array(offsets.length * size);
    const v = new DataView(b.buffer);
    offsets.forEach((o, i) => {
      if (size === 1) v.setUint8(i, o);
      else if (size === 2) v.setUint16(i * 2, o, true);
      else if (size === 4) v.setUint32(i * 4, o, true);
      else v.setBigUint64(i * 8, BigInt(o), true);
    });
    this.push(b);
  }
  concat(): Uint8Array {
    if (this.parts.length === 1) return this.parts[0]!;
    const out = new Uint8Array(this.length);
    let p = 0;
    for (const part of this.parts) {
      out.set(part, p);
      p += part.length;
    }
    return out;
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

function writeBasic(t: TypeNode, v: GValue): Uint8Array {
  const c = t.str;
  if (c === 'b') {
    if (typeof v !== 'boolean') cannot(t, `expected a boolean, got ${typeof v}`);
    return Uint8Array.of(v ? 1 : 0);
  }
  if (c === 's' || c === 'o' || c === 'g') {
    if (typeof v !== 'string') cannot(t, `expected a string, got ${typeof v}`);
    if (v.includes('\0')) cannot(t, 'string contains a NUL character');
    if (c === 'o' && !OBJECT_PATH.test(v)) cannot(t, `'${v}' is not a valid object path`);
    if (c === 'g' && !isSignature(v)) cannot(t, `'${v}' is not a valid type signature`);
    const body = utf8enc.encode(v);
    const out = new Uint8Array(body.length + 1);
    out.set(body);
    return out;
  }
  const out = new Uint8Array(t.fixed!);
  const view = new DataView(out.buffer);
  const range = INT_RANGE[c];
  if (range) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < range[0] || v > range[1]) {
      cannot(t, `expected an integer in ${range[0]}..${range[1]}, got ${String(v)}`);
    }
    if (c === 'y') view.setUint8(0, v);
    else if (c === 'n') view.setInt16(0, v, true);
    else if (c === 'q') view.setUint16(0, v, true);
    else if (c === 'u') view.setUint32(0, v, true);
    else view.setInt32(0, v, true);
    return out;
  }
  if (c === 'd') {
    if (typeof v !== 'number') cannot(t, `expected a number, got ${typeof v}`);
    view.setFloat64(0, v, true);
    return out;
  }
  // x, t: bigint, or a safe-integer number for convenience (st_dev, sizes).
  let big: bigint;
  if (typeof v === 'bigint') big = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) big = BigInt(v);
  else cannot(t, `expected a bigint, got ${String(v)}`);
  const [lo, hi] = c === 'x' ? [-(1n << 63n), (1n << 63n) - 1n] : [0n, (1n << 64n) - 1n];
  if (big < lo || big > hi) cannot(t, `${big} is out of range`);
  if (c === 'x') view.setBigInt64(0, big, true);
  else view.setBigUint64(0, big, true);
  return out;
}

function write(t: TypeNode, v: GValue, depth: number): Uint8Array {
  if (depth > MAX_DEPTH) throw new CfsError('ELIMIT', `cannot encode GVariant nested deeper than ${MAX_DEPTH} levels`);
  switch (t.kind) {
    case 'basic':
      return writeBasic(t, v);
    case 'variant': {
      if (v === null || typeof v !== 'object' || !('type' in v) || typeof v.type !== 'string') {
        cannot(t, 'expected a { type, value } variant');
      }
      const inner = parseType(v.type);
      const b = new Builder();
      b.push(write(inner, v.value, depth + 1));
      b.push(Uint8Array.of(0));
      b.push(utf8enc.encode(v.type));
      return b.concat();
    }
    case 'maybe': {
      if (v === null) return new Uint8Array(0);
      const elem = t.elem!;
      const body = write(elem, v, depth + 1);
      if (elem.fixed !== null) return body;
      const out = new Uint8Array(body.length + 1);
      out.set(body);
      return out;
    }
    case 'array':
      return writeArray(t, v, depth);
    case 'tuple':
    case 'dict':
      return writeStruct(t, v, depth);
  }
}

function writeArray(t: TypeNode, v: GValue, depth: number): Uint8Array {
  const elem = t.elem!;
  if (elem.str === 'y') {
    if (!(v instanceof Uint8Array)) cannot(t, 'expected a Uint8Array');
    return Uint8Array.from(v);
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
  const b = new Builder();
  if (elem.fixed !== null) {
    for (const item of items) b.push(write(elem, item, depth + 1));
    return b.concat();
  }
  if (items.length === 0) return new Uint8Array(0);
  const ends: number[] = [];
  for (const item of items) {
    b.pad(elem.align);
    b.push(write(elem, item, depth + 1));
    ends.push(b.length);
  }
  b.pushOffsets(ends, offsetSizeForBody(b.length, ends.length));
  return b.concat();
}

function writeStruct(t: TypeNode, v: GValue, depth: number): Uint8Array {
  const members = t.members!;
  if (!Array.isArray(v) || v.length !== members.length) {
    cannot(t, `expected an array of ${members.length} member values`);
  }
  if (members.length === 0) return Uint8Array.of(0);
  const b = new Builder();
  const ends: number[] = [];
  members.forEach((m, i) => {
    b.pad(m.align);
    b.push(write(m, v[i]!, depth + 1));
    // Every variable-size member but the last records where it ends.
    if (m.fixed === null && i !== members.length - 1) ends.push(b.length);
  });
  if (t.fixed !== null) {
    b.pad(t.align);
    return b.concat();
  }
  // Offsets are stored last-member-first.
  if (ends.length > 0) b.pushOffsets(ends.reverse(), offsetSizeForBody(b.length, ends.length));
  return b.concat();
}

/** Serialise `value` as a normal-form GVariant of `type`. Throws EGVARIANT if the value does not fit the type. */
export function encode(type: string, value: GValue): Uint8Array {
  return write(parseType(type), value, 0);
}

/** Serialise an `a{sv}` with its entries in the order given (the caller chooses the order). */
export function encodeVardict(entries: Iterable<[string, Variant]>): Uint8Array {
  const items: GValue[] = [];
  for (const [k, v] of entries) items.push([k, v]);
  return encode('a{sv}', items);
}
