/**
 * The boot's in-process phases, binary against binary (not part of `make
 * bench`): `npx tsx bench/phases.ts [--enabled yes|no|signed] [--rounds N]
 * BINARY...`, as root. Each round boots every binary once per copy (two
 * copies each, in one bench root) with `CFSROOT_TIMINGS=1`, the order
 * reversed every other round, on a deployment the real ostree makes
 * (test/helpers/real-ostree.ts, the one `make bench`'s (g) and issue 15
 * measure on; made for the run and removed after it). It prints, per
 * binary, the median of each phase the boot's timings line names (backend,
 * decide, plan, execute), of their sum ("in process") and of each step kind
 * in execute (a scratch build's extra marks too, each by its name, counted
 * in the sum), then each binary's in-process sum against the first's, as the
 * median of per-round differences.
 *
 * In-process figures leave out Node's start and exit, which are the same
 * for every build of one Node and are most of the noise in whole-process
 * figures, so a change of 0.05 ms shows in 40-60 rounds here where own work
 * (bench/ab.ts) needs hundreds. They do not replace own work: measure a
 * change here, then confirm it there or with `make bench`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeRealOstreeSysroot } from '../test/helpers/real-ostree.js';
import { BENCH_DIR, buildBenchRoot, median, runInNamespace } from './harness.js';

const USAGE = 'usage: bench/phases.ts [--enabled yes|no|signed] [--rounds N] BINARY...';

function usage(message: string): never {
  process.stderr.write(`bench/phases.ts: ${message}\n${USAGE}\n`);
  process.exit(1);
}

function parseArgs(argv: readonly string[]): { enabled: string; rounds: number; binaries: string[] } {
  let enabled = 'yes';
  let rounds = 40;
  const binaries: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--enabled' || a === '--rounds') {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      if (a === '--enabled') {
        if (v !== 'yes' && v !== 'no' && v !== 'signed') usage(`--enabled ${v}: expected yes, no or signed`);
        enabled = v;
      } else {
        rounds = Number(v);
        if (!Number.isSafeInteger(rounds) || rounds < 1) usage(`--rounds ${v}: expected a whole number of at least 1`);
      }
    } else if (a.startsWith('-')) {
      usage(`unknown option ${a}`);
    } else {
      if (!fs.existsSync(a)) usage(`${a}: no such file (expected a cfsroot binary)`);
      binaries.push(path.resolve(a));
    }
  }
  if (binaries.length === 0) usage('no binary given');
  return { enabled, rounds, binaries };
}

/** The boot's timings line (src/boot.ts): the phases, then the step kinds. */
function parseTimings(stderr: string): { phases: Map<string, number>; steps: Map<string, number> } | null {
  const line = stderr.split('\n').find((l) => l.includes('timings (ms): '));
  if (!line) return null;
  const [phasePart = '', stepPart = ''] = line.slice(line.indexOf('timings (ms): ') + 'timings (ms): '.length).split('; steps: ');
  const pairs = (text: string) =>
    new Map(
      text
        .split(', ')
        .filter((x) => x.includes(' '))
        .map((x) => [x.slice(0, x.lastIndexOf(' ')), Number(x.slice(x.lastIndexOf(' ') + 1))] as [string, number]),
    );
  return { phases: pairs(phasePart), steps: pairs(stepPart) };
}

const IN_PROCESS = ['backend', 'decide', 'plan', 'execute'];
const COPIES = 2;

const { enabled, rounds, binaries } = parseArgs(process.argv.slice(2));
const real = makeRealOstreeSysroot();
const installed: Record<string, string> = {};
binaries.forEach((b, i) => {
  for (let c = 0; c < COPIES; c++) installed[`b${i}c${c}`] = b;
});
const root = buildBenchRoot(installed, real.publicKeyBase64, { enabled, name: 'phases' });
// Per binary: each figure's samples; and the in-process sum per round (copies averaged), for the paired differences.
const figures = binaries.map(() => new Map<string, number[]>());
const sumsByRound = binaries.map(() => [] as number[]);
try {
  for (let r = 0; r < rounds; r++) {
    const order = Object.keys(installed);
    if (r % 2 === 1) order.reverse();
    const roundSums = binaries.map(() => [] as number[]);
    for (const name of order) {
      const b = Number(name.slice(1, name.indexOf('c')));
      runInNamespace(root, real.sysroot, {
        argv: [`/usr/bin/${name}`, '/sysroot', real.bootOptions],
        env: { CFSROOT_SYS: 'native', CFSROOT_TIMINGS: '1' },
      });
      const t = parseTimings(fs.readFileSync(path.join(BENCH_DIR, 'out/stderr'), 'utf8'));
      if (t === null) throw new Error(`${binaries[b]} printed no timings line (is it a cfsroot build with CFSROOT_TIMINGS?)`);
      const add = (k: string, v: number) => {
        const xs = figures[b]!.get(k);
        if (xs) xs.push(v);
        else figures[b]!.set(k, [v]);
      };
      let sum = 0;
      for (const k of IN_PROCESS) {
        const v = t.phases.get(k);
        if (v === undefined) throw new Error(`${binaries[b]}: its timings line has no ${k} phase`);
        add(k, v);
        sum += v;
      }
      // A scratch build's own marks (mark('name') in src/startup/timings.ts) split a
      // phase: shown by name, and counted in the sum with the phase they came out of.
      for (const [k, v] of t.phases) {
        if (k === 'start' || IN_PROCESS.includes(k)) continue;
        add(`mark ${k}`, v);
        sum += v;
      }
      add('in process', sum);
      for (const [k, v] of t.steps) add(`step ${k}`, v);
      roundSums[b]!.push(sum);
    }
    roundSums.forEach((xs, b) => sumsByRound[b]!.push(xs.reduce((a, x) => a + x, 0) / xs.length));
  }
} finally {
  root.remove();
  real.remove();
}

console.log(`real-ostree deployment, enabled = ${enabled}, ${rounds} rounds, ${COPIES} copies of each binary; medians, ms`);
binaries.forEach((bin, b) => {
  const f = figures[b]!;
  const show = (keys: string[]) => keys.map((k) => `${k} ${median(f.get(k)!).toFixed(2)}`).join(', ');
  const marks = [...f.keys()].filter((k) => k.startsWith('mark '));
  console.log(`${bin}\n  ${show([...IN_PROCESS, 'in process'])}\n  ${show([...f.keys()].filter((k) => k.startsWith('step ')))}`);
  if (marks.length > 0) console.log(`  ${show(marks)}`);
});
for (let b = 1; b < binaries.length; b++) {
  const d = sumsByRound[b]!.map((x, i) => x - sumsByRound[0]![i]!);
  console.log(`in process, ${binaries[b]} - ${binaries[0]}: ${median(d).toFixed(2)} ms (median of per-round differences)`);
}
