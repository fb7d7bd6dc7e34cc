/**
 * `make fuzz`: run every fuzz target of test/fuzz/targets.ts with a share of
 * a total case budget (default 1,000,000, `--cases N`), then print
 * `fuzz: N cases, F failures`. A failure prints the target, the seed and
 * path to replay it (`--seed S --only NAME`), and the shrunk counterexample.
 * The GLib differential checks run on top: GVariant normal form (`--glib N`,
 * default 100,000) and key files against GLib.KeyFile (`--keyfile N`,
 * default 100,000; test/fuzz/keyfile-glib.ts); then the memory-per-input-byte
 * property of test/fuzz/memory.ts (`--memory N`, default 1,000, in a process
 * of its own).
 * Exit status 1 if any target failed.
 */

import fc from 'fast-check';
import { makeFuzzEnv } from './targets.js';
import { glibDifferential } from './glib.js';
import { keyFileDifferential } from './keyfile-glib.js';
import { runMemoryProperty } from './memory.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const total = Number(arg('--cases') ?? 1_000_000);
const seed = Number(arg('--seed') ?? Date.now() % 2 ** 31);
const only = arg('--only');
/** Extra cases for the GLib differential check (test/fuzz/glib.ts), on top of --cases. */
const glibCases = Number(arg('--glib') ?? 100_000);
/** Generated key files compared with GLib.KeyFile, on top of --cases. */
const keyFileCases = Number(arg('--keyfile') ?? 100_000);
/** Cases for the memory-per-byte property (test/fuzz/memory.ts), on top of --cases. */
const memoryCases = Number(arg('--memory') ?? 1_000);
if (!Number.isSafeInteger(total) || total <= 0) throw new Error('--cases needs a positive integer');

const env = makeFuzzEnv();
let cases = 0;
let failures = 0;
try {
  const targets = env.targets.filter((t) => !only || t.name.includes(only));
  const weights = targets.reduce((s, t) => s + t.weight, 0);
  // Round up per target so the total is never below the budget.
  for (const t of targets) {
    const numRuns = Math.ceil((total * t.weight) / weights);
    const t0 = process.hrtime.bigint();
    const r = fc.check(t.property, { numRuns, seed, endOnFailure: false });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    cases += r.numRuns;
    if (r.failed) {
      failures++;
      process.stdout.write(`FAIL ${t.name} after ${r.numRuns} cases (seed ${r.seed}, path ${r.counterexamplePath ?? '-'})\n`);
      process.stdout.write(`  ${r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)}\n`);
      process.stdout.write(`  counterexample: ${fc.stringify(r.counterexample)}\n`);
    } else {
      process.stdout.write(`ok   ${t.name}: ${r.numRuns} cases in ${(ms / 1000).toFixed(1)} s\n`);
    }
  }
  if (!only || 'glib'.includes(only) || only.includes('glib')) {
    // Batches keep one python process' input and output small.
    const t0 = process.hrtime.bigint();
    let done = 0;
    const bad: string[] = [];
    for (let b = 0; done < glibCases; b++) {
      const n = Math.min(20_000, glibCases - done);
      const r = glibDifferential(n, seed + b);
      done += r.cases;
      bad.push(...r.failures);
    }
    cases += done;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (bad.length > 0) {
      failures++;
      process.stdout.write(`FAIL gvariant vs GLib: ${bad.length} disagreements in ${done} cases, e.g.\n  ${bad.slice(0, 3).join('\n  ')}\n`);
    } else {
      process.stdout.write(`ok   gvariant vs GLib (python3-gi): ${done} cases in ${(ms / 1000).toFixed(1)} s\n`);
    }
  }
  if (!only || 'keyfile'.includes(only) || only.includes('keyfile')) {
    const t0 = process.hrtime.bigint();
    let done = 0;
    let loaded = 0;
    const bad: string[] = [];
    for (let b = 0; done < keyFileCases; b++) {
      const r = keyFileDifferential(Math.min(20_000, keyFileCases - done), seed + b);
      done += r.cases;
      loaded += r.bothLoaded;
      bad.push(...r.failures);
    }
    cases += done;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (bad.length > 0) {
      failures++;
      process.stdout.write(`FAIL key files vs GLib.KeyFile: ${bad.length} disagreements in ${done} files, e.g.\n  ${bad.slice(0, 3).join('\n  ')}\n`);
    } else {
      process.stdout.write(`ok   key files vs GLib.KeyFile (python3-gi): ${done} files (${loaded} loaded by both) in ${(ms / 1000).toFixed(1)} s\n`);
    }
  }
  if (memoryCases > 0 && (!only || 'memory per input byte'.includes(only) || only.includes('memory'))) {
    const t0 = process.hrtime.bigint();
    const r = runMemoryProperty(memoryCases, seed);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    cases += r.cases;
    if (r.failed) {
      failures++;
      process.stdout.write(`FAIL memory per input byte after ${r.cases} cases (seed ${seed}, --only memory)\n  ${r.message}\n  counterexample: ${r.counterexample}\n`);
    } else {
      process.stdout.write(`ok   memory per input byte (GVariant readers): ${r.cases} cases in ${(ms / 1000).toFixed(1)} s\n`);
    }
  }
} finally {
  env.cleanup();
}
process.stdout.write(`fuzz: ${cases} cases, ${failures} failures (seed ${seed})\n`);
process.exitCode = failures === 0 ? 0 : 1;
