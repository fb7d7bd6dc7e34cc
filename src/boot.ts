/**
 * The boot: `cfsroot [--target DIR] SYSROOT [KERNEL_CMDLINE]`, what the
 * initramfs runs. Decide (every check, no mounts) -> plan (data) -> execute
 * (the only part that touches the kernel, undone in reverse if any step
 * fails), in the mode the kernel command line selects: ostree= (src/ostree/decide.ts,
 * src/ostree/plan.ts) or composefs= / composefs.digest= (src/composefs-native/).
 * Messages go to stderr and /dev/kmsg; a refusal is one line saying what
 * failed and why.
 */

import { CfsError, describeSystemError } from './errors.js';
import { decideBoot } from './ostree/decide.js';
import { detectPlanEnv, type PlanEnv } from './plan/steps.js';
import { planMounts } from './ostree/plan.js';
import { describeImagePath, imagePathOf, probeImage, type ImagePath } from './image/plan.js';
import { checkCopySpace } from './image/space.js';
import { executePlan } from './sys/index.js';
// mount(2) through the embedded addon when it loads, else mount(8) (src/sys/native.ts).
import { armBootDeadline, bootSys, loadNativeAddon, type NativeAddon } from './sys/native.js';
import { createLogger, type Logger } from './log.js';
import { splitKernelCmdline } from './cmdline.js';
import { selectsNativeMode } from './composefs-native/kargs.js';
import type { BootDecision, VerityAlg } from './ostree/model.js';
import type { NativeDecision } from './composefs-native/model.js';
import type { ExecResult } from './plan/execute.js';

import { mark, startTimings, timingsReport } from './startup/timings.js';
import type { Io } from './io.js';
import type { Sys } from './sys/types.js';

export interface BootOptions {
  sysroot: string;
  cmdline: string;
  initramfsRoot: string;
  /** --target DIR: assemble the new root there and leave SYSROOT and the running boot's /run state alone. */
  target?: string;
}

/**
 * What a real boot takes from the machine, replaceable for the snapshot's
 * warm-up (src/startup/warmup.ts), which runs this very function with mounts that do
 * nothing, in a temp directory.
 */
export interface BootDeps {
  /** Default: bootSys() (the addon, else mount(8)). */
  sys?: Sys;
  /** Default /run. */
  runDir?: string;
  /** Default /sysroot.tmp (src/ostree/plan.ts). */
  stagingDir?: string;
}

/** Returns the exit status; never throws (the reason is logged once, to stderr and kmsg). */
export async function boot(opts: BootOptions, io: Io, logger?: Logger, deps: BootDeps = {}): Promise<number> {
  const log = logger ?? createLogger({ stderr: io.err });
  // $CFSROOT_TIMINGS=1: one extra line saying where the time went (make bench reads it).
  const timed = Boolean(process.env['CFSROOT_TIMINGS']);
  if (timed) startTimings();
  let disarm = () => {};
  try {
    const native = selectsNativeMode(splitKernelCmdline(opts.cmdline));
    // The addon once, for the mounts and (native mode) the kernel's fs-verity of the image.
    const addon = deps.sys || !native ? null : loadAddonQuietly();
    const sys = deps.sys ?? bootSys({ warn: (m) => log.warn(m), ...(addon ? { addon } : {}) });
    // A real boot with the addon gets a deadline (issue 13 item 11); the warm-up's injected Sys does not.
    if (!deps.sys) disarm = armBootDeadline();
    mark('backend');
    const runDir = deps.runDir ?? '/run';
    const where = (env: PlanEnv) => {
      if (deps.stagingDir !== undefined) env.stagingDir = deps.stagingDir;
      if (opts.target !== undefined) env.target = opts.target;
      return env;
    };
    const summary = native
      ? await bootNative(opts, sys, log, runDir, where, addon)
      : await bootOstree(opts, sys, log, runDir, where);
    disarm();
    mark('execute');
    if (timed) {
      const byKind = new Map<string, number>();
      for (const r of summary.result.steps) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + r.ms);
      log.info(`timings (ms): ${timingsReport()}; steps: ${[...byKind].map(([k, ms]) => `${k} ${ms.toFixed(2)}`).join(', ')}`);
    }
    log.info(`${summary.line}${opts.target !== undefined ? ` at ${opts.target} (--target; ${opts.sysroot} left in place)` : ''}`);
    return 0;
  } catch (e) {
    disarm();
    const err = e instanceof CfsError ? e : new CfsError('EINTERNAL', `internal error: ${describeSystemError(e)}`);
    log.error(`${err.message} [${err.code}]`);
    return 1;
  }
}

type Where = (env: PlanEnv) => PlanEnv;

async function bootOstree(opts: BootOptions, sys: Sys, log: Logger, runDir: string, where: Where): Promise<{ result: ExecResult; line: string }> {
  const decision: BootDecision = await decideBoot({ ...opts, measure: false, runDir });
  mark('decide');
  for (const w of decision.warnings) log.warn(`warning: ${w}`);
  // The image path (src/image/plan.ts) from a probe through the backend that will mount it.
  const env = { ...detectPlanEnv(decision, runDir), ...(decision.composefs ? probeImage(sys, decision.composefs.image) : {}) };
  const steps = planMounts(decision, where(env));
  const imagePath = imagePathOf(steps);
  if (decision.composefs && isCopy(imagePath)) checkCopySpace(decision.composefs.image, runDir);
  mark('plan');
  const result = await executePlan(steps, sys);
  const cfs = decision.composefs;
  const line = cfs
    ? `mounted composefs root of ${decision.deployment.relDir} (image fs-verity sha256:${result.imageDigest ?? 'unchecked'}` +
      `${cfs.expectedDigestSource ? `, matching the ${cfs.expectedDigestSource}` : ', not pinned'}` +
      `${cfs.signed ? ', signature verified' : ''}${cfs.verity ? ', verity=require' : ''}; ` +
      `image: ${imagePath ? describeImagePath(imagePath) : 'none'})`
    : `mounted ${decision.deployment.relDir} as the root (no composefs)`;
  return { result, line };
}

async function bootNative(
  opts: BootOptions,
  sys: Sys,
  log: Logger,
  runDir: string,
  where: Where,
  addon: NativeAddon | null,
): Promise<{ result: ExecResult; line: string }> {
  const { decideNative } = await import('./composefs-native/decide.js');
  const { planNative, detectNativeEnv } = await import('./composefs-native/plan.js');
  const decision: NativeDecision = await decideNative({
    ...opts,
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
  for (const w of decision.warnings) log.warn(`warning: ${w}`);
  const env = { ...detectNativeEnv(decision, runDir), ...probeImage(sys, decision.image.file) };
  const steps = planNative(decision, where(env));
  const imagePath = imagePathOf(steps);
  if (isCopy(imagePath)) checkCopySpace(decision.image.file, runDir);
  mark('plan');
  const result = await executePlan(steps, sys);
  const mode = (s: NativeDecision['etc']) => (s.skippedFor ? `none (${s.skippedFor})` : s.mount);
  const line =
    `mounted composefs-native root ${decision.overlay.source} (image fs-verity ${decision.image.alg}:${result.imageDigest ?? 'unchecked'} matching its name, ` +
    `${decision.insecure ? 'insecure: fs-verity not required' : `secure: verity=require, image fs-verity ${decision.verity.kernel === 'matches' ? 'checked by the kernel' : 'not checked by the kernel'}`}` +
    `${decision.rootTransient.value ? ', root transient' : ''}, etc ${mode(decision.etc)}, var ${mode(decision.var)}; ` +
    `image: ${imagePath ? describeImagePath(imagePath) : 'none'})`;
  return { result, line };
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

/** The addon, or null (none embedded, or it cannot be written and loaded: bootSys then says why). */
function loadAddonQuietly(): NativeAddon | null {
  if (process.env['CFSROOT_SYS'] === 'spawn') return null;
  try {
    return loadNativeAddon();
  } catch {
    return null;
  }
}
