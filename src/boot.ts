/**
 * The boot: `cfsroot SYSROOT [KERNEL_CMDLINE]`, what the initramfs runs.
 * Decide (every check, no mounts) -> plan (data) -> execute (the only part
 * that touches the kernel, undone in reverse if any step fails). Messages go
 * to stderr and /dev/kmsg; a refusal is one line saying what failed and why.
 */

import { CfsError, describeSystemError } from './errors.js';
import { decideBoot } from './decide.js';
import { detectPlanEnv, planMounts } from './plan.js';
import { executePlan } from './sys/index.js';
// mount(2) through the embedded addon when it loads, else mount(8) (src/sys/native.ts).
import { bootSys } from './sys/native.js';
import { createLogger, type Logger } from './log.js';
import type { Io } from './cli.js';

export interface BootOptions {
  sysroot: string;
  cmdline: string;
  initramfsRoot: string;
}

/** Returns the exit status; never throws (the reason is logged once, to stderr and kmsg). */
export async function boot(opts: BootOptions, io: Io, logger?: Logger): Promise<number> {
  const log = logger ?? createLogger({ stderr: io.err });
  try {
    const decision = await decideBoot({ ...opts, measure: false });
    for (const w of decision.warnings) log.warn(`warning: ${w}`);
    const steps = planMounts(decision, detectPlanEnv(decision));
    const result = await executePlan(steps, bootSys({ warn: (m) => log.warn(m) }), log);
    const cfs = decision.composefs;
    log.info(
      cfs
        ? `mounted composefs root of ${decision.deployment.relDir} (image sha256:${result.imageDigest ?? 'unchecked'}` +
            `${cfs.signed ? ', signed commit verified' : ''}${cfs.verity ? ', verity=require' : ''})`
        : `mounted ${decision.deployment.relDir} as the root (no composefs)`,
    );
    return 0;
  } catch (e) {
    const err = e instanceof CfsError ? e : new CfsError('EINTERNAL', `internal error: ${describeSystemError(e)}`);
    log.error(`${err.message} [${err.code}]`);
    return 1;
  }
}
