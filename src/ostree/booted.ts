/**
 * /run/ostree-booted (SPEC §5): the a{sv} GVariant that tells the booted
 * system (ostree, bootc, ostree-remount) how its root was prepared. Written
 * by the plan's last steps; serialised by src/ostree/gvariant.ts in normal form.
 *
 * Which keys appear follows ostree-prepare-root: the device/inode pair,
 * root.transient, root.transient-ro and sysroot-ro are always written (as
 * booleans, false included); composefs and composefs.verity only when the
 * root is a composefs mount; composefs.signed (the key file that verified the
 * commit) only when signed; transient-etc (the overlay's state dir) only with
 * etc.transient. Key order is the SPEC §5 order.
 *
 * The bytes are written by encodeBootedEntries below, a writer for just this
 * record's shape (an a{sv} whose values are b, s or (tt)), not by the general
 * one in src/ostree/gvariant.ts: the boot runs it once, cold, and the general
 * writer's type walk was most of the plan's time there (issue 15). The two
 * give the same bytes for every shape the record takes (test/booted.test.ts).
 */

import { CfsError } from '../errors.js';
import type { BootDecision } from './model.js';
import { offsetSizeForBody, type Variant } from './gvariant.js';

export interface OstreeBootedExtra {
  /** The /run/ostree/transient-etc.XXXXXX directory, when /etc is a transient overlay. */
  transientEtc: string | null;
}

/** The entries in SPEC §5 order (exported for tests and `plan --json`). */
export function ostreeBootedEntries(d: BootDecision, extra: OstreeBootedExtra): Array<[string, Variant]> {
  const c = d.config;
  const e: Array<[string, Variant]> = [];
  e.push(['backing-root-device-inode', { type: '(tt)', value: [d.deployment.dev, d.deployment.ino] }]);
  e.push(['root.transient', { type: 'b', value: c.rootTransient }]);
  e.push(['root.transient-ro', { type: 'b', value: c.rootTransientRo }]);
  if (d.composefs?.signed) e.push(['composefs.signed', { type: 's', value: d.composefs.signed.keyPath }]);
  if (d.composefs) {
    e.push(['composefs', { type: 'b', value: true }]);
    e.push(['composefs.verity', { type: 'b', value: d.composefs.verity }]);
  }
  e.push(['sysroot-ro', { type: 'b', value: c.sysrootReadonly }]);
  if (extra.transientEtc !== null) e.push(['transient-etc', { type: 's', value: extra.transientEtc }]);
  return e;
}

export function encodeOstreeBooted(d: BootDecision, extra: OstreeBootedExtra): Uint8Array {
  return encodeBootedEntries(ostreeBootedEntries(d, extra));
}

const utf8 = new TextEncoder();

/**
 * The normal-form a{sv} of `entries`, in their order, for values of type b,
 * s and (tt) only (anything else is an internal error: the record has no
 * other). The layout, as the GVariant specification gives it: each {sv}
 * entry starts at a multiple of 8 in the array and is its key, a NUL,
 * padding to 8, the variant (the value, a NUL, the type string) and one
 * framing offset, the key's end; the array ends with each entry's end. A
 * container's offsets are 1, 2 or 4 bytes wide: the smallest width whose
 * range holds the container's whole size, offsets included.
 */
export function encodeBootedEntries(entries: ReadonlyArray<readonly [string, Variant]>): Uint8Array {
  // Room for the worst case: 3 bytes per UTF-16 unit, 14 of padding, 16 of value, 6 of NULs and type, 4+4 of offsets.
  let room = 0;
  for (const [k, v] of entries) room += 3 * k.length + (typeof v.value === 'string' ? 3 * v.value.length : 0) + 48;
  const buf = new Uint8Array(room);
  const view = new DataView(buf.buffer);
  const ends: number[] = [];
  let pos = 0;
  for (const [key, v] of entries) {
    pos = (pos + 7) & ~7;
    const start = pos;
    pos += utf8.encodeInto(key, buf.subarray(pos)).written;
    buf[pos++] = 0;
    const keyEnd = pos - start;
    pos = (pos + 7) & ~7;
    if (v.type === 'b' && typeof v.value === 'boolean') {
      buf[pos++] = v.value ? 1 : 0;
    } else if (v.type === 's' && typeof v.value === 'string') {
      pos += utf8.encodeInto(v.value, buf.subarray(pos)).written;
      buf[pos++] = 0;
    } else if (v.type === '(tt)' && Array.isArray(v.value) && typeof v.value[0] === 'bigint' && typeof v.value[1] === 'bigint') {
      view.setBigUint64(pos, v.value[0], true);
      view.setBigUint64(pos + 8, v.value[1], true);
      pos += 16;
    } else {
      throw new CfsError('EINTERNAL', `/run/ostree-booted entry ${key} has a value of type '${v.type}', which its writer does not take`);
    }
    buf[pos++] = 0;
    pos += utf8.encodeInto(v.type, buf.subarray(pos)).written;
    pos = putOffsets(view, pos, start, [keyEnd]);
    ends.push(pos);
  }
  if (ends.length === 0) return new Uint8Array(0);
  return buf.slice(0, putOffsets(view, pos, 0, ends));
}

/** Append `ends` (relative to `start`) as framing offsets of the container that began at `start`; returns the new end. */
function putOffsets(view: DataView, pos: number, start: number, ends: readonly number[]): number {
  const body = pos - start;
  const n = ends.length;
  const width = offsetSizeForBody(body, n);
  if (width > 4) throw new CfsError('EINTERNAL', '/run/ostree-booted would be larger than 4 GiB');
  for (const end of ends) {
    if (width === 1) view.setUint8(pos, end);
    else if (width === 2) view.setUint16(pos, end, true);
    else view.setUint32(pos, end, true);
    pos += width;
  }
  return pos;
}
