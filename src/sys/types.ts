/**
 * The narrow interface between the plan executor and the kernel (SPEC §4).
 * Everything that changes the mount namespace or /run goes through a `Sys`,
 * so the executor can be tested against a fake that records calls and
 * injects failures, and a faster backend (a native addon calling mount(2)
 * directly) can replace the mount(8) one without touching the executor.
 *
 * Every method throws on failure; the message is the reason only (the
 * executor adds which step failed).
 */

import type { VerityAlg } from '../image/fsverity.js';

export type Propagation = 'rprivate' | 'private' | 'slave' | 'shared';

/**
 * A directory taken from beneath another one (issue 13): `rel` is resolved
 * beneath `root` one component at a time, following no symlink and never
 * leaving `root`, and must be a directory. `root` is trusted (a path cfsroot
 * was given or made, or a MountHandle); `path` is root + rel as the plan
 * names it, for messages.
 */
export interface Beneath {
  root: string;
  rel: string;
  path: string;
}

/**
 * A path that names one mount for as long as it is held (until
 * Sys.release): the native backend's /proc/self/fd/N of a descriptor of
 * the mount's root, so an undo unmounts that mount even when the path it
 * was mounted on now means something else; the plain target path for a
 * backend without descriptors (mount(8)).
 */
export type MountHandle = string;

export interface MountCall {
  fstype: 'erofs' | 'overlay' | 'tmpfs';
  /** The source as the kernel is to see it; for messages only when sourceFd is given. */
  source: string;
  /** Mount this open file (an ImageFile, or a private copy) instead of `source`: no lookup by path (erofs). */
  sourceFd?: number;
  target: string;
  /** Filesystem options, already escaped; the backend adds ro/rw. */
  options: readonly string[];
  readonly: boolean;
  /** Attach the source (a regular file) to a read-only loop device first. */
  loop?: boolean;
  /** Resolve `target` this way instead of as a trusted path. */
  targetBeneath?: Beneath;
  /** Leave the new mount detached (no mount point; `target` only names it): only with detachedMounts. */
  detached?: boolean;
  /** Layer directories named in `options` (by their escaped paths) to be resolved this way (overlay). */
  dirsBeneath?: readonly Beneath[];
}

/** Where bind sources and targets must be resolved beneath (absent: trusted paths). */
export interface BindConfinement {
  source?: Beneath;
  target?: Beneath;
}

/** A file descriptor of the image, open for the boot (Sys.openImage); closed with Sys.closeFile. */
export type ImageFile = number;

/** What copyImage made. */
export interface ImageCopy {
  /** fs-verity digest of exactly the copy's bytes. */
  digest: Uint8Array;
  /** A private copy: its descriptor (no name; closed with closeFile). */
  fd?: number;
  /** A named copy: its path (removed with unlink on undo). */
  path?: string;
}

export interface Sys {
  /** Returns a handle on the new mount (void: `target` is the handle). */
  mount(m: MountCall): MountHandle | void;
  bind(source: string, target: string, recursive: boolean, confine?: BindConfinement): MountHandle | void;
  /** Let go of a handle mount/bind returned (the mount stays where it is). */
  release?(handle: MountHandle): void;
  /** Bind-remount: flips this mount's read-only flag only. */
  remount(target: string, readonly: boolean): void;
  move(source: string, target: string): void;
  /** lazy: MNT_DETACH. A non-lazy unmount of a loop-backed mount also frees the loop device. */
  umount(target: string, lazy: boolean): void;
  propagation(target: string, kind: Propagation): void;
  /** Read-only flag of the mount at `target` (null: not a mount point). */
  mountReadonly(target: string): boolean | null;

  /**
   * Open the image once: `image.rel` beneath `image.root`, read-only, no
   * symlink followed, a regular file (EINVAL otherwise). The native backend
   * opens it with openat2 beneath the root; the mount(8) backend checks the
   * path component by component first (src/sys/beneath.ts) and opens the last
   * one with O_NOFOLLOW.
   */
  openImage(image: Beneath): ImageFile;
  /** Close an ImageFile or a private copy's descriptor. */
  closeFile(fd: number): void;
  /**
   * FS_IOC_MEASURE_VERITY of the open file: "<alg>:<hex>", null (no
   * fs-verity on the file), "unsupported" (none on the filesystem).
   * Absent: the backend cannot ask (mount(8)); the plan then never takes
   * the fs-verity path.
   */
  measureFile?(fd: ImageFile): string | null;
  /** The same, by path, without following a final symlink: the probe the plan is made on (src/boot.ts). */
  measurePath?(path: string): string | null;
  /** copyImage can make private copies (`to` 'private'). */
  readonly privateCopies?: boolean;
  /** mount can leave a new filesystem detached (MountCall.detached), named by the handle it returns. */
  readonly detachedMounts?: boolean;
  /**
   * Copy the open image and return the fs-verity digest of exactly the
   * copy's bytes. `to`: 'private' (only with privateCopies) or a path to
   * create exclusively (EEXIST if anything is there). On failure nothing is
   * left behind.
   */
  copyImage(fd: ImageFile, to: 'private' | string, alg: VerityAlg): ImageCopy | Promise<ImageCopy>;
  /** The first `length` bytes (fewer if the file is shorter) of an open file or of a file cfsroot made (a named copy). */
  readHead(file: number | string, length: number): Uint8Array;

  /** Create one directory with exactly `mode`; false if it already existed (then it is left alone). */
  mkdir(path: string, mode: number): boolean;
  rmdir(path: string): void;
  /**
   * mkdir of `ref.path`, its parent `ref.rel` minus the last component
   * resolved beneath `ref.root` one component at a time without following a
   * symlink (a directory the disk decides, e.g. the /etc overlay's upper in
   * SYSROOT/state): false if it already existed (then it must be a
   * directory, not a symlink). Optional: the executor then checks by path
   * and uses mkdir.
   */
  mkdirBeneath?(ref: Beneath, mode: number): boolean;
  symlink(linkTarget: string, path: string): void;
  /** Previous content, or null if the file did not exist. */
  readFileOrNull(path: string): Uint8Array | null;
  writeFile(path: string, data: Uint8Array, mode: number): void;
  unlink(path: string): void;
  /** n (1-256) random bytes from getrandom(2) (the addon); absent: the plan uses node:crypto's. */
  randomBytes?(n: number): Uint8Array;
}
