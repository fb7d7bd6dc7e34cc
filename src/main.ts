/**
 * Entry point of the single executable. Everything behind `run` reports
 * failures as one line and an exit code; this guard is the last line of
 * defence so that even a bug never prints a stack trace at boot.
 *
 * Start-up (issue 5, bench/RESULTS.md): the executable is built with a V8
 * startup snapshot (sea-config `useSnapshot`). The build runs this file once,
 * runs the boot's code once on a throw-away deployment (src/warmup.ts) so
 * that it is compiled, and saves the heap; every run then starts from that
 * heap instead of compiling the bundle and its first calls. So nothing here
 * may do work at module level that belongs to one run (read argv, env,
 * files, register handlers): that happens in `start`, which the snapshot
 * calls on every run, and which a plain `node dist/cfsroot.cjs` (or tsx)
 * calls directly.
 */
import * as v8 from 'node:v8';
import { run } from './cli.js';
import { warmUp } from './warmup.js';
import { allOutputWritten } from './log.js';
import { exitNowIfLoaded } from './sys/native.js';

function internalError(e: unknown): void {
  process.stderr.write(`cfsroot: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
}

function start(): void {
  // A run is short: Sparkplug, V8's baseline compiler, compiles functions
  // that then run only a few more times. Measured (bench/RESULTS.md): a boot
  // spent 1-1.4 ms of CPU in it, and --version 0.6 ms; without it, the boot's
  // own work was 0.6 ms less in 61 interleaved rounds. Process-wide, every
  // command, set before any of cfsroot's code runs.
  v8.setFlagsFromString('--no-sparkplug');
  process.on('uncaughtException', (e) => {
    internalError(e);
    process.exit(1);
  });
  // In a single executable argv is [execPath, execPath, ...args]; from source [node, script, ...args].
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Every line is written by now (src/log.ts): skip Node's teardown when
      // the addon can (the boot, verify, digest); else the normal exit.
      if (allOutputWritten()) exitNowIfLoaded(code);
    },
    (e: unknown) => {
      internalError(e);
      process.exitCode = 1;
    },
  );
}

if (v8.startupSnapshot?.isBuildingSnapshot()) {
  // The snapshot is taken once the event loop is empty, i.e. after this settles.
  warmUp().catch((e: unknown) => {
    // A broken warm-up is a bug in the boot path: fail the build, loudly.
    internalError(e);
    throw e;
  });
  v8.startupSnapshot.setDeserializeMainFunction(start);
} else {
  start();
}
