/**
 * src/text.ts stands in for regular expressions on the boot path: each
 * helper must agree with the expression it names, on every string of a
 * small alphabet up to length 4 and on random strings.
 */
import test from 'ava';
import { asciiLower, isAlnum, isBase64Text, isControlCode, isDigits, isHex, isLowerHex } from '../src/text.js';
import { escapeOverlayPath, parseKernelVersion, replaceOverlayPaths } from '../src/plan/steps.js';

const ALPHABET = ['', '0', '9', 'a', 'f', 'g', 'A', 'F', 'Z', 'z', '.', ':', ',', '\\', '/', '\n', 'é', '٣', '+', '='];
function* strings(max: number): Generator<string> {
  yield '';
  let level = [''];
  for (let n = 1; n <= max; n++) {
    const next: string[] = [];
    for (const s of level) for (const c of ALPHABET.slice(1)) next.push(s + c);
    yield* next;
    level = next;
  }
}
function* random(count: number): Generator<string> {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed);
  for (let i = 0; i < count; i++) {
    let s = '';
    const n = rnd() % 70;
    for (let j = 0; j < n; j++) s += String.fromCharCode(rnd() % 3 === 0 ? rnd() % 0x300 : 0x20 + (rnd() % 0x5f));
    yield s;
  }
}
const all = () => [...strings(4), ...random(2000), 'ab'.repeat(32), 'AB'.repeat(32)];

test('isLowerHex, isHex, isDigits, isAlnum, isBase64Text agree with their expressions', (t) => {
  let n = 0;
  for (const s of all()) {
    n++;
    if (isLowerHex(s) !== /^[0-9a-f]*$/.test(s)) t.fail(`isLowerHex ${JSON.stringify(s)}`);
    if (isLowerHex(s, 64) !== /^[0-9a-f]{64}$/.test(s)) t.fail(`isLowerHex 64 ${JSON.stringify(s)}`);
    if (isHex(s) !== /^[0-9a-fA-F]*$/.test(s)) t.fail(`isHex ${JSON.stringify(s)}`);
    if (isDigits(s) !== /^[0-9]+$/.test(s)) t.fail(`isDigits ${JSON.stringify(s)}`);
    if (isAlnum(s, 6) !== /^[A-Za-z0-9]{6}$/.test(s)) t.fail(`isAlnum 6 ${JSON.stringify(s)}`);
    if (isBase64Text(s) !== /^[A-Za-z0-9+/]*={0,2}$/.test(s)) t.fail(`isBase64Text ${JSON.stringify(s)}`);
    if (asciiLower(s) !== s.replace(/[A-Z]/g, (c) => c.toLowerCase())) t.fail(`asciiLower ${JSON.stringify(s)}`);
  }
  t.true(n > 130_000, `${n} strings`);
});

test('escapeOverlayPath and the lowerdir split agree with the expressions they replaced', (t) => {
  for (const s of all()) {
    if (escapeOverlayPath(s) !== s.replace(/[\\,:]/g, (c) => `\\${c}`)) t.fail(`escape ${JSON.stringify(s)}`);
    // Entries are swapped whole: with a map naming every entry the old split found, both give the same options.
    const entries = s.match(/(?:\\.|[^\\:])+|:/g) ?? [];
    if (entries.join('') !== s) continue; // the old split dropped a lone trailing backslash; the new one keeps it
    const map = new Map(entries.filter((e) => e !== ':').map((e) => [e, `<${e}>`]));
    const want = `lowerdir=${entries.map((e) => (e === ':' ? e : map.get(e)!)).join('')}`;
    const [got] = replaceOverlayPaths([`lowerdir=${s}`], map);
    if (got !== want) t.fail(`lowerdir ${JSON.stringify(s)}: ${got} != ${want}`);
  }
  t.deepEqual(replaceOverlayPaths(['lowerdir=/a\\:b::/c', 'ro'], new Map([['/a\\:b', '/proc/self/fd/3']])), ['lowerdir=/proc/self/fd/3::/c', 'ro']);
  t.pass();
});

test('parseKernelVersion: MAJOR.MINOR at the start, as /^(\\d+)\\.(\\d+)/', (t) => {
  for (const s of [...all(), '6.18.44-fc-v1045', '10.2', '6.', '.6', '6.1x', '06.012']) {
    const m = /^(\d+)\.(\d+)/.exec(s);
    let got: { major: number; minor: number } | null = null;
    try {
      got = parseKernelVersion(s);
    } catch {
      got = null;
    }
    t.deepEqual(got, m ? { major: Number(m[1]), minor: Number(m[2]) } : null, JSON.stringify(s));
  }
});

test('isControlCode agrees with /[\\x00-\\x1f\\x7f]/ on every UTF-16 code unit', (t) => {
  for (let c = 0; c < 0x10000; c++) {
    if (isControlCode(c) !== /[\x00-\x1f\x7f]/.test(String.fromCharCode(c))) t.fail(`code ${c}`);
  }
  t.pass();
});
