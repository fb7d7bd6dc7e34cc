/**
 * Report of the guest-side benchmark (qemu/guest-bench.sh, issue 15): reads
 * the CFSBENCH lines of one guest run and prints, per image path, the boot's
 * whole process, its own work (the boot minus `--version`, medians and the
 * median of per-round differences), its in-process phases (CFSROOT_TIMINGS:
 * the work without the start-up and exit, whose noise under TCG is larger
 * than the paths' differences) and the RAM the mounted root keeps held
 * (the growth of Shmem: the image copy in its tmpfs). Saves
 * build/bench/guest.json.
 *
 *   npx tsx bench/guest.ts LINES_FILE
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_DIR, fmt, iqr, median } from './harness.js';

const VARIANTS = ['version', 'unpinned', 'verity', 'signed', 'copy'] as const;
type Variant = (typeof VARIANTS)[number];

interface Run {
  ms: number;
  rssKiB: number;
  rc: number;
  cpuMs: number;
  heldKiB: number;
}

const file = process.argv[2];
if (!file) {
  console.error('usage: bench/guest.ts LINES_FILE');
  process.exit(2);
}
const lines = fs.readFileSync(file, 'utf8').split('\n');
const runs: Record<Variant, Run[]> = { version: [], unpinned: [], verity: [], signed: [], copy: [] };
// Per boot: backend + decide + plan + execute (CFSROOT_TIMINGS), the work between start-up and exit.
const inProcess: Record<Variant, number[]> = { version: [], unpinned: [], verity: [], signed: [], copy: [] };
const info: string[] = [];
const failures: string[] = [];
for (const line of lines) {
  const m = /^CFSBENCH run (\w+) (\d+) (\d+) (\d+) (\d+) (\d+) held=(-?\d+)$/.exec(line);
  if (m) {
    const v = m[1] as Variant;
    if (!(v in runs)) continue;
    runs[v].push({ ms: Number(m[2]) / 1e6, rssKiB: Number(m[3]), rc: Number(m[4]), cpuMs: (Number(m[5]) + Number(m[6])) / 1000, heldKiB: Number(m[7]) });
  } else if (line.startsWith('CFSBENCH tim ')) {
    const t = /^CFSBENCH tim (\w+) timings \(ms\): (.*)$/.exec(line);
    if (!t || !(t[1]! in inProcess)) continue;
    let sum = 0;
    for (const part of t[2]!.split(',')) {
      const p = /^\s*(backend|decide|plan|execute) ([\d.]+)$/.exec(part);
      if (p) sum += Number(p[2]);
    }
    inProcess[t[1] as Variant].push(sum);
  } else if (line.startsWith('CFSBENCH info ') || line.startsWith('CFSBENCH image ')) info.push(line.slice('CFSBENCH '.length));
  else if (line.startsWith('CFSBENCH fail')) failures.push(line);
}
if (failures.length) {
  console.error(failures.join('\n'));
  process.exit(1);
}
const n = Math.min(...VARIANTS.map((v) => runs[v].length));
if (n === 0) {
  console.error(`guest bench: no complete rounds in ${file}`);
  process.exit(1);
}
// Rounds are kept whole: the k-th run of each variant belongs to round k.
const version = runs.version.slice(0, n).map((r) => r.ms);
const own = (v: Variant) => {
  const ms = runs[v].slice(0, n).map((r) => r.ms);
  return { whole: median(ms), own: median(ms) - median(version), paired: median(ms.map((x, i) => x - version[i]!)) };
};
const rows = (['unpinned', 'verity', 'signed', 'copy'] as const).map((v) => ({
  variant: v,
  ...own(v),
  cpuMs: median(runs[v].slice(0, n).map((r) => r.cpuMs)),
  inProcessMs: median(inProcess[v]),
  heldKiB: median(runs[v].slice(0, n).map((r) => r.heldKiB)),
}));
const byName = Object.fromEntries(rows.map((r) => [r.variant, r]));
const ratio = byName['verity']!.paired / byName['unpinned']!.paired;
const inProcessRatio = byName['verity']!.inProcessMs / byName['unpinned']!.inProcessMs;
const signedInProcessRatio = byName['signed']!.inProcessMs / byName['unpinned']!.inProcessMs;
// How far the paired own work moves from round to round: the start-up's noise under TCG.
const pairedIqr = (v: Variant) => iqr(runs[v].slice(0, n).map((r, i) => r.ms - version[i]!));
console.log(`guest bench (QEMU TCG, ${n} rounds; --version ${fmt(median(version))} ms):`);
console.log('| path | boot, whole process | own work (boot − --version) | paired (IQR) | in process | CPU | RAM held after boot |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.variant} | ${fmt(r.whole)} ms | ${fmt(r.own)} ms | ${fmt(r.paired)} ms (${fmt(pairedIqr(r.variant))}) | ${Number.isNaN(r.inProcessMs) ? '—' : `${fmt(r.inProcessMs)} ms`} | ${fmt(r.cpuMs)} ms | ${(r.heldKiB / 1024).toFixed(2)} MiB |`,
  );
}
const ratioText = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(2));
console.log(`verity / unpinned: own work (paired) ${ratio.toFixed(2)}, in process ${ratioText(inProcessRatio)} (target ≤ 1.2)`);
console.log(
  `signed / unpinned: own work (paired) ${(byName['signed']!.paired / byName['unpinned']!.paired).toFixed(2)}, in process ${ratioText(signedInProcessRatio)}` +
    ` (the signature check on the fs-verity path; TCG runs crypto without the host's SHA and vector instructions)`,
);
for (const i of info) console.log(i);
fs.mkdirSync(BENCH_DIR, { recursive: true });
fs.writeFileSync(
  path.join(BENCH_DIR, 'guest.json'),
  JSON.stringify({ date: new Date().toISOString(), rounds: n, versionMs: median(version), rows, ratioVerityToUnpinned: ratio, inProcessRatioVerityToUnpinned: inProcessRatio, inProcessRatioSignedToUnpinned: signedInProcessRatio, info }, null, 2) + '\n',
);
