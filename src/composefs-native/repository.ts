/**
 * The composefs repository on the physical root, `SYSROOT/composefs/`, and
 * the per-image state beside it (SPEC §6), read as hostile input:
 *
 *   composefs/meta.json        {"version": 1, "algorithm": "fsverity-sha512-12", ...}
 *                              (composefs-rs writes it; older repositories have none)
 *   composefs/images/<hex>     the EROFS image, named by its own fs-verity digest;
 *                              composefs-rs makes it a relative link to ../objects/XX/REST
 *   composefs/objects/XX/REST  backing files, named by their fs-verity digests
 *   state/deploy/<hex>/etc     /etc's overlay state (upper/, work/) or nothing
 *   state/deploy/<hex>/var     what /var binds to
 *
 * Nothing here may lead outside SYSROOT/composefs (images) or be a symlink
 * (the repository and state directories): the boot mounts what these paths
 * name, so a link could put any directory, the initramfs included, at /etc.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeSystemError, fail } from '../errors.js';
import type { VerityAlg } from '../image/fsverity.js';
import { readComposefsHeader, type ComposefsHeader } from '../image/header.js';
import { DIGEST_HEX_LENGTH, type NativeKarg } from './kargs.js';

export const REPOSITORY_DIR = 'composefs';
export const STATE_DEPLOY_DIR = 'state/deploy';
/** meta.json is a few hundred bytes; this bounds the read of a hostile one. */
const MAX_META_BYTES = 64 * 1024;
/** The repository format version composefs-rs writes (REPO_FORMAT_VERSION) and this reader knows. */
const META_VERSION = 1;
/** composefs-rs's Algorithm as it serialises it: fsverity-<hash>-<log2 block size>. */
const META_ALGORITHM = /^fsverity-(sha256|sha512)-12$/;

export interface NativeRepository {
  /** SYSROOT/composefs (a real directory). */
  dir: string;
  /** SYSROOT/composefs/objects, the overlay's data-only lower. */
  objects: string;
  /** The digest algorithm from meta.json; null when the repository has none (older ones). */
  algorithm: VerityAlg | null;
  /** meta.json's version, or null without meta.json. */
  metaVersion: number | null;
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    fail('EIO', `${p}: cannot stat: ${describeSystemError(e)}`);
  }
}

/** `p` must be a directory, not a symlink to one; `what` says what the boot uses it for. */
export function requireRealDir(p: string, what: string, fix: string): void {
  const st = lstatOrNull(p);
  if (st === null) fail('EDEPLOY', `${p} does not exist: expected ${what}; ${fix}`);
  if (st.isSymbolicLink()) {
    let target = '?';
    try {
      target = fs.readlinkSync(p);
    } catch {
      /* raced away: still refused */
    }
    fail('EDEPLOY', `${p} is a symlink (to ${target}): expected ${what} as a real directory; a link there could point the boot anywhere`);
  }
  if (!st.isDirectory()) fail('EDEPLOY', `${p} is not a directory: expected ${what}`);
}

/** Parse meta.json's text: its version and algorithm. Throws EIMAGE naming the file. */
export function parseRepositoryMeta(text: string, file: string): { version: number; algorithm: VerityAlg } {
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    fail('EIMAGE', `${file}: not valid JSON (${describeSystemError(e)}): expected the repository metadata composefs writes`);
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    fail('EIMAGE', `${file}: not a JSON object: expected the repository metadata composefs writes`);
  }
  const { version, algorithm } = meta as { version?: unknown; algorithm?: unknown };
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    fail('EIMAGE', `${file}: "version" is ${JSON.stringify(version) ?? 'missing'}: expected an integer`);
  }
  if (version > META_VERSION) {
    fail('EIMAGE', `${file}: repository format version ${version}: this cfsroot reads version ${META_VERSION} at most; update cfsroot`);
  }
  const m = typeof algorithm === 'string' ? META_ALGORITHM.exec(algorithm) : null;
  if (!m) {
    fail('EIMAGE', `${file}: "algorithm" is ${JSON.stringify(algorithm) ?? 'missing'}: expected "fsverity-sha256-12" or "fsverity-sha512-12"`);
  }
  // composefs-rs refuses a repository that needs a feature it does not know; so does cfsroot.
  const features = (meta as { features?: unknown }).features;
  const incompatible = typeof features === 'object' && features !== null ? (features as { incompatible?: unknown }).incompatible : undefined;
  if (incompatible !== undefined) {
    if (!Array.isArray(incompatible) || incompatible.some((f) => typeof f !== 'string')) {
      fail('EIMAGE', `${file}: "features.incompatible" is ${JSON.stringify(incompatible)}: expected an array of feature names`);
    }
    if (incompatible.length > 0) {
      fail('EIMAGE', `${file}: the repository needs features this cfsroot does not know (${incompatible.join(', ')}): update cfsroot`);
    }
  }
  return { version, algorithm: m[1] as VerityAlg };
}

/** Open SYSROOT/composefs: a real directory with objects/, and meta.json when present. */
export function openRepository(sysroot: string): NativeRepository {
  const dir = path.join(sysroot, REPOSITORY_DIR);
  const fix = 'is this a composefs-native (bootc) system? Install one with bootc, or boot an ostree= entry';
  requireRealDir(dir, 'the composefs repository', fix);
  const objects = path.join(dir, 'objects');
  requireRealDir(objects, "the repository's objects directory (the overlay's data-only layer)", fix);
  requireRealDir(path.join(dir, 'images'), "the repository's images directory", fix);

  const metaFile = path.join(dir, 'meta.json');
  const st = lstatOrNull(metaFile);
  if (st === null) return { dir, objects, algorithm: null, metaVersion: null };
  if (!st.isFile()) fail('EIMAGE', `${metaFile}: not a regular file: expected the repository metadata composefs writes`);
  if (st.size > MAX_META_BYTES) fail('ELIMIT', `${metaFile}: ${st.size} bytes: expected at most ${MAX_META_BYTES}`);
  let text: string;
  try {
    text = fs.readFileSync(metaFile, 'utf8');
  } catch (e) {
    fail('EIO', `reading ${metaFile}: ${describeSystemError(e)}`);
  }
  const meta = parseRepositoryMeta(text, metaFile);
  return { dir, objects, algorithm: meta.algorithm, metaVersion: meta.version };
}

/**
 * A karg's digest must be of the repository's algorithm when meta.json names
 * one: composefs-rs opens the repository for the karg's digest type and
 * refuses a mismatch, which is fatal, not "image not found".
 */
export function checkKargAlgorithm(repo: NativeRepository, karg: NativeKarg): void {
  if (repo.algorithm === null || repo.algorithm === karg.alg) return;
  fail(
    'EDIGEST',
    `kernel command line: ${karg.karg}: a ${karg.alg} digest (${DIGEST_HEX_LENGTH[karg.alg]} hex digits), but ` +
      `${path.join(repo.dir, 'meta.json')} says the repository is ${repo.algorithm}: fix the boot entry's composefs karg`,
  );
}

/** An image file found for a karg. */
export interface NativeImageFile {
  /** SYSROOT/composefs/images/<hex>: the name the karg gives. */
  path: string;
  /** What that name resolves to (itself, or the object its link leads to), inside SYSROOT/composefs. */
  file: string;
  /** The link's target as written, when images/<hex> is a link (composefs-rs makes it one). */
  link: string | null;
  size: number;
  header: ComposefsHeader;
}

/**
 * Look up images/<digest>. null if it does not exist (nor does what its link
 * names): the caller tries the next karg. Anything present but wrong (a link
 * leading out of the repository, not a regular file, a bad header) is fatal.
 * `why` receives why it was not found, for the "tried" list.
 */
export function findImage(repo: NativeRepository, digest: string, why: (reason: string) => void): NativeImageFile | null {
  const imagePath = path.join(repo.dir, 'images', digest);
  const st = lstatOrNull(imagePath);
  if (st === null) {
    why('no such file');
    return null;
  }
  let link: string | null = null;
  let file = imagePath;
  if (st.isSymbolicLink()) {
    link = fs.readlinkSync(imagePath);
    if (path.isAbsolute(link)) {
      fail(
        'EIMAGE',
        `${imagePath} is a link to the absolute path ${link}: expected a relative link into ${repo.dir}/objects ` +
          '(an absolute one names another file in the initramfs than here)',
      );
    }
    let real: string;
    try {
      real = fs.realpathSync(imagePath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        why(`a dangling link to ${link}`);
        return null;
      }
      fail('EIMAGE', `${imagePath}: following its link to ${link}: ${describeSystemError(e)}`);
    }
    const top = fs.realpathSync(repo.dir);
    if (!real.startsWith(top + path.sep)) {
      fail('EIMAGE', `${imagePath} leads to ${real} (link ${link}): expected a file inside ${repo.dir}; a tampered repository?`);
    }
    file = real;
  }
  const fst = fs.statSync(file);
  // A FIFO or a device there could hang or feed the kernel anything.
  if (!fst.isFile()) fail('EIMAGE', `${file}: composefs image is not a regular file (mode 0${fst.mode.toString(8)})`);
  const header = readComposefsHeader(file);
  return { path: imagePath, file, link, size: fst.size, header };
}

/** The image's state directory and, per mode, what must be in it (upstream opens them, so missing is fatal). */
export function stateDirFor(sysroot: string, digest: string): string {
  const fix = 'bootc creates it when it deploys the image; redeploy, or create it';
  const state = path.join(sysroot, 'state');
  requireRealDir(state, 'the state directory of the composefs-native boot', fix);
  requireRealDir(path.join(state, 'deploy'), 'the per-image state directories', fix);
  const dir = path.join(sysroot, STATE_DEPLOY_DIR, digest);
  requireRealDir(dir, "this image's state directory", fix);
  return dir;
}

/** Optional contents: absent is fine (the boot creates it), present must be a real directory. */
export function checkOptionalDir(p: string, what: string): boolean {
  const st = lstatOrNull(p);
  if (st === null) return false;
  requireRealDir(p, what, '');
  return true;
}
