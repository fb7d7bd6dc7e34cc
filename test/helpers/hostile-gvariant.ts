/**
 * Hostile GVariant at the 128 MiB object limit, framed by hand with one
 * buffer per layer: src/ostree/gvariant.ts's encoder would need the millions of
 * elements as JS values first. The framing rules are GLib's (SPEC §2):
 * members aligned relative to their container's start, framing offsets of
 * the smallest size that covers the container, a tuple's offsets stored
 * last member first, a variant as value + NUL + type string.
 * test/limits.test.ts checks small outputs against src/ostree/gvariant.ts's decoder.
 */

/** Smallest framing offset size covering a container of `body` bytes plus `n` offsets. */
export function offsetSize(body: number, n: number): number {
  if (body + n <= 0xff) return 1;
  if (body + 2 * n <= 0xffff) return 2;
  if (body + 4 * n <= 0xffffffff) return 4;
  return 8;
}

function writeOffset(buf: Buffer, at: number, size: number, value: number): void {
  if (size === 1) buf.writeUInt8(value, at);
  else if (size === 2) buf.writeUInt16LE(value, at);
  else if (size === 4) buf.writeUInt32LE(value, at);
  else buf.writeBigUInt64LE(BigInt(value), at);
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/**
 * An array of `n` variable-size elements of `elemSize` bytes each (alignment
 * 1, e.g. `aay`), element i's bytes written by `fill` (default: zeros).
 * With elemSize 0 this is `n` empty arrays: nothing but framing offsets.
 */
export function uniformArray(n: number, elemSize: number, fill?: (i: number, into: Buffer) => void): Buffer {
  const body = n * elemSize;
  const os = n === 0 ? 0 : offsetSize(body, n);
  const out = Buffer.alloc(body + n * os);
  for (let i = 0; i < n; i++) {
    if (fill) fill(i, out.subarray(i * elemSize, (i + 1) * elemSize));
    writeOffset(out, body + i * os, os, (i + 1) * elemSize);
  }
  return out;
}

export interface Member {
  bytes: Buffer;
  align: number;
  /** The member's type has a fixed size (no framing offset). */
  fixed: boolean;
}

/** A tuple (or dict entry) of these members, not of fixed size as a whole. */
export function tuple(members: Member[]): Buffer {
  let pos = 0;
  const starts: number[] = [];
  const ends: number[] = [];
  members.forEach((m, i) => {
    pos = alignUp(pos, m.align);
    starts.push(pos);
    pos += m.bytes.length;
    if (!m.fixed && i !== members.length - 1) ends.push(pos);
  });
  const os = ends.length === 0 ? 0 : offsetSize(pos, ends.length);
  const out = Buffer.alloc(pos + ends.length * os);
  members.forEach((m, i) => m.bytes.copy(out, starts[i]));
  ends.reverse().forEach((e, i) => writeOffset(out, pos + i * os, os, e));
  return out;
}

export function str(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);
}

export function variant(value: Buffer, type: string): Buffer {
  return Buffer.concat([value, Buffer.alloc(1), Buffer.from(type, 'ascii')]);
}

/** An `a{sv}` of (key, value bytes, value type) entries, in this order. */
export function vardict(entries: Array<[string, Buffer, string]>): Buffer {
  const elems = entries.map(([k, v, type]) =>
    tuple([
      { bytes: str(k), align: 1, fixed: false },
      { bytes: variant(v, type), align: 8, fixed: false },
    ]),
  );
  let pos = 0;
  const starts: number[] = [];
  for (const e of elems) {
    pos = alignUp(pos, 8);
    starts.push(pos);
    pos += e.length;
  }
  const os = elems.length === 0 ? 0 : offsetSize(pos, elems.length);
  const out = Buffer.alloc(pos + elems.length * os);
  elems.forEach((e, i) => {
    e.copy(out, starts[i]);
    writeOffset(out, pos + i * os, os, starts[i]! + e.length);
  });
  return out;
}

/** A `.commit` `(a{sv}aya(say)sstayay)` with these metadata bytes, no parent, and `subject`. */
export function commitWith(metadata: Buffer, subject: string): Buffer {
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(1_700_000_000n);
  return tuple([
    { bytes: metadata, align: 8, fixed: false },
    { bytes: Buffer.alloc(0), align: 1, fixed: false },
    { bytes: Buffer.alloc(0), align: 1, fixed: false },
    { bytes: str(subject), align: 1, fixed: false },
    { bytes: str(''), align: 1, fixed: false },
    { bytes: ts, align: 8, fixed: true },
    { bytes: Buffer.alloc(32, 1), align: 1, fixed: false },
    { bytes: Buffer.alloc(32, 2), align: 1, fixed: false },
  ]);
}
