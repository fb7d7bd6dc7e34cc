/**
 * The boot: `cfsroot SYSROOT [KERNEL_CMDLINE]`, what the initramfs runs.
 * Decide (every check, no mounts) -> plan (data) -> execute (the only part
 * that touches the kernel, undone in reverse if any step fails). Messages go
 * to stderr and /dev/kmsg; a refusal is one line saying what failed and why.
 */

import { CfsError, describeSystemError } from './errors.js';
import { decideBoot } from './decide.js';
import { detectPlanEnv, planMounts } from './plan.js';
import { describeImagePath, imagePathOf, probeImage } from './image-plan.js';
import { executePlan } from './sys/index.js';
// mount(2) through the embedded addon when it loads, else mount(8) (src/sys/native.ts).
import { armBootDeadline, bootSys } from './sys/native.js';
import { createLogger, type Logger } from './log.js';
import { mark, startTimings, timingsReport } from './startup/timings.js';
import type { Io } from './io.js';
import type { Sys } from './sys/types.js';

export interface BootOptions {
  sysroot: string;
  cmdline: string;
  initramfsRoot: string;
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
  /** Default /sysroot.tmp (src/plan.ts). */
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
    const sys = deps.sys ?? bootSys({ warn: (m) => log.warn(m) });
    // A real boot with the addon gets a deadline (issue 13 item 11); the warm-up's injected Sys does not.
    if (!deps.sys) disarm = armBootDeadline();
    mark('backend');
    const runDir = deps.runDir ?? '/run';
    const decision = await decideBoot({ ...opts, measure: false, runDir });
    mark('decide');
    for (const w of decision.warnings) log.warn(`warning: ${w}`);
    const env = { ...detectPlanEnv(decision, runDir), ...(decision.composefs ? probeImage(sys, decision.composefs.image) : {}) };
    if (deps.stagingDir !== undefined) env.stagingDir = deps.stagingDir;
    const steps = planMounts(decision, env);
    mark('plan');
    const result = await executePlan(steps, sys);
    disarm();
    mark('execute');
    if (timed) {
      const byKind = new Map<string, number>();
      for (const r of result.steps) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + r.ms);
      log.info(`timings (ms): ${timingsReport()}; steps: ${[...byKind].map(([k, ms]) => `${k} ${ms.toFixed(2)}`).join(', ')}`);
    }
    const cfs = decision.composefs;
    const imagePath = imagePathOf(steps);
    log.info(
      cfs
        ? `mounted composefs root of ${decision.deployment.relDir} (image fs-verity sha256:${result.imageDigest ?? 'unchecked'}` +
            `${cfs.expectedDigestSource ? `, matching the ${cfs.expectedDigestSource}` : ', not pinned'}` +
            `${cfs.signed ? ', signature verified' : ''}${cfs.verity ? ', verity=require' : ''}; ` +
            `image: ${imagePath ? describeImagePath(imagePath) : 'none'})`
        : `mounted ${decision.deployment.relDir} as the root (no composefs)`,
    );
    return 0;
  } catch (e) {
    disarm();
    const err = e instanceof CfsError ? e : new CfsError('EINTERNAL', `internal error: ${describeSystemError(e)}`);
    log.error(`${err.message} [${err.code}]`);
    return 1;
  }
}
