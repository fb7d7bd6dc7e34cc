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

import type { VerityAlg } from '../model.js';

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
  source: string;
  target: string;
  /** Filesystem options, already escaped; the backend adds ro/rw. */
  options: readonly string[];
  readonly: boolean;
  /** Attach `source` (a regular file) to a read-only loop device first. */
  loop?: boolean;
  /** Resolve `target` this way instead of as a trusted path. */
  targetBeneath?: Beneath;
  /** Layer directories named in `options` (by their escaped paths) to be resolved this way (overlay). */
  dirsBeneath?: readonly Beneath[];
}

/** Where bind sources and targets must be resolved beneath (absent: trusted paths). */
export interface BindConfinement {
  source?: Beneath;
  target?: Beneath;
}

/** What copyVerity returns. */
export interface VerifiedCopy {
  digest: Uint8Array;
  /** Where the copy opens from: the requested dest, or /proc/self/fd/N (a private copy; open for the process's life). */
  path: string;
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
  /** The first `length` bytes (fewer if the file is shorter) of a file cfsroot made: the image copy. */
  readHead?(path: string, length: number): Uint8Array;
  /** Previous content, or null if the file did not exist. */
  readFileOrNull(path: string): Uint8Array | null;
  writeFile(path: string, data: Uint8Array, mode: number): void;
  /**
   * Create `dest` exclusively (EEXIST if anything is there) with the bytes of
   * `src`. With `observe`, src is read once through user space and each
   * buffer is passed to `observe` right after it was written, so the copy
   * holds exactly the observed bytes (the boot hashes them: src/sys/copy.ts);
   * the copy may then finish asynchronously (I/O overlapping the hashing).
   */
  copyFile(src: string, dest: string, observe?: (written: Uint8Array) => void): void | Promise<void>;
  /**
   * Optional fast path of copyFile + an fs-verity hasher (the native addon):
   * copy `src` and return the fs-verity digest of exactly the copy's bytes,
   * with `path`, where the copy is to be opened from: `dest` (created
   * exclusively), or a /proc/self/fd path when the copy lives on a private
   * tmpfs that no other path reaches (src/sys/native.ts). On failure nothing
   * is left behind.
   */
  copyVerity?(src: string, dest: string, alg: VerityAlg): VerifiedCopy;
  /**
   * Optional head start for copyVerity: begin reading and hashing `src` in
   * the background now (the boot calls it as soon as it knows the image, so
   * this overlaps its remaining checks); `copyDir` is a directory on the
   * filesystem the copy will be created in. Never throws; problems surface
   * in copyVerity, which finishes this copy (or makes one if this did not start).
   */
  prefetchImage?(src: string, alg: VerityAlg, copyDir: string): void;
  unlink(path: string): void;
}
