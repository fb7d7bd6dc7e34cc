/**
 * The version of a cfsroot binary, read from its bytes (an executable in an
 * archive cannot be run): src/version.ts keeps the what-string
 * "@(#)cfsroot VERSION" in the bundle, which the single executable carries
 * as text in its snapshot. A scanner, so the binary is looked at as it
 * streams out of the initramfs and never kept (src/preflight/cpio.ts).
 */

import type { Scanner } from './cpio.js';

const MARKER = Buffer.from('@(#)cfsroot ');
/** A version is at most this long; a marker and its version fit in MARKER.length + MAX_VERSION bytes. */
const MAX_VERSION = 40;
const VERSION = /^[0-9][0-9A-Za-z.+~-]*/;

/**
 * The first marker in `hay` followed by a version that ends inside `hay`
 * (or at its end, when `final`). A version running to the end of a piece
 * may go on in the next one: undecided, so null; the caller keeps the tail.
 */
function find(hay: Buffer, final: boolean): { version: string | null } {
  let at = hay.indexOf(MARKER);
  while (at >= 0) {
    const tail = hay.subarray(at + MARKER.length, at + MARKER.length + MAX_VERSION).toString('latin1');
    const m = VERSION.exec(tail);
    if (!final && at + MARKER.length + (m ? m[0].length : 0) >= hay.length) return { version: null };
    if (m) return { version: m[0] };
    at = hay.indexOf(MARKER, at + 1);
  }
  return { version: null };
}

export function versionScanner(): Scanner {
  const keep = MARKER.length + MAX_VERSION;
  /** The last `keep` bytes seen: a marker there may be cut by the end of its piece. */
  let carry = Buffer.alloc(0);
  let found: string | null = null;
  return {
    push(piece) {
      if (found !== null) return;
      const p = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      if (carry.length > 0) {
        // The seam only, not the whole piece again: a marker starting in carry ends within `keep` bytes.
        const seam = Buffer.concat([carry, p.subarray(0, keep)]);
        found = find(seam, false).version;
        if (found !== null) return;
        if (p.length < keep) {
          carry = Buffer.from(seam.subarray(Math.max(0, seam.length - keep)));
          return;
        }
      }
      found = find(p, false).version;
      if (found === null) carry = Buffer.from(p.subarray(Math.max(0, p.length - keep)));
    },
    result() {
      if (found === null && carry.length > 0) found = find(carry, true).version;
      return found;
    },
  };
}

/** The version in a whole binary's bytes, or null. */
export function embeddedVersion(bin: Uint8Array): string | null {
  const s = versionScanner();
  s.push(bin);
  return s.result();
}
