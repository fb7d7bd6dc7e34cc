/**
 * Entry point of the single executable. Everything behind `run` reports
 * failures as one line and an exit code; this guard is the last line of
 * defence so that even a bug never prints a stack trace at boot.
 */
import { run } from './cli.js';

process.on('uncaughtException', (e) => {
  process.stderr.write(`cfsroot: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});

// In a single executable argv is [execPath, execPath, ...args]; from source [node, script, ...args].
run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`cfsroot: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
