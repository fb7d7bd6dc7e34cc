/**
 * The addon's fs-verity functions (native/cfsroot_sys.c: copyVerity,
 * digestFile, prefetch + finishCopy/finishDigest), which the boot uses
 * instead of src/fsverity.ts when they load (issue 5). They must give the
 * same digests as src/fsverity.ts, the independent @noble/hashes reference
 * and `fsverity digest`, on every boundary of their work units (64-block
 * hashing groups, 1 MiB prefetch chunks, 16 MiB copy segments); the copy
 * must hold exactly the source's bytes and permission bits; and every
 * failure must be an errno-coded error that leaves no copy behind.
 * No root needed: these are plain files, except the private copies
 * (prefetch's own tmpfs needs CAP_SYS_ADMIN): as root they are checked,
 * otherwise the fallback to a named copy is.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { fsverityDigest, type VerityAlg } from '../src/fsverity.js';
import { nativeSysFrom, type NativeAddon, type PrefetchHandle } from '../src/sys/native.js';
import { spawnSys } from '../src/sys/spawn.js';
import { pseudoRandom, referenceDigest } from './helpers/noble-verity.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const B = 4096;
const ALGS: VerityAlg[] = ['sha256', 'sha512'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-verity-'));
let addon: Required<NativeAddon>;
/** prefetch with a copyDir makes its copy on a private tmpfs (fsopen needs CAP_SYS_ADMIN; make check runs as root). */
const PRIVATE_COPIES = process.getuid?.() === 0;
const TMPFS_MAGIC = 0x01021994;

test.before(() => {
  // A private build of the addon, as test/native-sys.test.ts does.
  const file = path.join(tmp, 'cfsroot_sys.node');
  execFileSync('cc', [
    '-O2', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=cfsroot_sys',
    `-I${path.resolve(process.execPath, '../../include/node')}`, '-o', file, path.join(REPO, 'native/cfsroot_sys.c'), '-lpthread',
  ]);
  const mod = { exports: {} as Partial<NativeAddon> };
  process.dlopen(mod, file);
  addon = mod.exports as Required<NativeAddon>;
});
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

let seq = 0;
function writeTemp(data: Uint8Array, mode = 0o644): string {
  const file = path.join(tmp, `in${seq++}`);
  fs.writeFileSync(file, data);
  fs.chmodSync(file, mode);
  return file;
}
const fresh = (dir = tmp): string => path.join(dir, `out${seq++}`);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');


/**
 * Every native way of getting the digest of `data`, each checked against
 * `want`; the copies must equal `data` byte for byte and carry `mode`.
 */
function checkAllWays(t: import('ava').ExecutionContext, data: Uint8Array, alg: VerityAlg, want: string, label: string): void {
  const mode = 0o640;
  const src = writeTemp(data, mode);
  const ways: Array<[string, (dest: string) => Buffer]> = [
    ['copyVerity, 1 thread', (d) => addon.copyVerity(src, d, alg, 1)],
    ['copyVerity, 2 threads', (d) => addon.copyVerity(src, d, alg, 2)],
    ['prefetch without copyDir + finishCopy (writes the copy)', (d) => namedCopy(addon.finishCopy(addon.prefetch(src, alg, null), d))],
    ['prefetch into an unnamed file + finishCopy (links it)', (d) => namedCopy(addon.finishCopy(addon.prefetch(src, alg, tmp, false), d))],
  ];
  for (const [way, run] of ways) {
    const dest = fresh();
    t.is(hex(run(dest)), want, `${label}: ${way}`);
    t.true(Buffer.from(data).equals(fs.readFileSync(dest)), `${label}: ${way}: copy holds the source bytes`);
    t.is(fs.statSync(dest).mode & 0o7777, mode, `${label}: ${way}: copy has the source's permission bits`);
    fs.rmSync(dest);
  }
  // The private copy: on a tmpfs of its own, reached only through the descriptor.
  const dest = fresh();
  const r = addon.finishCopy(addon.prefetch(src, alg, tmp), dest);
  t.is(hex(r.digest), want, `${label}: private copy`);
  if (PRIVATE_COPIES) {
    t.false(fs.existsSync(dest), `${label}: a private copy makes nothing at dest`);
    const fdPath = `/proc/self/fd/${r.fd}`;
    t.true(Buffer.from(data).equals(fs.readFileSync(fdPath)), `${label}: private copy holds the source bytes`);
    t.is(fs.fstatSync(r.fd).mode & 0o7777, mode, `${label}: private copy has the source's permission bits`);
    t.is(fs.statfsSync(fdPath).type, TMPFS_MAGIC, `${label}: private copy is on a tmpfs`);
    t.not(fs.fstatSync(r.fd).dev, fs.statSync(tmp).dev, `${label}: ... of its own`);
    fs.closeSync(r.fd);
  } else {
    // Without CAP_SYS_ADMIN there is no private tmpfs: the copy is named at dest as before.
    t.is(r.fd, -1);
    t.true(Buffer.from(data).equals(fs.readFileSync(dest)), `${label}: fallback copy holds the source bytes`);
    fs.rmSync(dest);
  }
  t.is(hex(addon.digestFile(src, alg, 0)), want, `${label}: digestFile`);
  t.is(hex(addon.finishDigest(addon.prefetch(src, alg, null))), want, `${label}: prefetch + finishDigest`);
  fs.rmSync(src);
}

/** finishCopy's digest, checking that the copy went to dest (fd -1). */
function namedCopy(r: { digest: Buffer; fd: number }): Buffer {
  if (r.fd !== -1) throw new Error(`expected the copy at dest, got private fd ${r.fd}`);
  return r.digest;
}

test('the hashing exports exist (Node exports OpenSSL SHA256/SHA512)', (t) => {
  for (const f of ['copyVerity', 'digestFile', 'prefetch', 'finishCopy', 'finishDigest', 'isReadonly'] as const) {
    t.is(typeof addon[f], 'function', f);
  }
  // This Node exports the low-level functions: the tests below exercise the fast path.
  t.is(addon.hashFunctions, 'SHA256_Init/Update/Final');
});

test('SPEC §3 vectors, every native path', (t) => {
  const vectors: Array<[Uint8Array, string]> = [
    [Buffer.from('hello world'), '1e2eaa4202d750a41174ee454970b92c1bc2f925b1e35076d8c7d5f56362ba64'],
    [new Uint8Array(0), '3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95'],
    [Buffer.alloc(4097, 'a'), '18b155c0b6e054f3f7d22488ed15340e74dc161ce2d123e13eb685c3ce565f70'],
  ];
  for (const [data, want] of vectors) checkAllWays(t, data, 'sha256', want, `${data.length} bytes`);
});

// Sizes on the boundaries of each work unit: a block, a 64-block hashing
// group, a 1 MiB prefetch chunk, a 16 MiB copy segment, and a Merkle level
// (128 sha256 / 64 sha512 hashes per block).
const EDGES = [1, B - 1, B, B + 1, 64 * B - 1, 64 * B, 64 * B + 1, 128 * B, 128 * B + 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
  (16 << 20) - 1, (16 << 20) + 1];

for (const size of EDGES) {
  test(`agrees with src/fsverity.ts and @noble/hashes at ${size} bytes, sha256 + sha512`, (t) => {
    const data = pseudoRandom(size, size);
    for (const alg of ALGS) {
      const want = hex(fsverityDigest(data, alg));
      t.is(hex(referenceDigest(data, alg)), want, 'the two references agree');
      checkAllWays(t, data, alg, want, `${size} bytes ${alg}`);
    }
  });
}

test('agrees with `fsverity digest` at 3 MiB + 5 bytes', (t) => {
  const file = writeTemp(pseudoRandom((3 << 20) + 5, 7));
  for (const alg of ALGS) {
    const tool = execFileSync('fsverity', ['digest', `--hash-alg=${alg}`, '--compact', file], { encoding: 'utf8' }).trim();
    t.is(hex(addon.digestFile(file, alg, 0)), tool);
    t.is(hex(addon.finishDigest(addon.prefetch(file, alg, null))), tool);
  }
});

test('random sizes and contents (fast-check), sha256', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 600 * 1024 }), fc.integer(), (size, seed) => {
      const data = pseudoRandom(size, seed);
      const want = hex(referenceDigest(data, 'sha256'));
      const src = writeTemp(data);
      const dest = fresh();
      const ok =
        hex(addon.copyVerity(src, dest, 'sha256', 0)) === want &&
        Buffer.from(data).equals(fs.readFileSync(dest)) &&
        hex(addon.finishDigest(addon.prefetch(src, 'sha256', null))) === want;
      fs.rmSync(src);
      fs.rmSync(dest);
      return ok;
    }),
    { numRuns: 40 },
  );
  t.pass();
});

test('errors carry the errno code, name the file, and leave no copy', (t) => {
  const src = writeTemp(pseudoRandom(10000, 3));
  const fifo = path.join(tmp, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (e) {
      return (e as NodeJS.ErrnoException).code;
    }
    return undefined;
  };
  const msg = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      return (e as Error).message;
    }
    return '';
  };
  for (const [label, run] of [
    ['copyVerity', (s: string, d: string) => addon.copyVerity(s, d, 'sha256', 0)],
    ['prefetch + finishCopy', (s: string, d: string) => namedCopy(addon.finishCopy(addon.prefetch(s, 'sha256', tmp, false), d))],
  ] as const) {
    const missing = path.join(tmp, 'no-such-image');
    const dest = fresh();
    t.is(code(() => run(missing, dest)), 'ENOENT', `${label}: missing source`);
    t.regex(msg(() => run(missing, dest)), /no-such-image/);
    t.is(code(() => run(tmp, dest)), 'EINVAL', `${label}: a directory`);
    t.regex(msg(() => run(tmp, dest)), /not a regular file/);
    t.is(code(() => run(fifo, dest)), 'EINVAL', `${label}: a FIFO is refused without hanging`);
    t.false(fs.existsSync(dest), `${label}: nothing created on a source error`);
    // dest exists: never replaced, left exactly as it was.
    fs.writeFileSync(dest, 'keep');
    t.is(code(() => run(src, dest)), 'EEXIST', `${label}: existing dest`);
    t.is(fs.readFileSync(dest, 'utf8'), 'keep');
    // dest is a symlink: not followed.
    const link = fresh();
    fs.symlinkSync(path.join(tmp, 'link-target'), link);
    t.is(code(() => run(src, link)), 'EEXIST', `${label}: symlink at dest`);
    t.false(fs.existsSync(path.join(tmp, 'link-target')));
    // dest's directory is missing.
    t.is(code(() => run(src, path.join(tmp, 'no-dir', 'x'))), 'ENOENT', `${label}: missing directory`);
  }
  t.is(code(() => addon.digestFile(path.join(tmp, 'nope'), 'sha256', 0)), 'ENOENT');
  t.is(code(() => addon.finishDigest(addon.prefetch(tmp, 'sha256', null))), 'EINVAL');
  // A private copy reports source errors the same way, and never touches dest.
  const dest = fresh();
  fs.writeFileSync(dest, 'keep');
  t.is(code(() => addon.finishCopy(addon.prefetch(path.join(tmp, 'no-such-image'), 'sha256', tmp), dest)), 'ENOENT');
  t.is(code(() => addon.finishCopy(addon.prefetch(fifo, 'sha256', tmp), dest)), 'EINVAL');
  if (PRIVATE_COPIES) {
    const r = addon.finishCopy(addon.prefetch(src, 'sha256', tmp), dest);
    t.is(fs.readFileSync(dest, 'utf8'), 'keep', 'a private copy leaves dest alone');
    fs.closeSync(r.fd);
  } else {
    t.is(code(() => addon.finishCopy(addon.prefetch(src, 'sha256', tmp), dest)), 'EEXIST');
  }
});

test('misuse: unknown algorithm, a foreign or reused handle', (t) => {
  const src = writeTemp(pseudoRandom(5000, 9));
  t.throws(() => addon.digestFile(src, 'md5' as VerityAlg, 0), { instanceOf: TypeError, message: /'sha256' or 'sha512'/ });
  t.throws(() => addon.prefetch(src, 'sha1' as VerityAlg, null), { instanceOf: TypeError });
  t.throws(() => addon.finishDigest({} as PrefetchHandle), { instanceOf: TypeError, message: /prefetch/ });
  const h = addon.prefetch(src, 'sha256', null);
  addon.finishDigest(h);
  t.throws(() => addon.finishDigest(h), { code: 'EINVAL', message: /already used/ });
  t.throws(() => addon.finishCopy(h, fresh()), { code: 'EINVAL' });
  t.throws(() => addon.prefetch(src, 'sha256', tmp, 'yes' as unknown as boolean), { instanceOf: TypeError, message: /privateCopy/ });
  // A handle that is never finished is simply collected.
  addon.prefetch(src, 'sha256', tmp);
});

test('Sys glue: prefetchImage gives copyVerity a head start; other images and algorithms still stream', (t) => {
  const sys = nativeSysFrom(addon, spawnSys());
  t.is(typeof sys.copyVerity, 'function');
  t.is(typeof sys.prefetchImage, 'function');
  const a = pseudoRandom(300000, 1);
  const b = pseudoRandom(200000, 2);
  const srcA = writeTemp(a);
  const srcB = writeTemp(b);
  sys.prefetchImage!(srcA, 'sha256', tmp);
  sys.prefetchImage!(srcB, 'sha512', tmp);
  const dA = fresh();
  const copyA = sys.copyVerity!(srcA, dA, 'sha256');
  t.is(hex(copyA.digest), hex(fsverityDigest(a, 'sha256')));
  t.true(Buffer.from(a).equals(fs.readFileSync(copyA.path)), 'the copy opens from the path returned');
  if (PRIVATE_COPIES) {
    // The head start made a private copy: no name at dA, an open descriptor instead.
    t.regex(copyA.path, /^\/proc\/self\/fd\/\d+$/);
    t.false(fs.existsSync(dA));
    fs.closeSync(Number(copyA.path.split('/').pop()));
  } else {
    t.is(copyA.path, dA);
  }
  // Started for sha512, asked for sha256: streamed into dest, same answer as the reference.
  const dB = fresh();
  t.deepEqual(sys.copyVerity!(srcB, dB, 'sha256'), { digest: Buffer.from(fsverityDigest(b, 'sha256')), path: dB });
  t.true(Buffer.from(b).equals(fs.readFileSync(dB)));
  // A second copy of A (the head start is used once): streamed into dest.
  const dA2 = fresh();
  t.deepEqual(sys.copyVerity!(srcA, dA2, 'sha256'), { digest: Buffer.from(fsverityDigest(a, 'sha256')), path: dA2 });
  // A fake addon without the hashing exports: no fast path offered.
  const bare = nativeSysFrom({ mount() {}, umount() {}, mountLoop: () => '/dev/loop0', setReadonly() {} }, spawnSys());
  t.is(bare.copyVerity, undefined);
  t.is(bare.prefetchImage, undefined);
});

test('exitNow ends the process with the code, after what was written synchronously, running nothing more', (t) => {
  const file = path.join(tmp, 'cfsroot_sys.node');
  const script = [
    `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(file)});`,
    "process.on('exit', () => require('fs').writeSync(1, 'exit handler ran\\n'));",
    "require('fs').writeSync(1, 'written\\n');",
    'm.exports.exitNow(7);',
    "require('fs').writeSync(1, 'after exitNow\\n');",
  ].join('\n');
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  t.is(r.status, 7);
  t.is(r.stdout, 'written\n');
  t.throws(() => addon.exitNow('x' as unknown as number), { instanceOf: TypeError, message: /code/ });
});
