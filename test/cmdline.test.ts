/**
 * Kernel command line parsing (src/cmdline.ts, SPEC §1): whitespace,
 * quoting, first-wins, bare keys and empty values, plus properties checked
 * against a tiny independent model.
 */
import test from 'ava';
import fc from 'fast-check';
import { formatKarg, parseKernelCmdline, splitKernelCmdline } from '../src/cmdline.js';

const obj = (m: ReadonlyMap<string, string | null>) => Object.fromEntries(m);

test('splits on spaces, tabs, newlines; /proc/cmdline trailing newline', (t) => {
  const m = parseKernelCmdline('BOOT_IMAGE=/vmlinuz  root=UUID=1234\tro\nquiet\n');
  t.deepEqual(obj(m), { BOOT_IMAGE: '/vmlinuz', root: 'UUID=1234', ro: null, quiet: null });
});

test('every kernel whitespace character separates arguments', (t) => {
  t.deepEqual(splitKernelCmdline('a\vb\fc\rd e\tf\ng'), ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
});

test('empty and blank input give no arguments', (t) => {
  t.is(parseKernelCmdline('').size, 0);
  t.is(parseKernelCmdline(' \n\t ').size, 0);
});

test('value splits at the first = only', (t) => {
  const m = parseKernelCmdline('ot-composefs=digest=ABC rd.x==y');
  t.is(m.get('ot-composefs'), 'digest=ABC');
  t.is(m.get('rd.x'), '=y');
});

test('bare key is null, key= is the empty string', (t) => {
  const m = parseKernelCmdline('rw systemd.volatile ostree=');
  t.is(m.get('rw'), null);
  t.is(m.get('systemd.volatile'), null);
  t.is(m.get('ostree'), '');
  t.true(m.has('ostree'));
  t.false(m.has('absent'));
});

test('quoted value keeps its spaces and loses its quotes', (t) => {
  const m = parseKernelCmdline('a=1 key="x  y\tz" b=2');
  t.is(m.get('key'), 'x  y\tz');
  t.is(m.get('a'), '1');
  t.is(m.get('b'), '2');
});

test('quote around the whole argument works too', (t) => {
  const m = parseKernelCmdline('"dyndbg=file foo.c +p" next');
  t.is(m.get('dyndbg'), 'file foo.c +p');
  t.is(m.get('next'), null);
});

test('empty quoted value is the empty string', (t) => {
  const m = parseKernelCmdline('key="" other');
  t.is(m.get('key'), '');
  t.is(m.get('other'), null);
});

test('unterminated quote runs to the end of the line', (t) => {
  const m = parseKernelCmdline('a=1 key="x y z=3\n');
  t.deepEqual(obj(m), { a: '1', key: 'x y z=3\n' });
});

test('first occurrence of a key wins (also over a later bare key)', (t) => {
  const m = parseKernelCmdline('ostree=/first ostree=/second quiet=1 quiet ostree');
  t.is(m.get('ostree'), '/first');
  t.is(m.get('quiet'), '1');
  const m2 = parseKernelCmdline('flag flag=1');
  t.is(m2.get('flag'), null);
});

test('an argument with no key is ignored', (t) => {
  const m = parseKernelCmdline('=x "" a');
  t.deepEqual(obj(m), { a: null });
});

test('formatKarg renders bare and valued arguments', (t) => {
  t.is(formatKarg('rw', null), 'rw');
  t.is(formatKarg('ostree', ''), 'ostree=');
  t.is(formatKarg('a', 'b=c'), 'a=b=c');
});

// Tokens without whitespace or quotes; the model below knows nothing of the parser.
const plainToken = fc.stringMatching(/^[a-z._-]{1,6}(=[A-Za-z0-9=/_.-]{0,6})?$/);
const whitespace = fc.stringMatching(/^[ \t\n]{1,3}$/);

test('property: first-wins map matches an independent model', (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(plainToken, whitespace), { maxLength: 12 }), (parts) => {
      const text = parts.map(([tok, ws]) => tok + ws).join('');
      const expected = new Map<string, string | null>();
      for (const [tok] of parts) {
        const i = tok.indexOf('=');
        const k = i < 0 ? tok : tok.slice(0, i);
        if (!expected.has(k)) expected.set(k, i < 0 ? null : tok.slice(i + 1));
      }
      t.deepEqual(obj(parseKernelCmdline(text)), Object.fromEntries(expected));
    }),
  );
});

test('property: a quoted value round-trips any text without quotes', (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 20 }).filter((s) => !s.includes('"')), (v) => {
      t.is(parseKernelCmdline(`x=1 key="${v}" y`).get('key'), v);
    }),
  );
});

test('property: never throws on arbitrary input', (t) => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      parseKernelCmdline(s);
    }),
  );
  t.pass();
});

test('all() keeps every value of a repeated key in order; get() stays the first', (t) => {
  const m = parseKernelCmdline('ot-composefs=off quiet ot-composefs=digest=ab ot-composefs');
  t.is(m.get('ot-composefs'), 'off');
  t.deepEqual(m.all('ot-composefs'), ['off', 'digest=ab', null]);
  t.deepEqual(m.all('quiet'), [null]);
  t.deepEqual(m.all('absent'), []);
  t.is(m.size, 2);
});

// The splitter as the comment at the top of src/cmdline.ts states it, one
// code point at a time: the reference for the sliced version the boot runs.
function splitByCharacter(text: string): string[] {
  const args: string[] = [];
  let current = '';
  let started = false;
  let inQuote = false;
  for (const c of text) {
    if (c === '"') {
      inQuote = !inQuote;
      started = true;
    } else if (!inQuote && ' \t\n\r\v\f'.includes(c)) {
      if (started) args.push(current);
      current = '';
      started = false;
    } else {
      current += c;
      started = true;
    }
  }
  if (started) args.push(current);
  return args;
}

test('property: the splitter agrees with a character-by-character model on quotes, every kernel space, and other text', (t) => {
  // NBSP and U+2028 are spaces to JavaScript, not to the kernel; the emoji is a surrogate pair.
  const piece = fc.constantFrom(' ', '\t', '\n', '\r', '\v', '\f', '"', '""', 'a', 'k=v', '=', '\u00a0', '\u2028', '😀', 'é');
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
      const text = pieces.join('');
      t.deepEqual(splitKernelCmdline(text), splitByCharacter(text), JSON.stringify(text));
    }),
    { numRuns: 3000 },
  );
  t.deepEqual(splitKernelCmdline('a"b c"d "" e'), ['ab cd', '', 'e']);
});
