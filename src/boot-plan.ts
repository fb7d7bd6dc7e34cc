/**
 * Decide and plan a boot, in whichever mode the kernel command line
 * selects: the one function both the boot (src/boot.ts) and `cfsroot plan`
 * (src/cli.ts) call, so that what `plan` prints is what the boot runs.
 *
 *   ostree= (src/ostree/decide.ts -> src/ostree/plan.ts), or
 *   composefs= / composefs.digest= (src/composefs-native/).
 *
 * The image's path (src/image/plan.ts) comes from a probe through the
 * backend that will mount it; a plan that copies the image is held to the
 * free space of the run directory (src/image/space.ts). Nothing here
 * mounts: executing the steps is the caller's.
 */

import { CfsError } from './errors.js';
import { splitKernelCmdline } from './cmdline.js';
import { selectsNativeMode } from './composefs-native/kargs.js';
import { decideBoot } from './ostree/decide.js';
import { planMounts } from './ostree/plan.js';
import { detectPlanEnv, type MountStep, type PlanEnv } from './plan/steps.js';
import { imagePathOf, probeImage, type ImagePath } from './image/plan.js';
import { checkCopySpace } from './image/space.js';
import { mark } from './startup/timings.js';
import type { BootDecision } from './ostree/model.js';
import type { NativeDecision } from './composefs-native/model.js';
import type { VerityAlg } from './image/fsverity.js';
import type { NativeAddon } from './sys/native.js';
import type { Sys } from './sys/types.js';

export interface BootPlanInput {
  sysroot: string;
  cmdline: string;
  initramfsRoot: string;
  /** --target DIR: assemble the new root there (src/boot.ts). */
  target?: string;
  /** Default /run. */
  runDir?: string;
  /** Default /sysroot.tmp (src/ostree/plan.ts). */
  stagingDir?: string;
  /** Told the decision's warnings as soon as it is made, before planning (the boot logs them then). */
  onWarnings?: (warnings: readonly string[]) => void;
  /** Told when an ostree boot's configuration turns out signed (src/ostree/decide.ts, passed on with the rest). */
  onSignedBoot?: () => void;
}

export type BootPlan =
  | { mode: 'ostree'; decision: BootDecision; steps: MountStep[]; imagePath: ImagePath | null }
  | { mode: 'native'; decision: NativeDecision; steps: MountStep[]; imagePath: ImagePath | null };

/** True when the kernel command line selects the composefs-native mode. */
export function isNativeBoot(cmdline: string): boolean {
  return selectsNativeMode(splitKernelCmdline(cmdline));
}

/**
 * `sys` probes the image; `addon` (native mode) lets the decision ask the
 * kernel for the image's fs-verity, as the boot does. Throws CfsError.
 */
export async function planBoot(input: BootPlanInput, sys: Sys, addon: NativeAddon | null): Promise<BootPlan> {
  const runDir = input.runDir ?? '/run';
  const where = (env: PlanEnv): PlanEnv => {
    if (input.stagingDir !== undefined) env.stagingDir = input.stagingDir;
    if (input.target !== undefined) env.target = input.target;
    return env;
  };
  if (!isNativeBoot(input.cmdline)) {
    const decision = await decideBoot({ ...input, measure: false, runDir });
    mark('decide');
    input.onWarnings?.(decision.warnings);
    const env = { ...detectPlanEnv(decision, runDir, sys.randomBytes), ...(decision.composefs ? probeImage(sys, decision.composefs.image) : {}) };
    const steps = planMounts(decision, where(env));
    const imagePath = imagePathOf(steps);
    if (decision.composefs && isCopy(imagePath)) checkCopySpace(decision.composefs.image, runDir);
    mark('plan');
    return { mode: 'ostree', decision, steps, imagePath };
  }
  const { decideNative } = await import('./composefs-native/decide.js');
  const { planNative, detectNativeEnv } = await import('./composefs-native/plan.js');
  const decision = await decideNative({
    ...input,
    // The digest is the plan's: measured by the kernel on the open image, or taken of the copy (src/image/plan.ts).
    measure: false,
    digestImage: async () => {
      throw new Error('not used: measure is false');
    },
    ...(addon?.measureVerity ? { measureVerity: kernelVerity(addon.measureVerity.bind(addon)) } : {}),
    runDir,
  });
  mark('decide');
  if (decision.verity.kernel === 'not-checked' && !decision.insecure) {
    decision.warnings.push('the kernel\'s fs-verity on the image was not checked (no mount addon: CFSROOT_SYS=spawn); its digest is still checked on the copy');
  }
  input.onWarnings?.(decision.warnings);
  const env = { ...detectNativeEnv(decision, runDir, { random: sys.randomBytes }), ...probeImage(sys, decision.image.file) };
  const steps = planNative(decision, where(env));
  const imagePath = imagePathOf(steps);
  if (isCopy(imagePath)) checkCopySpace(decision.image.file, runDir);
  mark('plan');
  return { mode: 'native', decision, steps, imagePath };
}

/** The plan copies the image into memory (src/image/space.ts: only then is the free space of /run its bound). */
const isCopy = (p: ImagePath | null) => p === 'private-copy' || p === 'named-copy';

/** FS_IOC_MEASURE_VERITY through the addon, as decideNative asks it: null when the image (or its filesystem) has no fs-verity. */
export function kernelVerity(measure: (file: string) => string | null) {
  return async (file: string, alg: VerityAlg): Promise<Uint8Array | null> => {
    const got = measure(file);
    if (got === null || got === 'unsupported') return null;
    const [kalg, hex] = got.split(':');
    if (kalg !== alg) {
      throw new CfsError('EDIGEST', `composefs image ${file}: the kernel's fs-verity digest is ${kalg}, but its name is a ${alg} digest: the image was enabled with another hash (fsverity enable --hash-alg=${alg})`);
    }
    return Buffer.from(hex ?? '', 'hex');
  };
}
