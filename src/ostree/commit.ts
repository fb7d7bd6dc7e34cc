/**
 * OSTree commit objects and object files (SPEC §2): where an object lives in
 * a repository, reading one with size and type limits, and the `.commit`
 * GVariant `(a{sv}aya(say)sstayay)` in both directions. The boot reads a
 * commit with openCommit (checked whole, decoded only where it looks);
 * parseCommit decodes every field, for tools and tests.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CfsError, describeSystemError } from '../errors.js';
import { decode, encode, locateMembers, locateVardict, validate, whole, type GValue, type Located, type Variant } from './gvariant.js';
import { isLowerHex } from '../text.js';

export const COMMIT_TYPE = '(a{sv}aya(say)sstayay)';

/** Objects larger than this are refused before being read (SPEC §2 "Limits"). */
export const MAX_OBJECT_SIZE = 128 * 1024 * 1024;

export type ObjectType = 'commit' | 'commitmeta' | 'file' | 'dirtree' | 'dirmeta';

export interface Commit {
  metadata: Map<string, Variant>;
  /** Parent commit checksum: 32 bytes, or empty for a root commit. */
  parent: Uint8Array;
  /** Related objects: (name, 32-byte checksum). */
  related: Array<[string, Uint8Array]>;
  subject: string;
  body: string;
  /** Seconds since the epoch, host value (the object stores it big-endian). */
  timestamp: bigint;
  /** Root dirtree checksum (32 bytes). */
  rootTree: Uint8Array;
  /** Root dirmeta checksum (32 bytes). */
  rootMeta: Uint8Array;
}


/** True if `s` is a 64-character lowercase hex SHA-256 checksum. */
export function isChecksum(s: string): boolean {
  return isLowerHex(s, 64);
}

/** `<repo>/objects/<first 2 hex>/<remaining 62 hex>.<type>` */
export function objectPath(repoDir: string, checksum: string, type: ObjectType): string {
  if (!isChecksum(checksum)) {
    throw new CfsError('EOBJECT', `'${checksum}' is not an object checksum (expected 64 lowercase hex digits)`);
  }
  return path.join(repoDir, 'objects', checksum.slice(0, 2), `${checksum.slice(2)}.${type}`);
}

/** 32 raw checksum bytes -> lowercase hex. */
export function checksumToHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/**
 * Read an object file whole. Refuses non-regular files and files over
 * MAX_OBJECT_SIZE (ELIMIT) before reading; the checks use fstat on the very
 * fd that is read, so a file swapped after a stat cannot slip through.
 * O_NONBLOCK keeps a FIFO planted under the object name from blocking the open
 * (libuv already opens with O_CLOEXEC).
 * O_NOFOLLOW: the object itself is never a symlink. `device` (st_dev of
 * SYSROOT) covers the directories above it (issue 13 item 10): ostree
 * hardlinks deployments into the repo, so every object is on SYSROOT's
 * filesystem, and a file on any other (the initramfs, reached through a
 * symlinked objects/XX) is refused before a byte of it is read or hashed.
 * A missing file is EOBJECT; `where` names the object in messages.
 */
export function readObject(file: string, where: string, device?: number): Uint8Array {
  const data = readObjectIfExists(file, where, device);
  if (data === null) throw new CfsError('EOBJECT', `${where}: object ${file} does not exist`);
  return data;
}

/** As readObject, but a missing file (ENOENT) returns null. */
export function readObjectIfExists(file: string, where: string, device?: number): Uint8Array | null {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') {
      throw new CfsError('EOBJECT', `${where}: ${file} is a symlink: expected a regular file (objects are opened without following symlinks)`);
    }
    throw new CfsError('EIO', `${where}: cannot open ${file}: ${describeSystemError(e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new CfsError('EOBJECT', `${where}: ${file} is not a regular file`);
    if (device !== undefined && st.dev !== device) {
      throw new CfsError(
        'EOBJECT',
        `${where}: ${file} is not on the filesystem of the sysroot: expected the repo's own object ` +
          '(a directory on its path is a symlink to elsewhere: a tampered repo)',
      );
    }
    if (st.size > MAX_OBJECT_SIZE) {
      throw new CfsError('ELIMIT', `${where}: ${file} is ${st.size} bytes, over the ${MAX_OBJECT_SIZE}-byte object limit`);
    }
    const buf = new Uint8Array(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
    }
    // A file that shrank or grew while we read it is not the object we sized.
    if (got !== buf.length || fs.readSync(fd, new Uint8Array(1), 0, 1, null) !== 0) {
      throw new CfsError('EIO', `${where}: ${file} changed size while being read`);
    }
    return buf;
  } catch (e) {
    if (e instanceof CfsError) throw e;
    throw new CfsError('EIO', `${where}: reading ${file}: ${describeSystemError(e)}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The `t` holds the timestamp big-endian; swap the 8 bytes of a little-endian read. */
function swap64(v: bigint): bigint {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, v, true);
  return dv.getBigUint64(0, false);
}

function badCommit(where: string, why: string): never {
  throw new CfsError('EOBJECT', `${where}: malformed commit object: ${why}`);
}

/**
 * What the boot reads of a `.commit`: its parent and its metadata, each
 * metadata value located but not decoded (decode one with decodeLocated).
 */
export interface CommitView {
  /** Metadata entries by key (at most MAX_VARDICT_ENTRIES). */
  metadata: Map<string, Located>;
  /** Parent commit checksum: 32 bytes, or empty for a root commit. */
  parent: Uint8Array;
}

/**
 * Open `.commit` bytes for the boot (SPEC §2 "Limits"). The whole object is
 * checked to be normal form without building any value (gvariant.ts
 * validate: at most MAX_VALUES values visited, refused from a container's
 * framing before it is walked), then only the tuple's framing, the
 * checksums' lengths and the metadata keys are read. Time and memory are
 * linear in the object's size with a small factor, whatever the metadata
 * holds: a package list stays undecoded, an array of millions of empty
 * arrays is refused at once. The related-objects list is checked as
 * GVariant but not read (the boot never uses it). Errors as parseCommit.
 */
export function openCommit(bytes: Uint8Array, where: string): CommitView {
  const obj = whole(COMMIT_TYPE, bytes);
  validate(obj, where);
  const [metadata, parent, , , , , rootTree, rootMeta] = locateMembers(obj, where) as [Located, Located, ...Located[]];
  checkChecksums(where, parent.bytes, rootTree!.bytes, rootMeta!.bytes);
  return { metadata: locateVardict(metadata, where), parent: parent.bytes.slice() };
}

function checkChecksums(where: string, parent: Uint8Array, rootTree: Uint8Array, rootMeta: Uint8Array): void {
  if (parent.length !== 0 && parent.length !== 32) badCommit(where, `parent checksum is ${parent.length} bytes, expected 0 or 32`);
  if (rootTree.length !== 32) badCommit(where, `root dirtree checksum is ${rootTree.length} bytes, expected 32`);
  if (rootMeta.length !== 32) badCommit(where, `root dirmeta checksum is ${rootMeta.length} bytes, expected 32`);
}

/**
 * Parse `.commit` bytes, decoding every field (at most MAX_VALUES values). Throws EGVARIANT for bad serialisation, EOBJECT for
 * a well-formed variant that is not a valid commit (checksums of the wrong
 * length), naming `where`.
 */
export function parseCommit(bytes: Uint8Array, where: string): Commit {
  const v = decode(COMMIT_TYPE, bytes, where) as GValue[];
  const [metadata, parent, related, subject, body, timestamp, rootTree, rootMeta] = v as [
    Map<string, Variant>,
    Uint8Array,
    Array<[string, Uint8Array]>,
    string,
    string,
    bigint,
    Uint8Array,
    Uint8Array,
  ];
  checkChecksums(where, parent, rootTree, rootMeta);
  for (const [name, csum] of related) {
    if (csum.length !== 32) badCommit(where, `related object '${name}' checksum is ${csum.length} bytes, expected 32`);
  }
  return { metadata, parent, related, subject, body, timestamp: swap64(timestamp), rootTree, rootMeta };
}

/** Serialise a commit in normal form (metadata entries in the Map's order). */
export function encodeCommit(c: Commit): Uint8Array {
  if (c.timestamp < 0n || c.timestamp >= 1n << 64n) {
    throw new CfsError('EGVARIANT', `cannot encode commit: timestamp ${c.timestamp} is out of range`);
  }
  return encode(COMMIT_TYPE, [
    c.metadata,
    c.parent,
    c.related,
    c.subject,
    c.body,
    swap64(c.timestamp),
    c.rootTree,
    c.rootMeta,
  ]);
}
