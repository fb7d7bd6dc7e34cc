/**
 * The pure core of `cfsroot preflight`: BLS entries and the boot loaders'
 * order, and the initramfs reader over archives made by the standard tools
 * (cpio -H newc, gzip, zstd, xz, lz4 -l), concatenated as dracut writes them.
 */
import test, { type ExecutionContext } from 'ava';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { compareVersions, defaultBlsEntry, parseBlsEntry } from '../src/preflight/bls.js';
import { lookup, readInitramfs, type CpioEntry } from '../src/preflight/cpio.js';
import { detectCompression } from '../src/preflight/decompress.js';
import { CfsError } from '../src/errors.js';
import { cpioOf, cpioOfDir, piecesOf } from './helpers/cpio.js';

test('BLS entry: fields, several initrd and options lines', (t) => {
  const e = parseBlsEntry(
    '# comment\ntitle Debian (ostree:0)\nversion 2\nlinux /ostree/debian-b/vmlinuz-6.12.1\ninitrd /ostree/debian-b/early.img /ostree/debian-b/initramfs-6.12.1.img\noptions root=UUID=x rw\noptions ostree=/ostree/boot.1/debian/b/0\n',
    'ostree-2-debian.conf',
  );
  t.is(e.version, '2');
  t.is(e.linux, '/ostree/debian-b/vmlinuz-6.12.1');
  t.deepEqual(e.initrd, ['/ostree/debian-b/early.img', '/ostree/debian-b/initramfs-6.12.1.img']);
  t.is(e.options, 'root=UUID=x rw ostree=/ostree/boot.1/debian/b/0');
});

test('BLS order: highest version first, sort-key before none, ties by file name', (t) => {
  const mk = (file: string, extra: string) => parseBlsEntry(`title x\n${extra}\n`, file);
  t.is(defaultBlsEntry([mk('ostree-1-d.conf', 'version 1'), mk('ostree-2-d.conf', 'version 2')])!.file, 'ostree-2-d.conf');
  t.is(defaultBlsEntry([mk('a.conf', 'version 9'), mk('b.conf', 'version 10')])!.file, 'b.conf');
  t.is(defaultBlsEntry([mk('a.conf', 'version 99'), mk('b.conf', 'version 1\nsort-key z')])!.file, 'b.conf');
  t.is(defaultBlsEntry([mk('a.conf', 'version 3\nsort-key b'), mk('b.conf', 'version 1\nsort-key a')])!.file, 'b.conf');
  t.is(defaultBlsEntry([mk('a-1.conf', 'version 1'), mk('a-2.conf', 'version 1')])!.file, 'a-2.conf');
  t.is(defaultBlsEntry([]), null);
});

test('UAPI version comparison', (t) => {
  const lt = (a: string, b: string) => {
    t.true(compareVersions(a, b) < 0, `${a} < ${b}`);
    t.true(compareVersions(b, a) > 0, `${b} > ${a}`);
  };
  lt('1', '2');
  lt('9', '10');
  lt('1.0~rc1', '1.0');
  lt('6.5', '6.12.117+deb12-amd64');
  lt('a', '1');
  lt('1.0', '1.0.1');
  lt('001', '2');
  t.is(compareVersions('1.01', '1.1'), 0);
});

/** `b` with the byte at `pos` set to `value`. */
function edit(b: Buffer, pos: number, value: number): Buffer {
  const c = Buffer.from(b);
  c[pos] = value;
  return c;
}

/** Each image is refused with one EIMAGE line matching its pattern, read whole and byte by byte. */
async function refusesEach(t: ExecutionContext, cases: Array<[string, Buffer, RegExp]>): Promise<void> {
  for (const [what, bad, re] of cases) {
    for (const piece of [1, bad.length]) {
      const e = await t.throwsAsync(readInitramfs(piecesOf(bad, piece), 'b.img'), { instanceOf: CfsError }, what);
      t.is(e?.code, 'EIMAGE', what);
      t.regex(e!.message, re, what);
      t.false(e!.message.includes('\n'), what);
    }
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-preflight-core-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

const compressors: Record<string, string[]> = {
  gzip: ['gzip', '-c'],
  zstd: ['zstd', '-q', '-c'],
  xz: ['xz', '-c', '--check=crc32'],
  lz4: ['lz4', '-l', '-q', '-c'],
};

for (const [name, argv] of Object.entries(compressors)) {
  test(`initramfs: early cpio + ${name} main archive (${argv.join(' ')})`, async (t) => {
    const early = cpioOf(path.join(tmp, `${name}-early`), { 'kernel/x86/microcode/GenuineIntel.bin': 'ucode' });
    // Over 8 MiB of compressible text: several lz4 legacy blocks.
    const big = 'cfsroot '.repeat(1_300_000);
    const main = cpioOf(path.join(tmp, `${name}-main`), {
      'usr/bin/cfsroot': 'binary',
      'etc/ostree/prepare-root.conf': '[composefs]\nenabled = signed\n',
      'usr/lib/big': big,
      'lib': '->usr/lib',
    });
    const compressed = execFileSync(argv[0]!, argv.slice(1), { input: main, maxBuffer: 1 << 28 });
    t.is(detectCompression(compressed), name as never);
    const img = Buffer.concat([early, Buffer.alloc(512 - (early.length % 512)), compressed]);
    const r = await readInitramfs(img, 'test.img');
    t.deepEqual(r.segments.map((s) => s.compression), ['cpio', name]);
    t.is(Buffer.from(lookup(r.entries, 'kernel/x86/microcode/GenuineIntel.bin')!.data!).toString(), 'ucode');
    t.is(Buffer.from(lookup(r.entries, '/etc/ostree/prepare-root.conf')!.data!).toString(), '[composefs]\nenabled = signed\n');
    t.is(lookup(r.entries, 'lib/big')!.data!.length, big.length, 'through the lib -> usr/lib symlink');
    t.is(Buffer.from(lookup(r.entries, 'lib/big')!.data!).toString(), big);
    t.is(lookup(r.entries, 'usr/bin/missing'), null);
  });
}

test('initramfs: a later archive replaces an earlier file of the same name', async (t) => {
  const a = cpioOf(path.join(tmp, 'rep-a'), { 'etc/x': 'first' });
  const b = cpioOf(path.join(tmp, 'rep-b'), { 'etc/x': 'second' });
  const r = await readInitramfs(Buffer.concat([a, b]), 't');
  t.is(Buffer.from(lookup(r.entries, 'etc/x')!.data!).toString(), 'second');
});

test('initramfs: hostile input is one-line typed errors', async (t) => {
  const good = cpioOf(path.join(tmp, 'hostile'), { 'etc/x': 'hello' });
  const cases: Array<[string, Buffer, CfsError['code']]> = [
    ['truncated', good.subarray(0, 150), 'EIMAGE'],
    ['no trailer', good.subarray(0, good.indexOf('TRAILER!!!') - 110), 'EIMAGE'],
    ['garbage', Buffer.from('hello world, not an archive'), 'EIMAGE'],
    ['bzip2', Buffer.from('BZh91AY&SY'), 'EIMAGE'],
    ['huge name', (() => { const b = Buffer.from(good); b.write('000fffff', 6 + 11 * 8, 'latin1'); return b; })(), 'ELIMIT'],
    ['huge size', (() => { const b = Buffer.from(good); b.write('7fffffff', 6 + 6 * 8, 'latin1'); return b; })(), 'EIMAGE'],
    ['bad hex', (() => { const b = Buffer.from(good); b.write('zz', 6, 'latin1'); return b; })(), 'EIMAGE'],
    ['corrupt gzip', Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(40, 0x55)]), 'EIMAGE'],
    ['corrupt lz4', Buffer.from([0x02, 0x21, 0x4c, 0x18, 5, 0, 0, 0, 0x1f, 0x41, 0xff, 0xff, 0xff]), 'EIMAGE'],
  ];
  for (const [what, buf, code] of cases) {
    const e = await t.throwsAsync(readInitramfs(buf, 'bad.img'), { instanceOf: CfsError }, what);
    t.is(e?.code, code, `${what}: ${e?.message}`);
    t.false(e?.message.includes('\n'), what);
  }
  // A decompression bomb stops at the limit.
  const bomb = execFileSync('zstd', ['-q', '-c'], { input: Buffer.alloc(64 << 20) });
  const e = await t.throwsAsync(readInitramfs(bomb, 'bomb.img', { maxBytes: 1 << 20 }), { instanceOf: CfsError });
  t.is(e?.code, 'ELIMIT');
  const lentries = await t.throwsAsync(readInitramfs(cpioOf(path.join(tmp, 'many'), { a: '1', b: '2', c: '3' }), 'm', { maxEntries: 2 }));
  t.is((lentries as CfsError).code, 'ELIMIT');
});

test('the version of a cfsroot binary is read from its what-string, not by running it', async (t) => {
  const { embeddedVersion } = await import('../src/preflight/checks.js');
  t.is(embeddedVersion(Buffer.from('\0\0ELF...var a="@(#)cfsroot 1.2.3-rc1";...')), '1.2.3-rc1');
  t.is(embeddedVersion(Buffer.from('x @(#)cfsroot "+y; @(#)cfsroot 0.1.0;')), '0.1.0', 'skips a marker not followed by a version');
  t.is(embeddedVersion(Buffer.from('cfsroot 0.1.0')), null);
  const { VERSION, VERSION_STAMP } = await import('../src/version.js');
  t.is(embeddedVersion(Buffer.from(VERSION_STAMP)), VERSION);
});

test('the addon measures fs-verity with FS_IOC_MEASURE_VERITY (this host: not supported, or not enabled)', (t) => {
  const addonFile = path.resolve('build/native/cfsroot_sys.node');
  if (!fs.existsSync(addonFile)) execFileSync('make', ['build/native/cfsroot_sys.node'], { stdio: 'ignore' });
  const mod = { exports: {} as { measureVerity?: (p: string) => string | null } };
  process.dlopen(mod, addonFile);
  const f = path.join(tmp, 'plain-file');
  fs.writeFileSync(f, 'no verity here');
  const r = mod.exports.measureVerity!(f);
  t.true(r === 'unsupported' || r === null, String(r));
  t.throws(() => mod.exports.measureVerity!(path.join(tmp, 'missing')), { message: /ENOENT|No such file/ });
});

test('what starts cfsroot at boot: systemd unit and its wants link, dracut hook, busybox /init', async (t) => {
  const { checkRunsAtBoot } = await import('../src/preflight/checks.js');
  const entry = (name: string, mode: number, text: string): readonly [string, CpioEntry] =>
    [name, { name, mode, size: Buffer.byteLength(text), data: Buffer.from(text), scanned: null }] as const;
  const reg = (name: string, text: string) => entry(name, 0o100644, text);
  const lnk = (name: string, target: string) => entry(name, 0o120777, target);
  const unit = '[Service]\nExecStart=/usr/bin/cfsroot /sysroot\n';
  const verdict = (entries: ReadonlyArray<readonly [string, CpioEntry]>) => {
    const out: Array<{ ok: boolean; message: string }> = [];
    checkRunsAtBoot(new Map(entries), (_c, message) => out.push({ ok: true, message }), (_c, message) => out.push({ ok: false, message }));
    t.is(out.length, 1);
    return out[0]!;
  };
  const systemd = reg('usr/lib/systemd/systemd', 'ELF');
  t.true(verdict([systemd, reg('usr/lib/systemd/system/cfsroot.service', unit), lnk('etc/systemd/system/initrd-root-fs.target.wants/cfsroot.service', '/usr/lib/systemd/system/cfsroot.service')]).ok);
  t.regex(verdict([systemd, reg('usr/lib/systemd/system/cfsroot.service', unit)]).message, /not wanted by initrd-root-fs\.target/);
  t.regex(verdict([systemd]).message, /without cfsroot\.service/);
  t.regex(verdict([systemd, reg('usr/lib/systemd/system/cfsroot.service', '[Service]\nExecStart=/bin/true\n'), lnk('etc/systemd/system/initrd-root-fs.target.wants/cfsroot.service', 'x')]).message, /does not run cfsroot/);
  t.regex(verdict([reg('var/lib/dracut/hooks/pre-pivot/50-cfsroot-hook.sh', 'cfsroot /sysroot')]).message, /dracut pre-pivot hook/);
  t.regex(verdict([reg('init', '#!/bin/sh\n/usr/bin/cfsroot /sysroot || fail\n')]).message, /busybox/);
  t.false(verdict([reg('init', '#!/bin/sh\nexec switch_root /sysroot /sbin/init\n')]).ok);
});

test('EROFS redirect walker: hostile images are one-line EIMAGE errors', async (t) => {
  const { imageRedirects } = await import('../src/preflight/erofs-redirects.js');
  const notErofs = Buffer.alloc(4096);
  t.is(t.throws(() => imageRedirects(notErofs, 'x.cfs'), { instanceOf: CfsError })?.code, 'EIMAGE');
  // A superblock whose root inode lies past the end.
  const sb = Buffer.alloc(2048);
  sb.writeUInt32LE(0xe0f5e1e2, 1024);
  sb.writeUInt8(12, 1024 + 12);
  sb.writeUInt16LE(0xffff, 1024 + 14);
  sb.writeUInt32LE(1000, 1024 + 40);
  const e = t.throws(() => imageRedirects(sb, 'y.cfs'), { instanceOf: CfsError });
  t.is(e?.code, 'EIMAGE');
  t.false(e?.message.includes('\n'));
});

/** zstd of `data` by node:zlib, with or without the frame's content checksum. */
function zstdOf(data: Uint8Array, checksum: boolean): Buffer {
  return zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0 } });
}

test('initramfs: a zstd frame that ends in zero bytes is read whole, whatever the padding after it', async (t) => {
  // A frame of raw blocks ends where the archive does: in cpio's zero
  // padding. (Stripping zeros before the decoder cut such frames short: a
  // CI run found one whose checksum ended in 0.)
  const archive = cpioOf(path.join(tmp, 'zstd-zero-end'), { 'etc/random': crypto.randomBytes(105_000).toString('base64') });
  const rawEnd = rawZstdFrame(archive);
  t.deepEqual(zlib.zstdDecompressSync(rawEnd), archive, 'node:zlib reads the hand-made frame');
  // A checksum whose last byte is 0: one archive in 256 or so, found by changing a file's contents in place.
  const counted = cpioOf(path.join(tmp, 'zstd-sum'), { 'etc/n': 'try 00000\n' });
  const digits = counted.indexOf('try 00000') + 4;
  let checksumEnd: Buffer | null = null;
  for (let i = 0; i < 100_000 && !checksumEnd; i++) {
    counted.write(String(i).padStart(5, '0'), digits, 'latin1');
    const c = zstdOf(counted, true);
    if (c[c.length - 1] === 0) checksumEnd = c;
  }
  t.is(rawEnd[rawEnd.length - 1], 0, 'the raw block ends in a zero byte');
  t.truthy(checksumEnd, 'a frame whose checksum ends in 0 was found');
  t.true(rawEnd.length > (128 << 10), 'two raw blocks');
  // Byte-sized pieces only for the small frame: the big one would take minutes so.
  const cases = [['raw last block', rawEnd, 'etc/random', [4093, 65536]], ['checksum', checksumEnd!, 'etc/n', [1, 7]]] as const;
  for (const [what, frame, file, pieces] of cases) {
    for (const pad of [0, 3, 512]) {
      const img = Buffer.concat([frame, Buffer.alloc(pad)]);
      for (const piece of [...pieces, img.length]) {
        const r = await readInitramfs(piecesOf(img, piece), 'z.img');
        t.truthy(lookup(r.entries, file)?.data, `${what}, ${pad} bytes of padding, pieces of ${piece}`);
        t.deepEqual(r.segments.map((s) => s.compression), ['zstd']);
      }
    }
  }
});

test('initramfs: after a zstd segment the reader goes on, as the kernel does; what is neither padding nor a segment is an error naming its byte', async (t) => {
  const first = zstdOf(cpioOf(path.join(tmp, 'zstd-then-a'), { 'etc/a': 'first' }), true);
  const second = cpioOf(path.join(tmp, 'zstd-then-b'), { 'etc/b': 'second', 'etc/a': 'replaced' });
  const third = zstdOf(cpioOf(path.join(tmp, 'zstd-then-c'), { 'etc/c': 'third' }), false);
  const img = Buffer.concat([first, Buffer.alloc(4 - (first.length % 4)), second, third, Buffer.alloc(512)]);
  for (const piece of [1, 13, img.length]) {
    const r = await readInitramfs(piecesOf(img, piece), 'z.img');
    t.deepEqual(r.segments.map((s) => [s.compression, s.offset]), [['zstd', 0], ['cpio', first.length + 4 - (first.length % 4)], ['zstd', img.length - 512 - third.length]]);
    t.is(Buffer.from(lookup(r.entries, 'etc/a')!.data!).toString(), 'replaced');
    t.is(Buffer.from(lookup(r.entries, 'etc/c')!.data!).toString(), 'third');
  }
  // Frames back to back are one segment.
  const twice = await readInitramfs(Buffer.concat([zstdOf(Buffer.from(second.subarray(0, 512)), true), zstdOf(second.subarray(512), true)]), 'z2.img');
  t.deepEqual(twice.segments.map((s) => s.compression), ['zstd']);
  t.is(Buffer.from(lookup(twice.entries, 'etc/b')!.data!).toString(), 'second');
  const junk = await t.throwsAsync(readInitramfs(Buffer.concat([first, Buffer.from('junk after the frame')]), 'j.img'), { instanceOf: CfsError });
  t.is(junk?.message, `j.img: byte ${first.length}: neither a newc cpio archive nor compressed data the kernel reads`);
  // A frame cut short, and a reserved block type, are one line each.
  for (const [bad, re] of [[first.subarray(0, first.length - 2), /zstd data does not decompress/], [withReservedBlock(third), /block type 3 is reserved/]] as const) {
    const e = await t.throwsAsync(readInitramfs(bad, 'b.img'), { instanceOf: CfsError });
    t.is(e?.code, 'EIMAGE');
    t.regex(e!.message, re);
    t.false(e!.message.includes('\n'));
  }
});

test('initramfs: a gzip member ends at its trailer, and the reader goes on after it, as the kernel does', async (t) => {
  const firstArchive = cpioOf(path.join(tmp, 'gzip-then-a'), { 'etc/a': 'first' });
  // gzip of a named file writes the name into the header (FNAME), which the kernel skips.
  fs.writeFileSync(path.join(tmp, 'gzip-then-a.cpio'), firstArchive);
  const first = execFileSync('gzip', ['-c', path.join(tmp, 'gzip-then-a.cpio')]);
  t.true((first[3]! & 0x08) !== 0, 'the first member carries a file name');
  const second = cpioOf(path.join(tmp, 'gzip-then-b'), { 'etc/b': 'second', 'etc/a': 'replaced' });
  const third = zlib.gzipSync(cpioOf(path.join(tmp, 'gzip-then-c'), { 'etc/c': 'third' }));
  const fourth = zstdOf(cpioOf(path.join(tmp, 'gzip-then-d'), { 'etc/d': 'fourth' }), true);
  const pad = Buffer.alloc(4 - (first.length % 4));
  const img = Buffer.concat([first, pad, second, third, fourth, Buffer.alloc(512)]);
  const at = (...parts: Buffer[]) => parts.reduce((n, b) => n + b.length, 0);
  for (const piece of [1, 13, 4096, img.length]) {
    const r = await readInitramfs(piecesOf(img, piece), 'g.img');
    t.deepEqual(
      r.segments.map((s) => [s.compression, s.offset]),
      [['gzip', 0], ['cpio', at(first, pad)], ['gzip', at(first, pad, second)], ['zstd', at(first, pad, second, third)]],
      `pieces of ${piece}`,
    );
    for (const [file, text] of [['etc/a', 'replaced'], ['etc/b', 'second'], ['etc/c', 'third'], ['etc/d', 'fourth']] as const) {
      t.is(Buffer.from(lookup(r.entries, file)!.data!).toString(), text);
    }
  }
  // Members back to back are a segment each, as the kernel reads them.
  const twice = await readInitramfs(Buffer.concat([zlib.gzipSync(second.subarray(0, 512)), zlib.gzipSync(second.subarray(512))]), 'g2.img');
  t.deepEqual(twice.segments.map((s) => s.compression), ['gzip', 'gzip']);
  t.is(Buffer.from(lookup(twice.entries, 'etc/b')!.data!).toString(), 'second');
  const junk = await t.throwsAsync(readInitramfs(Buffer.concat([third, Buffer.from('junk after the member')]), 'j.img'), { instanceOf: CfsError });
  t.is(junk?.message, `j.img: byte ${third.length}: neither a newc cpio archive nor compressed data the kernel reads`);

  const cases: Array<[string, Buffer, RegExp]> = [
    ['cut inside the deflate data', third.subarray(0, third.length - 20), /gzip data does not decompress/],
    ['no trailer', third.subarray(0, third.length - 8), /gzip data ends before its 8-byte trailer/],
    ['trailer cut short', third.subarray(0, third.length - 3), /gzip trailer at byte \d+ is cut short \(5 of 8 bytes\)/],
    ['CRC-32 changed', edit(third, third.length - 8, third[third.length - 8]! ^ 1), /gzip trailer at byte \d+ does not match the data .*: the data is corrupt$/],
    ['length changed', edit(third, third.length - 1, third[third.length - 1]! ^ 1), /does not match the data/],
    ['an extra field (FEXTRA)', edit(third, 3, 0x04), /flags 0x04 announce an extra field, comment or header CRC, which the kernel does not skip/],
    ['a header CRC (FHCRC)', edit(third, 3, 0x02), /flags 0x02/],
    ['the old magic 1f 9e', edit(third, 1, 0x9e), /gzip header 1f 9e 08: the kernel unpacks only 1f 8b 08/],
    ['not deflate', edit(third, 2, 7), /gzip header 1f 8b 07/],
    ['a name to the end', Buffer.concat([edit(third.subarray(0, 10), 3, 0x08), Buffer.from('name without end')]), /file name runs to the end/],
    ['header cut short', third.subarray(0, 6), /gzip header is cut short \(6 of 10 bytes\)/],
  ];
  await refusesEach(t, cases);
});

test('initramfs: an lz4 segment ends at the padding after it, and the reader goes on, as the kernel does', async (t) => {
  const lz4 = (b: Buffer) => execFileSync('lz4', ['-l', '-q', '-c'], { input: b });
  const first = lz4(cpioOf(path.join(tmp, 'lz4-then-a'), { 'etc/a': 'first', 'etc/big': 'x'.repeat(9 << 20) }));
  const second = cpioOf(path.join(tmp, 'lz4-then-b'), { 'etc/b': 'second', 'etc/a': 'replaced' });
  const third = lz4(cpioOf(path.join(tmp, 'lz4-then-c'), { 'etc/c': 'third' }));
  const pad = (b: Buffer) => Buffer.alloc(512 - (b.length % 512));
  const img = Buffer.concat([first, pad(first), second, third, pad(third), Buffer.alloc(512)]);
  for (const piece of [3, 4096, img.length]) {
    const r = await readInitramfs(piecesOf(img, piece), 'l.img');
    t.deepEqual(
      r.segments.map((s) => [s.compression, s.offset]),
      [['lz4', 0], ['cpio', first.length + pad(first).length], ['lz4', first.length + pad(first).length + second.length]],
      `pieces of ${piece}`,
    );
    t.is(Buffer.from(lookup(r.entries, 'etc/a')!.data!).toString(), 'replaced');
    t.is(Buffer.from(lookup(r.entries, 'etc/c')!.data!).toString(), 'third');
    t.is(lookup(r.entries, 'etc/big')!.size, 9 << 20, 'the first segment has two blocks');
  }
  // lz4 frames back to back, without padding, are one segment (the kernel skips a magic between blocks).
  const twice = await readInitramfs(Buffer.concat([lz4(Buffer.from(second.subarray(0, 512))), lz4(second.subarray(512))]), 'l2.img');
  t.deepEqual(twice.segments.map((s) => s.compression), ['lz4']);
  t.is(Buffer.from(lookup(twice.entries, 'etc/b')!.data!).toString(), 'second');
  // A cpio archive right after the blocks, with no padding, is read as a block size, as the kernel reads it.
  const e = await t.throwsAsync(readInitramfs(Buffer.concat([third, second]), 'b.img'), { instanceOf: CfsError });
  t.regex(e!.message, new RegExp(`^b\\.img: lz4 data at byte 0: lz4 block at byte ${third.length} claims \\d+ bytes, more than a legacy block can hold$`));
});

test('initramfs: an xz stream ends at its footer, and the reader goes on after it, as the kernel does', async (t) => {
  const xz = (b: Buffer, ...opts: string[]) => execFileSync('xz', ['-c', '--check=crc32', ...opts], { input: b, maxBuffer: 1 << 26 });
  // Random bytes: LZMA2 stores them as uncompressed chunks (control byte 1), which the walk steps over too.
  const noise = crypto.randomBytes(200 << 10).toString('latin1');
  const first = xz(cpioOf(path.join(tmp, 'xz-then-a'), { 'etc/a': 'first', 'etc/noise': noise, 'etc/text': 'cfsroot '.repeat(300_000) }));
  const second = cpioOf(path.join(tmp, 'xz-then-b'), { 'etc/b': 'second', 'etc/a': 'replaced' });
  // Two threads: the blocks carry their compressed size in their headers; one thread: they do not, and the LZMA2 chunks are walked.
  const third = xz(cpioOf(path.join(tmp, 'xz-then-c'), { 'etc/c': 'third', 'etc/big': 'x'.repeat(3 << 20) }), '-T2', '--block-size=1MiB');
  const fourth = xz(cpioOf(path.join(tmp, 'xz-then-d'), { 'etc/d': 'fourth' }));
  t.is(first[13]! & 0x40, 0, 'the first stream\'s block header gives no compressed size');
  t.not(third[13]! & 0x40, 0, 'the third stream\'s block headers give their compressed size');
  const raw = xz(crypto.randomBytes(4096));
  t.is(raw[12 + (raw[12]! + 1) * 4], 1, 'random data starts with an uncompressed LZMA2 chunk');
  const pad = (b: Buffer) => Buffer.alloc(512 - (b.length % 512));
  const img = Buffer.concat([first, pad(first), second, third, Buffer.alloc(4), fourth, Buffer.alloc(512)]);
  const at = (...parts: Buffer[]) => parts.reduce((n, b) => n + b.length, 0);
  for (const piece of [13, 4096, img.length]) {
    const r = await readInitramfs(piecesOf(img, piece), 'x.img');
    t.deepEqual(
      r.segments.map((s) => [s.compression, s.offset]),
      [['xz', 0], ['cpio', at(first, pad(first))], ['xz', at(first, pad(first), second)], ['xz', at(first, pad(first), second, third) + 4]],
      `pieces of ${piece}`,
    );
    for (const [file, text] of [['etc/a', 'replaced'], ['etc/b', 'second'], ['etc/c', 'third'], ['etc/d', 'fourth'], ['etc/noise', noise]] as const) {
      t.is(Buffer.from(lookup(r.entries, file)!.data!).toString(), text, `${file}, pieces of ${piece}`);
    }
    t.is(lookup(r.entries, 'etc/big')!.size, 3 << 20);
  }
  // Streams back to back are a segment each: the kernel's unxz decodes one stream at a time.
  const twice = await readInitramfs(Buffer.concat([xz(second.subarray(0, 512)), xz(second.subarray(512))]), 'x2.img');
  t.deepEqual(twice.segments.map((s) => s.compression), ['xz', 'xz']);
  t.is(Buffer.from(lookup(twice.entries, 'etc/b')!.data!).toString(), 'second');
  const junk = await t.throwsAsync(readInitramfs(Buffer.concat([fourth, Buffer.from('junk after the stream')]), 'j.img'), { instanceOf: CfsError });
  t.is(junk?.message, `j.img: byte ${fourth.length}: neither a newc cpio archive nor compressed data the kernel reads`);

  const small = xz(cpioOf(path.join(tmp, 'xz-small'), { 'etc/s': 'small' }));
  const blockHeader = (small[12]! + 1) * 4;
  const indexAt = small.length - 12 - (small.readUInt32LE(small.length - 8) + 1) * 4;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['CRC64 (xz\'s default)', execFileSync('xz', ['-c'], { input: second }), /^b\.img: xz data at byte 0: the xz stream uses check CRC64; the kernel's xz decoder reads only CRC32 or none: recompress with xz --check=crc32$/],
    ['SHA-256', execFileSync('xz', ['-c', '--check=sha256'], { input: second }), /uses check SHA-256/],
    ['cut short', small.subarray(0, small.length - 5), /xz data does not decompress: the data ends before the stream does$/],
    ['a BCJ filter (xz --x86)', xz(second, '--x86', '--lzma2'), /xz block at byte 12: the x86 BCJ filter before LZMA2 is not read by cfsroot preflight/],
    ['an invalid LZMA2 control byte', edit(small, 12 + blockHeader, 0x05), /xz block at byte 12: LZMA2 chunk at byte \d+: control byte 0x05 is invalid$/],
    ['a filter other than LZMA2 last', edit(small, 14, 0x03), /xz block at byte 12: its last filter is 0x3, not LZMA2 \(0x21\)/],
    ['reserved block flags', edit(small, 13, 0x04), /reserved bits of the block flags are set \(0x04\)/],
    ['an index that lists more blocks', edit(small, indexAt + 1, 0x07), new RegExp(`xz index at byte ${indexAt} lists 7 blocks, the stream has 1$`)],
  ];
  await refusesEach(t, cases);
});

/** A zstd frame holding `data` in raw blocks of at most 128 KiB, its size in the header, no checksum (RFC 8878 3.1.1). */
function rawZstdFrame(data: Uint8Array): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32LE(0xfd2fb528, 0);
  head[4] = 0xa0; // single segment; content size in 4 bytes
  head.writeUInt32LE(data.length, 5);
  const parts = [head];
  for (let at = 0; at < data.length; at += 128 << 10) {
    const block = data.subarray(at, at + (128 << 10));
    const word = (block.length << 3) | (at + block.length >= data.length ? 1 : 0);
    parts.push(Buffer.from([word & 0xff, (word >> 8) & 0xff, word >> 16]), Buffer.from(block));
  }
  return Buffer.concat(parts);
}

/** `frame` with its first block header's type set to 3 (reserved). */
function withReservedBlock(frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  const descriptor = b[4]!;
  const single = (descriptor & 0x20) !== 0;
  const flag = descriptor >> 6;
  const at = 5 + (single ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! + (flag === 0 && single ? 1 : [0, 2, 4, 8][flag]!);
  b[at] = b[at]! | 0x06;
  return b;
}

test('initramfs as a stream: any piece size reads the same entries; unkept files keep their size; a scanner sees every byte', async (t) => {
  const { versionScanner } = await import('../src/preflight/embedded-version.js');
  const binary = Buffer.concat([Buffer.alloc(300_000, 0x41), Buffer.from('@(#)cfsroot 9.8.7-x;'), Buffer.alloc(70_000, 0x42)]);
  const dir = path.join(tmp, 'stream');
  const main = cpioOf(dir, { 'usr/bin/cfsroot': 'placeholder', 'etc/ostree/prepare-root.conf': '[composefs]\nenabled = yes\n', 'bin': '->usr/bin' });
  fs.writeFileSync(path.join(dir, 'usr/bin/cfsroot'), binary);
  const archive = cpioOfDir(dir);
  for (const [name, argv] of Object.entries(compressors)) {
    // Zero padding after the compressed data, as dracut and the kernel write it.
    const img = Buffer.concat([execFileSync(argv[0]!, argv.slice(1), { input: archive, maxBuffer: 1 << 28 }), Buffer.alloc(512)]);
    for (const piece of [1, 7, 4096, img.length]) {
      const r = await readInitramfs(piecesOf(img, piece), 's.img', {
        keep: (_n, size) => size < 1000,
        scan: (n) => (n.endsWith('/cfsroot') ? versionScanner() : null),
      });
      const bin = lookup(r.entries, 'bin/cfsroot')!;
      const what = `${name}, pieces of ${piece}`;
      t.is(bin.data, null, `${what}: not kept`);
      t.is(bin.size, binary.length, what);
      t.is(bin.scanned, '9.8.7-x', what);
      t.is(Buffer.from(lookup(r.entries, 'etc/ostree/prepare-root.conf')!.data!).toString(), '[composefs]\nenabled = yes\n', what);
    }
  }
});

test('version scanner: a what-string cut at any point between two pieces is found', async (t) => {
  const { versionScanner, embeddedVersion } = await import('../src/preflight/embedded-version.js');
  const bin = Buffer.from('xx @(#)cfsroot "+y; @(#)cfsroot 12.3.4+git;zz');
  for (let cut = 0; cut <= bin.length; cut++) {
    for (const third of [cut, Math.min(bin.length, cut + 3)]) {
      const s = versionScanner();
      s.push(bin.subarray(0, cut));
      s.push(bin.subarray(cut, third));
      s.push(bin.subarray(third));
      t.is(s.result(), '12.3.4+git', `cut at ${cut} and ${third}`);
    }
  }
  t.is(embeddedVersion(Buffer.from('... @(#)cfsroot 1.0')), '1.0', 'a version at the very end');
  t.is(embeddedVersion(Buffer.from('@(#)cfsroot ')), null);
});

test('initramfs as a stream: a truncated compressed segment is one EIMAGE line', async (t) => {
  const main = cpioOf(path.join(tmp, 'trunc'), { 'etc/x': 'y'.repeat(200_000) });
  for (const [name, argv] of Object.entries(compressors)) {
    const img = execFileSync(argv[0]!, argv.slice(1), { input: main, maxBuffer: 1 << 28 });
    const e = await t.throwsAsync(readInitramfs(piecesOf(img.subarray(0, img.length >> 1), 1000), 'cut.img'), { instanceOf: CfsError }, name);
    t.is(e?.code, 'EIMAGE', `${name}: ${e?.message}`);
    t.false(e?.message.includes('\n'), name);
  }
});

test('EROFS: one file of an image by its path, its bytes inline or in blocks (mkfs.erofs), null for none or a directory', async (t) => {
  const { imageFile } = await import('../src/preflight/erofs-redirects.js');
  const tree = path.join(tmp, 'erofs-tree');
  const conf = '[etc]\nmount = "bind"\n';
  const big = 'x'.repeat(9000) + 'end';
  fs.mkdirSync(path.join(tree, 'usr/lib/composefs'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'usr/lib/composefs/setup-root-conf.toml'), conf);
  fs.writeFileSync(path.join(tree, 'usr/lib/big'), big);
  const img = path.join(tmp, 'files.erofs');
  execFileSync('mkfs.erofs', ['--quiet', img, tree], { stdio: 'ignore' });
  const buf = fs.readFileSync(img);
  const got = (p: string) => {
    const f = imageFile(buf, p, 'files.erofs');
    return f && 'data' in f ? Buffer.from(f.data).toString() : f;
  };
  t.is(got('/usr/lib/composefs/setup-root-conf.toml'), conf);
  t.is(got('/usr/lib/big'), big);
  t.is(got('/usr/lib/missing'), null);
  t.is(got('/usr/lib'), null);
  t.is(got('/usr/lib/big/below'), null);
});

test('the unit runs for the entry\'s kargs: ConditionKernelCommandLine= as systemd reads it', async (t) => {
  const { unitConditions } = await import('../src/preflight/checks.js');
  const unit = '[Unit]\nConditionKernelCommandLine=|ostree\nConditionKernelCommandLine=|composefs\nConditionPathExists=/etc/initrd-release\n';
  const digest = 'composefs.digest=v1-sha512-12:' + 'a'.repeat(128);
  t.true(unitConditions(unit, ['root=/dev/vda', 'ostree=/ostree/boot.1/x/y/0']).met);
  t.true(unitConditions(unit, ['composefs=' + 'a'.repeat(128)]).met);
  t.true(unitConditions(unit, ['composefs']).met, 'a bare word matches');
  const r = unitConditions(unit, ['root=/dev/vda', digest]);
  t.false(r.met, 'composefs does not match composefs.digest=');
  t.regex(r.why, /no karg matches its triggers ConditionKernelCommandLine=\|ostree, \|composefs/);
  t.true(unitConditions(unit + 'ConditionKernelCommandLine=|composefs.digest\n', [digest]).met);
  t.true(unitConditions('[Unit]\n', ['anything']).met, 'no condition: it runs');
  t.false(unitConditions('ConditionKernelCommandLine=!rd.cfsroot.skip\n', ['rd.cfsroot.skip']).met, 'negated');
  t.false(unitConditions('ConditionKernelCommandLine=mode=a\n', ['mode=b']).met, 'name=value is exact');
});
