/**
 * The image step of a composefs boot as plan data (issue 15): which of the
 * three paths the boot takes to mount the EROFS image, decided from the
 * image, its pin and facts probed before planning, and spelled out as the
 * steps the executor (src/plan/execute.ts) runs, so that `cfsroot plan`
 * prints what the boot does. Shared by ostree mode (src/ostree/plan.ts, sha256)
 * and composefs-native mode (sha256 or sha512 images).
 *
 *   fs-verity path (the image has fs-verity and a digest is pinned, or
 *     fs-verity is required): open-image, measure-image (the kernel's
 *     FS_IOC_MEASURE_VERITY of that descriptor must equal the pin), then
 *     mount-erofs from the descriptor. The kernel checks every block read
 *     against the measured tree: no copy, no user-space hash, no RAM held.
 *   copy path (pinned, no fs-verity on the image): open-image, copy-image
 *     (a copy of the descriptor's bytes and the digest of exactly those
 *     bytes), then mount-erofs from the copy, always through a loop device
 *     (the copy is on a tmpfs, which has no read_folio: file-backed EROFS
 *     answers ENOTBLK there, measured on 6.18). `private`: a nameless file
 *     on a tmpfs mounted nowhere (the addon); else a named file in /run.
 *   unpinned (composefs=yes/maybe, verity without a pin): open-image, then
 *     mount-erofs from the descriptor, as ostree-prepare-root does.
 *
 * The probe is only a probe: the plan was made on it, and a change on the
 * disk after it must never change what is mounted. measure-image refuses
 * a file that turns out to have no fs-verity instead of switching path.
 */

import { fail } from '../errors.js';
import type { VerityAlg } from '../image/fsverity.js';
import type { MountStep } from '../plan/steps.js';

/** What is to be mounted, and what it is pinned to. */
export interface ImageToMount {
  /** The image file, as a path beneath `beneath` (both as the plan prints them). */
  path: string;
  /** The directory the image is opened beneath, following no symlink (SYSROOT, or the composefs repository). */
  beneath: string;
  /** The fs-verity hash the pin is in (ostree: sha256; composefs-native: sha256 or sha512). */
  alg: VerityAlg;
  /** Lowercase hex, or null: not pinned. */
  expectedDigest: string | null;
  /** Who pinned it (for messages), e.g. "signed commit …" or "karg ot-composefs=digest=". */
  expectedDigestSource: string | null;
  /** The image itself must have fs-verity (composefs-native secure mode): never the copy path. */
  requireVerity: boolean;
  /** The image header says it has ACLs (else the mount gets noacl; the executor re-reads it from what is mounted). */
  hasAcl: boolean;
}

/** Facts probed before planning. */
export interface ImageEnv {
  /** The kernel mounts EROFS straight from a regular file (Linux 6.12; src/plan/steps.ts kernelFeatures). */
  fileBackedErofs: boolean;
  /**
   * The hash of the image's fs-verity when probed (FS_IOC_MEASURE_VERITY
   * through the addon), or null: none, or no way to tell (no addon). Only
   * fs-verity in the pin's own hash can be compared with the pin.
   */
  imageVerity: VerityAlg | null;
  /** The backend can make a private copy (the addon: a nameless file on a tmpfs mounted nowhere). */
  privateCopies: boolean;
  /** Where the copy goes when it cannot be private (mount(8) backend): a path in /run the boot creates. */
  namedCopy: string;
  /** Leave the EROFS mount detached, `lowerTarget` only its name (the caller makes no directory; src/plan/steps.ts kernelFeatures). */
  detachedLower?: boolean;
}

/** The path a plan takes, as the run-state file /run/cfsroot/image-path records it. */
export type ImagePath = 'fs-verity' | 'private-copy' | 'named-copy' | 'unverified';

/**
 * The steps that open, check and mount the image on `lowerTarget` (an
 * existing directory the caller made). Throws CfsError (EIMAGE) when the
 * image must have fs-verity and the probe says it has none.
 */
export function planImageSteps(image: ImageToMount, env: ImageEnv, lowerTarget: string): MountStep[] {
  const steps: MountStep[] = [{ kind: 'open-image', image: image.path, beneath: image.beneath }];
  const pinned = image.expectedDigest !== null;
  const options = image.hasAcl ? [] : ['noacl'];
  const detached = env.detachedLower ? { detached: true as const } : {};
  const direct = (): MountStep => ({
    kind: 'mount-erofs',
    image: image.path,
    from: 'image',
    target: lowerTarget,
    options,
    loop: !env.fileBackedErofs,
    ...detached,
  });
  const measurable = env.imageVerity === image.alg;
  if (image.requireVerity && !measurable) {
    fail(
      'EIMAGE',
      `${image.path} has ${env.imageVerity ? `${env.imageVerity} fs-verity, not ${image.alg}` : 'no fs-verity'}, and this boot requires ${image.alg} fs-verity on the image itself: ` +
        'enable fs-verity on the image (fsverity enable) or on the filesystem (tune2fs -O verity)',
    );
  }
  if (measurable && (pinned || image.requireVerity)) {
    steps.push({
      kind: 'measure-image',
      image: image.path,
      alg: image.alg,
      expectedDigest: image.expectedDigest,
      expectedDigestSource: image.expectedDigestSource,
    });
    steps.push(direct());
  } else if (image.expectedDigest !== null) {
    steps.push({
      kind: 'copy-image',
      image: image.path,
      to: env.privateCopies ? 'private' : env.namedCopy,
      alg: image.alg,
      expectedDigest: image.expectedDigest,
      expectedDigestSource: image.expectedDigestSource,
    });
    // Always a loop device: tmpfs has no read_folio (see the top of this file).
    steps.push({ kind: 'mount-erofs', image: image.path, from: 'copy', target: lowerTarget, options, loop: true, ...detached });
  } else {
    steps.push(direct());
  }
  return steps;
}

/** Which path `steps` take for their image (null: no image step, a legacy boot). */
export function imagePathOf(steps: readonly MountStep[]): ImagePath | null {
  let path: ImagePath | null = null;
  for (const s of steps) {
    if (s.kind === 'open-image') path = 'unverified';
    else if (s.kind === 'measure-image') path = 'fs-verity';
    else if (s.kind === 'copy-image') path = s.to === 'private' ? 'private-copy' : 'named-copy';
  }
  return path;
}

/** The boot's words for a path (its closing line). */
export function describeImagePath(path: ImagePath): string {
  switch (path) {
    case 'fs-verity':
      return 'fs-verity (kernel-measured)';
    case 'private-copy':
      return 'private copy, user-space digest';
    case 'named-copy':
      return 'copy in /run, user-space digest';
    case 'unverified':
      return 'mounted unverified (not pinned)';
  }
}

/** What a backend can tell the plan about an image before planning (src/sys/types.ts Sys). */
export interface ImageProber {
  measurePath?(path: string): string | null;
  readonly privateCopies?: boolean;
  readonly detachedMounts?: boolean;
}

/**
 * The probe the plan is made on: the hash of `image`'s fs-verity now (null:
 * none, no way to ask, or any error: the copy path, which trusts nothing of
 * the probe), and whether copies can be private. Only picks a path:
 * measure-image checks the descriptor it mounts.
 */
export function probeImage(sys: ImageProber, image: string): { imageVerity: VerityAlg | null; privateCopies: boolean; detachedMounts: boolean } {
  let measured: string | null = null;
  try {
    measured = sys.measurePath?.(image) ?? null;
  } catch {
    measured = null;
  }
  const alg = measured?.split(':')[0];
  return {
    imageVerity: alg === 'sha256' || alg === 'sha512' ? alg : null,
    privateCopies: sys.privateCopies === true,
    detachedMounts: sys.detachedMounts === true,
  };
}
