/**
 * A/B of two cfsroot binaries on the bench deployment (not part of `make
 * bench`): `npx tsx bench/ab.ts A B [enabled] [rounds] [copies]`, as root, after
 * `make bench` has generated build/bench/sysroot. Each round runs A's and
 * B's `--version` and boot (prepare-root.conf `enabled`, default yes), in
 * the balanced orders of harness.ts interleave, the rounds spread over
 * `copies` copies of each binary (default 3) in two roots that install them
 * in opposite orders (buildBenchRoot says why); prints each binary's own
 * work (boot - its own --version) and B - A for the boot and for
 * --version, all as medians of per-round differences, and the figures of
 * each copy. For changes under a millisecond, where `make bench`'s 21
 * rounds are too few on this noisy machine. AB_DEPLOYMENT=real: on a
 * deployment the real ostree makes instead (test/helpers/real-ostree.ts, the
 * one `make bench`'s (g) and issue 15 measure on), made for this run and
 * removed after it; it needs no earlier `make bench`.
 */
import * as path from 'node:path';
import { makeRealOstreeSysroot } from '../test/helpers/real-ostree.js';
import { buildBenchRoot, interleaveOver, median, readBenchDeployment, runInNamespace, type BenchDeployment, type BenchRoot, type Sample } from './harness.js';

const [A, B, enabled = 'yes', rounds = '61', copiesArg = '3'] = process.argv.slice(2);
if (!A || !B) throw new Error('usage: bench/ab.ts BINARY_A BINARY_B [enabled] [rounds] [copies]');
const copies = Number(copiesArg);
const deploymentKind = process.env['AB_DEPLOYMENT'] ?? 'bench';
if (deploymentKind !== 'bench' && deploymentKind !== 'real') {
  process.stderr.write(`bench/ab.ts: AB_DEPLOYMENT=${deploymentKind}: expected bench (the default) or real\n`);
  process.exit(1);
}
const real = deploymentKind === 'real' ? makeRealOstreeSysroot() : null;
const sys: BenchDeployment = real
  ? { sysroot: real.sysroot, cmdline: real.bootOptions, publicKeyBase64: real.publicKeyBase64 }
  : readBenchDeployment('bench/ab.ts');
// `copies` copies of each binary (a0, b0, a1, b1, ...) in two roots, installed in opposite orders.
const bins: Record<string, string> = {};
for (let c = 0; c < copies; c++) Object.assign(bins, { [`a${c}`]: path.resolve(A), [`b${c}`]: path.resolve(B) });
const roots = [
  buildBenchRoot(bins, sys.publicKeyBase64, { enabled, name: 'ab' }),
  buildBenchRoot(bins, sys.publicKeyBase64, { enabled, name: 'ab-reversed', reverse: true }),
] as const;
try {
  const variantsIn = (root: BenchRoot, c: number, swap: boolean) => {
    const boot = (bin: string) => () => runInNamespace(root, sys.sysroot, { argv: [`/usr/bin/${bin}${c}`, '/sysroot', sys.cmdline], env: { CFSROOT_SYS: 'native' } });
    const version = (bin: string) => () => runInNamespace(root, sys.sysroot, { argv: [`/usr/bin/${bin}${c}`, '--version'] });
    const a = { versionA: version('a'), bootA: boot('a') };
    const b = { versionB: version('b'), bootB: boot('b') };
    // In three A/A runs the pair that came second in the schedule had 0.3-0.6 ms less
    // own work (bench/RESULTS.md, 2026-12-03): every other set-up gives B's pair the first slots.
    return swap ? { ...b, ...a } : { ...a, ...b };
  };
  const setups = roots.flatMap((root, r) => Array.from({ length: copies }, (_, c) => variantsIn(root, c, (r * copies + c) % 2 === 1)));
  const { all, each } = interleaveOver(Number(rounds), setups);
  type Runs = typeof all;
  const ms = (s: Runs, k: keyof Runs) => s[k].map((x: Sample) => x.ms);
  const paired = (s: Runs, x: keyof Runs, y: keyof Runs) => {
    const base = ms(s, y);
    return median(ms(s, x).map((v, i) => v - base[i]!)).toFixed(2);
  };
  console.log(
    `${deploymentKind} deployment, enabled = ${enabled}, ${rounds} rounds over ${setups.length} copies (paired medians, ms): own work A ${paired(all, 'bootA', 'versionA')}, ` +
      `own work B ${paired(all, 'bootB', 'versionB')}; boot B - A ${paired(all, 'bootB', 'bootA')}, ` +
      `--version B - A ${paired(all, 'versionB', 'versionA')}; medians: --version A ${median(ms(all, 'versionA')).toFixed(1)}, ` +
      `boot A ${median(ms(all, 'bootA')).toFixed(1)}, --version B ${median(ms(all, 'versionB')).toFixed(1)}, boot B ${median(ms(all, 'bootB')).toFixed(1)}`,
  );
  // How much the copy alone moves the figures.
  console.log(`  own work A by copy: ${each.map((e) => paired(e, 'bootA', 'versionA')).join(' ')}; B: ${each.map((e) => paired(e, 'bootB', 'versionB')).join(' ')}`);
  console.log(`  boot B - A by copy: ${each.map((e) => paired(e, 'bootB', 'bootA')).join(' ')}`);
} finally {
  for (const r of roots) r.remove();
  real?.remove();
}
