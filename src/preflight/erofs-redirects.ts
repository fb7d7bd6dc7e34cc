/**
 * The backing objects a composefs image references: every regular file's
 * trusted.overlay.redirect xattr, found by walking the EROFS directory tree
 * from the root inode; and one file of the image looked up by path (its
 * redirect, or its bytes when inline) (on-disk format: linux/fs/erofs/erofs_fs.h). Reads only
 * what composefs images use: compact and extended inodes, flat (plain and
 * inline) directories, inline and shared xattrs. Hostile input: every offset
 * is bounds-checked, the walk visits each inode once and at most `maxInodes`.
 */

import { fail } from '../errors.js';
import { EROFS_SUPER_MAGIC, EROFS_SUPER_OFFSET } from '../image/header.js';

const XATTR_INDEX_TRUSTED = 4;
const REDIRECT = 'overlay.redirect';
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

interface Inode { nid: number; mode: number; size: number; layout: number; rawBlk: number; inodeSize: number; xattrSize: number; off: number }

/** A bounds-checked view of one EROFS image: inodes, directory entries, xattrs, flat file data. */
function erofsReader(img: Uint8Array, where: string) {
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const bad = (why: string): never => fail('EIMAGE', `${where}: ${why}`);
  const u8 = (o: number) => (o + 1 <= img.length ? dv.getUint8(o) : bad(`offset ${o} past the end`));
  const u16 = (o: number) => (o + 2 <= img.length ? dv.getUint16(o, true) : bad(`offset ${o} past the end`));
  const u32 = (o: number) => (o + 4 <= img.length ? dv.getUint32(o, true) : bad(`offset ${o} past the end`));
  const sb = EROFS_SUPER_OFFSET;
  if (u32(sb) !== EROFS_SUPER_MAGIC) bad('not an EROFS image');
  const blkbits = u8(sb + 12);
  if (blkbits < 9 || blkbits > 16) bad(`block size 2^${blkbits}`);
  const bs = 1 << blkbits;
  const rootNid = u16(sb + 14);
  const metaBase = u32(sb + 40) * bs;
  const xattrBase = u32(sb + 44) * bs;

  const inode = (nid: number): Inode => {
    const off = metaBase + nid * 32;
    const format = u16(off);
    const extended = (format & 1) === 1;
    const layout = (format >> 1) & 7;
    const icount = u16(off + 2);
    const mode = u16(off + 4);
    const size = extended ? (off + 16 <= img.length ? Number(dv.getBigUint64(off + 8, true)) : bad(`inode ${nid} past the end`)) : u32(off + 8);
    const rawBlk = u32(off + 16);
    const inodeSize = extended ? 64 : 32;
    const xattrSize = icount === 0 ? 0 : 12 + (icount - 1) * 4;
    if (off + inodeSize + xattrSize > img.length) bad(`inode ${nid} past the end`);
    return { nid, mode, size, layout, rawBlk, inodeSize, xattrSize, off };
  };

  /** The value of trusted.overlay.redirect, or null. */
  const redirect = (ino: Inode): string | null => {
    if (ino.xattrSize === 0) return null;
    const start = ino.off + ino.inodeSize;
    const shared = u8(start + 4);
    const entry = (o: number): { next: number; value: string | null } => {
      const nameLen = u8(o);
      const index = u8(o + 1);
      const valueSize = u16(o + 2);
      const nameOff = o + 4;
      if (nameOff + nameLen + valueSize > img.length) bad('xattr past the end');
      const name = Buffer.from(img.buffer, img.byteOffset + nameOff, nameLen).toString('latin1');
      const v = index === XATTR_INDEX_TRUSTED && name === REDIRECT
        ? Buffer.from(img.buffer, img.byteOffset + nameOff + nameLen, valueSize).toString('latin1')
        : null;
      return { next: o + ((4 + nameLen + valueSize + 3) & ~3), value: v };
    };
    for (let i = 0; i < shared; i++) {
      const e = entry(xattrBase + u32(start + 12 + i * 4) * 4);
      if (e.value !== null) return e.value;
    }
    const end = start + ino.xattrSize;
    for (let o = start + 12 + shared * 4; o + 4 <= end;) {
      const e = entry(o);
      if (e.value !== null) return e.value;
      if (e.next <= o) break;
      o = e.next;
    }
    return null;
  };

  /** A flat inode's bytes: whole blocks at rawBlk, the tail inline after the xattrs (layout 2). */
  const data = (ino: Inode, what: string): Uint8Array => {
    if (ino.size > img.length) bad(`${what} larger than the image`);
    if (ino.layout === 0) {
      const o = ino.rawBlk * bs;
      if (o + ino.size > img.length) bad(`${what}: data past the end`);
      return img.subarray(o, o + ino.size);
    }
    if (ino.layout === 2) {
      const full = Math.floor(ino.size / bs) * bs;
      const o = ino.rawBlk * bs;
      const tailOff = ino.off + ino.inodeSize + ino.xattrSize;
      const tail = ino.size - full;
      if ((full > 0 && o + full > img.length) || tailOff + tail > img.length) bad(`${what}: data past the end`);
      return Buffer.concat([img.subarray(o, o + full), img.subarray(tailOff, tailOff + tail)]);
    }
    return bad(`${what} with data layout ${ino.layout} (not a composefs image)`);
  };

  /** A directory's entries other than . and .. */
  const entries = (ino: Inode): Array<{ name: string; nid: number }> => {
    const d = data(ino, `directory inode ${ino.nid}`);
    const ddv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const out: Array<{ name: string; nid: number }> = [];
    for (let blk = 0; blk < d.length; blk += bs) {
      const end = Math.min(blk + bs, d.length);
      if (end - blk < 12) break;
      const n = ddv.getUint16(blk + 8, true) / 12;
      for (let i = 0; i < n && blk + i * 12 + 12 <= end; i++) {
        const e = blk + i * 12;
        const nid = Number(ddv.getBigUint64(e, true));
        const nameOff = ddv.getUint16(e + 8, true);
        const nameEnd = i + 1 < n && e + 24 <= end ? ddv.getUint16(e + 12 + 8, true) : end - blk;
        const name = Buffer.from(d.subarray(blk + nameOff, blk + Math.min(nameEnd, end - blk))).toString('latin1').replace(/\0+$/, '');
        if (name !== '.' && name !== '..') out.push({ name, nid });
      }
    }
    return out;
  };

  return { root: () => inode(rootNid), inode, redirect, data, entries };
}

export function imageRedirects(img: Uint8Array, where: string, maxInodes = 10_000_000): string[] {
  const r = erofsReader(img, where);
  const out: string[] = [];
  const seen = new Set<number>();
  const stack = [r.root().nid];
  while (stack.length) {
    const nid = stack.pop()!;
    if (seen.has(nid)) continue;
    seen.add(nid);
    if (seen.size > maxInodes) fail('ELIMIT', `${where}: more than ${maxInodes} inodes`);
    const ino = r.inode(nid);
    const type = ino.mode & S_IFMT;
    if (type === S_IFREG) {
      const red = r.redirect(ino);
      if (red !== null) out.push(red);
    } else if (type === S_IFDIR) {
      for (const e of r.entries(ino)) stack.push(e.nid);
    }
  }
  return out;
}

/**
 * A regular file of the image by its absolute path (no symlink followed):
 * its backing object (the redirect, relative to the objects directory), or
 * its bytes when they are in the image itself (small files inline); null
 * when the image has no such regular file.
 */
export function imageFile(img: Uint8Array, file: string, where: string): { redirect: string } | { data: Uint8Array } | null {
  const r = erofsReader(img, where);
  let ino = r.root();
  const parts = file.split('/').filter((p) => p !== '');
  for (const [i, part] of parts.entries()) {
    if ((ino.mode & S_IFMT) !== S_IFDIR) return null;
    const e = r.entries(ino).find((x) => x.name === part);
    if (!e) return null;
    ino = r.inode(e.nid);
    if (i === parts.length - 1 && (ino.mode & S_IFMT) !== S_IFREG) return null;
  }
  if ((ino.mode & S_IFMT) !== S_IFREG) return null;
  const red = r.redirect(ino);
  if (red !== null) return { redirect: red };
  return { data: Uint8Array.from(r.data(ino, file)) };
}
