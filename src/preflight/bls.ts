/**
 * Boot Loader Specification type #1 entries (loader/entries/*.conf), as
 * ostree writes them and systemd-boot and GRUB's blscfg read them: one
 * `key value` per line, `#` comments. The entry booted next by default is
 * the first in the boot loaders' order: entries with a sort-key first,
 * ordered by sort-key, then by version, newest (highest) first, then by
 * file name, highest first. Versions compare as the UAPI version format
 * says (systemd's strverscmp_improved): runs of digits numerically, runs of
 * letters alphabetically, `~` before anything (even the end), `-` and `^`
 * and `.` as separators, digits newer than letters.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CfsError, describeSystemError, fail } from '../errors.js';

export interface BlsEntry {
  /** File name, e.g. ostree-1-debian.conf. */
  file: string;
  title: string | null;
  version: string | null;
  sortKey: string | null;
  linux: string | null;
  initrd: string[];
  options: string;
}

const MAX_ENTRY_BYTES = 64 * 1024;

export function parseBlsEntry(text: string, file: string): BlsEntry {
  const e: BlsEntry = { file, title: null, version: null, sortKey: null, linux: null, initrd: [], options: '' };
  const options: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*(.*)$/.exec(line)!;
    const key = m[1]!;
    const value = m[2]!.trim();
    switch (key) {
      case 'title': e.title = value; break;
      case 'version': e.version = value; break;
      case 'sort-key': e.sortKey = value; break;
      case 'linux': e.linux = value; break;
      case 'initrd': e.initrd.push(...value.split(/\s+/).filter(Boolean)); break;
      // Several options lines are joined with spaces (the spec).
      case 'options': options.push(value); break;
      default: break;
    }
  }
  e.options = options.join(' ');
  return e;
}

/** Read every *.conf in `dir` (BOOT/loader/entries); errors are one line. */
export function readBlsEntries(dir: string): BlsEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.conf')).sort();
  } catch (e) {
    fail('EIO', `reading the boot entries in ${dir}: ${describeSystemError(e)}`);
  }
  return names.map((n) => readBlsEntryFile(path.join(dir, n)));
}

export function readBlsEntryFile(file: string): BlsEntry {
  let buf: Buffer;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) fail('EIO', `boot entry ${file}: not a regular file`);
    if (st.size > MAX_ENTRY_BYTES) fail('ELIMIT', `boot entry ${file}: ${st.size} bytes, more than ${MAX_ENTRY_BYTES}`);
    buf = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof CfsError) throw e;
    fail('EIO', `reading boot entry ${file}: ${describeSystemError(e)}`);
  }
  return parseBlsEntry(buf.toString('utf8'), path.basename(file));
}

/** The boot loaders' menu order; the first is booted by default. */
export function sortBlsEntries(entries: BlsEntry[]): BlsEntry[] {
  return [...entries].sort(compareEntries);
}

export function defaultBlsEntry(entries: BlsEntry[]): BlsEntry | null {
  return sortBlsEntries(entries)[0] ?? null;
}

function compareEntries(a: BlsEntry, b: BlsEntry): number {
  if (a.sortKey !== null && b.sortKey === null) return -1;
  if (a.sortKey === null && b.sortKey !== null) return 1;
  if (a.sortKey !== null && b.sortKey !== null) {
    const c = a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0;
    if (c !== 0) return c;
  }
  if (a.version !== null && b.version === null) return -1;
  if (a.version === null && b.version !== null) return 1;
  if (a.version !== null && b.version !== null) {
    const c = compareVersions(b.version, a.version);
    if (c !== 0) return c;
  }
  return compareVersions(b.file.replace(/\.conf$/, ''), a.file.replace(/\.conf$/, ''));
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isAlpha = (c: string | undefined) => c !== undefined && /[A-Za-z]/.test(c);
const isValid = (c: string) => /[A-Za-z0-9~\-^.]/.test(c);

/** UAPI version comparison: negative when a is older than b. */
export function compareVersions(a: string, b: string): number {
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < a.length && !isValid(a[i]!)) i++;
    while (j < b.length && !isValid(b[j]!)) j++;
    const ca = a[i];
    const cb = b[j];
    // '~' sorts before everything, even the end.
    if (ca === '~' || cb === '~') {
      if (ca !== '~') return 1;
      if (cb !== '~') return -1;
      i++; j++;
      continue;
    }
    if (ca === undefined || cb === undefined) return (ca === undefined ? 0 : 1) - (cb === undefined ? 0 : 1);
    for (const sep of ['-', '^', '.']) {
      if (ca === sep || cb === sep) {
        if (ca !== sep) return 1;
        if (cb !== sep) return -1;
      }
    }
    if (ca === '-' || ca === '^' || ca === '.') {
      i++; j++;
      continue;
    }
    if (isDigit(ca) || isDigit(cb)) {
      if (!isDigit(ca)) return -1; // letters are older than digits
      if (!isDigit(cb)) return 1;
      while (a[i] === '0') i++;
      while (b[j] === '0') j++;
      let ei = i;
      let ej = j;
      while (isDigit(a[ei])) ei++;
      while (isDigit(b[ej])) ej++;
      const na = a.slice(i, ei);
      const nb = b.slice(j, ej);
      if (na.length !== nb.length) return na.length < nb.length ? -1 : 1;
      if (na !== nb) return na < nb ? -1 : 1;
      i = ei; j = ej;
      continue;
    }
    let ei = i;
    let ej = j;
    while (isAlpha(a[ei])) ei++;
    while (isAlpha(b[ej])) ej++;
    const sa = a.slice(i, ei);
    const sb = b.slice(j, ej);
    if (sa !== sb) return sa < sb ? -1 : 1;
    i = ei; j = ej;
  }
}
