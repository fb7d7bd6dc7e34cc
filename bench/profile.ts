/**
 * Where a boot's own work goes, by JavaScript function (`make
 * bench-profile`; not part of `make bench`): `npx tsx bench/profile.ts
 * BINARY [enabled] [rounds]`, as root, after `make bench` has generated
 * build/bench/sysroot. BINARY is the profiling build (mk/bench.mk
 * profile-build: not minified, V8's CPU profiler on, the normal exit).
 *
 * Each round runs the boot (prepare-root.conf `enabled`, default yes) and
 * `--version`, alternately first, in the bench root. The profiles are
 * merged by call path, and each path's time is a mean per run. The boot's
 * tree is printed beside the time `--version` spent on the same path, so
 * Node's own start-up, common to both, reads as a difference near zero and
 * the rest is the boot's own work. Then the functions whose self time
 * (time on top of the stack) differs most.
 *
 * A sampled profile is not a stopwatch: each sample costs the sampled
 * thread a little, so every figure here is larger than in an unprofiled
 * run: on this machine, at the default 50 µs interval, a `yes` boot's
 * sampled own work came out at about twice what bench/ab.ts measures
 * without the profiler. Use it to find where the time goes, and
 * bench/ab.ts to measure a change.
 * A function that calls into the addon is charged the system calls it
 * makes: the profiler samples the thread, not the CPU.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_DIR, buildBenchRoot, median, moduleOfEachLine, readBenchDeployment, runInNamespace } from './harness.js';

const [bin, enabled = 'yes', roundsArg = '40'] = process.argv.slice(2);
if (!bin) throw new Error('usage: bench/profile.ts PROFILING_BINARY [enabled] [rounds]');
const rounds = Number(roundsArg);
const sys = readBenchDeployment('bench/profile.ts');

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A merged call tree: µs summed over the runs merged into it. */
interface Tree {
  us: number;
  selfUs: number;
  kids: Map<string, Tree>;
}
const newTree = (): Tree => ({ us: 0, selfUs: 0, kids: new Map() });

// The source module of each line of the unminified bundle, to name a function's.
const moduleAt = moduleOfEachLine(fs.readFileSync(path.join(path.dirname(path.resolve(bin)), 'cfsroot.cjs'), 'utf8'));

function frameName(f: ProfileNode['callFrame']): string {
  const name = f.functionName || '(anonymous)';
  if (f.url.endsWith('cfsroot.cjs')) return `${name} ${moduleAt[f.lineNumber] ?? '?'}`;
  if (f.url === '') return name;
  return `${name} ${f.url.replace(/^.*\//, '')}`;
}

/** Adds one profile's samples to `tree`, by call path. */
function merge(tree: Tree, p: CpuProfile): void {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; the time after it is charged to it.
    const us = p.timeDeltas[i + 1] ?? 0;
    const chain: string[] = [];
    for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) chain.push(frameName(byId.get(id)!.callFrame));
    let node = tree;
    node.us += us;
    for (const name of chain.reverse().slice(1)) {
      let kid = node.kids.get(name);
      if (!kid) node.kids.set(name, (kid = newTree()));
      kid.us += us;
      node = kid;
    }
    node.selfUs += us;
  }
}

const root = buildBenchRoot({ x: path.resolve(bin) }, sys.publicKeyBase64, { enabled, name: 'profile' });
const trees = { boot: newTree(), version: newTree() };
const wall = { boot: [] as number[], version: [] as number[] };

try {
  const out = path.join(BENCH_DIR, 'out');
  for (let i = 0; i < rounds; i++) {
    for (const what of i % 2 ? (['version', 'boot'] as const) : (['boot', 'version'] as const)) {
      const argv = what === 'boot' ? ['/usr/bin/x', '/sysroot', sys.cmdline] : ['/usr/bin/x', '--version'];
      const s = runInNamespace(root, sys.sysroot, { argv, env: { CFSROOT_SYS: 'native' } });
      const files = fs.readdirSync(out).filter((f) => f.endsWith('.cpuprofile'));
      if (files.length !== 1) throw new Error(`${what}: expected one .cpuprofile in ${out}, found ${files.length}: is ${bin} the profiling build (make profile-build)?`);
      merge(trees[what], JSON.parse(fs.readFileSync(path.join(out, files[0]!), 'utf8')) as CpuProfile);
      wall[what].push(s.ms);
    }
  }
} finally {
  root.remove();
}

const ms = (us: number) => (us / rounds / 1000).toFixed(3);
console.log(`enabled = ${enabled}, ${rounds} rounds; mean ms per run (boot, --version on the same call path, boot - --version)`);
console.log(
  `profiled: boot ${ms(trees.boot.us)}, --version ${ms(trees.version.us)}; ` +
    `whole process of these runs (median; profiled, and the boot here ends through Node's exit too): boot ${median(wall.boot).toFixed(1)}, --version ${median(wall.version).toFixed(1)}`,
);
const MIN_US = Number(process.env['PROFILE_MIN_MS'] ?? '0.03') * 1000 * rounds;
function show(b: Tree, v: Tree | undefined, depth: number): void {
  const kids = [...b.kids.entries()].sort((x, y) => y[1].us - x[1].us);
  for (const [name, kid] of kids) {
    const other = v?.kids.get(name);
    if (kid.us - (other?.us ?? 0) < MIN_US && kid.us < MIN_US) continue;
    console.log(`${ms(kid.us).padStart(7)} ${ms(other?.us ?? 0).padStart(7)} ${ms(kid.us - (other?.us ?? 0)).padStart(7)}  ${'  '.repeat(depth)}${name}`);
    show(kid, other, depth + 1);
  }
}
console.log('\n   boot --version   diff  call path');
show(trees.boot, trees.version, 0);

// Self time by function, over all paths.
const selfBy = (t: Tree, acc = new Map<string, number>(), name = ''): Map<string, number> => {
  if (name) acc.set(name, (acc.get(name) ?? 0) + t.selfUs);
  for (const [n, k] of t.kids) selfBy(k, acc, n);
  return acc;
};
const sb = selfBy(trees.boot);
const sv = selfBy(trees.version);
const rows = [...new Set([...sb.keys(), ...sv.keys()])].map((n) => ({ n, b: sb.get(n) ?? 0, v: sv.get(n) ?? 0 })).sort((x, y) => y.b - y.v - (x.b - x.v));
console.log('\n   boot --version   diff  self time, by function');
for (const r of rows.slice(0, 25)) console.log(`${ms(r.b).padStart(7)} ${ms(r.v).padStart(7)} ${ms(r.b - r.v).padStart(7)}  ${r.n}`);
