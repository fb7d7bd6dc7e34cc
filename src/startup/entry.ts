/**
 * The one function every run of cfsroot starts in: the command line, a
 * last guard so that even a bug prints one line and no stack trace, and
 * the fast exit.
 *
 * In the single executable this is the deserialize-main of the V8 startup
 * snapshot (src/startup/sea.ts), so it is called once per run and must be
 * the first thing that reads argv, the environment or files: nothing of a
 * run may happen at module level, where the snapshot would freeze it.
 *
 * V8 flags are not set here: the executable has them baked in (the Makefile's
 * sea-config `execArgv`, with `execArgvExtension: "none"` so NODE_OPTIONS is
 * never read), and they are in force before any JavaScript runs.
 */

import { run } from '../cli.js';
import { allOutputWritten } from '../log.js';
import { exitNowIfLoaded } from '../sys/native.js';
import { ignoreNodeEnvironment } from './environment.js';

function internalError(e: unknown): void {
  process.stderr.write(`cfsroot: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
}

export function start(): void {
  ignoreNodeEnvironment();
  process.on('uncaughtException', (e) => {
    internalError(e);
    process.exit(1);
  });
  // In a single executable argv is [execPath, execPath, ...args]; from source [node, script, ...args].
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Every line is written by now (src/log.ts): skip Node's teardown when
      // the addon can (the boot, verify, digest); else the normal exit. The
      // profiling build (mk/bench.mk bench-profile) takes the normal exit
      // always: V8 writes its CPU profile there.
      if (allOutputWritten() && !process.execArgv.includes('--cpu-prof')) exitNowIfLoaded(code);
    },
    (e: unknown) => {
      internalError(e);
      process.exitCode = 1;
    },
  );
}
