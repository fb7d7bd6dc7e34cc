/**
 * Shared machinery of the benchmarks (not shipped): a bench initramfs root,
 * running one command in it the way the boot runs (fresh private mount
 * namespace, tmpfs /run, the sysroot bound at /sysroot, chroot), timing
 * whole processes with bench/tcmd.c, and interleaved medians.
 *
 * The machine is shared and noisy, so every figure is a comparison made
 * inside one run: variants are interleaved round by round, and results are
 * quoted as differences and ratios of medians (plus the median of the
 * per-round differences, which cancels slow stretches that hit one round).
 */

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO = path.resolve(import.meta.dirname, '..');
export const BENCH_DIR = path.join(REPO, 'build/bench');
const BUSYBOX_APPLETS = ['sh', 'cat', 'ls', 'mkdir', 'echo', 'env', 'true'];

export interface Sample {
  /** Whole-process wall time, milliseconds. */
  ms: number;
  /** Peak resident set, KiB (wait4 ru_maxrss). */
  maxRssKiB: number;
  rc: number;
  /** CPU time of all the process's threads, user + system, milliseconds (wait4 ru_utime + ru_stime). */
  cpuMs: number;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Interquartile range, to show how noisy a median is. */
export function iqr(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return q(0.75) - q(0.25);
}

function install(src: string, dest: string): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.rmSync(dest, { force: true });
  try {
    fs.linkSync(src, dest);
  } catch {
    fs.copyFileSync(src, dest);
  }
  fs.chmodSync(dest, fs.statSync(src).mode & 0o7777);
}

/** Copy a dynamically linked binary and the libraries ldd names into the root. */
function installWithLibs(bin: string, root: string, as: string): void {
  install(fs.realpathSync(bin), path.join(root, as));
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (m && !fs.existsSync(path.join(root, m[1]!))) install(fs.realpathSync(m[1]!), path.join(root, m[1]!));
  }
}

/**
 * For each line of an unminified bundle, the source module it belongs to:
 * esbuild writes `// src/plan/execute.ts` (or `// node_modules/...`) above
 * each module's code; '' before the first. For bench/profile.ts and
 * bench/compiles.ts, which name the functions they report by module.
 */
export function moduleOfEachLine(bundleText: string): string[] {
  const modules: string[] = [];
  let current = '';
  for (const line of bundleText.split('\n')) {
    if (line.startsWith('// src/') || line.startsWith('// node_modules/')) current = line.slice(3);
    modules.push(current);
  }
  return modules;
}

/** What tools/mksysroot.ts printed for the bench deployment (build/bench/sysroot.json), the parts the A/B tools use. */
export interface BenchDeployment {
  sysroot: string;
  cmdline: string;
  publicKeyBase64: string;
}

/**
 * The bench deployment `make bench` generated, for the tools that run on it
 * without generating it (bench/ab.ts, bench/profile.ts); one line and exit 1
 * when it is not there yet.
 */
export function readBenchDeployment(tool: string): BenchDeployment {
  const file = path.join(BENCH_DIR, 'sysroot.json');
  if (!fs.existsSync(file)) {
    process.stderr.write(`${tool}: ${file} is missing: run make bench once first (it generates the bench deployment)\n`);
    process.exit(1);
  }
  return JSON.parse(fs.readFileSync(file, 'utf8')) as BenchDeployment;
}

export interface BenchRoot {
  dir: string;
  remove(): void;
}

/**
 * An initramfs-like root: busybox, util-linux mount/umount (the spawn
 * backend needs them), the timer, each binary under test as
 * /usr/bin/<name>, prepare-root.conf (`enabled`: signed composefs unless
 * told otherwise) and the key. `name`: the directory under build/bench, so
 * that roots with different configurations can be used side by side.
 *
 * Copies of one binary do not run equally fast: of two identical copies in
 * a root, one ran 0.4-0.9 ms faster than the other, `--version` and boot
 * alike, and their own work (boot - --version) differed by up to 0.6 ms
 * (bench/ab.ts, 201 rounds, 2026-12-03); which copy was faster changed
 * from one root to the next. So a comparison of two binaries spreads its
 * rounds over several copies of each and both install orders (`reverse`,
 * interleaveOver), `make bench`'s own-work figures spread theirs over
 * BENCH_COPIES copies, and an own-work figure subtracts the `--version` of
 * the same copy.
 */
export function buildBenchRoot(
  binaries: Record<string, string>,
  bindingKeyBase64: string,
  opts: { enabled?: string; name?: string; reverse?: boolean } = {},
): BenchRoot {
  const dir = path.join(BENCH_DIR, opts.name ?? 'root');
  // A tmpfs, as the initramfs root is: the boot makes and removes
  // /sysroot.tmp there, and on the host's disk filesystem that cost up to
  // 1 ms of journalling a real boot does not pay. (Left mounted by a run
  // that was killed: unmount that first.)
  while (spawnSync('umount', [dir], { stdio: 'ignore' }).status === 0);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=0755', 'cfsroot-bench-root', dir]);
  for (const d of ['bin', 'usr/bin', 'etc/ostree', 'proc', 'sys', 'dev', 'run', 'sysroot', 'tmp', 'out', 'bench']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  install('/usr/bin/busybox', path.join(dir, 'bin/busybox'));
  for (const a of BUSYBOX_APPLETS) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  for (const bin of ['/usr/bin/mount', '/usr/bin/umount']) installWithLibs(bin, dir, bin);
  install(path.join(BENCH_DIR, 'tcmd'), path.join(dir, 'bench/tcmd'));
  const order = Object.entries(binaries);
  for (const [name, bin] of opts.reverse ? order.reverse() : order) installWithLibs(bin, dir, `/usr/bin/${name}`);
  // The boot form runs only in an initramfs (src/cli.ts), which this file marks.
  fs.writeFileSync(path.join(dir, 'etc/initrd-release'), 'NAME="cfsroot bench initramfs"\n');
  fs.writeFileSync(path.join(dir, 'etc/ostree/prepare-root.conf'), prepareRootConf(opts.enabled ?? 'signed'));
  fs.writeFileSync(path.join(dir, 'etc/ostree/initramfs-root-binding.key'), `${bindingKeyBase64}\n`);
  return {
    dir,
    remove: () => {
      execFileSync('umount', [dir]);
      fs.rmdirSync(dir);
    },
  };
}

export interface NsRun {
  /** argv inside the chroot (argv[0] an absolute path there). */
  argv: string[];
  env?: Record<string, string>;
  /** A file bound over the chroot's /proc/cmdline (a tool that reads the kernel command line only there). */
  procCmdline?: string;
  /** The exit status that counts as a run (default 0): a usage line used as a baseline exits 1. */
  status?: number;
  /**
   * prepare-root.conf's `enabled` for this run, bound over the root's own
   * file: boots of two configurations then run the same copy of a binary,
   * and its --version is their common baseline (see buildBenchRoot on why
   * copies differ).
   */
  enabled?: string;
}

/**
 * Run argv once under tcmd, in a fresh private mount namespace set up as at
 * boot. Only the command itself is timed; the namespace set-up is not.
 * Throws with the command's stderr if it exits non-zero.
 */
export function runInNamespace(root: BenchRoot, sysroot: string, run: NsRun): Sample {
  const R = root.dir;
  const out = path.join(BENCH_DIR, 'out');
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out);
  const outer = [
    'set -e',
    'mount --bind "$R" "$R"',
    'mount -t tmpfs -o mode=0755 tmpfs "$R/run"',
    'mount --bind "$SYSROOT" "$R/sysroot"',
    'mount -t proc proc "$R/proc"',
    'if [ -n "$PROC_CMDLINE" ]; then mount --bind "$PROC_CMDLINE" "$R/proc/cmdline"; fi',
    'mount --rbind /dev "$R/dev"',
    'mount --rbind /sys "$R/sys"',
    'mount --bind "$OUT" "$R/out"',
    'if [ -n "$CONF" ]; then mount --bind "$CONF" "$R/etc/ostree/prepare-root.conf"; fi',
    'exec chroot "$R" /bench/tcmd /out/result "$@" >"$OUT/stdout" 2>"$OUT/stderr"',
  ].join('\n');
  const conf = run.enabled === undefined ? '' : confFile(run.enabled);
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', outer, 'sh', ...run.argv], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', R, SYSROOT: sysroot, OUT: out, PROC_CMDLINE: run.procCmdline ?? '', CONF: conf, ...run.env },
    encoding: 'utf8',
  });
  const sample = readTcmdResult(path.join(out, 'result'), run.status ?? 0);
  if (sample === null) {
    const stderr = fs.existsSync(path.join(out, 'stderr')) ? fs.readFileSync(path.join(out, 'stderr'), 'utf8') : '';
    throw new Error(`${run.argv.join(' ')} failed (harness ${r.status}): ${stderr.trim() || r.stderr.trim()}`);
  }
  return sample;
}

/** The bench's prepare-root.conf: composefs `enabled` and nothing else. */
const prepareRootConf = (enabled: string): string => `[composefs]\nenabled = ${enabled}\n`;

/** A prepare-root.conf with `enabled`, written once under build/bench. */
function confFile(enabled: string): string {
  if (!/^[a-z]+$/.test(enabled)) throw new Error(`bench: enabled = ${enabled}?`);
  const file = path.join(BENCH_DIR, `prepare-root.${enabled}.conf`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, prepareRootConf(enabled));
  return file;
}

/** tcmd's line (bench/tcmd.c) as a Sample; null when it is missing or the command did not exit with `status`. */
function readTcmdResult(file: string, status = 0): Sample | null {
  const m = /^(\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
  if (!m || m[3] !== String(status)) return null;
  return { ms: Number(m[1]) / 1e6, maxRssKiB: Number(m[2]), rc: status, cpuMs: (Number(m[4]) + Number(m[5])) / 1e3 };
}

/** Run argv once under tcmd on the host (no namespace). */
export function runOnHost(argv: string[], env?: Record<string, string>): Sample {
  const res = path.join(BENCH_DIR, 'host-result');
  fs.rmSync(res, { force: true });
  const r = spawnSync(path.join(BENCH_DIR, 'tcmd'), [res, ...argv], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const sample = readTcmdResult(res);
  if (sample === null) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  return sample;
}

/**
 * The orders of a balanced Latin square (Williams design) on n variants:
 * over its rows, each variant runs once in each position and right after
 * each other variant equally often (n rows for even n, 2n for odd n).
 */
export function balancedOrders(n: number): number[][] {
  // First row 0, 1, n-1, 2, n-2, ...; row r adds r to each entry (mod n).
  const first: number[] = [];
  for (let i = 0, lo = 1, hi = n - 1; i < n; i++) first.push(i === 0 ? 0 : i % 2 === 1 ? lo++ : hi--);
  const rows = Array.from({ length: n }, (_, r) => first.map((v) => (v + r) % n));
  return n % 2 === 0 ? rows : [...rows, ...rows.map((row) => [...row].reverse())];
}

/**
 * Run each variant once per round, in the orders of balancedOrders, after one
 * unrecorded warm-up round (page cache, loop/erofs module state).
 */
export function interleave<K extends string>(rounds: number, variants: Record<K, () => Sample>): Record<K, Sample[]> {
  return interleaveOver(rounds, [variants]).all;
}

/**
 * interleave split over several set-ups of the same variants (other copies
 * of the binaries, another install order: buildBenchRoot says why): round r
 * goes to set-up r mod N, so that a drift of the machine during the run
 * falls on every set-up alike rather than on whichever ran last, and each
 * set-up goes through the orders of balancedOrders in its own rounds, after
 * one unrecorded warm-up round of its own.
 * Each variant's samples are joined set-up by set-up, in the same order for
 * every variant, so that paired differences stay paired. Also returns each
 * set-up's own samples.
 */
export function interleaveOver<K extends string>(
  rounds: number,
  setups: ReadonlyArray<Record<K, () => Sample>>,
): { all: Record<K, Sample[]>; each: Array<Record<K, Sample[]>> } {
  const names = Object.keys(setups[0]!) as K[];
  // One unrecorded warm-up round per set-up (page cache, loop/erofs module state).
  for (const variants of setups) for (const n of names) variants[n]();
  const each = setups.map(() => Object.fromEntries(names.map((n) => [n, [] as Sample[]])) as Record<K, Sample[]>);
  // Whatever a run leaves behind (its mounts torn down after it exits, the
  // page cache, the CPU caches) falls on the run after it. A plain rotation
  // keeps the cyclic order, so each variant would always follow the same
  // other one; in these orders each follows each other one equally often.
  const orders = balancedOrders(names.length);
  for (let r = 0; r < rounds; r++) {
    const i = r % setups.length;
    const order = orders[Math.floor(r / setups.length) % orders.length]!;
    for (const v of order) each[i]![names[v]!].push(setups[i]![names[v]!]());
  }
  const all = Object.fromEntries(names.map((k) => [k, each.flatMap((s) => s[k])])) as Record<K, Sample[]>;
  return { all, each };
}

/**
 * How many copies of the binary under test an own-work figure of `make
 * bench` spreads its rounds over (BENCH_COPIES, default 8). Copies of one
 * binary do not run equally fast (buildBenchRoot), so a figure taken on one
 * copy carries that copy's offset; spread over eight, round-robin, the
 * offsets average out and a drift of the machine falls on all of them.
 * It does not make a short run precise: at 12 rounds a copy, single copies'
 * own work for `yes` read -2.2 to 5.8 ms; at 120 rounds a copy, 2.35 to
 * 2.89 ms (bench/RESULTS.md, 2026-12-03 21:35-22:00).
 */
export const BENCH_COPIES = Math.max(1, Number(process.env['BENCH_COPIES'] ?? 8) || 8);

/** Each set-up's paired median of `x` minus `base` (one per copy): min, median and max. */
export function spreadOverSetups<K extends string>(each: ReadonlyArray<Record<K, Sample[]>>, x: K, base: K): { min: number; median: number; max: number; each: number[] } {
  const per = each.filter((s) => s[x].length > 0).map((s) => versus(s[x], s[base]).pairedDiff);
  return { min: Math.min(...per), median: median(per), max: Math.max(...per), each: per };
}

/**
 * Own work copy by copy: each copy's paired median of a row minus `base`,
 * printed as min / median / max over the copies. The table's figure pools
 * every copy's rounds; this line shows how far a single copy could have
 * put it.
 */
export function copySpread(each: ReadonlyArray<Record<string, Sample[]>>, rows: readonly string[], base: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of rows) {
    const sp = spreadOverSetups(each, name, base);
    console.log(`  ${name} - ${base}, copy by copy (paired median; min / median / max of ${sp.each.length}): ${fmt(sp.min, 2)} / ${fmt(sp.median, 2)} / ${fmt(sp.max, 2)}`);
    out[name] = sp;
  }
  return out;
}

/** Median of a variant's wall times, and of its per-round differences from a baseline. */
export function versus(samples: readonly Sample[], base: readonly Sample[]): { median: number; diff: number; pairedDiff: number } {
  const a = samples.map((s) => s.ms);
  const b = base.map((s) => s.ms);
  return { median: median(a), diff: median(a) - median(b), pairedDiff: median(a.map((x, i) => x - b[i]!)) };
}

export const fmt = (ms: number, digits = 1): string => ms.toFixed(digits);
