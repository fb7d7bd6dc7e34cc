/**
 * The composefs-native mount plan (SPEC §6): `planNative` turns a
 * NativeDecision into the steps the boot runs, in composefs-setup-root's
 * order (composefs-rs crates/composefs-setup-root, bootc crates/initramfs):
 *
 *   run dirs, / rprivate, the staging dir -> the image as EROFS at a private
 *   lower -> the overlay `composefs:<hex>` at the staging dir (image lower,
 *   objects data-only lower, verity=require unless insecure; root transient:
 *   with a tmpfs upper) -> the physical root at NEW/sysroot -> /etc ->
 *   /var -> /run/systemd/volatile-root -> SYSROOT detached, the new root
 *   moved there -> NEW/sysroot read-only.
 *
 * Upstream assembles a detached tree by descriptor (Linux 6.15) or mounts
 * the image at SYSROOT first; cfsroot assembles at a staging directory by
 * path, as its ostree plan does, so the same executor runs and undoes both
 * and `cfsroot plan` prints every mount. Pure, apart from detectNativeEnv.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors.js';
import { detachedLower, detectPlanEnv, devMajor, devMinor, escapeOverlayPath, kernelFeatures, type MountStep, type PlanEnv, type RandomBytes } from '../plan/steps.js';
import { imagePathOf, planImageSteps } from '../image/plan.js';
import type { NativeDecision, NativeSubdir } from './model.js';

/** What systemd (#35017) names the root partition it found; its device is what volatile-root must name. */
export const GPT_AUTO_ROOT = '/dev/gpt-auto-root';

/** Paths of the native plan, derived once from PlanEnv. */
export function nativePaths(env: PlanEnv) {
  const run = env.runDir ?? '/run';
  // cfsroot's own: /run/composefs is bootc's state in the booted system.
  const priv = `${run}/cfsroot/.private`;
  return {
    run,
    cfsrootRun: `${run}/cfsroot`,
    priv,
    imageCopy: `${priv}/image.${env.randomSuffix}`,
    lower: `${priv}/lower.${env.randomSuffix}`,
    /** tmpfs of a transient overlay (root, etc, var), detached once the overlay holds it. */
    transient: (what: string) => `${priv}/${what}-transient.${env.randomSuffix}`,
    staging: env.target ?? env.stagingDir ?? '/sysroot.tmp',
    volatileRoot: `${run}/systemd/volatile-root`,
    imagePathFile: `${run}/cfsroot/image-path`,
  };
}

/** The steps, in order. Throws CfsError when this kernel cannot do what the decision asks. */
export function planNative(d: NativeDecision, env: PlanEnv): MountStep[] {
  if (!/^[A-Za-z0-9]{6}$/.test(env.randomSuffix)) {
    fail('EUSAGE', `plan suffix "${env.randomSuffix}": expected 6 characters [A-Za-z0-9]`);
  }
  const P = nativePaths(env);
  const k = kernelFeatures(env.kernel);
  const S = d.sysroot;
  const T = P.staging;
  const targeted = env.target !== undefined;
  const steps: MountStep[] = [];
  const add = (...s: MountStep[]) => steps.push(...s);

  // Run dirs: .private is 0000, only root may look at the image copy and the lower.
  add({ kind: 'mkdir', path: P.cfsrootRun, mode: 0o755 }, { kind: 'mkdir', path: P.priv, mode: 0o000 });
  // As the ostree plan: no propagation into the initramfs' peers, and MS_MOVE
  // needs a private parent; a --target run moves nothing and leaves a booted
  // system's propagation alone.
  if (!targeted) add({ kind: 'make-rprivate', target: '/' });
  add({ kind: 'mkdir', path: T, mode: 0o755 });

  // The image, then the composefs overlay on it.
  if (d.verity.require && !k.overlayVerity) {
    fail('EMOUNT', `${d.karg.karg} requires verity=require, which overlayfs has from Linux 6.6 (running ${k.release}); boot the insecure form ?<digest>, or a newer kernel`);
  }
  // The EROFS lower needs a mount point only where the kernel takes no detached layer.
  const detached = detachedLower(env);
  if (!detached) add({ kind: 'mkdir', path: P.lower, mode: 0o755 });
  const imageSteps = nativeImageSteps(d, env, P.lower);
  const imagePath = imagePathOf(imageSteps);
  add(...imageSteps);
  // Root transient: the upper and work of the same overlay, on a fresh tmpfs.
  // Upstream stacks a second overlay on the composefs one; an /etc overlay
  // over that would be three deep, which Linux refuses ("maximum fs stacking
  // depth exceeded"), so the composefs overlay itself gets the upper (as
  // ostree's root.transient does).
  const tmp = P.transient('root');
  if (d.rootTransient.value) add(...tmpfsFor(tmp));
  const objects = d.repository.objects;
  // Before 6.5 the objects can only be an ordinary lower: their XX/ dirs then show in the root (as in the ostree plan).
  const sep = k.dataOnlyLowers ? '::' : ':';
  add({
    kind: 'mount-overlay',
    // bootc reads the source back to know which image it booted: composefs:<hex>, or transient:composefs=<hex>.
    source: d.rootTransient.value ? `transient:composefs=${d.image.digest}` : d.overlay.source,
    target: T,
    options: [
      ...d.overlay.options.filter((o) => o !== 'verity=require'),
      `lowerdir=${escapeOverlayPath(P.lower)}${sep}${escapeOverlayPath(objects)}`,
      ...(d.rootTransient.value ? [`upperdir=${escapeOverlayPath(`${tmp}/upper`)}`, `workdir=${escapeOverlayPath(`${tmp}/work`)}`] : []),
      ...(d.verity.require ? ['verity=require'] : []),
    ],
    readonly: !d.rootTransient.value,
    targetBeneath: null,
    dirsBeneath: [{ path: objects, beneath: S }],
  });
  // The overlay holds the EROFS superblock (and the tmpfs); the mount points are not needed.
  if (!detached) add({ kind: 'umount-lazy', target: P.lower, restoreFrom: null });
  if (d.rootTransient.value) add({ kind: 'umount-lazy', target: tmp, restoreFrom: null });

  // The physical root, recursively, at NEW/sysroot (made read-only at the end, below).
  add({ kind: 'bind', source: S, target: `${T}/sysroot`, recursive: true, sourceBeneath: null, targetBeneath: T });

  add(...subdirSteps('etc', d.etc, S, T, P.transient('etc')));
  add(...subdirSteps('var', d.var, S, T, P.transient('var')));

  // Best effort upstream (systemd#35017); kept if present (ostree-prepare-root may have made it).
  if (env.rootDevice && !targeted) {
    add(
      { kind: 'mkdir', path: path.dirname(P.volatileRoot), mode: 0o755 },
      { kind: 'symlink-if-absent', path: P.volatileRoot, linkTarget: `/dev/block/${env.rootDevice.major}:${env.rootDevice.minor}` },
    );
  }

  // The image path taken, where tests and tools can read it (as the ostree plan writes it).
  if (imagePath !== null && !targeted) {
    add(
      { kind: 'mkdir', path: path.dirname(P.imagePathFile), mode: 0o755 },
      { kind: 'write-file', path: P.imagePathFile, mode: 0o644, contentBase64: Buffer.from(`${imagePath}\n`).toString('base64'), what: 'the image path taken' },
    );
  }

  if (!targeted) {
    // SYSROOT is replaced: detached (the bind at NEW/sysroot keeps it), the new root moved there.
    add(
      { kind: 'umount-lazy', target: S, restoreFrom: `${T}/sysroot` },
      { kind: 'move', source: T, target: S },
      { kind: 'rmdir', path: T },
    );
  }
  // bootc mounts the physical root read-only (mount_setattr on the clone, not recursive).
  add({ kind: 'remount', target: `${targeted ? T : S}/sysroot`, readonly: true });
  return steps;
}

/**
 * The image's steps (src/image/plan.ts, shared with the ostree plan): open
 * it once beneath the repository, then the kernel's fs-verity measurement
 * of that descriptor against the image's name (required in the secure form),
 * or, insecure and without fs-verity, a private copy whose user-space digest
 * must be the name; mounted as EROFS at `lowerTarget`.
 */
export function nativeImageSteps(d: NativeDecision, env: PlanEnv, lowerTarget: string): MountStep[] {
  const P = nativePaths(env);
  const k = kernelFeatures(env.kernel);
  return planImageSteps(
    {
      path: d.image.file,
      beneath: d.repository.dir,
      alg: d.image.alg,
      expectedDigest: d.image.digest,
      expectedDigestSource: `name it has in ${d.repository.dir}/images and karg ${d.karg.karg}`,
      requireVerity: !d.insecure,
      hasAcl: d.image.header.hasAcl,
    },
    {
      fileBackedErofs: k.fileBackedErofs,
      imageVerity: env.imageVerity ?? null,
      privateCopies: env.privateCopies ?? false,
      namedCopy: P.imageCopy,
      detachedLower: detachedLower(env),
    },
    lowerTarget,
  );
}

/** A fresh tmpfs at `tmp` with the upper and work of a transient overlay. */
function tmpfsFor(tmp: string): MountStep[] {
  return [
    { kind: 'mkdir', path: tmp, mode: 0o700 },
    { kind: 'mount-tmpfs', target: tmp, options: ['mode=0700'] },
    // 0755: the upper's mode becomes the mode of the merged directory.
    { kind: 'mkdir', path: `${tmp}/upper`, mode: 0o755 },
    { kind: 'mkdir', path: `${tmp}/work`, mode: 0o700 },
  ];
}

/** An overlay over `lower` (mounted at `lower`) whose upper and work are on a fresh tmpfs at `tmp`. */
function transientOverlay(tmp: string, lower: string, source: string, lowerBeneath: string | null): MountStep[] {
  return [
    ...tmpfsFor(tmp),
    {
      kind: 'mount-overlay',
      source,
      target: lower,
      options: [`lowerdir=${escapeOverlayPath(lower)}`, `upperdir=${escapeOverlayPath(`${tmp}/upper`)}`, `workdir=${escapeOverlayPath(`${tmp}/work`)}`],
      readonly: false,
      targetBeneath: lowerBeneath,
      dirsBeneath: lowerBeneath === null ? [] : [{ path: lower, beneath: lowerBeneath }],
    },
    // The overlay holds the tmpfs; nothing of it stays reachable under /run.
    { kind: 'umount-lazy', target: tmp, restoreFrom: null },
  ];
}

/** /etc or /var of the new root, per setup-root-conf.toml (none | bind | overlay | transient). */
function subdirSteps(name: 'etc' | 'var', s: NativeSubdir, S: string, T: string, tmp: string): MountStep[] {
  const at = `${T}/${name}`;
  switch (s.mount) {
    case 'none':
      return [];
    case 'bind':
      return [{ kind: 'bind', source: s.state!.dir, target: at, recursive: false, sourceBeneath: S, targetBeneath: T }];
    case 'overlay': {
      const upper = s.state!.upper!;
      const work = s.state!.work!;
      return [
        { kind: 'mkdir', path: upper.dir, mode: upper.mode, beneath: S },
        { kind: 'mkdir', path: work.dir, mode: work.mode, beneath: S },
        {
          kind: 'mount-overlay',
          source: 'overlay',
          target: at,
          options: [`lowerdir=${escapeOverlayPath(at)}`, `upperdir=${escapeOverlayPath(upper.dir)}`, `workdir=${escapeOverlayPath(work.dir)}`],
          readonly: false,
          targetBeneath: T,
          dirsBeneath: [
            { path: at, beneath: T },
            { path: upper.dir, beneath: S },
            { path: work.dir, beneath: S },
          ],
        },
      ];
    }
    case 'transient':
      return transientOverlay(tmp, at, 'transient', T);
  }
}

/**
 * The facts the plan needs from this machine: PlanEnv (kernel, SYSROOT's
 * device, a random suffix), with the device volatile-root names taken from
 * /dev/gpt-auto-root when systemd made it.
 */
export function detectNativeEnv(
  d: Pick<NativeDecision, 'sysroot'>,
  runDir = '/run',
  opts: { gptAutoRoot?: string; random?: RandomBytes | undefined } = {},
): PlanEnv {
  const env = detectPlanEnv(d, runDir, opts.random);
  try {
    const st = fs.statSync(opts.gptAutoRoot ?? GPT_AUTO_ROOT, { bigint: true });
    if (st.isBlockDevice()) env.rootDevice = { major: devMajor(st.rdev), minor: devMinor(st.rdev) };
  } catch {
    // Absent (no systemd-gpt-auto-generator root): SYSROOT's device, as ostree does.
  }
  return env;
}
