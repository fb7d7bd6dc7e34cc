/**
 * The initramfs reader (src/preflight/cpio.ts) on hostile bytes: a /boot
 * file is as untrusted as the rest of the disk. Seeds are archives the
 * standard tools write, in the shapes dracut and the kernel concatenate them
 * (early cpio, compressed main archive, zero padding, more segments after a
 * zstd one); fast-check mutates them. Whatever the bytes:
 * - the reader ends in entries or in one CfsError line (EIMAGE or ELIMIT),
 *   never another exception;
 * - whether it reads, and what it reads, does not depend on how the file is
 *   cut into pieces (a read size, a decoder's output size): every piece
 *   boundary is a place where a stream parser can lose or repeat a byte.
 */
import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { readInitramfs } from '../src/preflight/cpio.js';
import { CfsError } from '../src/errors.js';
import { mutate, mutationArb } from './fuzz/arbitraries.js';
import { cpioOf, piecesOf } from './helpers/cpio.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-preflight-hostile-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

let dirs = 0;
const archive = (files: Record<string, string>): Buffer => cpioOf(path.join(tmp, String(dirs++)), files);

const run = (argv: string[], input: Buffer): Buffer => execFileSync(argv[0]!, argv.slice(1), { input });
const padTo = (b: Buffer, n: number): Buffer => Buffer.concat([b, Buffer.alloc((n - (b.length % n)) % n)]);

function seeds(): Record<string, Buffer> {
  const early = padTo(archive({ 'kernel/x86/microcode/GenuineIntel.bin': 'ucode' }), 512);
  const main = archive({
    'usr/bin/cfsroot': 'binary @(#)cfsroot 1.2.3;',
    'etc/ostree/prepare-root.conf': '[composefs]\nenabled = signed\n',
    'etc/ostree/initramfs-root-binding.key': 'a'.repeat(300),
    'bin': '->usr/bin',
  });
  const extra = archive({ 'etc/cmdline.d/x.conf': 'rd.x=1\n' });
  const zstdNoSum = zlib.zstdCompressSync(main, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 0 } });
  return {
    'cpio + zstd': Buffer.concat([early, run(['zstd', '-q', '-c'], main), Buffer.alloc(512)]),
    'zstd + cpio + zstd': Buffer.concat([padTo(zstdNoSum, 4), extra, run(['zstd', '-q', '-c'], extra), Buffer.alloc(3)]),
    'cpio + gzip': Buffer.concat([early, run(['gzip', '-c'], main), Buffer.alloc(512)]),
    'gzip + cpio + gzip': Buffer.concat([padTo(zlib.gzipSync(main), 4), extra, run(['gzip', '-c'], extra), Buffer.alloc(3)]),
    'cpio + xz': Buffer.concat([early, run(['xz', '-c', '--check=crc32'], main), Buffer.alloc(512)]),
    // The xz stream ends at its footer: what follows it (padding, an archive, another stream) is read on.
    'xz + cpio + xz': Buffer.concat([padTo(run(['xz', '-c', '--check=crc32'], main), 4), extra, run(['xz', '-c', '--check=crc32', '-T2', '--block-size=4KiB'], extra), Buffer.alloc(3)]),
    'cpio + lz4 -l': Buffer.concat([early, run(['lz4', '-l', '-q', '-c'], main), Buffer.alloc(512)]),
    // At least one zero size word after the blocks: the kernel's unlz4 ends the segment there.
    'lz4 -l + cpio + lz4 -l': Buffer.concat([padTo(Buffer.concat([run(['lz4', '-l', '-q', '-c'], main), Buffer.alloc(4)]), 4), extra, run(['lz4', '-l', '-q', '-c'], extra), Buffer.alloc(3)]),
  };
}

/**
 * What one read gave: the entries as comparable text, or "error". Which
 * error comes first may depend on the pieces (a decoder hands on output
 * before it reaches the check that fails), so only its form is held here.
 */
async function outcome(src: Uint8Array | AsyncIterable<Uint8Array>): Promise<string> {
  try {
    const r = await readInitramfs(src, 'h.img', { maxBytes: 16 << 20 });
    const entries = [...r.entries.values()].map((e) => `${e.name} ${e.mode.toString(8)} ${e.size} ${e.data ? Buffer.from(e.data).toString('base64') : '-'} ${e.scanned}`);
    return `ok ${r.segments.map((s) => `${s.compression}@${s.offset}`).join(',')}\n${entries.join('\n')}`;
  } catch (e) {
    if (!(e instanceof CfsError)) throw new Error(`not a CfsError: ${(e as Error)?.stack ?? String(e)}`);
    if (e.code !== 'EIMAGE' && e.code !== 'ELIMIT') throw new Error(`code ${e.code}: ${e.message}`);
    if (e.message.length === 0 || e.message.includes('\n')) throw new Error(`not one line: ${JSON.stringify(e.message)}`);
    return 'error';
  }
}

for (const [name, seed] of Object.entries(seeds())) {
  test(`initramfs reader, mutated ${name}: one CfsError line or entries, the same for any piece size`, async (t) => {
    t.true((await outcome(seed)).startsWith('ok '), 'the seed itself reads');
    await fc.assert(
      fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.integer({ min: 1, max: 97 }), async (muts, piece) => {
        const bytes = mutate(seed, muts);
        const whole = await outcome(bytes);
        const cut = await outcome(piecesOf(bytes, piece));
        if (whole !== cut) throw new Error(`whole: ${whole.slice(0, 300)}\npieces of ${piece}: ${cut.slice(0, 300)}`);
      }),
      { numRuns: 150, seed: 20261202 },
    );
    t.pass();
  });
}
