/**
 * The initramfs as the kernel unpacks it (init/initramfs.c), read into
 * memory, never onto the disk: a sequence of newc cpio archives, each ended
 * by a TRAILER!!! entry, zero padding between them, and any of them
 * compressed (the early uncompressed microcode/ACPI cpio, then the main
 * compressed one, is what dracut writes). Later entries replace earlier
 * ones of the same name, as unpacking them in order would. Hostile input:
 * names, sizes and counts are bounded, and every error is one line.
 */

import { fail } from '../errors.js';
import { decompress, detectCompression } from './decompress.js';

export interface CpioEntry {
  /** Path without a leading "/" or "./" (e.g. "usr/bin/cfsroot"). */
  name: string;
  mode: number;
  /** File contents; for a symlink, its target. Views into the decompressed data. */
  data: Uint8Array;
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

const DEFAULT_LIMITS: CpioLimits = { maxBytes: 2 * 1024 ** 3, maxEntries: 1_000_000, maxName: 4096, maxDepth: 4 };
const HEADER = 110;
const TRAILER = 'TRAILER!!!';

export interface Initramfs {
  entries: Map<string, CpioEntry>;
  /** One per segment, in order: "cpio" (uncompressed) or the compression, with its offset. */
  segments: Array<{ offset: number; compression: string }>;
}

export async function readInitramfs(buf: Uint8Array, where: string, limits: Partial<CpioLimits> = {}): Promise<Initramfs> {
  const lim = { ...DEFAULT_LIMITS, ...limits };
  const result: Initramfs = { entries: new Map(), segments: [] };
  const budget = { bytes: lim.maxBytes, entries: lim.maxEntries };
  await readStream(buf, where, lim, budget, result, 0, true);
  return result;
}

async function readStream(
  buf: Uint8Array,
  where: string,
  lim: CpioLimits,
  budget: { bytes: number; entries: number },
  out: Initramfs,
  depth: number,
  top: boolean,
): Promise<void> {
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) {
      pos++;
      continue;
    }
    const kind = detectCompression(buf.subarray(pos, pos + 8));
    if (kind === 'none') {
      if (top) out.segments.push({ offset: pos, compression: 'cpio' });
      pos = readArchive(buf, pos, where, lim, budget, out.entries);
      continue;
    }
    if (kind === null) fail('EIMAGE', `${where}: byte ${pos}: neither a newc cpio archive nor compressed data the kernel reads`);
    if (kind === 'bzip2' || kind === 'lzma' || kind === 'lzo' || kind === 'lz4-frame') {
      fail('EIMAGE', `${where}: byte ${pos}: ${kind} compression is not read by cfsroot preflight (rebuild the initramfs with zstd, gzip, xz or lz4 -l)`);
    }
    if (depth >= lim.maxDepth) fail('ELIMIT', `${where}: byte ${pos}: compressed data nested more than ${lim.maxDepth} deep`);
    if (top) out.segments.push({ offset: pos, compression: kind });
    const data = await decompress(kind, buf.subarray(pos), budget.bytes, `${where}: ${kind} data at byte ${pos}`);
    budget.bytes -= data.length;
    // A compressed segment runs to the end of the file.
    await readStream(data, `${where} (${kind} data at byte ${pos})`, lim, budget, out, depth + 1, false);
    return;
  }
}

/** One archive from `start` through its trailer; returns the offset after it. */
function readArchive(
  buf: Uint8Array,
  start: number,
  where: string,
  lim: CpioLimits,
  budget: { bytes: number; entries: number },
  entries: Map<string, CpioEntry>,
): number {
  let pos = start;
  // newc hard links: the data is stored once, with the last link of an inode.
  const links = new Map<string, CpioEntry[]>();
  for (;;) {
    if (buf.length - pos < HEADER) fail('EIMAGE', `${where}: byte ${pos}: cpio archive ends without its ${TRAILER} entry`);
    const at = `${where}: cpio entry at byte ${pos}`;
    const magic = ascii(buf, pos, 6);
    if (magic !== '070701' && magic !== '070702') fail('EIMAGE', `${at}: bad magic "${printable(magic)}" (expected newc 070701)`);
    const field = (i: number): number => {
      const s = ascii(buf, pos + 6 + i * 8, 8);
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
    if (nameSize === 0 || nameSize > lim.maxName) fail('ELIMIT', `${at}: name size ${nameSize} (allowed 1 to ${lim.maxName})`);
    const nameStart = pos + HEADER;
    if (nameSize > buf.length - nameStart) fail('EIMAGE', `${at}: name runs past the end of the data`);
    if (buf[nameStart + nameSize - 1] !== 0) fail('EIMAGE', `${at}: name is not NUL-terminated`);
    const rawName = Buffer.from(buf.buffer, buf.byteOffset + nameStart, nameSize - 1).toString('latin1');
    const dataStart = align4(nameStart + nameSize - start) + start;
    if (size > buf.length - dataStart) fail('EIMAGE', `${at} (${printable(rawName)}): size ${size} runs past the end of the data`);
    pos = align4(dataStart + size - start) + start;
    if (rawName === TRAILER) break;
    if (--budget.entries < 0) fail('ELIMIT', `${where}: more than ${lim.maxEntries} cpio entries`);
    const name = normalise(rawName);
    const entry: CpioEntry = { name, mode, data: buf.subarray(dataStart, dataStart + size) };
    if (name === '') continue;
    if ((mode & S_IFMT) === S_IFREG && nlink > 1) {
      const key = `${devMajor}:${devMinor}:${ino}`;
      const group = links.get(key) ?? [];
      group.push(entry);
      links.set(key, group);
      if (size > 0) for (const e of group) e.data = entry.data;
    }
    entries.delete(name); // re-insert: the map's order is the unpacking order
    entries.set(name, entry);
  }
  return pos;
}

function align4(n: number): number {
  return (n + 3) & ~3;
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
      const target = Buffer.from(e.data).toString('latin1');
      done.pop();
      const rest = target.split('/').filter((x) => x !== '' && x !== '.');
      if (target.startsWith('/')) done.length = 0;
      parts = [...rest, ...parts];
    }
  }
  return fsEntries.get(done.join('/')) ?? null;
}
