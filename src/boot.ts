/**
 * The boot: `cfsroot [--target DIR] SYSROOT [KERNEL_CMDLINE]`, what the
 * initramfs runs. Decide (every check, no mounts) -> plan (data), both in
 * src/boot-plan.ts, which `cfsroot plan` shares, in the mode the kernel
 * command line selects -> execute (the only part that touches the kernel,
 * undone in reverse if any step fails).
 * Messages go to stderr and /dev/kmsg; a refusal is one line saying what
 * failed and why.
 */

import { CfsError, describeSystemError } from './errors.js';
import { isNativeBoot, planBoot } from './boot-plan.js';
import { describeImagePath, type ImagePath } from './image/plan.js';
import { executePlan, type ExecResult } from './plan/execute.js';
// mount(2) through the embedded addon when it loads, else mount(8) (src/sys/native.ts).
import { armBootDeadline, bootSys, loadNativeAddonQuietly, warmCryptoIfLoaded, type NativeAddon } from './sys/native.js';
import { createLogger, type Logger } from './log.js';
import type { BootDecision } from './ostree/model.js';
import type { NativeDecision } from './composefs-native/model.js';
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
  /** With `sys`: the addon a composefs-native decision asks for the image's fs-verity (the warm-up's dry one). */
  addon?: NativeAddon;
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
    // The addon once, for the mounts and (native mode) the kernel's fs-verity of the image.
    const addon = deps.sys ? (deps.addon ?? null) : isNativeBoot(opts.cmdline) ? loadNativeAddonQuietly() : null;
    const sys = deps.sys ?? bootSys({ warn: (m) => log.warn(m), ...(addon ? { addon } : {}) });
    // A real boot with the addon gets a deadline (issue 13 item 11); the warm-up's injected Sys does not.
    if (!deps.sys) disarm = armBootDeadline();
    mark('backend');
    const plan = await planBoot(
      {
        ...opts,
        runDir: deps.runDir ?? '/run',
        ...(deps.stagingDir !== undefined ? { stagingDir: deps.stagingDir } : {}),
        onWarnings: (ws) => {
          for (const w of ws) log.warn(`warning: ${w}`);
        },
        // A signed boot's first node:crypto calls fill OpenSSL's algorithm cache (about 1 ms);
        // the addon starts doing that on another CPU as soon as the configuration says signed.
        ...(deps.sys ? {} : { onSignedBoot: warmCryptoIfLoaded }),
      },
      sys,
      addon,
    );
    const result = await executePlan(plan.steps, sys, { timed });
    disarm();
    mark('execute');
    if (timed) {
      const byKind = new Map<string, number>();
      for (const r of result.steps) byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + r.ms);
      log.info(`timings (ms): ${timingsReport()}; steps: ${[...byKind].map(([k, ms]) => `${k} ${ms.toFixed(2)}`).join(', ')}`);
    }
    const line = plan.mode === 'native' ? nativeLine(plan.decision, result, plan.imagePath) : ostreeLine(plan.decision, result, plan.imagePath);
    log.info(`${line}${opts.target !== undefined ? ` at ${opts.target} (--target; ${opts.sysroot} left in place)` : ''}`);
    return 0;
  } catch (e) {
    disarm();
    const err = e instanceof CfsError ? e : new CfsError('EINTERNAL', `internal error: ${describeSystemError(e)}`);
    log.error(`${err.message} [${err.code}]`);
    return 1;
  }
}

const imageWords = (p: ImagePath | null) => `image: ${p ? describeImagePath(p) : 'none'}`;

/** The ostree boot's closing line. */
function ostreeLine(decision: BootDecision, result: ExecResult, imagePath: ImagePath | null): string {
  const cfs = decision.composefs;
  if (!cfs) return `mounted ${decision.deployment.relDir} as the root (no composefs)`;
  return (
    `mounted composefs root of ${decision.deployment.relDir} (image fs-verity sha256:${result.imageDigest ?? 'unchecked'}` +
    `${cfs.expectedDigestSource ? `, matching the ${cfs.expectedDigestSource}` : ', not pinned'}` +
    `${cfs.signed ? ', signature verified' : ''}${cfs.verity ? ', verity=require' : ''}; ${imageWords(imagePath)})`
  );
}

/** The composefs-native boot's closing line. */
function nativeLine(decision: NativeDecision, result: ExecResult, imagePath: ImagePath | null): string {
  const mode = (s: NativeDecision['etc']) => (s.skippedFor ? `none (${s.skippedFor})` : s.mount);
  return (
    `mounted composefs-native root ${decision.overlay.source} (image fs-verity ${decision.image.alg}:${result.imageDigest ?? 'unchecked'} matching its name, ` +
    `${decision.insecure ? 'insecure: fs-verity not required' : `secure: verity=require, image fs-verity ${decision.verity.kernel === 'matches' ? 'checked by the kernel' : 'not checked by the kernel'}`}` +
    `${decision.rootTransient.value ? ', root transient' : ''}, etc ${mode(decision.etc)}, var ${mode(decision.var)}; ${imageWords(imagePath)})`
  );
}
