/**
 * A/B of two cfsroot binaries on the bench deployment (not part of `make
 * bench`): `npx tsx bench/ab.ts A B [enabled] [rounds]`, as root, after
 * `make bench` has generated build/bench/sysroot. Each round runs A's and
 * B's `--version` and boot (prepare-root.conf `enabled`, default yes), in
 * the balanced orders of harness.ts interleave; prints each binary's own
 * work (boot - its own --version) and B - A for the boot and for
 * --version, all as medians of per-round differences. For changes under a millisecond, where `make bench`'s 21
 * rounds are too few on this noisy machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_DIR, buildBenchRoot, interleave, median, runInNamespace } from './harness.js';

const [A, B, enabled = 'yes', rounds = '61'] = process.argv.slice(2);
if (!A || !B) throw new Error('usage: bench/ab.ts BINARY_A BINARY_B [enabled] [rounds]');
const sys = JSON.parse(fs.readFileSync(path.join(BENCH_DIR, 'sysroot.json'), 'utf8')) as { sysroot: string; cmdline: string; publicKeyBase64: string };
const root = buildBenchRoot({ a: path.resolve(A), b: path.resolve(B) }, sys.publicKeyBase64, { enabled, name: 'ab' });
try {
  const boot = (bin: string) => () => runInNamespace(root, sys.sysroot, { argv: [`/usr/bin/${bin}`, '/sysroot', sys.cmdline], env: { CFSROOT_SYS: 'native' } });
  const version = (bin: string) => () => runInNamespace(root, sys.sysroot, { argv: [`/usr/bin/${bin}`, '--version'] });
  const s = interleave(Number(rounds), { versionA: version('a'), bootA: boot('a'), versionB: version('b'), bootB: boot('b') });
  const ms = (k: keyof typeof s) => s[k].map((x) => x.ms);
  const paired = (x: number[], y: number[]) => median(x.map((v, i) => v - y[i]!)).toFixed(2);
  console.log(
    `enabled = ${enabled}, ${rounds} rounds (paired medians, ms): own work A ${paired(ms('bootA'), ms('versionA'))}, ` +
      `own work B ${paired(ms('bootB'), ms('versionB'))}; boot B - A ${paired(ms('bootB'), ms('bootA'))}, ` +
      `--version B - A ${paired(ms('versionB'), ms('versionA'))}; medians: --version A ${median(ms('versionA')).toFixed(1)}, ` +
      `boot A ${median(ms('bootA')).toFixed(1)}, --version B ${median(ms('versionB')).toFixed(1)}, boot B ${median(ms('bootB')).toFixed(1)}`,
  );
} finally {
  root.remove();
}
