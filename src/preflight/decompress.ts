/**
 * Decompression of an initramfs segment, chosen by its magic bytes, as the
 * kernel's own unpacker chooses (init/initramfs.c, lib/decompress.c): gzip
 * and zstd through node:zlib, xz through xz-decompress (xz-embedded, the
 * kernel's own xz decoder, built to WebAssembly and shipped inside the
 * package's JavaScript), and lz4's legacy frame (`lz4 -l`, the only lz4
 * format the kernel reads) by the small block decoder below. Every decoder
 * stops at `limit` output bytes: an initramfs is hostile input here.
 */

import * as zlib from 'node:zlib';
import { fail } from '../errors.js';

export type Compression = 'gzip' | 'zstd' | 'xz' | 'lz4' | 'none';

/** The compression a segment starting at `buf` uses, or null when unknown. */
export function detectCompression(buf: Uint8Array): Compression | 'bzip2' | 'lzma' | 'lzo' | 'lz4-frame' | null {
  const b = (i: number) => buf[i] ?? -1;
  if (b(0) === 0x30 && b(1) === 0x37 && b(2) === 0x30 && b(3) === 0x37 && b(4) === 0x30) return 'none';
  if (b(0) === 0x1f && (b(1) === 0x8b || b(1) === 0x9e)) return 'gzip';
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return 'zstd';
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58 && b(4) === 0x5a && b(5) === 0x00) return 'xz';
  if (b(0) === 0x02 && b(1) === 0x21 && b(2) === 0x4c && b(3) === 0x18) return 'lz4';
  if (b(0) === 0x04 && b(1) === 0x22 && b(2) === 0x4d && b(3) === 0x18) return 'lz4-frame';
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return 'bzip2';
  if (b(0) === 0x5d && b(1) === 0x00 && b(2) === 0x00) return 'lzma';
  if (b(0) === 0x89 && b(1) === 0x4c && b(2) === 0x5a && b(3) === 0x4f) return 'lzo';
  return null;
}

/** Decompress one segment (to the end of `buf`); `where` names it in errors. */
export async function decompress(kind: Compression, buf: Uint8Array, limit: number, where: string): Promise<Uint8Array> {
  switch (kind) {
    case 'none':
      return buf;
    case 'gzip':
      return viaZlib(() => zlib.gunzipSync(buf, { maxOutputLength: limit }), buf, limit, where, 'gzip');
    case 'zstd':
      return viaZlib(() => zlib.zstdDecompressSync(trimZeros(buf), { maxOutputLength: limit }), buf, limit, where, 'zstd');
    case 'xz':
      return xzDecompress(trimZeros(buf), limit, where);
    case 'lz4':
      return lz4LegacyDecompress(buf, limit, where);
  }
}

function viaZlib(f: () => Buffer, buf: Uint8Array, limit: number, where: string, name: string): Uint8Array {
  try {
    return f();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ERR_BUFFER_TOO_LARGE' || /maxOutputLength|Cannot create a Buffer larger/.test(String(err.message))) {
      fail('ELIMIT', `${where}: ${name} data decompresses to more than ${limit} bytes`);
    }
    fail('EIMAGE', `${where}: ${name} data (${buf.length} bytes) does not decompress: ${String(err.message).split('\n')[0]}`);
  }
}

/** Bytes of zero padding after the last frame (dracut and the kernel pad archives to 4 or 512 bytes). */
function trimZeros(buf: Uint8Array): Uint8Array {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  return end === buf.length ? buf : buf.subarray(0, end);
}

async function xzDecompress(buf: Uint8Array, limit: number, where: string): Promise<Uint8Array> {
  const { XzReadableStream } = (await import('xz-decompress')) as typeof import('xz-decompress');
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const input = new Blob([buf]).stream() as unknown as ConstructorParameters<typeof XzReadableStream>[0];
    const reader = new XzReadableStream(input).getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      total += r.value.length;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        fail('ELIMIT', `${where}: xz data decompresses to more than ${limit} bytes`);
      }
      chunks.push(Uint8Array.from(r.value));
    }
  } catch (e) {
    if ((e as { code?: string }).code === 'ELIMIT') throw e;
    fail('EIMAGE', `${where}: xz data (${buf.length} bytes) does not decompress: ${String((e as Error).message ?? e).split('\n')[0]}`);
  }
  return Buffer.concat(chunks, total);
}

const LZ4_LEGACY_MAGIC = 0x184c2102;
/** The legacy format's fixed block size: no block decompresses to more. */
const LZ4_LEGACY_BLOCK = 8 << 20;

/**
 * lz4 legacy frame: the magic, then blocks, each a 32-bit little-endian
 * compressed size and an lz4 block that decodes to at most 8 MiB. The
 * stream ends at the end of the data, at zero padding, or where another
 * magic starts (concatenated frames, as the kernel accepts).
 */
export function lz4LegacyDecompress(buf: Uint8Array, limit: number, where: string): Uint8Array {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Uint8Array[] = [];
  let total = 0;
  let pos = 0;
  const block = new Uint8Array(LZ4_LEGACY_BLOCK);
  while (pos + 4 <= buf.length) {
    const word = dv.getUint32(pos, true);
    if (word === LZ4_LEGACY_MAGIC) {
      pos += 4;
      continue;
    }
    if (word === 0) break; // padding
    const size = word;
    pos += 4;
    if (size > buf.length - pos) fail('EIMAGE', `${where}: lz4 block at byte ${pos - 4} claims ${size} bytes, only ${buf.length - pos} remain`);
    const n = lz4Block(buf.subarray(pos, pos + size), block, `${where}: lz4 block at byte ${pos - 4}`);
    total += n;
    if (total > limit) fail('ELIMIT', `${where}: lz4 data decompresses to more than ${limit} bytes`);
    out.push(block.slice(0, n));
    pos += size;
  }
  return Buffer.concat(out, total);
}

/** Decode one lz4 block into `dst`; returns the bytes written. */
function lz4Block(src: Uint8Array, dst: Uint8Array, where: string): number {
  let s = 0;
  let d = 0;
  const bad = (why: string): never => fail('EIMAGE', `${where}: ${why}`);
  while (s < src.length) {
    const token = src[s++]!;
    let lit = token >> 4;
    if (lit === 15) {
      for (;;) {
        if (s >= src.length) bad('literal length runs past the block');
        const b = src[s++]!;
        lit += b;
        if (b !== 255) break;
      }
    }
    if (lit > src.length - s) bad('literals run past the block');
    if (lit > dst.length - d) bad('decodes to more than the 8 MiB block size');
    dst.set(src.subarray(s, s + lit), d);
    s += lit;
    d += lit;
    if (s >= src.length) break; // the last sequence has literals only
    if (s + 2 > src.length) bad('match offset runs past the block');
    const offset = src[s]! | (src[s + 1]! << 8);
    s += 2;
    if (offset === 0 || offset > d) bad(`match offset ${offset} points before the start of the output`);
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      for (;;) {
        if (s >= src.length) bad('match length runs past the block');
        const b = src[s++]!;
        len += b;
        if (b !== 255) break;
      }
    }
    if (len > dst.length - d) bad('decodes to more than the 8 MiB block size');
    // Byte by byte: a match may overlap the bytes it is copying.
    for (let i = 0; i < len; i++, d++) dst[d] = dst[d - offset]!;
  }
  return d;
}
