/**
 * src/ostree/keyfile.ts, one case per GKeyFile rule (issue 13 item 8). Each
 * expectation is written out here and also checked against GLib itself
 * (python3-gi GLib.KeyFile, test/fuzz/keyfile-glib.ts), so a wrong
 * expectation fails as surely as a wrong parser. The generated-file
 * agreement check (a few hundred files here, `make fuzz` more) is at the end.
 */
import test from 'ava';
import { CfsError } from '../src/errors.js';
import { decodeKeyFileString, parseKeyFile } from '../src/ostree/keyfile.js';
import { glibKeyFiles, keyFileDifferential, oursKeyFile } from './fuzz/keyfile-glib.js';

/** group -> key -> raw value, or a refusal: [text its message holds, the line it names]. */
type Expect = Record<string, Record<string, string>> | readonly [error: string, line: number];

const RULES: [string, string, Expect][] = [
  // Line endings
  ['LF lines', '[a]\nk=v\n', { a: { k: 'v' } }],
  ['CRLF: one \\r before \\n is dropped', '[a]\r\nk=v\r\n', { a: { k: 'v' } }],
  ['only one \\r is dropped', '[a]\nk=v\r\r\n', { a: { k: 'v\r' } }],
  ['a \\r on the unterminated last line is kept', '[a]\nk=v\r', { a: { k: 'v\r' } }],
  ['a lone \\r does not end a line', '[a]\rk=v\r\n', ['before any [group]', 1]],
  ['no final newline', '[a]\nk=v', { a: { k: 'v' } }],
  ['empty file', '', {}],
  // Comments and blanks
  ['# comment, indented # comment, blank lines', '# c\n\n  # d\n[a]\n\t#k=v\n\nk=v\n', { a: { k: 'v' } }],
  ['; is not a comment: a line without = is an error', '[a]\n; note\n', ['"; note" is not a [group] header', 2]],
  ['; with = is a key', '[a]\n; k = v\n', { a: { '; k': 'v' } }],
  ['a # after a value is part of it', '[a]\nk = v # not a comment\n', { a: { k: 'v # not a comment' } }],
  ['a ; after a value is part of it', '[a]\nenabled = no ; signed\n', { a: { enabled: 'no ; signed' } }],
  ['form feed and \\r are blanks at line start', '\f[a]\n\rk=v\n', { a: { k: 'v' } }],
  ['vertical tab is not a blank', '[a]\n\vk=v\n', { a: { '\vk': 'v' } }],
  ['a vertical tab alone is not a blank line', '[a]\n\v\n', ['is not a [group] header', 2]],
  // Groups
  ['spaces and tabs after ] are allowed', '[a] \t\n', { a: {} }],
  ['other text after ] is not', '[a] # c\n', ['is not a [group] header', 1]],
  ['a form feed after ] is not', '[a]\f\n', ['is not a [group] header', 1]],
  ['spaces inside [ ] are part of the name', '[ a ]\nk=v\n', { ' a ': { k: 'v' } }],
  ['an empty group name', '[]\n', ['invalid group name ""', 1]],
  ['[ in a group name', '[a[b]\n', ['invalid group name "a[b"', 1]],
  ['a control character in a group name', '[a\tb]\n', ['invalid group name', 1]],
  ['DEL in a group name', '[a\x7f]\n', ['invalid group name', 1]],
  ['non-ASCII group name', '[é]\nk=v\n', { 'é': { k: 'v' } }],
  ['= in a group name', '[a=b]\n', { 'a=b': {} }],
  ['a repeated group merges', '[a]\nk=1\n[b]\nj=2\n[a]\nl=3\n', { a: { k: '1', l: '3' }, b: { j: '2' } }],
  ['text before the first group', 'k=v\n[a]\n', ['before any [group]', 1]],
  ['a comment before the first group', '# c\n[a]\n', { a: {} }],
  // Keys
  ['blanks around = go', '[a]\n  k \t=\t v\n', { a: { k: 'v' } }],
  ['inner spaces in a key', '[a]\na b = v\n', { a: { 'a b': 'v' } }],
  ['a line starting with = is an error', '[a]\n=v\n', ['"=v" is not a [group] header', 2]],
  ['a line without = is an error', '[a]\nenabled\n', ['"enabled" is not a [group] header', 2]],
  ['the first = splits', '[a]\nk==v\n', { a: { k: '=v' } }],
  ['a repeated key: the last wins', '[a]\nk=1\nk=2\n', { a: { k: '2' } }],
  ['key[locale]', '[a]\nk[de_DE.UTF-8@euro]=v\nk[de]=w\n', { a: { 'k[de_DE.UTF-8@euro]': 'v', 'k[de]': 'w' } }],
  ['key[] is a key', '[a]\nk[]=v\n', { a: { 'k[]': 'v' } }],
  ['a non-ASCII letter in a locale', '[a]\nk[é]=v\n', { a: { 'k[é]': 'v' } }],
  ['a space in a locale', '[a]\nk[d e]=v\n', ['invalid key name "k[d e]"', 2]],
  ['a space before [locale]', '[a]\nk [de]=v\n', ['invalid key name "k [de]"', 2]],
  ['a tab before [locale] is allowed', '[a]\nk\t[de]=v\n', { a: { 'k\t[de]': 'v' } }],
  ['text after [locale]', '[a]\nk[de]x=v\n', ['invalid key name "k[de]x"', 2]],
  ['] in a key', '[a]\nk]=v\n', ['invalid key name "k]"', 2]],
  ['a key starting with [', '[a]\n[x]=v\n', ['invalid key name "[x]"', 2]],
  ['a control character in a key', '[a]\nk\x01=v\n', { a: { 'k\x01': 'v' } }],
  // Values
  ['trailing blanks are kept', '[a]\nk = v \t\n', { a: { k: 'v \t' } }],
  ['quotes are kept', '[a]\nenabled = "signed"\n', { a: { enabled: '"signed"' } }],
  ['escapes are kept raw (get_value)', '[a]\nk = \\s\\n\\\\\n', { a: { k: '\\s\\n\\\\' } }],
  ['an empty value', '[a]\nk =\n', { a: { k: '' } }],
  // Encoding, BOM
  ['Encoding=UTF-8 in the first group, any case', '[a]\nEncoding = utf-8\n', { a: { Encoding: 'utf-8' } }],
  ['Encoding other than UTF-8 in the first group', '[a]\nEncoding=latin1\n', ['Encoding = "latin1"', 2]],
  ['Encoding with a trailing blank', '[a]\nEncoding=UTF-8 \n', ['Encoding = "UTF-8 "', 2]],
  ['Encoding in a later group is a plain key', '[a]\n[b]\nEncoding=latin1\n', { a: {}, b: { Encoding: 'latin1' } }],
  ['a byte-order mark', '\ufeff[a]\nk=v\n', ['byte-order mark', 1]],
  ['a byte-order mark on an empty first line', '\ufeff\n[a]\n', ['byte-order mark', 1]],
];

function parsed(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [g, keys] of parseKeyFile(text, 'f.conf')) out[g] = Object.fromEntries([...keys].map(([k, e]) => [k, e.value]));
  return out;
}

const glib = glibKeyFiles(RULES.map(([, text]) => text));

RULES.forEach(([name, text, expected], i) => {
  test(`keyfile rule: ${name}`, (t) => {
    const g = glib[i]!;
    if (Array.isArray(expected)) {
      const [error, line] = expected as readonly [string, number];
      t.true('error' in g, `GLib loads ${JSON.stringify(text)}, the expectation says it refuses`);
      const e = t.throws(() => parseKeyFile(text, 'f.conf'));
      t.true(e instanceof CfsError && e.code === 'ECONFIG', String(e));
      t.true(e!.message.startsWith(`f.conf: line ${line}: `), e!.message);
      t.true(e!.message.includes(error), e!.message);
      t.false(e!.message.includes('\n'), 'one line');
    } else {
      t.false('error' in g, `GLib refuses ${JSON.stringify(text)}: ${'error' in g ? g.error : ''}`);
      if (!('error' in g)) t.deepEqual(Object.fromEntries(g.groups.map(([n, keys]) => [n, Object.fromEntries(keys.map(([k, v]) => [k, v]))])), expected, 'GLib');
      t.deepEqual(parsed(text), expected, 'src/ostree/keyfile.ts');
    }
  });
});

test('keyfile: each entry records the line of its last value', (t) => {
  const g = parseKeyFile('# x\n[a]\nk=1\n\nk=2\n[b]\n[a]\nj=3\n', 'f');
  t.deepEqual([...g.get('a')!].map(([k, e]) => [k, e.line]), [['k', 5], ['j', 8]]);
});

// g_key_file_get_string: expectations written out, then the same values through GLib.
const STRINGS: [string, string | null][] = [
  ['plain', 'plain'],
  ['\\s lead', '  lead'],
  ['a\\nb\\tc\\rd', 'a\nb\tc\rd'],
  ['back\\\\slash', 'back\\slash'],
  ['\\\\s', '\\s'],
  ['trailing\\', null],
  ['\\;', null],
  ['\\q', null],
  ['\\é', null],
  ['\\"quoted\\"', null],
];

test('decodeKeyFileString: g_key_file_get_string escapes, checked against GLib', (t) => {
  const answers = glibKeyFiles(STRINGS.map(([raw]) => `[a]\nk=${raw}\n`));
  STRINGS.forEach(([raw, expected], i) => {
    const a = answers[i]!;
    t.false('error' in a, raw);
    if (!('error' in a)) t.is(a.groups[0]![1][0]![2], expected, `GLib on ${JSON.stringify(raw)}`);
    const d = decodeKeyFileString(raw);
    t.is('value' in d ? d.value : null, expected, `ours on ${JSON.stringify(raw)}`);
    if (!('value' in d)) t.regex(d.error, /escape/);
  });
});

test('oursKeyFile and GLib answer in the same shape (the comparison can fail)', (t) => {
  const [g] = glibKeyFiles(['[a]\nk=v \n']);
  t.deepEqual(oursKeyFile('[a]\nk=v \n'), (g as { groups: unknown }).groups);
  t.notDeepEqual(oursKeyFile('[a]\nk=v\n'), (g as { groups: unknown }).groups);
});

test('keyfile vs GLib: 500 generated files agree on load/refuse, groups, keys, get_value and get_string', (t) => {
  const r = keyFileDifferential(500, 20261201);
  t.is(r.cases, 500);
  t.deepEqual(r.failures.slice(0, 5), [], `${r.failures.length} disagreements`);
  // Both verdicts, and refused escapes, occur often enough that agreement is not vacuous.
  t.true(r.bothLoaded > 100, `both loaded: ${r.bothLoaded}`);
  t.true(r.bothRefused > 100, `both refused: ${r.bothRefused}`);
  t.true(r.badEscapes > 5, `values whose get_string fails: ${r.badEscapes}`);
});
