/**
 * fs-verity digests (src/image/fsverity.ts, SPEC §3) checked three ways: the SPEC
 * vectors; the real `fsverity digest` tool (Debian fsverity) on files whose
 * sizes sit on every Merkle level boundary for sha256 (128 hashes per block)
 * and sha512 (64); and an independent Merkle computation written here on
 * @noble/hashes, on random inputs. The worker-thread path is checked inside
 * an esbuild CJS bundle too, the form the single executable runs.
 */

import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { build } from 'esbuild';
import { createVerityHasher, fsverityDigest, fsverityDigestFile, formatDigest, type DigestStats, type VerityAlg } from '../src/image/fsverity.js';
import { CfsError } from '../src/errors.js';
import { pseudoRandom, referenceDigest } from './helpers/noble-verity.js';

const ALGS: VerityAlg[] = ['sha256', 'sha512'];
const B = 4096;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-fsverity-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

let fileSeq = 0;
function writeTemp(data: Uint8Array): string {
  const file = path.join(tmp, `f${fileSeq++}`);
  fs.writeFileSync(file, data);
  return file;
}

/** What the real tool prints, e.g. "sha256:ab12…". */
function toolDigest(file: string, alg: VerityAlg): string {
  const out = execFileSync('fsverity', ['digest', `--hash-alg=${alg}`, '--compact', file], { encoding: 'utf8' }).trim();
  return `${alg}:${out}`;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');


test('SPEC §3 vectors (sha256), sync and file API', async (t) => {
  const vectors: [Uint8Array, string][] = [
    [Buffer.from('hello world'), '1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64'],
    [new Uint8Array(0), '3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95'],
    [Buffer.alloc(4097, 'a'), '18b155c0b6e054f3f7d22488ed15340e74dc161ce2d123e13eb685c3ce565f70'],
  ];
  for (const [data, want] of vectors) {
    t.is(hex(fsverityDigest(data, 'sha256')), want, `sync, ${data.length} bytes`);
    t.is(hex(await fsverityDigestFile(writeTemp(data), 'sha256')), want, `file, ${data.length} bytes`);
    t.is(hex(referenceDigest(data, 'sha256')), want, `reference, ${data.length} bytes`);
  }
});

// Sizes on each side of the Merkle level boundaries. sha256 packs 128 hashes
// per block: 128 blocks fit one tree block, 16384 fit two levels. sha512
// packs 64: boundaries at 64 and 4096 blocks.
const boundarySizes = [
  0, 1, 4095, 4096, 4097,
  64 * B, 64 * B + 1, 65 * B, // sha512: one tree block full / overflowing
  128 * B, 128 * B + 1, 129 * B, // sha256: one tree block full / overflowing
  4096 * B, 4096 * B + 1, 4160 * B + 7, // sha512: two full levels, then a third
  16384 * B, 16385 * B, 16513 * B + 100, // sha256: two full levels, then a third
];

for (const size of boundarySizes) {
  // The large files run serially to keep memory and the tool's I/O in check.
  const declare = size > 8 << 20 ? test.serial : test;
  declare(`matches \`fsverity digest\` at ${size} bytes (${Math.floor(size / B)} blocks + ${size % B}), sha256 + sha512`, async (t) => {
    const data = crypto.randomBytes(size);
    const file = writeTemp(data);
    for (const alg of ALGS) {
      const want = toolDigest(file, alg);
      t.is(formatDigest(alg, fsverityDigest(data, alg)), want, `${alg} sync`);
      t.is(formatDigest(alg, await fsverityDigestFile(file, alg)), want, `${alg} file (default threads)`);
      t.is(formatDigest(alg, await fsverityDigestFile(file, alg, { workers: 0 })), want, `${alg} file, one thread`);
    }
    fs.rmSync(file);
  });
}

test('matches `fsverity digest` at random sizes, sha256 + sha512', async (t) => {
  const sizes = [crypto.randomInt(2, B), crypto.randomInt(B, 200 * B), crypto.randomInt(200 * B, 3 << 20), crypto.randomInt(3 << 20, 9 << 20)];
  for (const size of sizes) {
    const data = crypto.randomBytes(size);
    const file = writeTemp(data);
    for (const alg of ALGS) {
      const want = toolDigest(file, alg);
      t.is(formatDigest(alg, fsverityDigest(data, alg)), want, `${alg} sync, ${size} bytes`);
      t.is(formatDigest(alg, await fsverityDigestFile(file, alg)), want, `${alg} file, ${size} bytes`);
    }
    fs.rmSync(file);
  }
});

test('worker threads compute level 0 correctly (workers only, then workers + caller)', async (t) => {
  const size = 5 * (1 << 20) + 12345; // 6 chunks of 1 MiB
  const data = crypto.randomBytes(size);
  const file = writeTemp(data);
  for (const alg of ALGS) {
    const want = toolDigest(file, alg);
    let stats: DigestStats | undefined;
    const got = await fsverityDigestFile(file, alg, { workers: 2, callerHashes: false, onStats: (s) => (stats = s) });
    t.is(formatDigest(alg, got), want, `${alg} workers only`);
    t.deepEqual(stats?.workerErrors, [], 'no worker failed');
    t.is(stats?.workers, 2);
    t.is(stats?.workerChunks, 6, 'the workers hashed every chunk');
    t.is(stats?.redoneChunks, 0);
    t.is(formatDigest(alg, await fsverityDigestFile(file, alg, { workers: 1 })), want, `${alg} caller + 1 worker`);
  }
});

test('a worker that fails hands its chunk back; the caller reports the read error', async (t) => {
  const file = writeTemp(crypto.randomBytes(3 << 20));
  // Open, fstat and worker start happen before the first await; the worker
  // needs tens of ms to boot, so it reads only after the truncation below.
  const pending = fsverityDigestFile(file, 'sha256', { workers: 1, callerHashes: false });
  fs.truncateSync(file, 4096);
  const err = await t.throwsAsync(pending, { instanceOf: CfsError });
  t.is(err?.code, 'EIO');
  t.regex(err?.message ?? '', new RegExp(`${file}.*file ended at byte \\d+, expected ${3 << 20} bytes`));
});

test('independent @noble/hashes Merkle reference agrees on random inputs', (t) => {
  // Sizes cluster around the level boundaries of both algorithms.
  const boundary = fc
    .constantFrom(1, 64, 65, 128, 129)
    .chain((blocks) => fc.integer({ min: -2, max: 2 }).map((d) => Math.max(0, blocks * B + d)));
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 0, max: 600_000 }), boundary), fc.integer(), fc.constantFrom(...ALGS), (size, seed, alg) => {
      const data = pseudoRandom(size, seed);
      return hex(fsverityDigest(data, alg)) === hex(referenceDigest(data, alg));
    }),
    { numRuns: 60 },
  );
  t.pass();
});

test('the worker code survives a minified CJS bundle (as in the single executable)', async (t) => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const entry = path.join(tmp, 'entry.ts');
  fs.writeFileSync(
    entry,
    `import { fsverityDigestFile, formatDigest } from ${JSON.stringify(path.join(here, '../src/image/fsverity'))};
const [file, alg] = process.argv.slice(2);
let stats;
fsverityDigestFile(file, alg, { workers: 1, callerHashes: false, onStats: (s) => (stats = s) }).then((d) => {
  console.log(JSON.stringify({ digest: formatDigest(alg, d), stats }));
});\n`,
  );
  const bundle = path.join(tmp, 'bundle.cjs');
  await build({ entryPoints: [entry], bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true, outfile: bundle, logLevel: 'silent' });
  const file = writeTemp(crypto.randomBytes((2 << 20) + 99));
  for (const alg of ALGS) {
    const out = JSON.parse(execFileSync(process.execPath, [bundle, file, alg], { encoding: 'utf8' })) as { digest: string; stats: DigestStats };
    t.is(out.digest, toolDigest(file, alg), alg);
    t.deepEqual(out.stats.workerErrors, []);
    t.is(out.stats.workerChunks, out.stats.chunks, 'the worker, not the fallback, did the work');
  }
});

test('formatDigest: algorithm prefix and lowercase hex; wrong length refused', (t) => {
  const d = Buffer.from('00ff'.repeat(16), 'hex');
  t.is(formatDigest('sha256', d), `sha256:${'00ff'.repeat(16)}`);
  const err = t.throws(() => formatDigest('sha512', d), { instanceOf: CfsError });
  t.is(err?.code, 'EDIGEST');
  t.regex(err?.message ?? '', /sha512.*64 bytes, got 32/);
});

test('errors: missing file, directory, FIFO (without hanging), unknown algorithm', async (t) => {
  const missing = path.join(tmp, 'no-such-file');
  const e1 = await t.throwsAsync(fsverityDigestFile(missing, 'sha256'), { instanceOf: CfsError });
  t.is(e1?.code, 'EIO');
  t.true(e1?.message.includes(missing) && e1.message.includes('ENOENT'), e1?.message);

  const e2 = await t.throwsAsync(fsverityDigestFile(tmp, 'sha256'), { instanceOf: CfsError });
  t.is(e2?.code, 'EIO');
  t.regex(e2?.message ?? '', /not a regular file \(a directory\)/);

  const fifo = path.join(tmp, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const e3 = await t.throwsAsync(fsverityDigestFile(fifo, 'sha256'), { instanceOf: CfsError });
  t.regex(e3?.message ?? '', /not a regular file \(a FIFO\)/);

  const e4 = t.throws(() => fsverityDigest(new Uint8Array(1), 'md5' as VerityAlg), { instanceOf: CfsError });
  t.is(e4?.code, 'EDIGEST');
});

/**
 * The incremental hasher the boot's copy step feeds (createVerityHasher):
 * any way of cutting the data into pieces, including pieces that split a
 * block and empty pieces, gives the independent reference's digest.
 */
test('createVerityHasher: any split of the data gives the reference digest', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 3 * 128 * B + 5000 }),
      fc.integer(),
      fc.array(fc.integer({ min: 0, max: 3 * B }), { maxLength: 12 }),
      fc.constantFrom<VerityAlg>('sha256', 'sha512'),
      (size, seed, cuts, alg) => {
        const data = pseudoRandom(size, seed);
        const h = createVerityHasher(alg);
        let o = 0;
        for (const c of cuts) {
          const end = Math.min(size, o + c);
          h.update(data.subarray(o, end));
          o = end;
        }
        h.update(data.subarray(o));
        return hex(h.digest()) === hex(referenceDigest(data, alg));
      },
    ),
    { numRuns: 60 },
  );
  t.pass();
});

test('createVerityHasher: the empty input, and misuse is an EINTERNAL CfsError', (t) => {
  const h = createVerityHasher('sha256');
  t.is(hex(h.digest()), hex(referenceDigest(new Uint8Array(0), 'sha256')));
  t.true((t.throws(() => h.update(new Uint8Array(1))) as CfsError).code === 'EINTERNAL');
  t.true((t.throws(() => h.digest()) as CfsError).code === 'EINTERNAL');
});

test('fsverityDigestFile one-thread path (no workers, no Atomics) on level boundaries', async (t) => {
  for (const size of [1, B, B + 1, 128 * B, 128 * B + 1, (1 << 20) + 3, 3 * (1 << 20)]) {
    const data = pseudoRandom(size, size);
    const file = writeTemp(data);
    let stats: DigestStats | undefined;
    const got = await fsverityDigestFile(file, 'sha256', { workers: 0, onStats: (s) => (stats = s) });
    t.is(hex(got), hex(referenceDigest(data, 'sha256')), `${size} bytes`);
    t.is(stats?.workers, 0);
  }
});
