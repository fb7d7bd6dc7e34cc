/**
 * Decompression of an initramfs segment, chosen by its magic bytes, as the
 * kernel's own unpacker chooses (init/initramfs.c, lib/decompress.c): gzip
 * (gzipMember) and zstd (zstdFrames) through node:zlib, xz (xzStreamBytes)
 * through xz-decompress (xz-embedded, the kernel's own xz decoder, built to
 * WebAssembly and shipped inside the package's JavaScript), and lz4's legacy frame (`lz4 -l`, the only lz4
 * format the kernel reads) by the small block decoder below. Each decodes
 * as a stream (read a piece, decode it, hand it on); the reader of the
 * output bounds how much it takes: an initramfs is hostile input here.
 */

import * as zlib from 'node:zlib';
import { Readable } from 'node:stream';
import { ReadableStream as WebReadableStream } from 'node:stream/web';
import { CfsError, fail } from '../errors.js';
import { ByteReader } from './byte-reader.js';

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

/** Output piece size of the zlib decoders (their default, 16 KiB, makes 7,000 pieces of a 120 MB binary). */
const OUT_PIECE = 256 * 1024;

/**
 * Decompress the segment at the reader's position as a stream: output comes
 * in pieces as the input is read, and nothing is held beyond a decoder's
 * window, so a 120 MB binary inside the archive is never in memory whole.
 * The decoder is given the segment's bytes and no more (zstdFrames,
 * xzStreamBytes); what follows stays in the reader. The caller bounds the
 * total (src/preflight/cpio.ts); `where` names the segment in errors.
 */
export function decompressStream(kind: 'zstd' | 'xz', r: ByteReader, where: string): AsyncIterable<Uint8Array> {
  switch (kind) {
    case 'zstd':
      return viaZlib(zlib.createZstdDecompress({ chunkSize: OUT_PIECE }), zstdFrames(r, where), where, 'zstd');
    case 'xz':
      return xzStream(xzStreamBytes(r, where), where);
  }
}

async function* viaZlib(z: zlib.ZstdDecompress, src: AsyncIterable<Uint8Array>, where: string, name: string): AsyncGenerator<Uint8Array> {
  const input = Readable.from(src, { objectMode: false });
  // An error reading the input (an outer segment's own) ends the decoder with it.
  input.on('error', (e) => z.destroy(e));
  input.pipe(z);
  try {
    for await (const piece of z as AsyncIterable<Buffer>) yield piece;
  } catch (e) {
    if (e instanceof CfsError) throw e;
    fail('EIMAGE', `${where}: ${name} data does not decompress: ${String((e as Error).message ?? e).split('\n')[0]}`);
  } finally {
    input.destroy();
    z.destroy();
  }
}

async function* xzStream(src: AsyncIterable<Uint8Array>, where: string): AsyncGenerator<Uint8Array> {
  const { XzReadableStream } = (await import('xz-decompress')) as typeof import('xz-decompress');
  const input = WebReadableStream.from(src) as unknown as ConstructorParameters<typeof XzReadableStream>[0];
  const reader = new XzReadableStream(input).getReader();
  let finished = false;
  try {
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (e) {
        if (e instanceof CfsError) throw e;
        const why = String((e as Error).message ?? e).split('\n')[0]!;
        const code = /error code (\d+)$/.exec(why)?.[1];
        fail('EIMAGE', `${where}: xz data does not decompress: ${(code !== undefined && XZ_ERRORS[code]) || why}`);
      }
      if (r.done) break;
      // A copy: the decoder may reuse its output buffer.
      yield Uint8Array.from(r.value);
    }
    finished = true;
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}

/** Input piece of the gzip reader: deflate's output is at most ~1032× its input, so one piece's output stays under 17 MiB. */
const GZIP_FEED_PIECE = 16 * 1024;
const GZIP_FTEXT = 0x01;
const GZIP_FNAME = 0x08;

/**
 * One gzip member at the reader's position, decompressed as a stream, read
 * as the kernel's gunzip reads it (lib/decompress_inflate.c): the magic
 * 1f 8b and method 8, a 10-byte header followed by a file name when the
 * FNAME flag says so (no other optional field: the kernel skips none, so a
 * header with one is refused here), raw deflate data, then the 8-byte
 * trailer. The deflate data says where it ends: each piece of input is
 * written to the decoder, and only the bytes it took are consumed, so what
 * follows the trailer (padding, another segment) stays in the reader, for
 * the cpio reader to go on with, as the kernel does. The trailer's CRC-32
 * and length are checked too, which the kernel does not do: a mismatch
 * means that what it would unpack is not what was compressed.
 */
export async function* gzipMember(r: ByteReader, where: string): AsyncGenerator<Uint8Array> {
  const head = await r.read(10);
  if (head.length < 10) fail('EIMAGE', `${where}: the gzip header is cut short (${head.length} of 10 bytes)`);
  if (head[1] !== 0x8b || head[2] !== 8) {
    fail('EIMAGE', `${where}: gzip header ${hexBytes(head.subarray(0, 3))}: the kernel unpacks only 1f 8b 08 (deflate)`);
  }
  const flags = head[3]!;
  if (flags & ~(GZIP_FTEXT | GZIP_FNAME)) {
    fail(
      'EIMAGE',
      `${where}: gzip header flags 0x${flags.toString(16).padStart(2, '0')} announce an extra field, comment or header CRC, ` +
        'which the kernel does not skip (it reads only a file name): recompress with plain gzip',
    );
  }
  if (flags & GZIP_FNAME) await skipName(r, where);

  const z = zlib.createInflateRaw({ chunkSize: OUT_PIECE });
  const out: Buffer[] = [];
  let ended = false;
  z.on('data', (b: Buffer) => out.push(b));
  z.on('end', () => (ended = true));
  z.on('error', () => undefined); // reported by the waits below
  const bad = (e: Error): never => fail('EIMAGE', `${where}: gzip data does not decompress: ${String(e.message).split('\n')[0]}`);
  let crc = 0;
  let size = 0;
  const drain = function* (): Generator<Uint8Array> {
    for (const b of out.splice(0)) {
      crc = zlib.crc32(b, crc);
      size += b.length;
      yield b;
    }
  };
  try {
    for (;;) {
      const piece = await r.peek(GZIP_FEED_PIECE);
      if (piece.length === 0) {
        // The input ended: either inside the deflate data, or right after it, before the trailer.
        const e = await settle(z, (done) => z.end(done), true);
        if (e) bad(e);
        fail('EIMAGE', `${where}: the gzip data ends before its 8-byte trailer`);
      }
      const before = z.bytesWritten;
      const e = await settle(z, (done) => z.write(piece, done), false);
      if (e) bad(e);
      const used = z.bytesWritten - before;
      await r.skip(used);
      yield* drain();
      // The decoder took less than it was given: its data ended inside this piece.
      if (used < piece.length) break;
    }
    if (!ended) {
      const e = await settle(z, () => undefined, true);
      if (e) bad(e);
    }
    yield* drain();
  } finally {
    z.destroy();
  }
  const at = r.offset;
  const trailer = await r.read(8);
  if (trailer.length < 8) fail('EIMAGE', `${where}: the gzip trailer at byte ${at} is cut short (${trailer.length} of 8 bytes)`);
  const view = new DataView(trailer.buffer, trailer.byteOffset, 8);
  if (view.getUint32(0, true) !== crc >>> 0 || view.getUint32(4, true) !== size % 2 ** 32) {
    fail(
      'EIMAGE',
      `${where}: the gzip trailer at byte ${at} does not match the data (CRC-32 ${view.getUint32(0, true).toString(16)}, ` +
        `length ${view.getUint32(4, true)}; the data has ${(crc >>> 0).toString(16)}, ${size % 2 ** 32}): the data is corrupt`,
    );
  }
}

/** Skip the zero-terminated file name of a gzip header. */
async function skipName(r: ByteReader, where: string): Promise<void> {
  for (;;) {
    const piece = await r.peek(4096);
    if (piece.length === 0) fail('EIMAGE', `${where}: the gzip header's file name runs to the end of the data`);
    const end = piece.indexOf(0);
    await r.skip(end < 0 ? piece.length : end + 1);
    if (end >= 0) return;
  }
}

/**
 * Start `act` on the decoder and wait until it is done, or the decoder
 * fails or closes; with `untilEnd`, until its output has ended. Resolves to
 * the decoder's error, if any.
 */
function settle(z: zlib.InflateRaw, act: (done: (e?: Error | null) => void) => void, untilEnd: boolean): Promise<Error | null> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (e?: Error | null) => {
      if (settled) return;
      settled = true;
      z.off('error', finish);
      z.off('close', onClose);
      z.off('end', onEnd);
      resolve(e ?? null);
    };
    const onClose = () => finish(null);
    const onEnd = () => finish(null);
    z.once('error', finish);
    z.once('close', onClose);
    if (untilEnd) {
      z.once('end', onEnd);
      act(() => undefined);
    } else act(finish);
  });
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_FRAME_FIELD_BYTES = { dictionaryId: [0, 1, 2, 4], contentSize: [0, 2, 4, 8] } as const;

/**
 * The zstd frames that start at the reader's position, byte for byte, and
 * not one byte past the last: where a frame ends is read off its format
 * (RFC 8878 section 3.1.1: a 4-byte magic, a header whose first byte gives
 * the size of the rest, blocks each led by 3 bytes giving its size, its
 * type and whether it is the last, then a 4-byte checksum when the header
 * says so). What follows the frames (zero padding, another segment) stays
 * in the reader, for the cpio reader to go on with, as the kernel does
 * after a compressed segment. Frames back to back are one segment. A frame
 * cut short is handed on as it is, for the decoder to report.
 */
async function* zstdFrames(r: ByteReader, where: string): AsyncGenerator<Uint8Array> {
  for (;;) {
    const magic = await r.peek(4);
    if (magic.length < 4 || new DataView(magic.buffer).getUint32(0, true) !== ZSTD_MAGIC) return;
    const frameAt = r.offset;
    const head = await r.read(5);
    yield head;
    if (head.length < 5) return;
    const descriptor = head[4]!;
    if (descriptor & 0x08) fail('EIMAGE', `${where}: zstd frame at byte ${frameAt}: the reserved bit of its header is set`);
    const singleSegment = (descriptor & 0x20) !== 0;
    const contentSizeFlag = descriptor >> 6;
    const headerRest =
      (singleSegment ? 0 : 1) + // window descriptor
      ZSTD_FRAME_FIELD_BYTES.dictionaryId[descriptor & 3]! +
      (contentSizeFlag === 0 && singleSegment ? 1 : ZSTD_FRAME_FIELD_BYTES.contentSize[contentSizeFlag]!);
    if (!(yield* handOn(r, headerRest))) return;
    for (;;) {
      const blockAt = r.offset;
      const blockHead = await r.read(3);
      yield blockHead;
      if (blockHead.length < 3) return;
      const word = blockHead[0]! | (blockHead[1]! << 8) | (blockHead[2]! << 16);
      const type = (word >> 1) & 3;
      if (type === 3) fail('EIMAGE', `${where}: zstd block at byte ${blockAt}: block type 3 is reserved`);
      // An RLE block (type 1) is one byte, repeated; raw and compressed blocks are their size.
      if (!(yield* handOn(r, type === 1 ? 1 : word >>> 3))) return;
      if (word & 1) break;
    }
    if (descriptor & 0x04 && !(yield* handOn(r, 4))) return;
  }
}

/** Hand on the reader's next n bytes; false when the stream ended first. */
async function* handOn(r: ByteReader, n: number): AsyncGenerator<Uint8Array, boolean> {
  let got = 0;
  for await (const piece of r.take(n)) {
    got += piece.length;
    yield piece;
  }
  return got === n;
}

const LZ4_LEGACY_MAGIC = 0x184c2102;
/** The legacy format's fixed block size: no block decompresses to more. */
const LZ4_LEGACY_BLOCK = 8 << 20;

/**
 * An lz4 legacy segment at the reader's position, decompressed: the magic,
 * then blocks, each a 32-bit little-endian compressed size and an lz4 block
 * that decodes to at most 8 MiB; a magic between blocks (frames back to
 * back) is skipped. It ends where the kernel's unlz4 ends it when it reads
 * an initramfs (lib/decompress_unlz4.c, since "correctly handle
 * zero-padding around initrds"): at the end of the data, or at a size word
 * of 0, which is the padding before the next segment. That word stays in the
 * reader, for the cpio reader to skip and go on after it, as the kernel does.
 */
export async function* lz4Segment(r: ByteReader, where: string): AsyncGenerator<Uint8Array> {
  const block = new Uint8Array(LZ4_LEGACY_BLOCK);
  for (;;) {
    const at = r.offset;
    const head = await r.peek(4);
    // Fewer than 4 bytes left: the kernel takes that as the end too.
    if (head.length < 4) return;
    const word = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true);
    if (word === 0) return; // padding: the next segment follows it
    await r.skip(4);
    if (word === LZ4_LEGACY_MAGIC) continue;
    if (word > LZ4_LEGACY_BLOCK * 2) fail('EIMAGE', `${where}: lz4 block at byte ${at} claims ${word} bytes, more than a legacy block can hold`);
    const data = await r.read(word);
    if (data.length < word) fail('EIMAGE', `${where}: lz4 block at byte ${at} claims ${word} bytes, only ${data.length} remain`);
    const n = lz4Block(data, block, `${where}: lz4 block at byte ${at}`);
    yield block.slice(0, n);
  }
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

const XZ_STREAM_HEADER = 12;
const XZ_STREAM_FOOTER = 12;
/** Bytes of a block's check, by the check ID in the stream flags (xz file format 1.2.1, section 3.4). */
const XZ_CHECK_BYTES = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64] as const;
const XZ_CHECK_NAMES: Record<number, string> = { 4: 'CRC64', 10: 'SHA-256' };
const XZ_FILTER_LZMA2 = 0x21;
const XZ_FILTER_NAMES: Record<number, string> = { 3: 'delta', 4: 'x86 BCJ', 5: 'PowerPC BCJ', 6: 'IA-64 BCJ', 7: 'ARM BCJ', 8: 'ARM-Thumb BCJ', 9: 'SPARC BCJ', 10: 'ARM64 BCJ', 11: 'RISC-V BCJ' };
/** xz-embedded's enum xz_ret, as xz-decompress reports it ("error code N"). */
const XZ_ERRORS: Record<string, string> = {
  '3': 'out of memory',
  '4': 'it needs a larger dictionary than the decoder allows',
  '5': 'not an xz stream',
  '6': 'it uses options the decoder does not support',
  '7': 'the compressed data is corrupt',
  '8': 'the data ends before the stream does',
};

/**
 * One xz stream at the reader's position, byte for byte, and not one byte
 * past its footer: where it ends is read off its format (the .xz file
 * format 1.2.1: a 12-byte stream header, blocks, an index, a 12-byte
 * footer). A block's header gives its own size, and may give its
 * compressed size; when it does not, the LZMA2 data is walked chunk by
 * chunk, each chunk's header giving its packed size. What follows the
 * stream stays in the reader, for the cpio reader to go on with: the
 * kernel's unxz decodes one stream and says how much it used
 * (lib/decompress_unxz.c), and init/initramfs.c goes on after it (stream
 * padding is zeros, skipped there; another stream is another segment).
 * A stream cut short is handed on as it is, for the decoder to report;
 * what the walk cannot step over is an error naming its byte.
 */
async function* xzStreamBytes(r: ByteReader, where: string): AsyncGenerator<Uint8Array> {
  // Each header is checked before the decoder sees it, so that what the walk refuses is said in its words.
  const head = await r.read(XZ_STREAM_HEADER);
  if (head.length < XZ_STREAM_HEADER) {
    yield head;
    return;
  }
  const check = head[7]! & 0x0f;
  // Linux's copy of xz-embedded is built with CRC32 alone (Documentation/staging/xz.rst): it refuses any other check.
  if (check > 1 && head[6] === 0 && head[7]! < 0x10) {
    fail('EIMAGE', `${where}: the xz stream uses check ${XZ_CHECK_NAMES[check] ?? `ID ${check}`}; the kernel's xz decoder reads only CRC32 or none: recompress with xz --check=crc32`);
  }
  const checkBytes = XZ_CHECK_BYTES[check]!;
  yield head;
  let blocks = 0;
  for (;;) {
    const blockAt = r.offset;
    const first = await r.peek(1);
    if (first.length === 0) return;
    if (first[0] === 0) break; // the index indicator
    const headerSize = (first[0]! + 1) * 4;
    const header = await r.read(headerSize);
    if (header.length < headerSize) {
      yield header;
      return;
    }
    const compressedSize = xzBlockHeader(header, `${where}: xz block at byte ${blockAt}`);
    yield header;
    let compressed: number;
    if (compressedSize !== null) {
      if (!(yield* handOn(r, compressedSize))) return;
      compressed = compressedSize;
    } else {
      const walked = yield* lzma2Chunks(r, `${where}: xz block at byte ${blockAt}`);
      if (walked === null) return;
      compressed = walked;
    }
    // Block padding to a multiple of 4, then the check.
    if (!(yield* handOn(r, ((4 - ((headerSize + compressed) % 4)) % 4) + checkBytes))) return;
    blocks++;
  }
  const indexAt = r.offset;
  const indicator = await r.read(1);
  const count = await xzVarintFrom(r, `${where}: xz index at byte ${indexAt}`);
  // The decoder checks the records against the blocks; a count that differs would only make this walk long.
  if (count.value !== null && count.value !== blocks) fail('EIMAGE', `${where}: xz index at byte ${indexAt} lists ${count.value} blocks, the stream has ${blocks}`);
  yield indicator;
  yield count.bytes;
  if (count.value === null) return;
  let indexSize = 1 + count.bytes.length;
  for (let i = 0; i < 2 * blocks; i++) {
    const v = await xzVarintFrom(r, `${where}: xz index at byte ${indexAt}`);
    yield v.bytes;
    if (v.value === null) return;
    indexSize += v.bytes.length;
  }
  // Index padding to a multiple of 4, its CRC-32, then the stream footer.
  yield* handOn(r, ((4 - (indexSize % 4)) % 4) + 4 + XZ_STREAM_FOOTER);
}

/** A block header's compressed size, or null when it gives none; refuses what the kernel's decoder cannot read. */
function xzBlockHeader(h: Uint8Array, where: string): number | null {
  const flags = h[1]!;
  if (flags & 0x3c) fail('EIMAGE', `${where}: reserved bits of the block flags are set (0x${flags.toString(16).padStart(2, '0')})`);
  const end = h.length - 4; // the header's CRC-32 is last
  let pos = 2;
  const next = (what: string): number => {
    const v = xzVarint(h, pos, end, `${where}: ${what}`);
    pos = v.next;
    return v.value;
  };
  const compressedSize = flags & 0x40 ? next('compressed size') : null;
  if (compressedSize === 0) fail('EIMAGE', `${where}: a compressed size of 0`);
  if (flags & 0x80) next('uncompressed size');
  const filters = (flags & 3) + 1;
  for (let i = 0; i < filters; i++) {
    const id = next('filter ID');
    const props = next('filter properties size');
    if (props > end - pos) fail('EIMAGE', `${where}: the filter properties run past the block header`);
    pos += props;
    if (i === filters - 1 && id !== XZ_FILTER_LZMA2) {
      fail('EIMAGE', `${where}: its last filter is 0x${id.toString(16)}, not LZMA2 (0x21), the only one the kernel's xz decoder ends a chain with`);
    }
    if (i < filters - 1) {
      // The kernel has BCJ filters (XZ_DEC_X86 and the others); the decoder here has LZMA2 alone.
      fail('EIMAGE', `${where}: the ${XZ_FILTER_NAMES[id] ?? `0x${id.toString(16)}`} filter before LZMA2 is not read by cfsroot preflight (its xz decoder has LZMA2 only): rebuild the initramfs with plain xz --check=crc32`);
    }
  }
  return compressedSize;
}

/** A multibyte integer of the xz format (7 bits a byte, least significant first, at most 9 bytes) in h[pos, end). */
function xzVarint(h: Uint8Array, pos: number, end: number, where: string): { value: number; next: number } {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (pos >= end) fail('EIMAGE', `${where}: the number runs past its field`);
    const b = h[pos++]!;
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) {
      if (b === 0 && i > 0) fail('EIMAGE', `${where}: the number is not in its shortest form`);
      if (value > Number.MAX_SAFE_INTEGER) fail('EIMAGE', `${where}: the number ${value} is too large`);
      return { value, next: pos };
    }
  }
  return fail('EIMAGE', `${where}: the number is longer than 9 bytes`);
}

/** A multibyte integer read from the stream: its value (null when the stream ended first) and its bytes, for the caller to hand on. */
async function xzVarintFrom(r: ByteReader, where: string): Promise<{ value: number | null; bytes: Uint8Array }> {
  const ahead = await r.peek(9);
  // Fewer than 9 bytes left, all with the continuation bit: the stream ends inside the number.
  if (ahead.length < 9 && ahead.every((b) => b & 0x80)) return { value: null, bytes: await r.read(ahead.length) };
  const { value, next } = xzVarint(ahead, 0, ahead.length, where);
  return { value, bytes: await r.read(next) };
}

/**
 * The LZMA2 data of a block, handed on chunk by chunk up to and including
 * its end marker (a control byte of 0); returns its size, or null when the
 * stream ended first. Control bytes 1 and 2 lead an uncompressed chunk
 * (2 bytes: size - 1), 0x80-0xff an LZMA chunk (unpacked and packed sizes,
 * and a properties byte from 0xc0 up); 3-0x7f are invalid.
 */
async function* lzma2Chunks(r: ByteReader, where: string): AsyncGenerator<Uint8Array, number | null> {
  let size = 0;
  for (;;) {
    const at = r.offset;
    const c = await r.peek(1);
    if (c.length === 0) return null;
    const control = c[0]!;
    if (control === 0) {
      yield await r.read(1);
      return size + 1;
    }
    if (control > 2 && control < 0x80) fail('EIMAGE', `${where}: LZMA2 chunk at byte ${at}: control byte 0x${control.toString(16).padStart(2, '0')} is invalid`);
    const headLen = control <= 2 ? 3 : control >= 0xc0 ? 6 : 5;
    const h = await r.read(headLen);
    yield h;
    if (h.length < headLen) return null;
    const data = control <= 2 ? ((h[1]! << 8) | h[2]!) + 1 : ((h[3]! << 8) | h[4]!) + 1;
    if (!(yield* handOn(r, data))) return null;
    size += headLen + data;
  }
}
