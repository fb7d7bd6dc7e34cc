/**
 * The addon's fs-verity part (native/verity.c: digestFile, copyImage, warmCrypto),
 * which the boot and `verify`/`digest` use instead of src/image/fsverity.ts when
 * it loads (issues 5, 15). Its digests must equal src/image/fsverity.ts, the
 * independent @noble/hashes reference and `fsverity digest`, on every
 * boundary of its work units (64-block hashing groups, 1 MiB segments, a
 * Merkle level), with one thread or two; copyImage's copy must hold exactly
 * the source's bytes, in an unnamed in-memory file reached only through the
 * descriptor it returns (a sealed memfd under 2 MiB, a tmpfs of its own
 * from 2 MiB); every failure is an errno-coded error.
 * The private tmpfs needs CAP_SYS_ADMIN: as root it is checked, otherwise
 * its refusal is.
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { fsverityDigest, type VerityAlg } from '../src/image/fsverity.js';
import { nativeSysFrom, type NativeAddon } from '../src/sys/native.js';
import { spawnSys } from '../src/sys/spawn.js';
import { pseudoRandom, referenceDigest } from './helpers/noble-verity.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const B = 4096;
const ALGS: VerityAlg[] = ['sha256', 'sha512'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-verity-'));
let addon: Required<NativeAddon>;
/** copyImage's private tmpfs (fsopen needs CAP_SYS_ADMIN; make check runs as root). */
const PRIVATE_COPIES = process.getuid?.() === 0;
/** Below this, copyImage's copy is a memfd (native/sys.c cfs_image_copy_file): no privilege needed. */
const MEMFD_BELOW = 2 * 1024 * 1024;
const copyNeedsPrivilege = (size: number): boolean => size >= MEMFD_BELOW && !PRIVATE_COPIES;
const TMPFS_MAGIC = 0x01021994;

test.before(() => {
  // A private build of the addon, as test/native-sys.test.ts does.
  const file = path.join(tmp, 'cfsroot_sys.node');
  execFileSync('cc', [
    '-O2', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=cfsroot_sys',
    `-I${path.resolve(process.execPath, '../../include/node')}`, '-o', file,
    ...fs.readdirSync(path.join(REPO, 'native')).filter((f) => f.endsWith('.c')).map((f) => path.join(REPO, 'native', f)),
    '-lpthread',
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


/** copyImage of a descriptor of `src` (read past its start first: the copy must not depend on the position). */
function copyOf(src: string, alg: VerityAlg, threads: number): { digest: Buffer; fd: number } {
  const fd = fs.openSync(src, 'r');
  try {
    fs.readSync(fd, Buffer.alloc(5), 0, 5, null);
    return addon.copyImage(fd, alg, threads);
  } finally {
    fs.closeSync(fd);
  }
}

/** Every native way of getting the digest of `data`, each checked against `want`; each copy must equal `data`. */
function checkAllWays(t: import('ava').ExecutionContext, data: Uint8Array, alg: VerityAlg, want: string, label: string): void {
  const src = writeTemp(data, 0o640);
  for (const threads of [0, 1, 2]) t.is(hex(addon.digestFile(src, alg, threads)), want, `${label}: digestFile, threads ${threads}`);
  for (const threads of [1, 2]) {
    if (copyNeedsPrivilege(data.length)) {
      t.throws(() => copyOf(src, alg, threads), { code: 'EPERM' }, `${label}: no private tmpfs without CAP_SYS_ADMIN`);
      continue;
    }
    const r = copyOf(src, alg, threads);
    t.is(hex(r.digest), want, `${label}: copyImage, threads ${threads}`);
    const fdPath = `/proc/self/fd/${r.fd}`;
    t.true(Buffer.from(data).equals(fs.readFileSync(fdPath)), `${label}: the copy holds the source bytes`);
    t.is(fs.statfsSync(fdPath).type, TMPFS_MAGIC, `${label}: the copy is on a tmpfs (shmem)`);
    t.is(fs.readlinkSync(fdPath).startsWith('/memfd:cfsroot-image'), data.length < MEMFD_BELOW, `${label}: a memfd exactly below 2 MiB`);
    t.not(fs.fstatSync(r.fd).dev, fs.statSync(tmp).dev, `${label}: ... of its own`);
    t.is(fs.fstatSync(r.fd).nlink, 0, `${label}: ... with no name`);
    fs.closeSync(r.fd);
  }
  fs.rmSync(src);
}

test('the hashing exports exist (Node exports OpenSSL SHA256/SHA512)', (t) => {
  for (const f of ['copyImage', 'digestFile'] as const) t.is(typeof addon[f], 'function', f);
  // This Node exports the low-level functions: the tests below exercise the fast path.
  t.is(addon.hashFunctions, 'SHA256_Init/Update/Final');
});

test('warmCrypto starts its thread, and node:crypto verifies as before while and after it runs', async (t) => {
  const { generateKeyPairSync, sign, verify, createHash } = await import('node:crypto');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const msg = Buffer.from('a commit');
  const sig = sign(null, msg, privateKey);
  const bad = Buffer.from(sig);
  bad[0]! ^= 1;
  for (let i = 0; i < 3; i++) {
    t.true(addon.warmCrypto(), 'the thread started (the executable exports the EVP functions)');
    // At once, while the thread may still be filling the cache, and again after it.
    t.true(verify(null, msg, publicKey, sig));
    t.false(verify(null, msg, publicKey, bad));
    t.is(createHash('sha256').update('abc').digest('hex'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    await new Promise((r) => setTimeout(r, 20));
  }
  t.true(verify(null, msg, publicKey, sig));
  t.false(verify(null, msg, publicKey, bad));
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
// group, a 1 MiB segment, a Merkle level (128 sha256 / 64 sha512 hashes per
// block), and 16 MiB (many segments).
const EDGES = [1, B - 1, B, B + 1, 64 * B - 1, 64 * B, 64 * B + 1, 128 * B, 128 * B + 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
  (16 << 20) - 1, (16 << 20) + 1];

for (const size of EDGES) {
  test(`agrees with src/image/fsverity.ts and @noble/hashes at ${size} bytes, sha256 + sha512`, (t) => {
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
    if (!copyNeedsPrivilege((3 << 20) + 5)) {
      const r = copyOf(file, alg, 0);
      t.is(hex(r.digest), tool);
      fs.closeSync(r.fd);
    }
  }
});

test('random sizes and contents (fast-check), sha256', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 600 * 1024 }), fc.integer(), (size, seed) => {
      const data = pseudoRandom(size, seed);
      const want = hex(referenceDigest(data, 'sha256'));
      const src = writeTemp(data);
      let ok = hex(addon.digestFile(src, 'sha256', 0)) === want;
      if (!copyNeedsPrivilege(size)) {
        const r = copyOf(src, 'sha256', 0);
        ok &&= hex(r.digest) === want && Buffer.from(data).equals(fs.readFileSync(`/proc/self/fd/${r.fd}`));
        fs.closeSync(r.fd);
      }
      fs.rmSync(src);
      return ok;
    }),
    { numRuns: 40 },
  );
  t.pass();
});

test('the private copy holds its size in 4 KiB pages, no more: no 2 MiB page for a small image or a tail (huge=within_size)', (t) => {
  for (const size of [28 * 1024, 2 * 1024 * 1024 + 1, 5 * 1024 * 1024 + 123]) {
    const data = pseudoRandom(size, size);
    const src = writeTemp(data);
    if (copyNeedsPrivilege(size)) {
      t.throws(() => copyOf(src, 'sha256', 1), { code: 'EPERM' }, `${size}: no private tmpfs without CAP_SYS_ADMIN`);
      fs.rmSync(src);
      continue;
    }
    const r = copyOf(src, 'sha256', 1);
    try {
      const st = fs.fstatSync(r.fd);
      t.is(st.size, size, `${size}: the copy's size`);
      t.true(st.blocks * 512 <= Math.ceil(size / B) * B, `${size}: ${st.blocks * 512} bytes held, at most ${Math.ceil(size / B) * B}`);
      t.is(hex(r.digest), hex(fsverityDigest(data, 'sha256')), `${size}: digest`);
    } finally {
      fs.closeSync(r.fd);
      fs.rmSync(src);
    }
  }
});

test('a copy under 2 MiB is a sealed memfd: no write, truncation or growth through its own descriptor; from 2 MiB a tmpfs file', (t) => {
  for (const size of [28 * 1024, MEMFD_BELOW - 1, MEMFD_BELOW]) {
    const data = pseudoRandom(size, size + 1);
    const src = writeTemp(data);
    if (copyNeedsPrivilege(size)) {
      fs.rmSync(src);
      continue;
    }
    const r = copyOf(src, 'sha256', 1);
    try {
      const refused = (f: () => unknown): string | undefined => {
        try {
          f();
        } catch (e) {
          return (e as NodeJS.ErrnoException).code;
        }
        return undefined;
      };
      const write = refused(() => fs.writeSync(r.fd, Buffer.from('x'), 0, 1, 0));
      const shrink = refused(() => fs.ftruncateSync(r.fd, 0));
      const grow = refused(() => fs.ftruncateSync(r.fd, size + 4096));
      if (size < MEMFD_BELOW) {
        t.deepEqual([write, shrink, grow], ['EPERM', 'EPERM', 'EPERM'], `${size}: sealed`);
      } else {
        // A tmpfs file cannot be sealed; nothing but this process ever holds its descriptor.
        t.deepEqual([write, shrink, grow], [undefined, undefined, undefined], `${size}: not a memfd`);
        continue;
      }
      t.is(hex(r.digest), hex(fsverityDigest(data, 'sha256')), `${size}: digest`);
      t.true(Buffer.from(data).equals(fs.readFileSync(`/proc/self/fd/${r.fd}`)), `${size}: the copy holds the source bytes`);
    } finally {
      fs.closeSync(r.fd);
      fs.rmSync(src);
    }
  }
});

test('errors carry the errno code and name the file; no symlink is followed, no FIFO blocks', (t) => {
  const src = writeTemp(pseudoRandom(10000, 3));
  const fifo = path.join(tmp, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const link = path.join(tmp, 'link');
  fs.symlinkSync(src, link);
  const failure = (f: () => unknown): { code?: string; message: string } | null => {
    try {
      f();
    } catch (e) {
      return { code: (e as NodeJS.ErrnoException).code, message: (e as Error).message };
    }
    return null;
  };
  const missing = failure(() => addon.digestFile(path.join(tmp, 'no-such-image'), 'sha256', 0));
  t.is(missing?.code, 'ENOENT');
  t.regex(missing!.message, /no-such-image/);
  t.is(failure(() => addon.digestFile(tmp, 'sha256', 0))?.code, 'EINVAL', 'a directory');
  t.regex(failure(() => addon.digestFile(tmp, 'sha256', 0))!.message, /not a regular file/);
  t.is(failure(() => addon.digestFile(fifo, 'sha256', 0))?.code, 'EINVAL', 'a FIFO is refused without hanging');
  t.is(failure(() => addon.digestFile(link, 'sha256', 0))?.code, 'ELOOP', 'a symlink is not followed');
  // copyImage takes a descriptor: it must be a regular file's.
  const dirFd = fs.openSync(tmp, 'r');
  t.is(failure(() => addon.copyImage(dirFd, 'sha256', 0))?.code, 'EINVAL');
  fs.closeSync(dirFd);
  const fifoFd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  t.is(failure(() => addon.copyImage(fifoFd, 'sha256', 0))?.code, 'EINVAL');
  fs.closeSync(fifoFd);
  t.is(failure(() => addon.copyImage(99999, 'sha256', 0))?.code, 'EBADF');
});

test('misuse: unknown algorithm, not a descriptor', (t) => {
  const src = writeTemp(pseudoRandom(5000, 9));
  t.throws(() => addon.digestFile(src, 'md5' as VerityAlg, 0), { instanceOf: TypeError, message: /'sha256' or 'sha512'/ });
  const fd = fs.openSync(src, 'r');
  t.throws(() => addon.copyImage(fd, 'sha1' as VerityAlg, 0), { instanceOf: TypeError });
  fs.closeSync(fd);
  t.throws(() => addon.copyImage(-1, 'sha256', 0), { instanceOf: TypeError, message: /file descriptor/ });
});

test('Sys glue: copyImage to "private" is the addon\'s, to a path the JavaScript named copy; measure is the addon\'s', async (t) => {
  const sys = nativeSysFrom(addon, spawnSys());
  t.true(sys.privateCopies);
  t.is(typeof sys.measureFile, 'function');
  t.is(typeof sys.measurePath, 'function');
  const a = pseudoRandom(300000, 1);
  const src = writeTemp(a);
  const fd = fs.openSync(src, 'r');
  try {
    if (!copyNeedsPrivilege(a.length)) {
      const p = await sys.copyImage(fd, 'private', 'sha256');
      t.is(hex(p.digest), hex(fsverityDigest(a, 'sha256')));
      t.is(p.path, undefined);
      t.true(Buffer.from(a).equals(fs.readFileSync(`/proc/self/fd/${p.fd}`)));
      sys.closeFile(p.fd!);
    }
    const dest = fresh();
    const n = await sys.copyImage(fd, dest, 'sha512');
    t.deepEqual(n, { digest: Buffer.from(fsverityDigest(a, 'sha512')), path: dest });
    t.true(Buffer.from(a).equals(fs.readFileSync(dest)));
  } finally {
    fs.closeSync(fd);
  }
  // A fake addon without the verity exports: no private copies offered, the named copy still works.
  const bare = nativeSysFrom({ mount() {}, umount() {}, mountLoop: () => '/dev/loop0', setReadonly() {} }, spawnSys());
  t.falsy(bare.privateCopies);
  t.is(bare.measureFile, undefined);
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
