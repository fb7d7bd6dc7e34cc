/**
 * The mount plan as data, shared by both modes: the step kinds (plain,
 * JSON-serialisable), what each prints (`cfsroot plan`), the facts about the
 * running system a plan depends on (PlanEnv), and the kernel features.
 * The plans themselves: src/ostree/plan.ts and src/composefs-native/plan.ts;
 * the image's steps, src/image/plan.ts. Nothing here touches the kernel;
 * src/plan/execute.ts runs the steps. Keeping the plan pure lets `cfsroot
 * plan` print exactly what the boot would do, lets tests check the sequence
 * without root, and gives the executor what it needs to undo a partial run.
 *
 * Kernel-version fallbacks live in `kernelFeatures` below, each with the
 * release that made it necessary; the rest of the plan asks that one place.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describeSystemError, fail } from '../errors.js';
import type { BootDecision } from '../ostree/model.js';
import type { VerityAlg } from '../image/fsverity.js';
import { isDigits } from '../text.js';

/** One action on the mount namespace or on /run. Plain data: JSON-serialisable as is. */
export type MountStep =
  /**
   * `beneath`: a directory on the disk (SYSROOT) the new directory's parent
   * is resolved from without following symlinks; such a directory is state
   * the boot keeps (created if missing, as composefs-setup-root does), so it
   * is not removed on failure. Absent: a path cfsroot made or was given.
   */
  | { kind: 'mkdir'; path: string; mode: number; beneath?: string }
  | { kind: 'rmdir'; path: string }
  | { kind: 'make-rprivate'; target: string }
  | { kind: 'make-slave'; target: string }
  | { kind: 'make-shared'; target: string }
  /**
   * Open the image once (O_RDONLY, no symlink followed, beneath `beneath`,
   * a regular file); the executor holds the descriptor under the name
   * `image` for the steps below, which read, measure or mount only it.
   */
  | { kind: 'open-image'; image: string; beneath: string }
  /**
   * The kernel's fs-verity digest of that descriptor (FS_IOC_MEASURE_VERITY)
   * must be in `alg` and equal `expectedDigest` (null: only that fs-verity
   * is on). No fs-verity on it now: refused, never another path.
   */
  | {
      kind: 'measure-image';
      image: string;
      alg: VerityAlg;
      expectedDigest: string | null;
      expectedDigestSource: string | null;
    }
  /**
   * Copy the descriptor's bytes and take the fs-verity digest of exactly the
   * copy's bytes, which must equal `expectedDigest`; the copy is what
   * mount-erofs `from: 'copy'` mounts. `to`: 'private' (a nameless file on
   * a tmpfs mounted nowhere, the addon) or the path of a new file in /run.
   */
  | {
      kind: 'copy-image';
      image: string;
      to: 'private' | string;
      alg: VerityAlg;
      expectedDigest: string;
      expectedDigestSource: string | null;
    }
  | {
      kind: 'mount-erofs';
      /** The open-image step's name for the image. */
      image: string;
      /** Mount the image's descriptor itself, or the copy copy-image made of it. */
      from: 'image' | 'copy';
      target: string;
      /** Filesystem options (`ro` is always applied, not listed); noacl is re-read from what is mounted. */
      options: string[];
      /** Through a read-only loop device on the descriptor (before 6.12, and always for a copy on tmpfs). */
      loop: boolean;
      /**
       * Left detached (Linux 6.16 with the addon): no mount point; `target`
       * only names the mount, and the overlay that lists `target` as a layer
       * is given the mount itself (src/plan/execute.ts). Absent: attached on `target`.
       */
      detached?: true;
    }
  | {
      kind: 'mount-overlay';
      source: string;
      target: string;
      options: string[];
      readonly: boolean;
      /** See `bind`. */
      targetBeneath: string | null;
      /**
       * Directories named in `options` (layers) whose meaning the disk or the
       * image decides: the backend opens each beneath `beneath` as `bind`
       * does and gives the kernel that descriptor (/proc/self/fd/N) instead.
       */
      dirsBeneath: Array<{ path: string; beneath: string }>;
    }
  | {
      kind: 'bind';
      source: string;
      target: string;
      recursive: boolean;
      /**
       * The directory the source (target) lies beneath and is resolved from,
       * one component at a time, following no symlink (issue 13): SYSROOT,
       * the staging dir or the new root's /sysroot for paths whose meaning the
       * disk decides; null for paths cfsroot made or was given.
       */
      sourceBeneath: string | null;
      targetBeneath: string | null;
    }
  /** Bind-remount: changes only this mount's read-only flag, not the filesystem's. */
  | { kind: 'remount'; target: string; readonly: boolean }
  | { kind: 'move'; source: string; target: string }
  /**
   * Lazy unmount. `restoreFrom`: a mount of the same tree that stays
   * reachable; undoing the step moves it back to `target` (SYSROOT, step 6).
   */
  | { kind: 'umount-lazy'; target: string; restoreFrom: string | null }
  | { kind: 'symlink'; path: string; linkTarget: string }
  /** A symlink that keeps whatever is already at `path` (composefs-native /run/systemd/volatile-root, made best effort upstream). */
  | { kind: 'symlink-if-absent'; path: string; linkTarget: string }
  /** A fresh tmpfs (the upper and work dirs of a transient overlay), detached again once the overlay holds it. */
  | { kind: 'mount-tmpfs'; target: string; options: string[] }
  | { kind: 'write-file'; path: string; mode: number; contentBase64: string; what: string };

export type MountStepKind = MountStep['kind'];

export interface KernelVersion {
  major: number;
  minor: number;
}

/** What the plan depends on from the running system. */
export interface PlanEnv {
  /** Running kernel: `uname -r` text or a parsed version. */
  kernel: string | KernelVersion;
  /** major:minor of the device holding SYSROOT (for /run/systemd/volatile-root), or null to skip the link. */
  rootDevice: { major: number; minor: number } | null;
  /** Default /run. */
  runDir?: string;
  /** Where the new root is assembled; default /sysroot.tmp (SPEC §4.1). */
  stagingDir?: string;
  /** Per-run suffix of transient-etc.XXXXXX, the image copy and the lower mount point (6 characters of [A-Za-z0-9]). */
  randomSuffix: string;
  /**
   * `--target DIR`: assemble the new root at DIR (it becomes the staging dir)
   * and leave SYSROOT where it is, e.g. /run/nextroot for systemctl
   * soft-reboot from a booted system. Absent: the boot's own target, SYSROOT.
   */
  target?: string;
  /**
   * The hash of the image's fs-verity as probed before planning (src/boot.ts
   * probeImage), or null/absent: none, or no addon to tell. Picks the image
   * path (src/image/plan.ts).
   */
  imageVerity?: VerityAlg | null;
  /** The backend can copy the image privately (the addon); absent/false: a named copy in /run (mount(8) backend). */
  privateCopies?: boolean;
  /** The backend can leave a mount detached (the addon's fsmount); with kernelFeatures.detachedLayers, the EROFS lower is. */
  detachedMounts?: boolean;
}

export interface KernelFeatures {
  release: string;
  /** `lowerdir=a::b`: the objects dir is a data-only layer, invisible in the merged tree (Linux 6.5). */
  dataOnlyLowers: boolean;
  /** overlay `verity=require` (Linux 6.6). */
  overlayVerity: boolean;
  /** EROFS mounted straight from a regular file, no loop device (Linux 6.12). */
  fileBackedErofs: boolean;
  /**
   * overlayfs takes a detached mount (fsmount(2), never attached) as a layer,
   * named by its /proc/self/fd path. Before the kernel commit "fs: allow
   * detached mounts in clone_private_mount()" (db04662e2f4f, merged for 6.15;
   * not in 6.12.y) overlayfs refused them. Booted here on 6.16 (a QEMU guest
   * on Debian's 6.16.12 kernel) and 6.18 (the namespace tests); 6.15 is not,
   * so 6.16 is the release this needs.
   */
  detachedLayers: boolean;
}

export function parseKernelVersion(release: string): KernelVersion {
  // /^(\d+)\.(\d+)/
  const dot = release.indexOf('.');
  const major = release.slice(0, dot);
  let end = dot + 1;
  while (end < release.length && release.charCodeAt(end) >= 0x30 && release.charCodeAt(end) <= 0x39) end++;
  const minor = release.slice(dot + 1, end);
  if (dot < 0 || !isDigits(major) || !isDigits(minor)) fail('EUSAGE', `kernel release "${release}" does not start with MAJOR.MINOR`);
  return { major: Number(major), minor: Number(minor) };
}

export function kernelFeatures(kernel: string | KernelVersion): KernelFeatures {
  const v = typeof kernel === 'string' ? parseKernelVersion(kernel) : kernel;
  const atLeast = (major: number, minor: number) => v.major > major || (v.major === major && v.minor >= minor);
  return {
    release: typeof kernel === 'string' ? kernel : `${v.major}.${v.minor}`,
    dataOnlyLowers: atLeast(6, 5),
    overlayVerity: atLeast(6, 6),
    fileBackedErofs: atLeast(6, 12),
    detachedLayers: atLeast(6, 16),
  };
}

/** The plan leaves the EROFS lower detached: the kernel takes detached layers, and the backend can make one. */
export function detachedLower(env: PlanEnv): boolean {
  return kernelFeatures(env.kernel).detachedLayers && env.detachedMounts === true;
}

/**
 * Escape a path for an overlayfs option value. The kernel splits the option
 * string on `,` and lowerdir on `:`, and takes `\` as the escape for both.
 */
export function escapeOverlayPath(p: string): string {
  // Runs without a special character are taken whole (src/cmdline.ts says why).
  let out = '';
  let from = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x5c || c === 0x2c || c === 0x3a) {
      out += `${p.slice(from, i)}\\`;
      from = i; // the character itself starts the next run
    }
  }
  return out + p.slice(from);
}

/** A lowerdir value as its entries (escapes kept) and the unescaped ':' between them, in order. */
function lowerdirEntries(value: string): string[] {
  const out: string[] = [];
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x5c) i++; // an escape: the next character is part of the entry, whatever it is
    else if (c === 0x3a) {
      if (i > from) out.push(value.slice(from, i));
      out.push(':');
      from = i + 1;
    }
  }
  if (value.length > from) out.push(value.slice(from));
  return out;
}

/**
 * `options` with each layer path that `replace` maps (by its escaped form:
 * a whole `lowerdir` entry, or a whole `upperdir`/`workdir` value) swapped
 * for the replacement, which must need no escaping (a /proc/self/fd path).
 */
export function replaceOverlayPaths(options: readonly string[], replace: ReadonlyMap<string, string>): string[] {
  return options.map((o) => {
    const eq = o.indexOf('=');
    if (eq < 0) return o;
    const key = o.slice(0, eq);
    const value = o.slice(eq + 1);
    if (key === 'upperdir' || key === 'workdir') return `${key}=${replace.get(value) ?? value}`;
    if (key !== 'lowerdir') return o;
    // Entries (escaped characters kept) and the unescaped ':' between them, in order.
    const entries = lowerdirEntries(value);
    return `lowerdir=${entries.map((e) => (e === ':' ? e : (replace.get(e) ?? e))).join('')}`;
  });
}


/**
 * The running kernel's release, from /proc. Not os.release(): Node reads
 * uname once, when node:os loads, so in the single executable it is the
 * release of the machine that built the startup snapshot (measured:
 * 6.18 reported under a 2.6 uname personality; and a 6.12 guest was
 * planned as 6.18). Every kernel fallback (kernelFeatures) hangs on this.
 */
export function runningKernelRelease(file = '/proc/sys/kernel/osrelease'): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail('EIO', `reading the running kernel's release from ${file}: ${describeSystemError(e)}: expected /proc to be mounted`);
  }
  return text.trim();
}

/**
 * The facts about this machine the plan needs, read from the system (not
 * pure: uname, stat of SYSROOT, random bytes).
 */
export function detectPlanEnv(d: Pick<BootDecision, 'sysroot'>, runDir = '/run', random: RandomBytes = randomBytes): PlanEnv {
  const st = fs.statSync(d.sysroot, { bigint: true });
  return {
    kernel: runningKernelRelease(),
    rootDevice: { major: devMajor(st.dev), minor: devMinor(st.dev) },
    runDir,
    randomSuffix: randomSuffix(random),
  };
}

/**
 * n random bytes: node:crypto's by default; at boot the addon's getrandom(2)
 * (Sys.randomBytes), one system call where node:crypto's first use sets up
 * OpenSSL's generator.
 */
export type RandomBytes = (n: number) => Uint8Array;

// glibc's encoding of dev_t (sys/sysmacros.h): major in bits 8-19 and 32-43, minor in 0-7 and 20-31.
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}

/** Six characters like mkdtemp's XXXXXX. */
export function randomSuffix(random: RandomBytes = randomBytes): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = random(6);
  if (bytes.length !== 6) fail('EINTERNAL', `the random source gave ${bytes.length} bytes for 6`);
  let s = '';
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

const octal = (mode: number) => mode.toString(8).padStart(4, '0');

/** One human-readable line for a step; stable text (`cfsroot plan` prints it, tests compare it). */
export function describeStep(s: MountStep): string {
  switch (s.kind) {
    case 'mkdir':
      return `mkdir -m ${octal(s.mode)} ${s.path}${s.beneath !== undefined ? ` (if missing; no symlink followed beneath ${s.beneath}; kept)` : ''}`;
    case 'rmdir':
      return `rmdir ${s.path}`;
    case 'make-rprivate':
      return `mount --make-rprivate ${s.target}`;
    case 'make-slave':
      return `mount --make-slave ${s.target}`;
    case 'make-shared':
      return `mount --make-shared ${s.target}`;
    case 'open-image':
      return `open ${s.image} (read-only, beneath ${s.beneath}, no symlink followed)`;
    case 'measure-image':
      return (
        `measure ${s.image}: the kernel's fs-verity ${s.alg} digest ` +
        (s.expectedDigest ? `must be ${s.expectedDigest} (${s.expectedDigestSource ?? 'pinned'})` : 'must exist (logged, not pinned)')
      );
    case 'copy-image':
      return (
        `copy ${s.image} -> ${s.to === 'private' ? 'a private in-memory file (no name)' : s.to}, then fs-verity ${s.alg} of the copy ` +
        `must be ${s.expectedDigest} (${s.expectedDigestSource ?? 'pinned'})`
      );
    case 'mount-erofs':
      return (
        `mount -t erofs -o ${['ro', ...s.options, ...(s.loop ? ['loop'] : [])].join(',')} ` +
        `${s.from === 'copy' ? `<the copy of ${s.image}>` : `<the open ${s.image}>`} ` +
        (s.detached ? `(detached, named ${s.target}: the overlay's lower, no mount point)` : s.target)
      );
    case 'mount-overlay':
      return `mount -t overlay -o ${[s.readonly ? 'ro' : 'rw', ...s.options].join(',')} ${s.source} ${s.target}`;
    case 'bind':
      return `mount ${s.recursive ? '--rbind' : '--bind'} ${s.source} ${s.target}`;
    case 'remount':
      return `mount -o remount,bind,${s.readonly ? 'ro' : 'rw'} ${s.target}`;
    case 'move':
      return `mount --move ${s.source} ${s.target}`;
    case 'umount-lazy':
      return `umount --lazy ${s.target}`;
    case 'symlink':
      return `ln -s ${s.linkTarget} ${s.path}`;
    case 'symlink-if-absent':
      return `ln -s ${s.linkTarget} ${s.path} (an existing ${s.path} is kept)`;
    case 'mount-tmpfs':
      return `mount -t tmpfs -o ${['rw', ...s.options].join(',')} tmpfs ${s.target}`;
    case 'write-file':
      return `write ${s.what} to ${s.path} (${Buffer.from(s.contentBase64, 'base64').length} bytes, mode ${octal(s.mode)})`;
  }
}

/** The path a step concerns (its target, the path it makes, or the image it opens), for the boot's deadline message. */
export function stepSubject(s: MountStep): string {
  return 'target' in s ? s.target : 'path' in s ? s.path : s.image;
}

/** The plan as text, one numbered line per step. */
export function formatPlan(steps: readonly MountStep[]): string {
  const width = String(steps.length).length;
  return steps.map((s, i) => `${String(i + 1).padStart(width)}. ${describeStep(s)}`).join('\n') + '\n';
}
