/**
 * Composefs image header and EROFS magic (src/image/header.ts, SPEC §3): parsing of
 * hand-built headers, each refusal, and a real image made with mkfs.erofs
 * with a composefs header written into its first 32 bytes (which EROFS
 * leaves unused: its superblock starts at 1024), checked with fsck.erofs too.
 */

import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CfsError } from '../src/errors.js';
import { checkErofsSuperblock, parseComposefsHeader, readComposefsHeader } from '../src/image/header.js';

const MAGIC = 0xd078629a; // from the SPEC, not from the module under test
const EROFS_MAGIC = 0xe0f5e1e2;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-image-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

function header(fields: { magic?: number; version?: number; flags?: number; cfsVersion?: number } = {}): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(fields.magic ?? MAGIC, 0);
  b.writeUInt32LE(fields.version ?? 1, 4);
  b.writeUInt32LE(fields.flags ?? 0, 8);
  b.writeUInt32LE(fields.cfsVersion ?? 2, 12);
  b.fill(0xee, 16); // unused[4]: ignored by readers
  return b;
}

/** A real EROFS image of a small tree, made by mkfs.erofs. */
function makeErofs(name: string): string {
  const src = path.join(tmp, `${name}-src`);
  fs.mkdirSync(path.join(src, 'usr/bin'), { recursive: true });
  fs.writeFileSync(path.join(src, 'usr/bin/hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  fs.symlinkSync('usr/bin', path.join(src, 'bin'));
  const img = path.join(tmp, `${name}.cfs`);
  execFileSync('mkfs.erofs', ['--quiet', img, src], { stdio: 'pipe' });
  return img;
}

function writeAt(file: string, data: Uint8Array, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

test('parses version, flags and composefs_version; flag bit 0 is ACLs', (t) => {
  t.deepEqual(parseComposefsHeader(header({ flags: 0, cfsVersion: 2 }), 'img'), {
    version: 1,
    flags: 0,
    composefsVersion: 2,
    hasAcl: false,
  });
  t.deepEqual(parseComposefsHeader(header({ flags: 1, cfsVersion: 0 }), 'img'), {
    version: 1,
    flags: 1,
    composefsVersion: 0,
    hasAcl: true,
  });
  // Unknown flag bits are kept and do not imply ACLs.
  const h = parseComposefsHeader(header({ flags: 0x80000002 }), 'img');
  t.is(h.flags, 0x80000002);
  t.false(h.hasAcl);
});

test('reads the header at the start of the view, not of its ArrayBuffer', (t) => {
  const backing = Buffer.alloc(100, 0xab);
  header({ flags: 1, cfsVersion: 7 }).copy(backing, 40);
  const h = parseComposefsHeader(backing.subarray(40, 72), 'img');
  t.is(h.composefsVersion, 7);
  t.true(h.hasAcl);
});

test('refuses wrong magic, wrong version and a short header, naming the file', (t) => {
  const e1 = t.throws(() => parseComposefsHeader(header({ magic: 0x12345678 }), '/d/.ostree.cfs'), { instanceOf: CfsError });
  t.is(e1?.code, 'EIMAGE');
  t.regex(e1?.message ?? '', /^\/d\/\.ostree\.cfs: .*0x12345678.*expected 0xd078629a/);

  const e2 = t.throws(() => parseComposefsHeader(header({ version: 2 }), '/d/.ostree.cfs'), { instanceOf: CfsError });
  t.is(e2?.code, 'EIMAGE');
  t.regex(e2?.message ?? '', /^\/d\/\.ostree\.cfs: .*version 2, expected 1/);

  const e3 = t.throws(() => parseComposefsHeader(header().subarray(0, 31), '/d/.ostree.cfs'), { instanceOf: CfsError });
  t.is(e3?.code, 'EIMAGE');
  t.regex(e3?.message ?? '', /^\/d\/\.ostree\.cfs: 31 bytes is too short/);
});

test('checkErofsSuperblock: magic at 1024 present, missing, or file too short', (t) => {
  const ok = Buffer.alloc(2048);
  ok.writeUInt32LE(EROFS_MAGIC, 1024);
  t.notThrows(() => checkErofsSuperblock(ok, 'img'));
  const e1 = t.throws(() => checkErofsSuperblock(Buffer.alloc(2048), 'img'), { instanceOf: CfsError });
  t.is(e1?.code, 'EIMAGE');
  t.regex(e1?.message ?? '', /no EROFS superblock: magic 0x00000000 at offset 1024, expected 0xe0f5e1e2/);
  const e2 = t.throws(() => checkErofsSuperblock(ok.subarray(0, 1027), 'img'), { instanceOf: CfsError });
  t.regex(e2?.message ?? '', /1027 bytes is too short/);
});

test('a real mkfs.erofs image with a composefs header: read, and still a valid EROFS', (t) => {
  const img = makeErofs('real');
  // mkfs.erofs leaves the first 1024 bytes zero: no header yet.
  const e = t.throws(() => readComposefsHeader(img), { instanceOf: CfsError });
  t.regex(e?.message ?? '', /magic 0x00000000 at offset 0/);

  writeAt(img, header({ flags: 1, cfsVersion: 2 }), 0);
  t.deepEqual(readComposefsHeader(img), { version: 1, flags: 1, composefsVersion: 2, hasAcl: true });
  writeAt(img, header({ flags: 0, cfsVersion: 1 }), 0);
  t.deepEqual(readComposefsHeader(img), { version: 1, flags: 0, composefsVersion: 1, hasAcl: false });
  // The header does not disturb EROFS itself.
  t.notThrows(() => execFileSync('fsck.erofs', [img], { stdio: 'pipe' }));
});

test('a header without an EROFS filesystem behind it is refused', (t) => {
  const file = path.join(tmp, 'header-only.cfs');
  fs.writeFileSync(file, Buffer.concat([header(), Buffer.alloc(4096 - 32)]));
  const e = t.throws(() => readComposefsHeader(file), { instanceOf: CfsError });
  t.is(e?.code, 'EIMAGE');
  t.regex(e?.message ?? '', /header-only\.cfs: no EROFS superblock/);
});

test('short files are refused as too short', (t) => {
  const tiny = path.join(tmp, 'tiny.cfs');
  fs.writeFileSync(tiny, header().subarray(0, 20));
  const e1 = t.throws(() => readComposefsHeader(tiny), { instanceOf: CfsError });
  t.is(e1?.code, 'EIMAGE');
  t.regex(e1?.message ?? '', /tiny\.cfs: 20 bytes is too short/);

  const headerOnly = path.join(tmp, 'short.cfs');
  fs.writeFileSync(headerOnly, Buffer.concat([header(), Buffer.alloc(100)]));
  const e2 = t.throws(() => readComposefsHeader(headerOnly), { instanceOf: CfsError });
  t.regex(e2?.message ?? '', /short\.cfs: 132 bytes is too short .*EROFS superblock/);

  const empty = path.join(tmp, 'empty.cfs');
  fs.writeFileSync(empty, '');
  t.is(t.throws(() => readComposefsHeader(empty), { instanceOf: CfsError })?.code, 'EIMAGE');
});

test('missing image: EIMAGE pointing at .ostree.cfs and composefs being enabled', (t) => {
  const missing = path.join(tmp, 'deploy', '.ostree.cfs');
  const e = t.throws(() => readComposefsHeader(missing), { instanceOf: CfsError });
  t.is(e?.code, 'EIMAGE');
  t.true(e?.message.startsWith(`${missing} does not exist`), e?.message);
  t.regex(e?.message ?? '', /\.ostree\.cfs.*composefs/);
});

test('non-regular files are refused (a FIFO without hanging)', (t) => {
  const dir = path.join(tmp, 'a-dir.cfs');
  fs.mkdirSync(dir);
  const e1 = t.throws(() => readComposefsHeader(dir), { instanceOf: CfsError });
  t.is(e1?.code, 'EIMAGE');
  t.regex(e1?.message ?? '', /a-dir\.cfs: composefs image is not a regular file/);

  const fifo = path.join(tmp, 'fifo.cfs');
  execFileSync('mkfifo', [fifo]);
  const e2 = t.throws(() => readComposefsHeader(fifo), { instanceOf: CfsError });
  t.is(e2?.code, 'EIMAGE');
  t.regex(e2?.message ?? '', /fifo\.cfs: composefs image is not a regular file/);
});

test('a symlink to an image is refused, not followed (issue 13: disk files are opened without following symlinks)', (t) => {
  const img = makeErofs('linked');
  writeAt(img, header({ flags: 1 }), 0);
  const link = path.join(tmp, 'link.cfs');
  fs.symlinkSync(img, link);
  const e = t.throws(() => readComposefsHeader(link), { instanceOf: CfsError });
  t.is(e?.code, 'EIMAGE');
  t.regex(e?.message ?? '', /link\.cfs is a symlink: composefs image is not a regular file/);
});
