/**
 * The `Sys` backend that calls mount(2), umount2(2) and mount_setattr(2)
 * directly, through the Node-API addon in native/ (sys.c: the mounts and
 * kernel interfaces; verity.c: the fs-verity digest and the private image
 * copy) (SPEC §4: the same steps as the mount(8) backend, src/sys/spawn.ts).
 *
 * Why: each mount(8) child costs a fork+exec+libmount start (1–3 ms here,
 * more on a loaded boot CPU), and a signed composefs boot makes about a
 * dozen of them; one mount(2) is a few microseconds (bench/RESULTS.md).
 *
 * How it gets loaded, keeping cfsroot one file that runs in a dracut
 * initramfs: the build embeds the compiled addon in the single executable
 * as the asset `cfsroot_sys.node` (sea-config `assets`); at start it is
 * written to /run (the initramfs tmpfs), loaded with process.dlopen and
 * unlinked at once (the mapping stays). Outside the single executable
 * (tests, `tsx`) the addon path comes from the option or $CFSROOT_NATIVE_ADDON.
 *
 * `bootSys()` is what the boot uses: this backend when the addon loads,
 * else mount(8), with a warning when an addon was expected but failed (a
 * noexec /run, say). $CFSROOT_SYS=spawn|native forces one (tests, bench).
 *
 * Mounts by descriptor (issue 13): each directory the plan names beneath
 * another (a mount point in the new root, a bind source on the disk) is
 * opened once beneath it with no symlink followed, and the mount is made
 * from and onto those descriptors; mount/bind return /proc/self/fd/N of the
 * new mount, which the executor uses for every later operation on it and
 * for its undo (src/sys/types.ts MountHandle).
 *
 * The image (issue 15): openImage opens it once beneath SYSROOT; the
 * kernel's fs-verity measurement (measureVerityFd), the private copy
 * (copyImage, native/verity.c) and the EROFS mount all take that
 * descriptor. EROFS is mounted from it as /proc/self/fd/N: file-backed
 * (Linux 6.12, the kernel opens that magic link, which is the same open
 * file) or through a read-only loop device configured on the descriptor
 * itself (LOOP_CONFIGURE), as the plan says (src/image/plan.ts). The
 * non-mount operations are the mount(8) backend's (node:fs), so both
 * backends write /run the same way.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as sea from 'node:sea';
import { describeSystemError } from '../errors.js';
import { onActivity } from '../activity.js';
import { escapeOverlayPath, replaceOverlayPaths } from '../plan/steps.js';
import { spawnSys } from './spawn.js';
import type { VerityAlg } from '../image/fsverity.js';
import type { Beneath, MountCall, Propagation, Sys } from './types.js';
import { isDigits } from '../text.js';

/** What the addon exports (native/sys.c, native/verity.c). */
export interface NativeAddon extends WatchdogAddon {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount(target: string, flags: number): void;
  /** Attach `file` to a loop device (autoclear) and mount it by path; returns the device path (pathMounts only). */
  mountLoop(file: string, target: string, fstype: string, flags: number, data: string | null): string;
  setReadonly(target: string, readonly: boolean): void;
  /** _exit(2): no Node teardown (src/startup/entry.ts uses it once all output is written). Optional: test fakes. */
  exitNow?(code: number): never;
  /** execve(2) alone (src/startup/environment.ts); returns only by throwing. Optional: test fakes. */
  execve?(path: string, argv: string[], envp: string[]): never;
  /** statvfs ST_RDONLY: the mount holding `path`, or its filesystem, is read-only. Optional: test fakes. */
  isReadonly?(path: string): boolean;
  /**
   * Sys.mkdir and Sys.writeFile as one call each (mkdir + chmod; open,
   * write, fchmod, close): node:fs's layers, run cold once per boot, cost
   * several times the system calls. Optional: test fakes.
   */
  makeDir?(path: string, mode: number): boolean;
  writeFile?(path: string, data: Uint8Array, mode: number): void;
  /** getrandom(2): n bytes, 1 to 256 (what one call gives in full). Optional: test fakes. */
  randomBytes?(n: number): Buffer;
  /** FS_IOC_MEASURE_VERITY: "sha256:<hex>", null (no fs-verity on the file), "unsupported" (none on the filesystem). */
  measureVerity?(path: string): string | null;
  /** The same on a descriptor (openImage's). */
  measureVerityFd?(fd: number): string | null;
  /** Start filling OpenSSL's algorithm cache on a thread of its own (native/verity.c); false when it cannot. Optional: test fakes. */
  warmCrypto?(): boolean;
  /** "SHA256_Init/Update/Final" (the fast path) or "SHA256()": what hashes each block. */
  hashFunctions?: string;
  /**
   * Present when the executable exports OpenSSL's SHA256/SHA512 (Node's
   * builds do): native/verity.c. threads: 0 = one per CPU, at most 2.
   * copyImage: a private copy of the open file and the digest of its bytes.
   */
  copyImage?(fd: number, alg: VerityAlg, threads: number): { digest: Buffer; fd: number };
  digestFile?(path: string, alg: VerityAlg, threads: number): Buffer;
  /**
   * Mounts by descriptor (issue 13; kernel interfaces and their releases:
   * the "Kernel interfaces" section of native/sys.c). Optional only for
   * test fakes; the single executable always has them. openDir: `rel`
   * beneath `root` as an O_PATH directory descriptor, no symlink followed;
   * openImage: the same for the image file, O_RDONLY; bindAt/mountAt: a
   * mount attached on targetFd, returned as a descriptor of the new mount's root.
   */
  openDir?(root: string, rel: string): number;
  openImage?(root: string, rel: string): number;
  closeFd?(fd: number): void;
  bindAt?(sourceFd: number, targetFd: number, recursive: boolean): number;
  mountAt?(fstype: string, source: string | null, options: readonly string[], readonly: boolean, targetFd: number | null, loop: boolean): number;
}

/** The boot's deadline (issue 13 item 11): see the watchdog section of native/sys.c. */
export interface WatchdogAddon {
  watchdogStart?(ms: number): void;
  watchdogNote?(text: string): void;
  /** The plan's step lines, newline-separated; then watchdogStep(i) names line i. */
  watchdogSteps?(text: string): void;
  watchdogStep?(index: number): void;
  watchdogStop?(): void;
  /** Test only: block the calling thread in a read that never returns. */
  testStall?(): void;
}

/** Name of the addon asset inside the single executable (see the Makefile's sea-config). */
export const ADDON_ASSET = 'cfsroot_sys.node';

// <sys/mount.h> flag values: Linux ABI, the same on every architecture.
const MS_RDONLY = 0x1;
const MS_BIND = 0x1000;
const MS_MOVE = 0x2000;
const MS_REC = 0x4000;
const MS_PRIVATE = 0x40000;
const MS_SLAVE = 0x80000;
const MS_SHARED = 0x100000;
const MNT_DETACH = 0x2;

const PROPAGATION_FLAGS: Record<Propagation, number> = {
  rprivate: MS_REC | MS_PRIVATE,
  private: MS_PRIVATE,
  slave: MS_SLAVE,
  shared: MS_SHARED,
};

export interface NativeSysOptions {
  /** Load the addon from this file (default: the single executable's asset, else $CFSROOT_NATIVE_ADDON). */
  addonPath?: string;
  /** An already loaded addon (tests inject a fake here). */
  addon?: NativeAddon;
  /** The addon's bytes, as the single executable's asset holds them (default: that asset). */
  asset?: ArrayBuffer;
  /** Directories tried, in order, to write the embedded addon to before dlopen (default /run, then the temp dir). */
  extractDirs?: readonly string[];
  /** Provides the non-mount operations (default spawnSys(), whose file operations are node:fs). */
  fallback?: Sys;
}

/** Where an addon could come from; null when none is configured (not an error: mount(8) is used). */
function addonSource(opts: NativeSysOptions): { file: string } | { asset: ArrayBuffer } | null {
  if (opts.asset) return { asset: opts.asset };
  const file = opts.addonPath ?? process.env['CFSROOT_NATIVE_ADDON'];
  if (file) return { file };
  if (sea.isSea()) {
    try {
      return { asset: sea.getAsset(ADDON_ASSET) };
    } catch {
      return null; // built without the asset
    }
  }
  return null;
}

function dlopen(file: string): NativeAddon {
  const mod = { exports: {} as Partial<NativeAddon> };
  process.dlopen(mod, file);
  const a = mod.exports;
  if (typeof a.mount !== 'function' || typeof a.umount !== 'function' || typeof a.mountLoop !== 'function' || typeof a.setReadonly !== 'function') {
    throw new Error(`${file} is not the cfsroot_sys addon (missing mount/umount/mountLoop/setReadonly)`);
  }
  loadedAddon = a as NativeAddon;
  return loadedAddon;
}

let extractions = 0;
/** The addon this process loaded, if any (for exitNowIfLoaded). Set per run, never in the snapshot's warm-up. */
let loadedAddon: NativeAddon | null = null;

/**
 * End the process at once with `code` when a command loaded the addon:
 * nothing is left to do (every write cfsroot makes is synchronous), and
 * Node's teardown costs 1-2.6 ms per boot (bench/RESULTS.md). Returns if
 * there is no addon; the caller then exits normally.
 */
export function exitNowIfLoaded(code: number): void {
  loadedAddon?.exitNow?.(code);
}

/** The addon's warmCrypto, when a run loaded the addon: a signed boot's OpenSSL set-up off the main thread. */
export function warmCryptoIfLoaded(): void {
  loadedAddon?.warmCrypto?.();
}

/**
 * The boot's deadline: 60 s, below systemd's default 90 s start timeout, so
 * cfsroot's own line, not systemd's kill, says what happened.
 * $CFSROOT_BOOT_DEADLINE_MS changes it (tests).
 */
export const BOOT_DEADLINE_MS = 60_000;

/**
 * Arm the deadline for a boot that loaded the addon: past it, the addon's
 * own thread prints one line naming the step the boot was in (src/activity.ts)
 * and exits 1, even if the main thread is stuck in a read that never
 * returns. Returns the disarm function (a no-op without the addon: mount(8)
 * boots have no deadline). $CFSROOT_TEST_STALL=<text>, for tests only, makes
 * the boot block for good in a check or step whose line (src/activity.ts) contains <text>.
 */
export function armBootDeadline(a: NativeAddon | null = loadedAddon): () => void {
  if (!a?.watchdogStart || !a.watchdogNote || !a.watchdogStop) return () => {};
  const env = Number(process.env['CFSROOT_BOOT_DEADLINE_MS']);
  a.watchdogStart(Number.isSafeInteger(env) && env > 0 ? env : BOOT_DEADLINE_MS);
  const stallAt = process.env['CFSROOT_TEST_STALL'];
  const note = a.watchdogNote.bind(a);
  const stallIf = (what: string) => {
    if (stallAt && what.includes(stallAt)) a.testStall?.();
  };
  // The plan's lines, once; then a number per step. Without the table (an
  // addon that predates it, or a line holding a newline, which would shift
  // every line after it): the whole line per step, as a note.
  let lines: readonly string[] = [];
  let table = false;
  const stepText = (i: number) => `at step ${i + 1}/${lines.length}: ${lines[i]}`;
  onActivity({
    note(what) {
      note(what);
      stallIf(what);
    },
    steps(given) {
      lines = given;
      const text = given.join('\n');
      table = a.watchdogSteps !== undefined && a.watchdogStep !== undefined && text.split('\n').length === given.length;
      if (table) a.watchdogSteps!(text);
    },
    step(i) {
      if (table) a.watchdogStep!(i);
      else note(stepText(i));
      if (stallAt) stallIf(stepText(i));
    },
  });
  return () => {
    onActivity(null);
    a.watchdogStop!();
  };
}

/**
 * Load the addon, or return null if none is configured. Throws if one is
 * configured but cannot be loaded (the caller decides whether to fall back).
 */
export function loadNativeAddon(opts: NativeSysOptions = {}): NativeAddon | null {
  const src = addonSource(opts);
  if (src === null) return null;
  if ('file' in src) return dlopen(src.file);
  // dlopen needs a file. The initramfs /run is a tmpfs that nothing else
  // writes yet; O_EXCL + a per-process name never touches someone else's file.
  const reasons: string[] = [];
  // The temp dir only if /run fails: os.tmpdir() costs three environment
  // look-ups, each with its own credential checks (getuid, capget, ...).
  // (null: the temp dir, looked up then. No closures: the warm-up, which
  // passes its own dirs, would leave the default's uncompiled for the boot.)
  const dirs: ReadonlyArray<string | null> = opts.extractDirs ?? ['/run', null];
  for (const dirOrTemp of dirs) {
    const dir = dirOrTemp ?? os.tmpdir();
    // A fresh name per load: the dynamic loader hands back an already
    // loaded library for a path it has seen, whatever the file now holds.
    const file = path.join(dir, `.cfsroot-sys.${process.pid}.${++extractions}.node`);
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o500);
    } catch (e) {
      reasons.push(`${dir}: ${describeSystemError(e)}`);
      continue; // not created: nothing of ours to remove
    }
    try {
      fs.writeFileSync(fd, new Uint8Array(src.asset));
    } catch (e) {
      // A full /run (ENOSPC) leaves a partial file: ours, so it goes (issue 13 item 9).
      reasons.push(`${dir}: ${describeSystemError(e)}`);
      fs.closeSync(fd);
      removeQuietly(file);
      continue;
    }
    fs.closeSync(fd);
    try {
      return dlopen(file);
    } catch (e) {
      // e.g. a noexec mount: mmap(PROT_EXEC) is refused there.
      reasons.push(`${file}: ${describeSystemError(e)}`);
    } finally {
      removeQuietly(file);
    }
  }
  throw new Error(`cannot load the embedded mount addon (${reasons.join('; ')})`);
}

/**
 * The addon, or null: $CFSROOT_SYS=spawn, none embedded, or it cannot be
 * written and loaded (a noexec /run and temp dir). For callers that have a
 * way without it (mount(8), the JavaScript digest); bootSys says why when
 * it falls back.
 */
export function loadNativeAddonQuietly(opts: NativeSysOptions = {}): NativeAddon | null {
  if (process.env['CFSROOT_SYS'] === 'spawn') return null;
  try {
    return opts.addon ?? loadNativeAddon(opts);
  } catch {
    return null;
  }
}

function removeQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    /* already gone; nothing to clean up */
  }
}

/** The path that names descriptor `fd` of this process (what a handle is, src/sys/types.ts). */
const fdPath = (fd: number) => `/proc/self/fd/${fd}`;

/** Why a directory taken from beneath another could not be opened, in one clause. */
function beneathError(e: unknown, ref: Beneath): Error {
  const code = (e as { code?: unknown }).code;
  const root = ref.path.slice(0, ref.path.length - ref.rel.length - 1) || '/';
  const why =
    code === 'ELOOP' || code === 'EXDEV'
      ? `is a symlink or lies under one: directories the disk decides are opened beneath ${root} without following symlinks`
      : code === 'ENOTDIR'
        ? 'is not a directory (or lies under something that is not): expected a directory'
        : code === 'ENOENT'
          ? 'does not exist: expected a directory'
          : describeSystemError(e);
  const err = new Error(`${ref.path} ${why}`) as Error & { code?: unknown };
  err.code = code;
  return err;
}

/** The image reached through a symlink: say why that is refused instead of a bare ELOOP. */
function imageOpenError(e: unknown, image: Beneath): unknown {
  const code = (e as { code?: unknown })?.code;
  if (code !== 'ELOOP' && code !== 'EXDEV') return e;
  return new Error(
    `${image.path} is a symlink or lies under one: the image is opened beneath ${image.root} without following symlinks ` +
      '(its path was resolved once, so a symlink there now is a change on the disk since, or a tampered deployment)',
  );
}

interface DescriptorOps {
  openDir(root: string, rel: string): number;
  closeFd(fd: number): void;
  bindAt(sourceFd: number, targetFd: number, recursive: boolean): number;
  mountAt(fstype: string, source: string | null, options: readonly string[], readonly: boolean, targetFd: number | null, loop: boolean): number;
}

/** mount/bind/release by descriptor: each directory opened once, mounted from and on that descriptor. */
function descriptorMounts(ops: DescriptorOps): Pick<Sys, 'mount' | 'bind' | 'release'> {
  const open = (p: string, ref: Beneath | undefined): number => {
    if (!ref) return ops.openDir(p, '');
    try {
      return ops.openDir(ref.root, ref.rel);
    } catch (e) {
      throw beneathError(e, ref);
    }
  };
  const withDir = <T>(p: string, ref: Beneath | undefined, fn: (fd: number) => T): T => {
    const fd = open(p, ref);
    try {
      return fn(fd);
    } finally {
      ops.closeFd(fd);
    }
  };
  return {
    mount(m: MountCall) {
      // Layers the disk decides: opened here, named to the kernel by descriptor.
      const layers = new Map<string, string>();
      const layerFds: number[] = [];
      try {
        for (const ref of m.dirsBeneath ?? []) {
          const fd = open(ref.path, ref);
          layerFds.push(fd);
          layers.set(escapeOverlayPath(ref.path), fdPath(fd));
        }
        const options = layers.size ? replaceOverlayPaths(m.options, layers) : m.options;
        // An open file (the image, a private copy) is named by its descriptor: the loop device is
        // configured on it, and file-backed EROFS opens the magic link, the same open file.
        const source = m.sourceFd === undefined ? m.source : fdPath(m.sourceFd);
        if (m.detached) return fdPath(ops.mountAt(m.fstype, source, options, m.readonly, null, m.loop ?? false));
        return withDir(m.target, m.targetBeneath, (tfd) => fdPath(ops.mountAt(m.fstype, source, options, m.readonly, tfd, m.loop ?? false)));
      } finally {
        // The overlay holds its layers itself once mounted.
        for (const fd of layerFds) ops.closeFd(fd);
      }
    },
    bind(source, target, recursive, confine) {
      return withDir(source, confine?.source, (sfd) =>
        withDir(target, confine?.target, (tfd) => fdPath(ops.bindAt(sfd, tfd, recursive))),
      );
    },
    release(handle) {
      // The handles fdPath made: /proc/self/fd/<digits>.
      const fd = handle.startsWith('/proc/self/fd/') ? handle.slice('/proc/self/fd/'.length) : '';
      if (isDigits(fd)) ops.closeFd(Number(fd));
    },
  };
}

/** A `Sys` on top of a loaded addon. */
export function nativeSysFrom(addon: NativeAddon, fallback: Sys = spawnSys()): Sys {
  const { openDir, closeFd, bindAt, mountAt } = addon;
  const byDescriptor =
    openDir && closeFd && bindAt && mountAt ? descriptorMounts({ openDir, closeFd, bindAt, mountAt }) : null;
  const image: Partial<Sys> = {};
  if (addon.openImage && addon.closeFd) {
    const { openImage, closeFd } = addon;
    image.openImage = (ref) => {
      try {
        return openImage(ref.root, ref.rel);
      } catch (e) {
        throw imageOpenError(e, ref);
      }
    };
    image.closeFile = (fd) => closeFd(fd);
  }
  if (addon.measureVerityFd) image.measureFile = addon.measureVerityFd.bind(addon);
  if (addon.measureVerity) image.measurePath = addon.measureVerity.bind(addon);
  if (addon.copyImage) {
    const { copyImage } = addon;
    const named = fallback.copyImage.bind(fallback);
    Object.assign(image, {
      privateCopies: true,
      copyImage: (fd: number, to: 'private' | string, alg: VerityAlg) => {
        if (to !== 'private') return named(fd, to, alg);
        const copy = copyImage(fd, alg, 0);
        return { digest: copy.digest, fd: copy.fd };
      },
    } satisfies Partial<Sys>);
  }
  return {
    ...fallback,
    ...image,
    ...byDescriptor,
    ...(byDescriptor ? { detachedMounts: true } : pathMounts(addon)),
    remount(target, readonly) {
      addon.setReadonly(target, readonly);
    },
    // One statvfs instead of reading and parsing /proc/self/mountinfo (about
    // 0.5 ms per call at boot, issue 5). The plan only remounts its own
    // mount points, so "the mount holding target" is the mount at target.
    ...(addon.isReadonly ? { mountReadonly: (target: string) => addon.isReadonly!(target) } : {}),
    ...(addon.makeDir ? { mkdir: addon.makeDir.bind(addon) } : {}),
    ...(addon.writeFile ? { writeFile: addon.writeFile.bind(addon) } : {}),
    ...(addon.randomBytes ? { randomBytes: addon.randomBytes.bind(addon) } : {}),
    move(source, target) {
      addon.mount(source, target, null, MS_MOVE, null);
    },
    umount(target, lazy) {
      // Loop devices are attached with autoclear: the last unmount frees them.
      addon.umount(target, lazy ? MNT_DETACH : 0);
    },
    propagation(target, kind) {
      addon.mount(null, target, null, PROPAGATION_FLAGS[kind], null);
    },
  };
}

/**
 * mount(2) by path, no confinement: only for an addon without the descriptor
 * calls, which the single executable never embeds (test fakes, the
 * snapshot's warm-up).
 */
function pathMounts(addon: NativeAddon): Pick<Sys, 'mount' | 'bind'> {
  return {
    mount(m: MountCall) {
      const flags = m.readonly ? MS_RDONLY : 0;
      const data = m.options.length ? m.options.join(',') : null;
      const source = m.sourceFd === undefined ? m.source : fdPath(m.sourceFd);
      if (m.loop) addon.mountLoop(source, m.target, m.fstype, flags, data);
      else addon.mount(source, m.target, m.fstype, flags, data);
    },
    bind(source, target, recursive) {
      addon.mount(source, target, null, MS_BIND | (recursive ? MS_REC : 0), null);
    },
  };
}

/** The native backend; throws if no addon is configured or it cannot be loaded. */
export function nativeSys(opts: NativeSysOptions = {}): Sys {
  const addon = opts.addon ?? loadNativeAddon(opts);
  if (addon === null) throw new Error('no mount addon: not a single executable and $CFSROOT_NATIVE_ADDON is not set');
  return nativeSysFrom(addon, opts.fallback ?? spawnSys());
}

export interface BootSysOptions extends NativeSysOptions {
  /** Told when an expected addon could not be loaded and mount(8) is used instead. */
  warn?: (message: string) => void;
}

/** The backend the boot uses: native when available, else mount(8) (see the top of this file). */
export function bootSys(opts: BootSysOptions = {}): Sys {
  const fallback = opts.fallback ?? spawnSys();
  const choice = process.env['CFSROOT_SYS'];
  if (choice === 'spawn') return fallback;
  let addon: NativeAddon | null;
  try {
    addon = opts.addon ?? loadNativeAddon(opts);
  } catch (e) {
    if (choice === 'native') throw e;
    opts.warn?.(`warning: ${describeSystemError(e)}; using mount(8) instead`);
    return fallback;
  }
  if (addon === null) {
    if (choice === 'native') throw new Error('CFSROOT_SYS=native but no mount addon is available');
    return fallback;
  }
  return nativeSysFrom(addon, fallback);
}

/** fs-verity digests of files through the addon, falling back to src/image/fsverity.ts. */
export interface FileDigester {
  digest(path: string, alg: VerityAlg): Promise<Buffer>;
}

/**
 * For `verify` and `digest`: the addon's two-thread C digest when it loads
 * (about 3x the JavaScript one on a 5 MB image, bench/RESULTS.md), else
 * src/image/fsverity.ts. Any failure of the native path is answered by running
 * the JavaScript one, so the reported error (a missing file, a FIFO, ...) is
 * worded the same either way. $CFSROOT_SYS=spawn keeps it all in JavaScript.
 */
export function fileDigester(opts: NativeSysOptions = {}): FileDigester {
  const addon = loadNativeAddonQuietly(opts);
  const js = async (path: string, alg: VerityAlg): Promise<Buffer> => (await import('../image/fsverity.js')).fsverityDigestFile(path, alg);
  return {
    async digest(path, alg) {
      try {
        if (addon?.digestFile) return addon.digestFile(path, alg, 0);
      } catch {
        // Fall through: the JavaScript digest reports the problem in its own words.
      }
      return js(path, alg);
    },
  };
}
