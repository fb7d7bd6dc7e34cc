/**
 * Which of cfsroot's own functions a run still compiles (`make
 * bench-compiles`; not part of `make bench`): `npx tsx bench/compiles.ts
 * BINARY [enabled] [rounds]`, as root, after `make bench` has generated
 * build/bench/sysroot. BINARY is the build of mk/bench.mk compiles-build:
 * not minified, with V8's function events logged to /out/v8.log.
 *
 * The executable starts from a snapshot in which the warm-up
 * (src/startup/warmup.ts) has already run, and so compiled, the boot's
 * code. A function the warm-up never called is compiled by the first run
 * that calls it, on every boot: V8 logs that as `parse-function` and
 * `interpreter` events. This lists those functions for the boot
 * (prepare-root.conf `enabled`, default yes) and for `--version`, each
 * with the module it comes from and the milliseconds of its events
 * (median over `rounds` runs; the logging itself makes them slower than
 * in a run without it). A function only the boot compiles is work the
 * warm-up could take off every boot. The set is the same from run to run:
 * it depends on the code, not on the machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { functionsCompiled, type CompiledFunction } from '../test/helpers/v8-function-events.js';
import { BENCH_DIR, buildBenchRoot, median, moduleOfEachLine, readBenchDeployment, runInNamespace } from './harness.js';

const [bin, enabled = 'yes', roundsArg = '5'] = process.argv.slice(2);
if (!bin) throw new Error('usage: bench/compiles.ts FUNCTION_EVENTS_BINARY [enabled] [rounds]');
const rounds = Number(roundsArg);
const sys = readBenchDeployment('bench/compiles.ts');

// The unminified bundle, to name each function by its module and line.
const bundle = fs.readFileSync(path.join(path.dirname(path.resolve(bin)), 'cfsroot.cjs'), 'utf8');
const moduleOfLine = moduleOfEachLine(bundle);
const lineStarts = [0];
for (let i = bundle.indexOf('\n'); i !== -1; i = bundle.indexOf('\n', i + 1)) lineStarts.push(i + 1);
/** "src/plan/execute.ts (bundle line 123)" for a character offset in the bundle. */
function placeOf(offset: number): string {
  let lo = 0;
  let hi = lineStarts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (lineStarts[mid]! <= offset) lo = mid;
    else hi = mid - 1;
  }
  return `${moduleOfLine[lo] || '(bundle)'} (bundle line ${lo + 1})`;
}

const compiledIn = (log: string) => functionsCompiled(log, 'cfsroot.cjs');

const root = buildBenchRoot({ cfsroot: path.resolve(bin) }, sys.publicKeyBase64, { enabled, name: 'compiles' });
const runs = { boot: [] as Array<Map<string, CompiledFunction>>, version: [] as Array<Map<string, CompiledFunction>> };
try {
  for (let r = 0; r < rounds; r++) {
    for (const kind of r % 2 === 0 ? (['boot', 'version'] as const) : (['version', 'boot'] as const)) {
      const argv = kind === 'boot' ? ['/usr/bin/cfsroot', '/sysroot', sys.cmdline] : ['/usr/bin/cfsroot', '--version'];
      runInNamespace(root, sys.sysroot, { argv, env: kind === 'boot' ? { CFSROOT_SYS: 'native' } : {} });
      runs[kind].push(compiledIn(fs.readFileSync(path.join(BENCH_DIR, 'out/v8.log'), 'utf8')));
    }
  }
} finally {
  root.remove();
}

/** Every function compiled in some run of `kind`, with its median milliseconds over those runs. */
interface Summary extends CompiledFunction {
  /** How many of the runs compiled it. */
  runs: number;
}
function summary(kind: 'boot' | 'version'): Map<string, Summary> {
  const all = new Map<string, { fn: CompiledFunction; ms: number[] }>();
  for (const run of runs[kind]) {
    for (const [key, fn] of run) {
      const e = all.get(key) ?? { fn, ms: [] };
      e.ms.push(fn.ms);
      all.set(key, e);
    }
  }
  return new Map([...all].map(([k, e]) => [k, { ...e.fn, ms: median(e.ms), runs: e.ms.length }]));
}
const boot = summary('boot');
const version = summary('version');
const show = (title: string, entries: Array<[string, Summary]>) => {
  const total = entries.reduce((s, [, e]) => s + e.ms, 0);
  console.log(`  ${title}: ${entries.length} functions, ${total.toFixed(3)} ms of compile events`);
  for (const [, e] of entries.sort((a, b) => b[1].ms - a[1].ms)) {
    const snippet = bundle.slice(e.start, e.end).replace(/\s+/g, ' ').slice(0, 60);
    console.log(`    ${e.ms.toFixed(3)} ms  ${e.name}  ${placeOf(e.start)}  [${e.runs}/${rounds} runs]  ${snippet}`);
  }
};
console.log(`enabled = ${enabled}, ${rounds} runs each: functions of cfsroot's bundle compiled during the run (V8 function events; median ms)`);
show('the boot only (work the warm-up could take off every boot)', [...boot].filter(([k]) => !version.has(k)));
show('the boot and --version alike (every run)', [...boot].filter(([k]) => version.has(k)));
show('--version only', [...version].filter(([k]) => !boot.has(k)));
