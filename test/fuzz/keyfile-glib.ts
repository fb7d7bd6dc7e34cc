/**
 * Differential key-file check against GLib (python3-gi `GLib.KeyFile`), the
 * parser ostree reads prepare-root.conf and the repo config with (issue 13
 * item 8): on generated files mixing comments, `;`, quotes, escapes, locale
 * suffixes, a byte-order mark, CRLF / CR / LF endings, duplicate keys and
 * groups, blanks GLib does and does not skip, and malformed lines,
 * src/ostree/keyfile.ts and GLib must agree on whether the file loads and, when it
 * does, on every group, every key, every g_key_file_get_value and every
 * g_key_file_get_string (value or error).
 *
 * GLib is asked with G_KEY_FILE_KEEP_TRANSLATIONS, so it keeps every
 * `key[locale]` as src/ostree/keyfile.ts does. Without the flag (as ostree loads)
 * it drops the locales the process does not use, which changes nothing
 * prepare-root reads: it never reads a localised key. Files hold no NUL
 * (ostree refuses a file with one before GKeyFile sees it: it is not valid
 * UTF-8 to GLib).
 *
 * One python process answers a whole batch, one JSON line per file.
 */

import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { CfsError } from '../../src/errors.js';
import { decodeKeyFileString, parseKeyFile } from '../../src/ostree/keyfile.js';

const PYTHON = `
import sys, json
from gi.repository import GLib
for line in sys.stdin:
    text = json.loads(line)
    kf = GLib.KeyFile()
    try:
        kf.load_from_data(text, len(text.encode('utf-8')), GLib.KeyFileFlags.KEEP_TRANSLATIONS)
    except GLib.Error as e:
        sys.stdout.write(json.dumps({'error': e.message}) + '\\n')
        continue
    groups = []
    for g in kf.get_groups()[0]:
        keys = []
        for k in dict.fromkeys(kf.get_keys(g)[0]):
            try:
                s = kf.get_string(g, k)
            except GLib.Error:
                s = None
            keys.append([k, kf.get_value(g, k), s])
        groups.append([g, keys])
    sys.stdout.write(json.dumps({'groups': groups}) + '\\n')
`;

/** group -> [key, get_value, get_string or null for an error] in order of first appearance. */
export type Groups = [string, [string, string, string | null][]][];

/** Ask GLib to load each text: its groups, or its error message. */
export function glibKeyFiles(texts: readonly string[]): ({ error: string } | { groups: Groups })[] {
  const input = texts.map((t) => JSON.stringify(t)).join('\n') + '\n';
  const r = spawnSync('/usr/bin/python3', ['-c', PYTHON], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`python3-gi failed (${r.status}): ${r.stderr}`);
  const answers = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { error: string } | { groups: Groups });
  if (answers.length !== texts.length) throw new Error(`python3-gi answered ${answers.length} of ${texts.length} files`);
  return answers;
}

/** src/ostree/keyfile.ts on the same text, in the same shape; a string is our refusal. */
export function oursKeyFile(text: string): Groups | string {
  try {
    const parsed = parseKeyFile(text, 'f');
    return [...parsed].map(([g, keys]) => [
      g,
      [...keys].map(([k, e]): [string, string, string | null] => {
        const d = decodeKeyFileString(e.value);
        return [k, e.value, 'value' in d ? d.value : null];
      }),
    ]);
  } catch (e) {
    if (e instanceof CfsError && e.code === 'ECONFIG') return e.message;
    throw e;
  }
}

// ---------------------------------------------------------------------------
// The corpus: lines from small alphabets, so duplicates and every rule's edge occur often.

const pick = (xs: readonly string[]) => fc.constantFrom(...xs);
const word = (alphabet: readonly string[], max: number) =>
  fc.array(pick(alphabet), { maxLength: max }).map((cs) => cs.join(''));

/** Blanks GLib skips (space, \t, \f, \r) and ones it does not (\v, NBSP). */
const blanks = fc.oneof(
  { weight: 3, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: word([' ', ' ', '\t', '\f', '\r', '\v', '\u00a0'], 3) },
);
const groupName = fc.oneof(
  { weight: 12, arbitrary: pick(['composefs', 'sysroot', 'root', 'etc', 'a', 'b', ' a ']) },
  { weight: 1, arbitrary: word(['a', 'b', ' ', '[', ']', '=', '#', ';', '"', '\x01', '\x7f', 'é', '\u0085', '.', '\t'], 5) },
);
const keyName = fc.oneof(
  { weight: 16, arbitrary: pick(['enabled', 'keypath', 'readonly', 'transient', 'transient-ro', 'k', 'a b', 'Encoding']) },
  { weight: 2, arbitrary: fc.tuple(pick(['k', 'enabled', 'a b']), pick(['[de]', '[de_DE.UTF-8@euro]', '[]', '[d e]', '[é]', '[\u0663]', '[\u0301]', '[x]y', '[', ']', ' [de]', '\t[de]'])).map(([k, l]) => k + l) },
  { weight: 1, arbitrary: word(['k', 'e', ' ', '[', ']', '#', ';', '"', '\x01', '\t', '\v', 'é', '\\', '\u00a0'], 5) },
);
const value = fc.oneof(
  { weight: 5, arbitrary: pick(['yes', 'no', 'maybe', 'signed', 'verity', 'true', 'false', '1', '0', 'UTF-8', 'utf-8', 'latin1', '/etc/key', '']) },
  { weight: 4, arbitrary: word(['a', 's', 'n', 't', 'r', 'x', '\\', '\\', ' ', '\t', '"', ';', '#', '=', '[', ']', '\r', '\v', 'é', '\u00a0', '\u{1f600}'], 8) },
  { weight: 2, arbitrary: fc.tuple(pick(['no', 'yes', 'signed', '"signed"']), pick([' ; signed', ' # x', ' ', '\t', '"', "'"])).map(([a, b]) => a + b) },
);

const line = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(blanks, groupName, pick(['', ' ', '\t', ' \t', '\f', ' x', ']', '='])).map(([b, g, tail]) => `${b}[${g}]${tail}`) },
  { weight: 8, arbitrary: fc.tuple(blanks, keyName, blanks, pick(['=', '=', '=', '==', ' = ']), blanks, value).map((p) => p.join('')) },
  { weight: 2, arbitrary: fc.tuple(blanks, pick(['#', ';', '# enabled = signed', '; enabled = signed', '#[x'])).map(([b, c]) => b + c) },
  { weight: 1, arbitrary: blanks },
  { weight: 1, arbitrary: fc.tuple(blanks, word(['a', '=', '[', ']', ' ', '#', 'é'], 4)).map(([b, w]) => b + w) },
  { weight: 1, arbitrary: pick(['Encoding=UTF-8', 'Encoding = utf-8', 'Encoding=latin1', 'Encoding=UTF-8 ', 'Encoding[de]=x']) },
);
const ending = pick(['\n', '\n', '\n', '\n', '\n', '\r\n', '\r\n', '\r\n', '\r', '\r\r\n']);

/** A whole file: an optional BOM, lines with their endings, the last one maybe unterminated. */
export const keyFileTextArb = fc
  .tuple(
    fc.oneof({ weight: 9, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constant('\ufeff') }),
    fc.oneof({ weight: 4, arbitrary: fc.constant('[composefs]\n') }, { weight: 1, arbitrary: fc.constant('') }),
    fc.array(fc.tuple(line, ending), { maxLength: 8 }),
    fc.boolean(),
  )
  .map(([bom, head, lines, terminated]) => {
    let text = bom + head + lines.map(([l, e]) => l + e).join('');
    if (!terminated && lines.length > 0) text = text.slice(0, text.length - lines[lines.length - 1]![1].length);
    return text;
  });

export interface KeyFileDifferentialResult {
  cases: number;
  failures: string[];
  /** How many files both loaded / both refused (both must be well above zero for agreement to mean anything). */
  bothLoaded: number;
  bothRefused: number;
  /** Values both read where get_string fails (an escape GLib refuses). */
  badEscapes: number;
}

/** Generate `n` files with `seed` and compare src/ostree/keyfile.ts with GLib on each. */
export function keyFileDifferential(n: number, seed: number): KeyFileDifferentialResult {
  const texts = fc.sample(keyFileTextArb, { numRuns: n, seed });
  const answers = glibKeyFiles(texts);

  const failures: string[] = [];
  let bothLoaded = 0;
  let bothRefused = 0;
  let badEscapes = 0;
  texts.forEach((text, i) => {
    const glib = answers[i]!;
    const mine = oursKeyFile(text);
    const where = JSON.stringify(text);
    if ('error' in glib) {
      if (typeof mine === 'string') bothRefused++;
      else failures.push(`${where}: GLib refuses (${glib.error}), we load it`);
      return;
    }
    if (typeof mine === 'string') {
      failures.push(`${where}: GLib loads it, we refuse (${mine})`);
      return;
    }
    const a = JSON.stringify(mine);
    const b = JSON.stringify(glib.groups);
    if (a !== b) failures.push(`${where}: we read ${a}, GLib ${b}`);
    else {
      bothLoaded++;
      for (const [, keys] of mine) for (const [, , s] of keys) if (s === null) badEscapes++;
    }
  });
  return { cases: texts.length, failures, bothLoaded, bothRefused, badEscapes };
}
