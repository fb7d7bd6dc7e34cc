/**
 * The ostree mode's mount plan (SPEC §4, with the deliberate differences of
 * §3 and §4.7): `planMounts` turns a BootDecision plus a few facts about the
 * running system (PlanEnv) into the ordered list of steps the boot will
 * execute, top-down in the order ostree-prepare-root mounts. The image's own
 * steps come from src/image/plan.ts; the step kinds, their text and the
 * kernel features from src/plan/steps.ts. Pure: src/plan/execute.ts runs it.
 */

import * as path from 'node:path';
import { fail } from '../errors.js';
import type { BootDecision } from './model.js';
import type { VerityAlg } from '../image/fsverity.js';
import { encodeOstreeBooted } from './booted.js';
import { imagePathOf, planImageSteps, type ImageEnv, type ImageToMount } from '../image/plan.js';
import { detachedLower, escapeOverlayPath, kernelFeatures, type MountStep, type PlanEnv } from '../plan/steps.js';
import { isAlnum } from '../text.js';

/** The image digest composefs pins (ostree.composefs.digest.v0 is a SHA-256 fs-verity digest). */
const IMAGE_DIGEST_ALG = 'sha256' satisfies VerityAlg;

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
  if (!isAlnum(env.randomSuffix, 6)) {
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
    // The EROFS lower needs a mount point only where the kernel takes no detached layer.
    const detached = detachedLower(env);
    if (!detached) add({ kind: 'mkdir', path: P.lower, mode: 0o755 });
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
      detachedLower: detached,
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
    if (!detached) add({ kind: 'umount-lazy', target: P.lower, restoreFrom: null });
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
