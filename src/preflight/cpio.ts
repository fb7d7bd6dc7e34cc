/**
 * The initramfs as the kernel unpacks it (init/initramfs.c), read as a
 * stream, never onto the disk and never whole into memory: a sequence of
 * newc cpio archives, each ended by a TRAILER!!! entry, zero padding between
 * them, and any of them compressed (the early uncompressed microcode/ACPI
 * cpio, then the main compressed one, is what dracut writes). Later entries
 * replace earlier ones of the same name, as unpacking them in order would.
 * Every entry's name, mode and size is kept; a regular file's contents only
 * when the caller's `keep` says so, and a `scan` may look at contents as they
 * pass (preflight finds the cfsroot binary's version that way, without
 * keeping 120 MB). Hostile input: names, sizes, counts and the decompressed
 * total are bounded, and every error is one line.
 */

import { fail } from '../errors.js';
import { ByteReader } from './byte-reader.js';
import { decompressStream, detectCompression, gzipMember, lz4Segment } from './decompress.js';

export interface CpioEntry {
  /** Path without a leading "/" or "./" (e.g. "usr/bin/cfsroot"). */
  name: string;
  mode: number;
  /** Size of the contents in bytes. */
  size: number;
  /** Contents (for a symlink, its target); null for a regular file the reader did not keep. */
  data: Uint8Array | null;
  /** What the `scan` option found in the contents, or null. */
  scanned: string | null;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

export interface CpioLimits {
  /** Decompressed bytes in all (default 2 GiB). */
  maxBytes: number;
  /** Entries in all (default 1,000,000). */
  maxEntries: number;
  /** Name length, NUL included (default 4096, PATH_MAX). */
  maxName: number;
  /** Nesting of compressed segments: a compressed cpio holding compressed data (default 4). */
  maxDepth: number;
}

/** Looks at a file's contents as they stream past, in order. */
export interface Scanner {
  push(piece: Uint8Array): void;
  /** After the last piece. */
  result(): string | null;
}

export interface ReadOptions extends Partial<CpioLimits> {
  /** Whether to keep a regular file's contents (default: every file's). Symlink targets are always kept. */
  keep?: (name: string, size: number) => boolean;
  /** A scanner for a regular file's contents, or null for none. */
  scan?: (name: string) => Scanner | null;
}

/** Bytes, or pieces of them in order (a file read piece by piece). */
export type InitramfsSource = Uint8Array | AsyncIterable<Uint8Array>;

const DEFAULT_LIMITS: CpioLimits = { maxBytes: 2 * 1024 ** 3, maxEntries: 1_000_000, maxName: 4096, maxDepth: 4 };
const HEADER = 110;
const TRAILER = 'TRAILER!!!';
/** A symlink target longer than this is not one the kernel makes (PATH_MAX). */
const MAX_LINK = 4096;

export interface Initramfs {
  entries: Map<string, CpioEntry>;
  /** One per segment, in order: "cpio" (uncompressed) or the compression, with its offset. */
  segments: Array<{ offset: number; compression: string }>;
}

interface Ctx {
  lim: CpioLimits;
  keep: NonNullable<ReadOptions['keep']>;
  scan: NonNullable<ReadOptions['scan']>;
  budget: { bytes: number; entries: number };
  out: Initramfs;
}

export async function readInitramfs(src: InitramfsSource, where: string, opts: ReadOptions = {}): Promise<Initramfs> {
  const { keep, scan, ...limits } = opts;
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const ctx: Ctx = {
    lim,
    keep: keep ?? (() => true),
    scan: scan ?? (() => null),
    budget: { bytes: lim.maxBytes, entries: lim.maxEntries },
    out: { entries: new Map(), segments: [] },
  };
  const reader = new ByteReader(src instanceof Uint8Array ? once(src) : src);
  try {
    await readStream(reader, where, ctx, 0);
  } finally {
    await reader.close();
  }
  return ctx.out;
}

async function* once(buf: Uint8Array): AsyncGenerator<Uint8Array> {
  yield buf;
}

async function readStream(r: ByteReader, where: string, ctx: Ctx, depth: number): Promise<void> {
  for (;;) {
    await r.skipZeros();
    const pos = r.offset;
    const magic = await r.peek(8);
    if (magic.length === 0) return;
    const kind = detectCompression(magic);
    if (kind === 'none') {
      if (depth === 0) ctx.out.segments.push({ offset: pos, compression: 'cpio' });
      await readArchive(r, where, ctx);
      continue;
    }
    if (kind === null) fail('EIMAGE', `${where}: byte ${pos}: neither a newc cpio archive nor compressed data the kernel reads`);
    if (kind === 'bzip2' || kind === 'lzma' || kind === 'lzo' || kind === 'lz4-frame') {
      fail('EIMAGE', `${where}: byte ${pos}: ${kind} compression is not read by cfsroot preflight (rebuild the initramfs with zstd, gzip, xz or lz4 -l)`);
    }
    if (depth >= ctx.lim.maxDepth) fail('ELIMIT', `${where}: byte ${pos}: compressed data nested more than ${ctx.lim.maxDepth} deep`);
    if (depth === 0) ctx.out.segments.push({ offset: pos, compression: kind });
    const inside = `${where}: ${kind} data at byte ${pos}`;
    // Each segment says where it ends (a gzip member, zstd frames, an xz
    // stream, an lz4 segment), and what follows it is read on.
    const output =
      kind === 'gzip'
        ? gzipMember(r, inside)
        : kind === 'lz4'
          ? lz4Segment(r, inside)
          : decompressStream(kind, r, inside);
    const inner = new ByteReader(bounded(output, ctx, inside, kind));
    try {
      await readStream(inner, `${where} (${kind} data at byte ${pos})`, ctx, depth + 1);
    } finally {
      await inner.close();
    }
  }
}

/** The decompressed total stops at maxBytes: a decompression bomb is one ELIMIT line. */
async function* bounded(src: AsyncIterable<Uint8Array>, ctx: Ctx, where: string, kind: string): AsyncGenerator<Uint8Array> {
  for await (const piece of src) {
    ctx.budget.bytes -= piece.length;
    if (ctx.budget.bytes < 0) fail('ELIMIT', `${where}: ${kind} data decompresses to more than ${ctx.lim.maxBytes} bytes`);
    yield piece;
  }
}

/** One archive through its trailer. */
async function readArchive(r: ByteReader, where: string, ctx: Ctx): Promise<void> {
  const start = r.offset;
  const entries = ctx.out.entries;
  // newc hard links: the data is stored once, with the last link of an inode.
  const links = new Map<string, CpioEntry[]>();
  const pad = async (what: string): Promise<void> => {
    const n = (4 - ((r.offset - start) % 4)) % 4;
    if (n > 0 && (await r.skip(n)) < n) fail('EIMAGE', `${where}: byte ${r.offset}: cpio archive ends inside the padding after ${what}`);
  };
  for (;;) {
    const pos = r.offset;
    const at = `${where}: cpio entry at byte ${pos}`;
    const head = await r.read(HEADER);
    if (head.length < HEADER) fail('EIMAGE', `${where}: byte ${pos}: cpio archive ends without its ${TRAILER} entry`);
    const magic = ascii(head, 0, 6);
    if (magic !== '070701' && magic !== '070702') fail('EIMAGE', `${at}: bad magic "${printable(magic)}" (expected newc 070701)`);
    const field = (i: number): number => {
      const s = ascii(head, 6 + i * 8, 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) fail('EIMAGE', `${at}: header field ${i} "${printable(s)}" is not 8 hex digits`);
      return parseInt(s, 16);
    };
    const ino = field(0);
    const mode = field(1);
    const nlink = field(4);
    const size = field(6);
    const devMajor = field(7);
    const devMinor = field(8);
    const nameSize = field(11);
    if (nameSize === 0 || nameSize > ctx.lim.maxName) fail('ELIMIT', `${at}: name size ${nameSize} (allowed 1 to ${ctx.lim.maxName})`);
    const nameBytes = await r.read(nameSize);
    if (nameBytes.length < nameSize) fail('EIMAGE', `${at}: name runs past the end of the data`);
    if (nameBytes[nameSize - 1] !== 0) fail('EIMAGE', `${at}: name is not NUL-terminated`);
    const rawName = Buffer.from(nameBytes.buffer, nameBytes.byteOffset, nameSize - 1).toString('latin1');
    await pad(`the name of ${printable(rawName)}`);
    const past = (): never => fail('EIMAGE', `${at} (${printable(rawName)}): size ${size} runs past the end of the data`);
    if (rawName === TRAILER) {
      if ((await r.skip(size)) < size) past();
      await pad(TRAILER);
      return;
    }
    if (--ctx.budget.entries < 0) fail('ELIMIT', `${where}: more than ${ctx.lim.maxEntries} cpio entries`);
    const name = normalise(rawName);
    const type = mode & S_IFMT;
    const entry: CpioEntry = { name, mode, size, data: null, scanned: null };
    const group = type === S_IFREG && nlink > 1 ? groupOf(links, `${devMajor}:${devMinor}:${ino}`) : null;
    group?.push(entry);
    if (type === S_IFLNK) {
      if (size > MAX_LINK) fail('EIMAGE', `${at} (${printable(rawName)}): symlink target of ${size} bytes (at most ${MAX_LINK})`);
      entry.data = await r.read(size);
      if (entry.data.length < size) past();
    } else if (type === S_IFREG && size > 0) {
      const names = group ? group.map((e) => e.name) : [name];
      const scanner = names.map((n) => ctx.scan(n)).find((s) => s !== null) ?? null;
      if (names.some((n) => ctx.keep(n, size))) {
        entry.data = await r.read(size);
        if (entry.data.length < size) past();
        scanner?.push(entry.data);
      } else if ((await r.skip(size, scanner ? (p) => scanner.push(p) : undefined)) < size) past();
      entry.scanned = scanner?.result() ?? null;
      // Every link of the inode has this data.
      for (const e of group ?? []) Object.assign(e, { size, data: entry.data, scanned: entry.scanned });
    } else if ((await r.skip(size)) < size) past();
    await pad(printable(rawName));
    if (name === '') continue;
    entries.delete(name); // re-insert: the map's order is the unpacking order
    entries.set(name, entry);
  }
}

function groupOf(links: Map<string, CpioEntry[]>, key: string): CpioEntry[] {
  let g = links.get(key);
  if (!g) links.set(key, (g = []));
  return g;
}

function ascii(buf: Uint8Array, pos: number, n: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + pos, Math.min(n, buf.length - pos)).toString('latin1');
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/** "./usr/bin" and "/usr/bin" -> "usr/bin"; "." -> "". */
function normalise(name: string): string {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  return parts.join('/');
}

/**
 * Look a path up as the unpacked tree would resolve it: symlinks in its
 * directories and at its end are followed (relative or absolute, within the
 * archive; at most 40, as the kernel allows). Null when it does not exist.
 */
export function lookup(fsEntries: Map<string, CpioEntry>, path: string): CpioEntry | null {
  let budget = 40;
  let parts = path.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  while (parts.length > 0) {
    const p = parts.shift()!;
    if (p === '..') {
      done.pop();
      continue;
    }
    done.push(p);
    const e = fsEntries.get(done.join('/'));
    // A directory the archive does not list (cpio -o of a file list may omit parents).
    if (!e) {
      if (parts.length === 0) return null;
      continue;
    }
    if ((e.mode & S_IFMT) === S_IFLNK) {
      if (--budget < 0) return null;
      const target = Buffer.from(e.data ?? new Uint8Array()).toString('latin1');
      done.pop();
      const rest = target.split('/').filter((x) => x !== '' && x !== '.');
      if (target.startsWith('/')) done.length = 0;
      parts = [...rest, ...parts];
    }
  }
  return fsEntries.get(done.join('/')) ?? null;
}
