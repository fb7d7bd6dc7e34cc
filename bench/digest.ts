/**
 * Throughput of the fs-verity digest (src/image/fsverity.ts) against the yardstick
 * the project set: node:crypto one-shot SHA-256 of the same bytes already in
 * memory. Run: npx tsx bench/digest.ts [MiB ...] (default 256; each size gets
 * a file in the temp dir, deleted at the end). Prints the median of N runs
 * per variant, interleaved so that machine noise hits every variant alike.
 */

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsverityDigest, fsverityDigestFile, type VerityAlg } from '../src/image/fsverity.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 7);
const sizesMiB = process.argv.slice(2).map(Number);
if (sizesMiB.length === 0) sizesMiB.push(256);
const algs: VerityAlg[] = (process.env['BENCH_ALGS'] ?? 'sha256').split(',') as VerityAlg[];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-bench-'));
try {
  for (const mib of sizesMiB) {
    // Random bytes, not zeros: the page cache and hashing cost are the same,
    // but nothing downstream can take a shortcut on repeated blocks.
    const data = crypto.randomBytes(Math.round(mib * 1048576));
    const file = path.join(dir, `data-${mib}`);
    fs.writeFileSync(file, data);
    for (const alg of algs) {
      const variants: Record<string, () => Promise<unknown> | unknown> = {
        [`one-shot createHash('${alg}') in memory`]: () => crypto.createHash(alg).update(data).digest(),
        'fsverityDigest (sync, in memory)': () => fsverityDigest(data, alg),
        'fsverityDigestFile workers=0': () => fsverityDigestFile(file, alg, { workers: 0 }),
        'fsverityDigestFile workers=1': () => fsverityDigestFile(file, alg, { workers: 1 }),
        'fsverityDigestFile (default)': () => fsverityDigestFile(file, alg),
      };
      const times: Record<string, number[]> = {};
      for (const [name, fn] of Object.entries(variants)) {
        await fn(); // warm-up: JIT, page cache
        times[name] = [];
      }
      for (let r = 0; r < RUNS; r++) {
        for (const [name, fn] of Object.entries(variants)) {
          const start = process.hrtime.bigint();
          await fn();
          times[name]!.push(Number(process.hrtime.bigint() - start) / 1e9);
        }
      }
      const median = (a: number[]): number => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
      const base = median(times[Object.keys(variants)[0]!]!);
      console.log(`\n${mib} MiB, ${alg}, median of ${RUNS} (${os.availableParallelism()} CPUs, Node ${process.version})`);
      for (const [name, t] of Object.entries(times)) {
        const m = median(t);
        console.log(
          `  ${name.padEnd(42)} ${(m * 1000).toFixed(1).padStart(8)} ms ${(mib / m).toFixed(0).padStart(6)} MiB/s  ${(base / m).toFixed(2)}x`,
        );
      }
    }
    fs.rmSync(file);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
