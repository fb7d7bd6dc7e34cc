/**
 * The `Sys` backend that calls mount(2), umount2(2) and mount_setattr(2)
 * directly, through the small Node-API addon in native/cfsroot_sys.c
 * (SPEC §4: the same steps as the mount(8) backend, src/sys/spawn.ts).
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
 * Loop devices: the addon attaches one itself (LOOP_CONFIGURE, read-only,
 * autoclear) when the plan asks for it (kernels before 6.12), and also when
 * the kernel answers an EROFS mount of a file with ENOTBLK: file-backed
 * EROFS needs a filesystem with read_folio, which tmpfs, where the image
 * copy lives, does not have (measured on 6.18: mount(8) silently attaches a
 * loop device there too). The non-mount operations are the mount(8)
 * backend's (node:fs), so both backends write /run the same way.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as sea from 'node:sea';
import { describeSystemError } from '../errors.js';
import { spawnSys } from './spawn.js';
import type { VerityAlg } from '../model.js';
import type { MountCall, Propagation, Sys } from './types.js';

/** What native/cfsroot_sys.c exports. */
export interface NativeAddon {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount(target: string, flags: number): void;
  /** Attach `file` to a loop device (autoclear) and mount it; returns the device path. */
  mountLoop(file: string, target: string, fstype: string, flags: number, data: string | null): string;
  setReadonly(target: string, readonly: boolean): void;
  /** _exit(2): no Node teardown (src/startup/entry.ts uses it once all output is written). Optional: older builds and test fakes. */
  exitNow?(code: number): never;
  /** execve(2) alone (src/startup/environment.ts); returns only by throwing. Optional: older builds and test fakes. */
  execve?(path: string, argv: string[], envp: string[]): never;
  /** statvfs ST_RDONLY: the mount holding `path`, or its filesystem, is read-only. Optional: older builds and test fakes. */
  isReadonly?(path: string): boolean;
  /** FS_IOC_MEASURE_VERITY: "sha256:<hex>", null (no fs-verity on the file), "unsupported" (none on the filesystem). Optional: older builds. */
  measureVerity?(path: string): string | null;
  /** "SHA256_Init/Update/Final" (the fast path) or "SHA256()": what hashes each block. */
  hashFunctions?: string;
  /**
   * Present when the executable exports OpenSSL's SHA256/SHA512 (Node's
   * builds do). threads: 0 = one per CPU, at most 2. See native/cfsroot_sys.c.
   */
  copyVerity?(src: string, dest: string, alg: VerityAlg, threads: number): Buffer;
  digestFile?(path: string, alg: VerityAlg, threads: number): Buffer;
  /**
   * Start copying (with copyDir) or reading `path`, and hashing it, on threads.
   * The copy goes to a private tmpfs mounted nowhere when privateCopy (default
   * true) and the kernel allow it, else to an unnamed file in copyDir.
   */
  prefetch?(path: string, alg: VerityAlg, copyDir: string | null, privateCopy?: boolean): PrefetchHandle;
  /** The digest; fd >= 0: the private copy, handed over (close-on-exec) and nothing made at dest; -1: the copy is at dest. */
  finishCopy?(handle: PrefetchHandle, dest: string): { digest: Buffer; fd: number };
  finishDigest?(handle: PrefetchHandle): Buffer;
}

/** Opaque (a Node-API external). */
export type PrefetchHandle = { readonly __prefetch: unique symbol };

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
  for (const dir of opts.extractDirs ?? ['/run', os.tmpdir()]) {
    // A fresh name per load: the dynamic loader hands back an already
    // loaded library for a path it has seen, whatever the file now holds.
    const file = path.join(dir, `.cfsroot-sys.${process.pid}.${++extractions}.node`);
    try {
      fs.writeFileSync(file, new Uint8Array(src.asset), { mode: 0o500, flag: 'wx' });
    } catch (e) {
      reasons.push(`${dir}: ${describeSystemError(e)}`);
      continue;
    }
    try {
      return dlopen(file);
    } catch (e) {
      // e.g. a noexec mount: mmap(PROT_EXEC) is refused there.
      reasons.push(`${file}: ${describeSystemError(e)}`);
    } finally {
      try {
        fs.unlinkSync(file);
      } catch {
        /* already gone; nothing to clean up */
      }
    }
  }
  throw new Error(`cannot load the embedded mount addon (${reasons.join('; ')})`);
}

/**
 * Reads + digests started ahead of use (the addon's prefetch), one per path:
 * `start` again for a path already under way does nothing, and `take` hands
 * a handle out once, only for the algorithm it was started with.
 */
function prefetchTable(addon: NativeAddon) {
  const started = new Map<string, { alg: VerityAlg; handle: PrefetchHandle }>();
  return {
    /** Never throws: only argument errors can, and then the caller computes it another way. */
    start(path: string, alg: VerityAlg, copyDir: string | null): void {
      if (!addon.prefetch || started.has(path)) return;
      try {
        started.set(path, { alg, handle: addon.prefetch(path, alg, copyDir) });
      } catch {
        /* see above */
      }
    },
    take(path: string, alg: VerityAlg): PrefetchHandle | undefined {
      const e = started.get(path);
      started.delete(path);
      return e?.alg === alg ? e.handle : undefined;
    },
  };
}

/** A `Sys` on top of a loaded addon. */
export function nativeSysFrom(addon: NativeAddon, fallback: Sys = spawnSys()): Sys {
  const hashing: Partial<Sys> = {};
  if (addon.copyVerity) {
    const { copyVerity, finishCopy } = addon;
    const early = prefetchTable(addon);
    hashing.copyVerity = (src, dest, alg) => {
      const handle = early.take(src, alg);
      if (handle && finishCopy) {
        const { digest, fd } = finishCopy(handle, dest);
        // A private copy stays open until the process ends: the loop device
        // opens it through this path and holds it from then on.
        return { digest, path: fd >= 0 ? `/proc/self/fd/${fd}` : dest };
      }
      return { digest: copyVerity(src, dest, alg, 0), path: dest };
    };
    if (addon.prefetch && finishCopy) hashing.prefetchImage = (src, alg, copyDir) => early.start(src, alg, copyDir);
  }
  return {
    ...fallback,
    ...hashing,
    mount(m: MountCall) {
      const flags = m.readonly ? MS_RDONLY : 0;
      const data = m.options.length ? m.options.join(',') : null;
      if (m.loop) {
        addon.mountLoop(m.source, m.target, m.fstype, flags, data);
        return;
      }
      try {
        addon.mount(m.source, m.target, m.fstype, flags, data);
      } catch (e) {
        // The source is a file on a filesystem file-backed EROFS cannot read (tmpfs), or a
        // kernel without EROFS_FS_BACKED_BY_FILE: a loop device is what mount(8) would use.
        if (m.fstype === 'erofs' && (e as { code?: unknown }).code === 'ENOTBLK') addon.mountLoop(m.source, m.target, m.fstype, flags, data);
        else throw e;
      }
    },
    bind(source, target, recursive) {
      addon.mount(source, target, null, MS_BIND | (recursive ? MS_REC : 0), null);
    },
    remount(target, readonly) {
      addon.setReadonly(target, readonly);
    },
    // One statvfs instead of reading and parsing /proc/self/mountinfo (about
    // 0.5 ms per call at boot, issue 5). The plan only remounts its own
    // mount points, so "the mount holding target" is the mount at target.
    ...(addon.isReadonly ? { mountReadonly: (target: string) => addon.isReadonly!(target) } : {}),
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

/** fs-verity digests of files through the addon, falling back to src/fsverity.ts. */
export interface FileDigester {
  /** Begin reading and hashing `path` in the background (never throws). */
  start(path: string, alg: VerityAlg): void;
  /** The digest of `path` (what `start` began, else computed now). */
  digest(path: string, alg: VerityAlg): Promise<Buffer>;
}

/**
 * For `verify` and `digest`: the addon's two-thread C digest when it loads
 * (about 3x the JavaScript one on a 5 MB image, bench/RESULTS.md), else
 * src/fsverity.ts. Any failure of the native path is answered by running
 * the JavaScript one, so the reported error (a missing file, a FIFO, ...) is
 * worded the same either way. $CFSROOT_SYS=spawn keeps it all in JavaScript.
 */
export function fileDigester(opts: NativeSysOptions = {}): FileDigester {
  let addon: NativeAddon | null = null;
  if (process.env['CFSROOT_SYS'] !== 'spawn') {
    try {
      addon = opts.addon ?? loadNativeAddon(opts);
    } catch {
      addon = null; // e.g. a noexec /run and temp dir: the JavaScript digest still works
    }
  }
  const early = addon ? prefetchTable(addon) : null;
  const js = async (path: string, alg: VerityAlg): Promise<Buffer> => (await import('../fsverity.js')).fsverityDigestFile(path, alg);
  return {
    start(path, alg) {
      early?.start(path, alg, null);
    },
    async digest(path, alg) {
      const handle = early?.take(path, alg);
      try {
        if (handle && addon?.finishDigest) return addon.finishDigest(handle);
        if (addon?.digestFile) return addon.digestFile(path, alg, 0);
      } catch {
        // Fall through: the JavaScript digest reports the problem in its own words.
      }
      return js(path, alg);
    },
  };
}
