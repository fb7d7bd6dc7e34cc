/**
 * `make bench`: every figure of issue 5, printed as a table and saved as
 * JSON (build/bench/results.json). Run as root (mount namespaces, chroot).
 *
 *   (a) own work of a boot: `cfsroot /sysroot CMDLINE` (signed composefs, the
 *       generated deployment: >= 10,000 files, >= 5 MB image) minus
 *       `cfsroot --version`, both whole processes run the same way (fresh
 *       private mount namespace, tmpfs /run, chroot), interleaved round by
 *       round, the rounds shared out over BENCH_COPIES copies of the binary.
 *       Also with the mount(8) backend (CFSROOT_SYS=spawn) for comparison.
 *   (b) `cfsroot verify` on the same deployment, same baseline.
 *   (c) `cfsroot digest` of a 256 MiB file against node:crypto one-shot
 *       SHA-256 of the same file, whole process against whole process.
 *   (d) start-up: the single executable with/without V8 code cache, with a
 *       startup snapshot, and an empty-script SEA (Node's own floor); bundle size.
 *   (e) node:crypto vs @noble/hashes / tweetnacl on the boot's real inputs.
 *   (f) peak RSS of a full setup (wait4 ru_maxrss).
 *   (g) the deployment the real ostree made: cfsroot's signed, `yes` and `no`
 *       boots beside Debian's C ostree-prepare-root (bench/real-ostree.ts).
 *
 * Environment: BENCH_ROUNDS (default 40), BENCH_COPIES (default 8: the copies of the
 * binary the own-work figures of (a) and (g) spread their rounds over, harness.ts), BENCH_DIGEST_ROUNDS (default 7),
 * BENCH_ONLY=a,b,c,d,e,g (subset), BENCH_COMPARE=<another cfsroot binary> (its
 * boot and --version interleaved with ours, for before/after), BENCH_NO_SPAWN=1
 * (skip the mount(8) backend variant), BENCH_VARIANT_ENV='{"NAME":"value"}'
 * (our boot once more with that environment added, interleaved: for trying a
 * switch read from the environment without building a second binary).
 */

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BENCH_COPIES, BENCH_DIR, REPO, buildBenchRoot, copySpread, fmt, interleave, interleaveOver, iqr, median, runInNamespace, runOnHost, versus, type BenchRoot, type Sample } from './harness.js';
import { buildSea } from './sea.js';
import { cryptoFigures } from './crypto.js';
import { realOstreeFigures } from './real-ostree.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 40);
const DIGEST_ROUNDS = Number(process.env['BENCH_DIGEST_ROUNDS'] ?? 7);
const only = new Set((process.env['BENCH_ONLY'] ?? 'a,b,c,d,e,g').split(','));
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: `${os.cpus()[0]?.model ?? '?'} x${os.availableParallelism()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`,
  loadavg: os.loadavg(),
};

const DIST = path.join(REPO, 'dist/cfsroot');
const BUNDLE = path.join(REPO, 'dist/cfsroot.cjs');

interface SysrootJson {
  sysroot: string;
  cmdline: string;
  publicKeyBase64: string;
  files: number;
  imageSize: number;
  image: string;
  imageDigest: string;
  commit: string;
}

/** The deployment every boot figure uses, generated once and cached in build/bench. */
function benchSysroot(): SysrootJson {
  const json = path.join(BENCH_DIR, 'sysroot.json');
  if (!fs.existsSync(json)) {
    const out = path.join(BENCH_DIR, 'sysroot');
    fs.rmSync(out, { recursive: true, force: true });
    // 22,000 files: mkfs.erofs makes ~230 bytes of image per file, so this
    // is the smallest round count that gives an image over 5 MB.
    process.stderr.write('generating the bench deployment (22,000 files; takes a few minutes)...\n');
    const text = execFileSync(path.join(REPO, 'node_modules/.bin/tsx'), [
      path.join(REPO, 'tools/mksysroot.ts'), '--out', out, '--bulk', '22000', '--key-out', path.join(BENCH_DIR, 'binding.key'),
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    fs.writeFileSync(json, text);
  }
  return JSON.parse(fs.readFileSync(json, 'utf8')) as SysrootJson;
}

function row(name: string, cells: string[]): void {
  console.log(`  ${name.padEnd(44)} ${cells.map((c) => c.padStart(10)).join(' ')}`);
}

function table(title: string, samples: Record<string, Sample[]>, base: string): Record<string, unknown> {
  console.log(`\n${title}`);
  row('', ['median ms', 'IQR ms', `- ${base}`, 'paired', 'CPU ms', 'CPU -base', 'peak RSS']);
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(samples)) {
    const v = versus(s, samples[base]!);
    const rss = median(s.map((x) => x.maxRssKiB)) / 1024;
    const cpu = median(s.map((x) => x.cpuMs));
    const cpuDiff = cpu - median(samples[base]!.map((x) => x.cpuMs));
    row(name, [fmt(v.median), fmt(iqr(s.map((x) => x.ms))), name === base ? '' : fmt(v.diff), name === base ? '' : fmt(v.pairedDiff), fmt(cpu), name === base ? '' : fmt(cpuDiff), `${rss.toFixed(1)} MiB`]);
    out[name] = { medianMs: v.median, iqrMs: iqr(s.map((x) => x.ms)), minusBaseMs: v.diff, pairedMinusBaseMs: v.pairedDiff, cpuMs: cpu, cpuMinusBaseMs: cpuDiff, peakRssMiB: rss, n: s.length };
  }
  return out;
}

function figuresBoot(sys: SysrootJson): void {
  // BENCH_COMPARE=/path/to/another/cfsroot: the same boot by that binary too,
  // interleaved with this one, to measure a change before/after.
  const other = process.env['BENCH_COMPARE'];
  // BENCH_VARIANT_ENV='{"NAME":"value"}': the same boot with extra environment, interleaved too.
  const variantEnv = process.env['BENCH_VARIANT_ENV'] ? (JSON.parse(process.env['BENCH_VARIANT_ENV']) as Record<string, string>) : null;
  // BENCH_COPIES copies of each binary (cfsroot0, cfsroot-b0, cfsroot1, ...), each copy one set-up
  // (harness.ts BENCH_COPIES says why); every boot is taken against the --version of its own copy.
  const bins: Record<string, string> = {};
  for (let c = 0; c < BENCH_COPIES; c++) Object.assign(bins, other ? { [`cfsroot${c}`]: DIST, [`cfsroot-b${c}`]: other } : { [`cfsroot${c}`]: DIST });
  // With a compare binary, half the copies run in a root that installs the two in the other order,
  // with the compare binary's runs first in the schedule: neither place favours one binary (harness.ts buildBenchRoot).
  const roots = [
    buildBenchRoot(bins, sys.publicKeyBase64),
    ...(other ? [buildBenchRoot(bins, sys.publicKeyBase64, { name: 'root-reversed', reverse: true })] : []),
  ];
  const cmdline = sys.cmdline;
  const variantsIn = (root: BenchRoot, c: number, compareFirst: boolean): Record<string, () => Sample> => {
    const ours = `/usr/bin/cfsroot${c}`;
    const theirs = `/usr/bin/cfsroot-b${c}`;
    // `enabled = yes` (nothing pinned, the image mounted as it is: issue 15) in the same root, so that its
    // own work is taken against the --version of the same copy of the binary.
    const boot = (bin: string, env: Record<string, string> = {}, enabled?: string) => () =>
      runInNamespace(root, sys.sysroot, { argv: [bin, '/sysroot', cmdline], env: { CFSROOT_SYS: 'native', ...env }, ...(enabled ? { enabled } : {}) });
    const yes = (bin: string) => boot(bin, {}, 'yes');
    const own: Record<string, () => Sample> = {
      '--version': () => runInNamespace(root, sys.sysroot, { argv: [ours, '--version'] }),
      'boot (native mount backend)': boot(ours),
      'boot enabled=yes (native)': yes(ours),
      ...(variantEnv ? { 'boot (BENCH_VARIANT_ENV)': boot(ours, variantEnv) } : {}),
      ...(process.env['BENCH_NO_SPAWN'] ? {} : { 'boot (mount(8) backend)': boot(ours, { CFSROOT_SYS: 'spawn' }) }),
      'verify': () => runInNamespace(root, sys.sysroot, { argv: [ours, 'verify', '--sysroot', '/sysroot', '--cmdline', cmdline] }),
    };
    const compare: Record<string, () => Sample> = other ? {
      '--version (BENCH_COMPARE)': () => runInNamespace(root, sys.sysroot, { argv: [theirs, '--version'] }),
      'boot (BENCH_COMPARE, native)': boot(theirs),
      'boot enabled=yes (BENCH_COMPARE, native)': yes(theirs),
    } : {};
    return compareFirst ? { ...compare, ...own } : { ...own, ...compare };
  };
  // The rows print in the first set-up's order.
  const setups = roots.flatMap((root, r) => Array.from({ length: BENCH_COPIES }, (_, c) => variantsIn(root, c, (r * BENCH_COPIES + c) % 2 === 1)));
  const { all: s, each } = interleaveOver(ROUNDS, setups);
  results['boot'] = table(
    `(a,b,f) signed composefs boot, ${sys.files} files, image ${(sys.imageSize / 1e6).toFixed(2)} MB; ${ROUNDS} interleaved rounds over ${setups.length} copies, fresh namespace each`,
    s,
    '--version',
  );
  results['bootByCopy'] = copySpread(each, ['boot enabled=yes (native)', 'boot (native mount backend)'], '--version');
  results['phases'] = bootPhases(roots[0]!, sys, 'signed');
  results['phasesYes'] = bootPhases(roots[0]!, sys, 'enabled=yes', 'yes');
  for (const root of roots) root.remove();
}

/**
 * Where a boot's time goes: the same boot with $CFSROOT_TIMINGS=1, which
 * adds one log line of per-phase milliseconds (src/timings.ts). Medians per
 * phase over the rounds. Not interleaved with (a): the extra line is extra work.
 */
function bootPhases(root: ReturnType<typeof buildBenchRoot>, sys: SysrootJson, what: string, enabled?: string): Record<string, number> {
  const seen = new Map<string, number[]>();
  for (let r = 0; r < ROUNDS; r++) {
    runInNamespace(root, sys.sysroot, { argv: ['/usr/bin/cfsroot0', '/sysroot', sys.cmdline], env: { CFSROOT_SYS: 'native', CFSROOT_TIMINGS: '1' }, ...(enabled ? { enabled } : {}) });
    const line = /timings \(ms\): (.*)/.exec(fs.readFileSync(path.join(BENCH_DIR, 'out/stderr'), 'utf8'))?.[1];
    if (!line) throw new Error('bench: the boot printed no timings line');
    // "phase ms, phase ms, ...; steps: kind ms, ..." (the steps are inside `execute`).
    const [phases = '', steps = ''] = line.split('; steps:');
    const add = (text: string, prefix: string) => {
      for (const part of text.split(',')) {
        const m = /^(.+) ([\d.]+)$/.exec(part.trim());
        if (m) seen.set(prefix + m[1], [...(seen.get(prefix + m[1]) ?? []), Number(m[2])]);
      }
    };
    add(phases, '');
    add(steps, '  step ');
  }
  console.log(`\n(a') where the ${what} boot's time goes: CFSROOT_TIMINGS=1, median ms of ${ROUNDS} runs (start = process start to the boot's first line of code)`);
  const out: Record<string, number> = {};
  for (const [name, xs] of seen) {
    out[name.trim()] = median(xs);
    console.log(`  ${name.padEnd(34)} ${fmt(median(xs), 2).padStart(8)}`);
  }
  return out;
}

/**
 * (c) as the issue states it: `cfsroot digest FILE` against node:crypto
 * one-shot SHA-256 of the same bytes, whole process against whole process,
 * both reading the file from the page cache. The yardstick is a tiny script
 * run by the same node binary the single executable is built from (Makefile:
 * `cp $(command -v node)`): readFileSync + createHash('sha256').update().digest().
 * Chosen over a one-shot mode in cfsroot because the shipped binary should
 * not carry a bench-only command, and over the in-memory hash inside the
 * bench process (the earlier baseline) because that one neither reads the
 * file nor starts a process, so it compared a process with a function call.
 * Start-up of the two differs (node loads the script; the SEA starts from its
 * snapshot), so the table also shows each minus its own empty start.
 */
function figuresDigest(): void {
  const mib = 256;
  const file = path.join(BENCH_DIR, 'digest-256m');
  fs.writeFileSync(file, crypto.randomBytes(mib << 20));
  const script = path.join(BENCH_DIR, 'oneshot-sha256.cjs');
  fs.writeFileSync(script, "const c = require('node:crypto'), fs = require('node:fs');\n" +
    "process.stdout.write(c.createHash('sha256').update(fs.readFileSync(process.argv[2])).digest('hex') + '\\n');\n");
  const empty = path.join(BENCH_DIR, 'empty.cjs');
  fs.writeFileSync(empty, '');
  const node = execFileSync('sh', ['-c', 'command -v node'], { encoding: 'utf8' }).trim();
  const variants = {
    'cfsroot --version': () => runOnHost([DIST, '--version']),
    'cfsroot digest 256 MiB': () => runOnHost([DIST, 'digest', file]),
    'node empty script': () => runOnHost([node, empty]),
    'node one-shot sha256 256 MiB': () => runOnHost([node, script, file]),
  };
  const s = interleave(DIGEST_ROUNDS, variants);
  const whole = (k: keyof typeof variants) => median(s[k].map((x) => x.ms));
  const cfs = whole('cfsroot digest 256 MiB');
  const ref = whole('node one-shot sha256 256 MiB');
  const cfsOwn = versus(s['cfsroot digest 256 MiB'], s['cfsroot --version']).pairedDiff;
  const refOwn = versus(s['node one-shot sha256 256 MiB'], s['node empty script']).pairedDiff;
  console.log(`\n(c) fs-verity digest of ${mib} MiB (page cache warm), ${DIGEST_ROUNDS} interleaved rounds`);
  row('', ['whole ms', 'ratio', 'own ms', 'own ratio']);
  row('node one-shot createHash(sha256) of the file', [fmt(ref), '1.00', fmt(refOwn), '1.00']);
  row('cfsroot digest', [fmt(cfs), (ref / cfs).toFixed(2), fmt(cfsOwn), (refOwn / cfsOwn).toFixed(2)]);
  results['digest'] = {
    mib,
    oneShotProcessMs: ref,
    cfsrootProcessMs: cfs,
    ratio: ref / cfs,
    oneShotOwnMs: refOwn,
    cfsrootOwnMs: cfsOwn,
    ownRatio: refOwn / cfsOwn,
    samples: Object.fromEntries(Object.entries(s).map(([k, v]) => [k, (v as Sample[]).map((x) => x.ms)])),
  };
  fs.rmSync(file, { force: true });
}

function figuresStartup(): void {
  const emptyJs = path.join(BENCH_DIR, 'empty.cjs');
  fs.writeFileSync(emptyJs, '');
  const assets = fs.existsSync(path.join(REPO, 'build/native/cfsroot_sys.node'))
    ? { 'cfsroot_sys.node': path.join(REPO, 'build/native/cfsroot_sys.node') }
    : undefined;
  const bins = {
    'empty script SEA (Node floor)': buildSea('empty', { main: emptyJs }),
    'cfsroot, neither': buildSea('plain', { main: BUNDLE, assets }),
    'cfsroot, V8 code cache': buildSea('codecache', { main: BUNDLE, useCodeCache: true, assets }),
    'cfsroot, startup snapshot (dist/cfsroot)': DIST,
    ...(process.env['BENCH_COMPARE'] ? { 'BENCH_COMPARE (previous build)': process.env['BENCH_COMPARE'] } : {}),
  };
  const variants = Object.fromEntries(Object.entries(bins).map(([n, b]) => [n, () => runOnHost([b, '--version'])]));
  const s = interleave(ROUNDS, variants);
  const out = table(`(d) start-up: \`--version\` whole process, ${ROUNDS} interleaved rounds`, s, 'empty script SEA (Node floor)');
  const bundle = fs.statSync(BUNDLE).size;
  console.log(`  bundle dist/cfsroot.cjs: ${bundle} bytes (${(bundle / 1024).toFixed(0)} KiB); binary ${fs.statSync(DIST).size} bytes`);
  results['startup'] = { ...out, bundleBytes: bundle, binaryBytes: fs.statSync(DIST).size };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench: run as root (mount namespaces, chroot)');
  if (!fs.existsSync(DIST)) throw new Error('bench: build dist/cfsroot first (make)');
  console.log(`cfsroot benchmarks, ${results['date']}\n${results['machine']}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const sys = benchSysroot();
  if (only.has('a') || only.has('b')) figuresBoot(sys);
  if (only.has('c')) figuresDigest();
  if (only.has('d')) figuresStartup();
  if (only.has('e')) results['crypto'] = await cryptoFigures(sys, ROUNDS);
  if (only.has('g')) results['realOstree'] = realOstreeFigures(ROUNDS, table);
  fs.writeFileSync(path.join(BENCH_DIR, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(`\nresults: ${path.relative(REPO, path.join(BENCH_DIR, 'results.json'))}`);
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
