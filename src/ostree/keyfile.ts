/**
 * A GKeyFile-compatible reader (SPEC §1 "prepare-root.conf"): ostree loads
 * prepare-root.conf with g_key_file_load_from_data and the repo config with
 * g_key_file_load_from_file, so a file means here what it means to GLib.
 * Pure: text in, groups out, or a CfsError naming the file and the line.
 *
 * The rules, each checked against GLib 2.74 (python3-gi `GLib.KeyFile`;
 * test/keyfile.test.ts holds one case per rule, test/fuzz/keyfile-glib.ts
 * compares whole generated files):
 *  - Lines end at `\n` only. One `\r` right before a `\n` is dropped; a
 *    lone `\r` is an ordinary character, so CR-only files are one line.
 *  - Leading blanks of a line are skipped. GLib's blanks are space, tab,
 *    `\n`, `\r` and form feed; vertical tab is not one.
 *  - A line that is then empty, or starts with `#`, is a comment. `;` is not
 *    a comment character: `enabled = no ; signed` has the value `no ; signed`.
 *  - `[name]` starts a group; only spaces and tabs may follow the `]`. The
 *    name is non-empty and has no `[`, `]` or ASCII control character; it
 *    keeps inner and surrounding spaces (`[ a ]` is " a "). A group seen
 *    again continues the earlier one (the groups merge).
 *  - Otherwise a line with an `=` that does not start with `=` is
 *    `key = value`; any other line is an error, and so is a key before the
 *    first group. The key is what precedes the first `=`, trailing blanks
 *    removed; it may hold inner spaces and control characters, but no `[`
 *    or `]` except one trailing locale suffix `key[ll_CC.enc@mod]` (letters,
 *    digits, `-`, `_`, `.`, `@`), and no space right before that suffix.
 *    A localised key is just another key here; prepare-root never reads one.
 *  - The value is everything after the `=`, leading blanks removed and
 *    trailing blanks KEPT (`readonly = true ` is "true "). No quote removal:
 *    `"signed"` keeps its quotes. A key seen again replaces the earlier value.
 *  - `Encoding` in the first group must be `UTF-8` (any case) exactly.
 *  - A byte-order mark is not skipped: it makes the first line malformed.
 *
 * Values come back raw, as g_key_file_get_value returns them, which is how
 * ostree reads every key prepare-root uses. decodeKeyFileString gives the
 * g_key_file_get_string reading (escapes \s \n \t \r \\ decoded, any other
 * escape an error) for callers that must tell the two apart.
 */

import { fail } from '../errors.js';
import { asciiLower, isControlCode } from '../text.js';

/** One value and the line it was read from (the last one, for a repeated key). */
export interface KeyFileEntry {
  readonly value: string;
  readonly line: number;
}

/** group -> key -> entry, in order of first appearance. */
export type KeyFileGroups = Map<string, Map<string, KeyFileEntry>>;

/** GLib's g_ascii_isspace: space, \t, \n, \f, \r (not \v). */
const BLANK = new Set([' ', '\t', '\n', '\f', '\r']);
const BOM = '\ufeff';

function skipBlanks(s: string): string {
  let i = 0;
  while (i < s.length && BLANK.has(s[i]!)) i++;
  return s.slice(i);
}

/** Drop the blanks GLib skips (space, \t, \n, \f, \r) from the end of `s`. */
export function trimTrailingBlanks(s: string): string {
  let end = s.length;
  while (end > 0 && BLANK.has(s[end - 1]!)) end--;
  return s.slice(0, end);
}

/** A GLib group header line: `[` … first `]`, then only spaces and tabs. */
function groupHeaderName(line: string): string | null {
  if (!line.startsWith('[')) return null;
  const close = line.indexOf(']');
  if (close < 0) return null;
  for (let i = close + 1; i < line.length; i++) if (line[i] !== ' ' && line[i] !== '\t') return null;
  return line.slice(1, close);
}

/** A group name holds [, ] or a control character. */
function badGroupChar(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (isControlCode(c) || c === 0x5b || c === 0x5d) return true;
  }
  return false;
}

/**
 * g_unichar_isalnum (any Unicode letter or number) or one of - _ . @. Node's
 * Unicode tables and GLib's may differ by a version for letters added lately;
 * prepare-root never reads a localised key, so that can only move a refusal.
 */
const LOCALE_CHAR = /^[\p{L}\p{N}\-_.@]$/u;

/** Why `key` is not a GLib key name, or null if it is one. */
function badKeyName(key: string): string | null {
  let q = 0;
  while (q < key.length && key[q] !== '[' && key[q] !== ']') q++;
  if (q === 0) return 'it is empty before a [ or ]';
  if (key[q - 1] === ' ') return 'a space before its [locale] suffix';
  if (q === key.length) return null;
  if (key[q] === ']') return 'a ] without a [';
  const rest = [...key.slice(q + 1)];
  let i = 0;
  while (i < rest.length && LOCALE_CHAR.test(rest[i]!)) i++;
  if (rest[i] !== ']') return 'a [locale] suffix that holds other than letters, digits, -, _, ., @ or is not closed';
  if (i + 1 < rest.length) return 'text after its [locale] suffix';
  return null;
}

/**
 * Parse key-file text. `file` names the source in messages, which read
 * `FILE: line N: what: expected …`.
 */
export function parseKeyFile(text: string, file: string): KeyFileGroups {
  const groups: KeyFileGroups = new Map();
  let current: Map<string, KeyFileEntry> | null = null;
  let first: Map<string, KeyFileEntry> | null = null;
  const lines = text.split('\n');
  // A final `\n` ends the last line; it does not start another.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  lines.forEach((raw, i) => {
    const n = i + 1;
    const where = `${file}: line ${n}`;
    // Only a line that a `\n` ended loses one `\r`.
    const full = i < lines.length - 1 || text.endsWith('\n') ? (raw.endsWith('\r') ? raw.slice(0, -1) : raw) : raw;
    if (full.includes('\0')) fail('ECONFIG', `${where}: a NUL character: expected text`);
    if (n === 1 && full.startsWith(BOM)) {
      fail('ECONFIG', `${where}: starts with a byte-order mark, which GKeyFile (and so ostree) refuses: expected the file without it`);
    }
    const line = skipBlanks(full);
    if (line === '' || line.startsWith('#')) return;

    const name = groupHeaderName(line);
    if (name !== null) {
      if (name === '' || badGroupChar(name)) {
        fail('ECONFIG', `${where}: invalid group name ${JSON.stringify(name)}: expected [name], non-empty, without [, ] or control characters`);
      }
      current = groups.get(name) ?? new Map<string, KeyFileEntry>();
      groups.set(name, current);
      first ??= current;
      return;
    }

    const eq = line.indexOf('=');
    if (eq <= 0) {
      fail('ECONFIG', `${where}: ${JSON.stringify(line)} is not a [group] header, a key = value line or a # comment`);
    }
    if (current === null) {
      fail('ECONFIG', `${where}: key = value before any [group]: expected a [group] header first`);
    }
    const key = trimTrailingBlanks(line.slice(0, eq));
    const why = badKeyName(key);
    if (why !== null) fail('ECONFIG', `${where}: invalid key name ${JSON.stringify(key)} (${why}): expected key or key[locale]`);
    const value = skipBlanks(line.slice(eq + 1));
    if (current === first && key === 'Encoding' && asciiLower(value) !== 'utf-8') {
      fail('ECONFIG', `${where}: Encoding = ${JSON.stringify(value)}: expected UTF-8, the only encoding GKeyFile reads`);
    }
    current.set(key, { value, line: n });
  });
  return groups;
}

const ESCAPES: Readonly<Record<string, string>> = { s: ' ', n: '\n', t: '\t', r: '\r', '\\': '\\' };

/**
 * A raw value as g_key_file_get_string reads it: `\s \n \t \r \\` decoded;
 * a lone trailing backslash or any other escape is an error (returned as
 * the reason, so the caller can name the file, line and key).
 */
export function decodeKeyFileString(raw: string): { value: string } | { error: string } {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const cp = raw.codePointAt(i + 1);
    if (cp === undefined) return { error: 'ends with an escape character (\\)' };
    const next = String.fromCodePoint(cp);
    const decoded = ESCAPES[next];
    if (decoded === undefined) return { error: `holds the invalid escape sequence ${JSON.stringify(`\\${next}`)}: expected \\s, \\n, \\t, \\r or \\\\` };
    out += decoded;
    i++;
  }
  return { value: out };
}
