/**
 * The composefs image header (SPEC §3): the 32 little-endian bytes composefs
 * writes at offset 0 of its EROFS image, and the EROFS superblock magic at
 * offset 1024 that the kernel looks for when mounting it. Checking both
 * before mounting turns "mount: wrong fs type" at boot into a message that
 * names the file and what was found.
 */

import * as fs from 'node:fs';
import { describeSystemError, fail } from '../errors.js';

/** Parsed 32-byte composefs image header (little-endian, at offset 0 of the image). */
export interface ComposefsHeader {
  version: number;
  flags: number;
  composefsVersion: number;
  /** flags bit 0: the image carries ACLs (else EROFS is mounted with noacl). */
  hasAcl: boolean;
}

/** struct lcfs_erofs_header_s: u32 magic, version, flags, composefs_version, unused[4]. */
export const COMPOSEFS_MAGIC = 0xd078629a;
export const COMPOSEFS_VERSION = 1;
export const COMPOSEFS_HEADER_SIZE = 32;
/** LCFS_EROFS_FLAGS_HAS_ACL: without it the image is mounted with `noacl`. */
export const COMPOSEFS_FLAG_HAS_ACL = 1 << 0;

/** EROFS keeps its superblock 1024 bytes in (EROFS_SUPER_OFFSET), magic first. */
export const EROFS_SUPER_OFFSET = 1024;
export const EROFS_SUPER_MAGIC = 0xe0f5e1e2;

/**
 * The largest composefs image cfsroot takes (issue 13 item 6), the same for
 * `verify` and the boot (both check it in src/ostree/decide.ts, with the free space
 * of /run): 1 GiB. An OS image's metadata is tens of MiB; the boot copies
 * and hashes the whole image in the initramfs, so this bounds its memory and
 * time (hashing took 4.7-4.9 ms of CPU for 5.47 MB with SHA-NI, README, so
 * about 1 s of CPU per GiB).
 */
export const IMAGE_SIZE_MAX = 1 << 30;

/** Bytes needed to check the header and the EROFS magic. */
export const COMPOSEFS_PREFIX_SIZE = EROFS_SUPER_OFFSET + 4;

/**
 * The header and EROFS magic of `prefix` (the first COMPOSEFS_PREFIX_SIZE
 * bytes of an image), refused as readComposefsHeader refuses them. The boot
 * uses it on its verified copy, so that what it mounts with (noacl) comes
 * from the bytes it hashed, not from an earlier read of the disk (issue 13).
 */
export function composefsHeaderOf(prefix: Uint8Array, where: string): ComposefsHeader {
  const header = parseComposefsHeader(prefix, where);
  checkErofsSuperblock(prefix, where);
  return header;
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/**
 * Parse the composefs header at the start of `buf`. `where` names the image
 * in messages. Unknown flag bits are kept in `flags` but not refused: newer
 * composefs versions may add flags that do not change how the image mounts.
 */
export function parseComposefsHeader(buf: Uint8Array, where: string): ComposefsHeader {
  if (buf.byteLength < COMPOSEFS_HEADER_SIZE) {
    fail(
      'EIMAGE',
      `${where}: ${buf.byteLength} bytes is too short for a composefs image (the header alone is ${COMPOSEFS_HEADER_SIZE} bytes)`,
    );
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, COMPOSEFS_HEADER_SIZE);
  const magic = dv.getUint32(0, true);
  if (magic !== COMPOSEFS_MAGIC) {
    fail('EIMAGE', `${where}: not a composefs image: magic ${hex32(magic)} at offset 0, expected ${hex32(COMPOSEFS_MAGIC)}`);
  }
  const version = dv.getUint32(4, true);
  if (version !== COMPOSEFS_VERSION) {
    fail('EIMAGE', `${where}: unsupported composefs image version ${version}, expected ${COMPOSEFS_VERSION}`);
  }
  const flags = dv.getUint32(8, true);
  return {
    version,
    flags,
    composefsVersion: dv.getUint32(12, true),
    hasAcl: (flags & COMPOSEFS_FLAG_HAS_ACL) !== 0,
  };
}

/** Refuse an image whose EROFS superblock magic is missing (`buf` starts at offset 0 of the image). */
export function checkErofsSuperblock(buf: Uint8Array, where: string): void {
  if (buf.byteLength < COMPOSEFS_PREFIX_SIZE) {
    fail(
      'EIMAGE',
      `${where}: ${buf.byteLength} bytes is too short for a composefs image (the EROFS superblock starts at offset ${EROFS_SUPER_OFFSET})`,
    );
  }
  const magic = new DataView(buf.buffer, buf.byteOffset + EROFS_SUPER_OFFSET, 4).getUint32(0, true);
  if (magic !== EROFS_SUPER_MAGIC) {
    fail(
      'EIMAGE',
      `${where}: no EROFS superblock: magic ${hex32(magic)} at offset ${EROFS_SUPER_OFFSET}, expected ${hex32(EROFS_SUPER_MAGIC)}`,
    );
  }
}

/**
 * Open a composefs image (normally `<deployment>/.ostree.cfs`), refuse
 * anything that is not a regular file, and check its header and EROFS magic.
 */
export function readComposefsHeader(path: string): ComposefsHeader {
  let fd: number;
  try {
    // O_NONBLOCK so a FIFO planted at the image path cannot hang the boot; O_NOFOLLOW:
    // the path comes from realpath(3), so a symlink there is a swap made since.
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ELOOP') {
      fail('EIMAGE', `${path} is a symlink: composefs image is not a regular file (it is opened without following symlinks)`);
    }
    if ((e as { code?: unknown }).code === 'ENOENT') {
      fail(
        'EIMAGE',
        `${path} does not exist: the deployment has no composefs image (.ostree.cfs). It was deployed without ` +
          'composefs, or composefs is not enabled in the repo config ([ex-integrity] composefs=true); ' +
          'redeploy, or set [composefs] enabled=maybe to boot it without composefs',
      );
    }
    fail('EIO', `opening composefs image ${path}: ${describeSystemError(e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) fail('EIMAGE', `${path}: composefs image is not a regular file (mode 0${st.mode.toString(8)})`);
    const buf = Buffer.alloc(COMPOSEFS_PREFIX_SIZE);
    let got = 0;
    while (got < COMPOSEFS_PREFIX_SIZE) {
      let n: number;
      try {
        n = fs.readSync(fd, buf, got, COMPOSEFS_PREFIX_SIZE - got, got);
      } catch (e) {
        return fail('EIO', `reading composefs image ${path}: ${describeSystemError(e)}`);
      }
      if (n === 0) break;
      got += n;
    }
    const data = buf.subarray(0, got);
    const header = parseComposefsHeader(data, path);
    checkErofsSuperblock(data, path);
    return header;
  } finally {
    fs.closeSync(fd);
  }
}
