/**
 * The mount plan as data (SPEC §4, with the deliberate differences of §3 and
 * §4.7): `planMounts` turns a BootDecision plus a few facts about the running
 * system (PlanEnv) into the ordered list of steps the boot will execute.
 * Nothing here touches the kernel; src/plan/execute.ts runs the steps. Keeping
 * the plan pure lets `cfsroot plan` print exactly what the boot would do,
 * lets tests check the sequence without root, and gives the executor the
 * information it needs to undo a partial run.
 *
 * Kernel-version fallbacks live in `kernelFeatures` below, each with the
 * release that made it necessary; the rest of the plan asks that one place.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fail } from '../errors.js';
import type { BootDecision, VerityAlg } from '../ostree/model.js';
import { encodeOstreeBooted } from '../ostree/booted.js';
import { imagePathOf, planImageSteps, type ImageEnv, type ImageToMount } from '../image/plan.js';

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
}

export interface KernelFeatures {
  release: string;
  /** `lowerdir=a::b`: the objects dir is a data-only layer, invisible in the merged tree (Linux 6.5). */
  dataOnlyLowers: boolean;
  /** overlay `verity=require` (Linux 6.6). */
  overlayVerity: boolean;
  /** EROFS mounted straight from a regular file, no loop device (Linux 6.12). */
  fileBackedErofs: boolean;
}

export function parseKernelVersion(release: string): KernelVersion {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) fail('EUSAGE', `kernel release "${release}" does not start with MAJOR.MINOR`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

export function kernelFeatures(kernel: string | KernelVersion): KernelFeatures {
  const v = typeof kernel === 'string' ? parseKernelVersion(kernel) : kernel;
  const atLeast = (major: number, minor: number) => v.major > major || (v.major === major && v.minor >= minor);
  return {
    release: typeof kernel === 'string' ? kernel : `${v.major}.${v.minor}`,
    dataOnlyLowers: atLeast(6, 5),
    overlayVerity: atLeast(6, 6),
    fileBackedErofs: atLeast(6, 12),
  };
}

/**
 * Escape a path for an overlayfs option value. The kernel splits the option
 * string on `,` and lowerdir on `:`, and takes `\` as the escape for both.
 */
export function escapeOverlayPath(p: string): string {
  return p.replace(/[\\,:]/g, (c) => `\\${c}`);
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
    const entries = value.match(/(?:\\.|[^\\:])+|:/g) ?? [];
    return `lowerdir=${entries.map((e) => (e === ':' ? e : (replace.get(e) ?? e))).join('')}`;
  });
}

/** The image digest composefs pins (ostree.composefs.digest.v0 is a SHA-256 fs-verity digest). */
const IMAGE_DIGEST_ALG = 'sha256' satisfies VerityAlg;

/**
 * The facts about this machine the plan needs, read from the system (not
 * pure: uname, stat of SYSROOT, random bytes).
 */
export function detectPlanEnv(d: Pick<BootDecision, 'sysroot'>, runDir = '/run'): PlanEnv {
  const st = fs.statSync(d.sysroot, { bigint: true });
  return {
    kernel: os.release(),
    rootDevice: { major: devMajor(st.dev), minor: devMinor(st.dev) },
    runDir,
    randomSuffix: randomSuffix(),
  };
}

// glibc's encoding of dev_t (sys/sysmacros.h): major in bits 8-19 and 32-43, minor in 0-7 and 20-31.
export function devMajor(dev: bigint): number {
  return Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
}
export function devMinor(dev: bigint): number {
  return Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
}

/** Six characters like mkdtemp's XXXXXX. */
export function randomSuffix(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
}

/** Paths the plan uses, derived once from PlanEnv. */
export function planPaths(env: PlanEnv) {
  const run = env.runDir ?? '/run';
  const priv = `${run}/ostree/.private`;
  return {
    run,
    ostreeRun: `${run}/ostree`,
    priv,
    // The per-run random suffix (as transient-etc has) keeps a leftover of an
    // earlier run over the same /run (soft reboot, unit run twice: SPEC §8)
    // from colliding with this run's copy or lower mount point.
    imageCopy: `${priv}/cfsroot.cfs.${env.randomSuffix}`,
    /** Which image path the boot took (src/image/plan.ts ImagePath), for tests and tools to read. */
    imagePathFile: `${run}/cfsroot/image-path`,
    lower: `${priv}/cfsroot-lower.${env.randomSuffix}`,
    transientRoot: `${priv}/root`,
    // --target: the new root is assembled where it is to stay.
    staging: env.target ?? env.stagingDir ?? '/sysroot.tmp',
    booted: `${run}/ostree-booted`,
    // What `ostree admin prepare-soft-reboot` writes for /run/nextroot;
    // ostree-boot-complete.service renames it to ostree-booted once the soft reboot is done.
    nextrootBooted: `${run}/ostree/nextroot-booted`,
    nextroot: `${run}/nextroot`,
    varMarker: `${run}/ostree/initramfs-mount-var`,
    volatileRoot: `${run}/systemd/volatile-root`,
    transientEtc: `${run}/ostree/transient-etc.${env.randomSuffix}`,
  };
}

/** The steps of SPEC §4, in order. Throws CfsError when this kernel cannot do what the decision asks. */
export function planMounts(d: BootDecision, env: PlanEnv): MountStep[] {
  if (!/^[A-Za-z0-9]{6}$/.test(env.randomSuffix)) {
    fail('EUSAGE', `transient-etc suffix "${env.randomSuffix}": expected 6 characters [A-Za-z0-9]`);
  }
  const P = planPaths(env);
  const k = kernelFeatures(env.kernel);
  const c = d.config;
  const S = d.sysroot;
  const T = P.staging;
  const cfs = d.composefs;
  // --target (src/cli.ts): SYSROOT stays mounted where it is and the run
  // state of the boot that is running (/run/ostree-booted, the /var marker,
  // volatile-root) is left alone.
  const targeted = env.target !== undefined;
  // The deployment as a path beneath SYSROOT (resolveDeployment's dir is its
  // realpath, which need not start with SYSROOT when SYSROOT is itself a link).
  const deployDir = `${S}/${d.deployment.relDir}`;
  const steps: MountStep[] = [];
  const add = (s: MountStep) => steps.push(s);
  let imagePath: string | null = null;

  // §4.1. .private is 0000: only root may look at the image copy and the lower mount.
  add({ kind: 'mkdir', path: P.ostreeRun, mode: 0o755 });
  add({ kind: 'mkdir', path: P.priv, mode: 0o000 });
  // Nothing we mount may propagate back into the initramfs' peers, and
  // MS_MOVE (step 8) refuses to move a mount whose parent is shared. A
  // --target run moves nothing and runs in a booted system, whose
  // propagation is not cfsroot's to change.
  if (!targeted) add({ kind: 'make-rprivate', target: '/' });
  add({ kind: 'mkdir', path: T, mode: 0o755 });

  if (cfs) {
    // §4.2 with §3's difference (issue 15): the path the image takes, src/image/plan.ts.
    if (cfs.verity && !k.overlayVerity) {
      fail('EMOUNT', `composefs verity is required but overlayfs verity=require needs Linux >= 6.6 (running ${k.release})`);
    }
    add({ kind: 'mkdir', path: P.lower, mode: 0o755 });
    const image: ImageToMount = {
      // The image as a path beneath SYSROOT, opened from there (decide.ts resolved it under the deployment).
      path: `${deployDir}/.ostree.cfs`,
      beneath: S,
      alg: IMAGE_DIGEST_ALG,
      expectedDigest: cfs.expectedDigest,
      expectedDigestSource: cfs.expectedDigestSource,
      requireVerity: false,
      hasAcl: cfs.header.hasAcl,
    };
    const imageEnv: ImageEnv = {
      fileBackedErofs: k.fileBackedErofs,
      imageVerity: env.imageVerity ?? null,
      privateCopies: env.privateCopies ?? false,
      namedCopy: P.imageCopy,
    };
    const imageSteps = planImageSteps(image, imageEnv, P.lower);
    imagePath = imagePathOf(imageSteps);
    steps.push(...imageSteps);
    const objects = path.join(S, 'ostree/repo/objects');
    // Before 6.5 the objects dir can only be an ordinary lower layer: its
    // xx/ directories then show through in the merged root (ostree does the same).
    const sep = k.dataOnlyLowers ? '::' : ':';
    const options = ['metacopy=on', 'redirect_dir=on', `lowerdir=${escapeOverlayPath(P.lower)}${sep}${escapeOverlayPath(objects)}`];
    if (c.rootTransient) {
      // 0755, not mkdtemp's 0700: the upper dir's mode becomes the mode of / (SPEC §8).
      add({ kind: 'mkdir', path: P.transientRoot, mode: 0o755 });
      add({ kind: 'mkdir', path: `${P.transientRoot}/upper`, mode: 0o755 });
      add({ kind: 'mkdir', path: `${P.transientRoot}/work`, mode: 0o755 });
      options.push(`upperdir=${escapeOverlayPath(`${P.transientRoot}/upper`)}`);
      options.push(`workdir=${escapeOverlayPath(`${P.transientRoot}/work`)}`);
    }
    if (cfs.verity) options.push('verity=require');
    add({
      kind: 'mount-overlay',
      source: 'composefs',
      target: T,
      options,
      // transient-ro: writable layers exist but the mount starts read-only,
      // so only a process that remounts it in its own namespace can write.
      readonly: !c.rootTransient || c.rootTransientRo,
      targetBeneath: null,
      dirsBeneath: [{ path: objects, beneath: S }],
    });
    // The overlay holds the EROFS superblock; the mount point itself is not needed.
    add({ kind: 'umount-lazy', target: P.lower, restoreFrom: null });
    if (env.rootDevice && !targeted) {
      add({ kind: 'mkdir', path: path.dirname(P.volatileRoot), mode: 0o755 });
      add({
        kind: 'symlink',
        path: P.volatileRoot,
        linkTarget: `/dev/block/${env.rootDevice.major}:${env.rootDevice.minor}`,
      });
    }
  } else {
    if (c.rootTransient) {
      fail('ECONFIG', 'root.transient requires composefs, but this boot resolved to the legacy bind (no composefs image)');
    }
    // §4.3: legacy boot, the deployment checkout is the root.
    add({ kind: 'bind', source: deployDir, target: T, recursive: false, sourceBeneath: S, targetBeneath: null });
  }

  // §4.4 /etc
  let transientEtc: string | null = null;
  if (c.sysrootReadonly || cfs || c.rootTransient) {
    if (c.etcTransient) {
      transientEtc = P.transientEtc;
      add({ kind: 'mkdir', path: transientEtc, mode: 0o755 });
      add({ kind: 'mkdir', path: `${transientEtc}/upper`, mode: 0o755 });
      add({ kind: 'mkdir', path: `${transientEtc}/work`, mode: 0o755 });
      add({
        kind: 'mount-overlay',
        source: 'overlay',
        target: `${T}/etc`,
        options: [
          `lowerdir=${escapeOverlayPath(`${T}/usr/etc`)}`,
          `upperdir=${escapeOverlayPath(`${transientEtc}/upper`)}`,
          `workdir=${escapeOverlayPath(`${transientEtc}/work`)}`,
        ],
        readonly: false,
        targetBeneath: T,
        dirsBeneath: [{ path: `${T}/usr/etc`, beneath: T }],
      });
    } else {
      add({ kind: 'bind', source: `${deployDir}/etc`, target: `${T}/etc`, recursive: false, sourceBeneath: S, targetBeneath: T });
      add({ kind: 'remount', target: `${T}/etc`, readonly: false });
    }
  }

  // §4.5 /usr. A hotfix overlay under a signed root would make the
  // signature meaningless, so it is skipped even if the decision asks for it.
  if (d.usrOverlay && !cfs?.signed) {
    add({
      kind: 'mount-overlay',
      source: 'overlay',
      target: `${T}/usr`,
      options: [
        `lowerdir=${escapeOverlayPath(`${T}/usr`)}`,
        `upperdir=${escapeOverlayPath(`${deployDir}/.usr-ovl-upper`)}`,
        `workdir=${escapeOverlayPath(`${deployDir}/.usr-ovl-work`)}`,
      ],
      readonly: false,
      targetBeneath: T,
      dirsBeneath: [
        { path: `${T}/usr`, beneath: T },
        { path: `${deployDir}/.usr-ovl-upper`, beneath: S },
        { path: `${deployDir}/.usr-ovl-work`, beneath: S },
      ],
    });
  } else if (!cfs) {
    add({ kind: 'bind', source: `${T}/usr`, target: `${T}/usr`, recursive: false, sourceBeneath: T, targetBeneath: T });
    add({ kind: 'remount', target: `${T}/usr`, readonly: true });
  }

  // §4.6 the physical root becomes /sysroot inside the new root.
  add({ kind: 'bind', source: S, target: `${T}/sysroot`, recursive: true, sourceBeneath: null, targetBeneath: T });
  if (!targeted) add({ kind: 'umount-lazy', target: S, restoreFrom: `${T}/sysroot` });

  // §4.7 /var, reached through the new /sysroot bind (SYSROOT is detached now).
  const newSysroot = `${T}/sysroot`;
  const varSrc = `${newSysroot}/ostree/deploy/${d.deployment.stateroot}/var`;
  if (c.sysrootReadonly) {
    // Its own mount, so the later read-only remount of /sysroot leaves it writable.
    add({ kind: 'bind', source: varSrc, target: varSrc, recursive: false, sourceBeneath: newSysroot, targetBeneath: newSysroot });
    add({ kind: 'remount', target: varSrc, readonly: false });
  }
  if (!c.systemdVolatile) {
    add({ kind: 'bind', source: varSrc, target: `${T}/var`, recursive: false, sourceBeneath: newSysroot, targetBeneath: T });
    // slave: mounts made under the stateroot var later do not leak into /var
    // twice; shared: the booted system's own mounts under /var propagate.
    add({ kind: 'make-slave', target: `${T}/var` });
    add({ kind: 'make-shared', target: `${T}/var` });
    // Tells ostree's systemd generator that /var is already mounted (the running boot's marker: not for --target).
    if (!targeted) add({ kind: 'write-file', path: P.varMarker, mode: 0o644, contentBase64: '', what: 'the /var marker' });
  }

  // The image path taken, where tests and tools can read it (cfsroot's own run state).
  if (imagePath !== null && !targeted) {
    add({ kind: 'mkdir', path: path.dirname(P.imagePathFile), mode: 0o755 });
    add({
      kind: 'write-file',
      path: P.imagePathFile,
      mode: 0o644,
      contentBase64: Buffer.from(`${imagePath}\n`).toString('base64'),
      what: 'the image path taken',
    });
  }

  // §4.8
  const booted = Buffer.from(encodeOstreeBooted(d, { transientEtc })).toString('base64');
  if (!targeted) {
    add({ kind: 'write-file', path: P.booted, mode: 0o644, contentBase64: booted, what: '/run/ostree-booted' });
    add({ kind: 'move', source: T, target: S });
    add({ kind: 'rmdir', path: T });
  } else if (T === P.nextroot) {
    // The soft reboot's own record, as ostree's prepare-soft-reboot writes it;
    // any other target is a root nothing will boot into, and gets none.
    add({ kind: 'write-file', path: P.nextrootBooted, mode: 0o644, contentBase64: booted, what: '/run/ostree/nextroot-booted' });
  }
  // The new root's /sysroot: at SYSROOT after the move, at the target without one.
  if (c.sysrootReadonly) add({ kind: 'remount', target: `${targeted ? T : S}/sysroot`, readonly: true });
  return steps;
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
        `copy ${s.image} -> ${s.to === 'private' ? 'a private tmpfs (no name)' : s.to}, then fs-verity ${s.alg} of the copy ` +
        `must be ${s.expectedDigest} (${s.expectedDigestSource ?? 'pinned'})`
      );
    case 'mount-erofs':
      return (
        `mount -t erofs -o ${['ro', ...s.options, ...(s.loop ? ['loop'] : [])].join(',')} ` +
        `${s.from === 'copy' ? `<the copy of ${s.image}>` : `<the open ${s.image}>`} ${s.target}`
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

/** The plan as text, one numbered line per step. */
export function formatPlan(steps: readonly MountStep[]): string {
  const width = String(steps.length).length;
  return steps.map((s, i) => `${String(i + 1).padStart(width)}. ${describeStep(s)}`).join('\n') + '\n';
}
