/**
 * The composefs-native karg grammar (src/composefs-native/kargs.ts, SPEC §6):
 * every accepted form, `?`, several kargs in order, each malformed value,
 * and the refusal beside ostree=.
 */

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { CfsError } from '../src/errors.js';
import { splitKernelCmdline } from '../src/cmdline.js';
import { isNativeKarg, parseNativeKarg, parseNativeKargs, selectsNativeMode } from '../src/composefs-native/kargs.js';

const H64 = 'ab'.repeat(32);
const H128 = 'cd'.repeat(64);

const parse = (cmdline: string) => parseNativeKargs(splitKernelCmdline(cmdline));

function refused(t: ExecutionContext, cmdline: string, ...parts: string[]): void {
  const e = t.throws(() => parse(cmdline));
  t.true(e instanceof CfsError, String(e));
  t.is((e as CfsError).code, 'ECMDLINE');
  for (const p of parts) t.true(e!.message.includes(p), `${JSON.stringify(e!.message)} lacks ${JSON.stringify(p)}`);
}

test('composefs=<64 hex> is a secure sha256 digest', (t) => {
  t.deepEqual(parse(`quiet composefs=${H64} rw`), [{ karg: `composefs=${H64}`, digest: H64, alg: 'sha256', insecure: false }]);
});

test('composefs=<128 hex> is sha512', (t) => {
  t.deepEqual(parse(`composefs=${H128}`), [{ karg: `composefs=${H128}`, digest: H128, alg: 'sha512', insecure: false }]);
});

test('composefs=?<hex> is insecure', (t) => {
  t.deepEqual(parse(`composefs=?${H128}`), [{ karg: `composefs=?${H128}`, digest: H128, alg: 'sha512', insecure: true }]);
  t.true(parse(`composefs=?${H64}`)[0]!.insecure);
});

test('composefs.digest=v1-sha256-12:<hex> and v1-sha512-12:<hex>, secure and insecure', (t) => {
  t.deepEqual(parse(`composefs.digest=v1-sha256-12:${H64}`)[0], {
    karg: `composefs.digest=v1-sha256-12:${H64}`, digest: H64, alg: 'sha256', insecure: false,
  });
  t.deepEqual(parse(`composefs.digest=v1-sha512-12:${H128}`)[0], {
    karg: `composefs.digest=v1-sha512-12:${H128}`, digest: H128, alg: 'sha512', insecure: false,
  });
  t.deepEqual(parse(`composefs.digest=?v1-sha512-12:${H128}`)[0], {
    karg: `composefs.digest=?v1-sha512-12:${H128}`, digest: H128, alg: 'sha512', insecure: true,
  });
  t.true(parse(`composefs.digest=?v1-sha256-12:${H64}`)[0]!.insecure);
});

test('a quoted karg is read without its quotes', (t) => {
  t.is(parse(`"composefs=${H64}"`)[0]!.digest, H64);
});

test('several kargs of both forms are kept in command-line order', (t) => {
  const got = parse(`composefs.digest=v1-sha512-12:${H128} x=1 composefs=?${H64} composefs=${'ef'.repeat(64)}`);
  t.deepEqual(got.map((k) => [k.digest.slice(0, 2), k.alg, k.insecure]), [
    ['cd', 'sha512', false],
    ['ab', 'sha256', true],
    ['ef', 'sha512', false],
  ]);
});

test('no composefs karg: nothing, and the mode is not selected', (t) => {
  t.deepEqual(parse('root=/dev/vda ostree=/ostree/boot.1/x/y/0 composefsx=1 mycomposefs=2 composefs.other=3'), []);
  t.false(selectsNativeMode(splitKernelCmdline('ostree=/x composefs.other=1')));
  t.false(isNativeKarg('composefs.digestx=1'));
});

test('a bare composefs or an empty value selects the mode and is malformed', (t) => {
  t.true(selectsNativeMode(['composefs']));
  refused(t, 'composefs', '"composefs"', 'no value', 'composefs=[?]<64 or 128 hex digits>');
  refused(t, 'composefs=', '"composefs="', 'no digest');
  refused(t, 'composefs=?', '"composefs=?"', 'no digest');
  refused(t, 'composefs.digest', '"composefs.digest"', 'no value', 'v1-sha512-12');
  refused(t, 'composefs.digest=?', 'no digest');
});

test('composefs= with a wrong length, non-hex or uppercase hex is malformed, naming it', (t) => {
  refused(t, `composefs=${H64.slice(1)}`, `composefs=${H64.slice(1)}`, '63 hex digits', 'expected 64 (sha256) or 128 (sha512)');
  refused(t, `composefs=${H64}00`, '66 hex digits');
  refused(t, `composefs=${H64.slice(2)}zz`, 'expected a hexadecimal fs-verity digest');
  refused(t, `composefs=${H64.toUpperCase()}`, 'uppercase hex', 'lowercase');
  refused(t, `composefs=??${H64}`, 'expected a hexadecimal');
  refused(t, `composefs= ${H64}`, '"composefs="');
});

test('composefs.digest= with another descriptor, algorithm, block size or length is malformed', (t) => {
  refused(t, `composefs.digest=${H64}`, 'expected composefs.digest=[?]v1-sha256-12');
  refused(t, `composefs.digest=v2-sha512-12:${H128}`, 'v2-sha512-12');
  refused(t, `composefs.digest=v1-sha384-12:${H128}`, 'expected composefs.digest=');
  refused(t, `composefs.digest=v1-sha512-16:${H128}`, 'expected composefs.digest=');
  refused(t, `composefs.digest=v1-sha256-12:${H128}`, 'a sha256 digest of 128 hex digits: expected 64');
  refused(t, `composefs.digest=v1-sha512-12:${H64}`, 'a sha512 digest of 64 hex digits: expected 128');
  refused(t, `composefs.digest=v1-sha512-12:${H128.toUpperCase()}`, 'uppercase');
  refused(t, `composefs.digest=v1-sha512-12${H128}`, 'expected composefs.digest=');
  refused(t, `composefs.digest=?v1-sha512-12:`, 'a sha512 digest of 0 hex digits');
});

test('a malformed karg is fatal even when a valid one comes first or after', (t) => {
  refused(t, `composefs=${H64} composefs=nothex`, '"composefs=nothex"');
  refused(t, `composefs=nothex composefs=${H64}`, '"composefs=nothex"');
});

test('composefs kargs beside ostree= are refused, naming both', (t) => {
  refused(t, `ostree=/ostree/boot.1/os/b/0 composefs=${H64}`, `composefs=${H64} and ostree=/ostree/boot.1/os/b/0 both present`, 'expected one boot mode');
  refused(t, `composefs.digest=v1-sha512-12:${H128} ostree=/x`, `composefs.digest=v1-sha512-12:${H128} and ostree=/x`);
  // Even a malformed composefs karg: the mixed modes are the first thing said.
  refused(t, 'composefs ostree=/x', 'composefs and ostree=/x both present');
});

test('parseNativeKarg alone', (t) => {
  t.is(parseNativeKarg(`composefs=${H64}`).alg, 'sha256');
  t.throws(() => parseNativeKarg('composefs=x'), { instanceOf: CfsError });
});

test('property: any argument either parses into a well-formed karg or is one ECMDLINE line', (t) => {
  const piece = fc.constantFrom('composefs=', 'composefs.digest=', '?', 'v1-sha256-12:', 'v1-sha512-12:', 'a', 'F', '0', ':', '\n', H64, H128.slice(0, 64));
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 6 }).map((p) => 'composefs' + p.join('')), fc.string(), (built, any) => {
      for (const arg of [built, `composefs=${any}`, `composefs.digest=${any}`]) {
        if (!isNativeKarg(arg)) continue;
        try {
          const k = parseNativeKarg(arg);
          if (!/^[0-9a-f]+$/.test(k.digest) || k.digest.length !== (k.alg === 'sha256' ? 64 : 128)) return false;
          if (k.karg !== arg || k.insecure !== arg.slice(arg.indexOf('=') + 1).startsWith('?')) return false;
        } catch (e) {
          if (!(e instanceof CfsError) || e.code !== 'ECMDLINE' || !e.message.includes(JSON.stringify(arg))) return false;
        }
      }
      return true;
    }),
    { numRuns: 2000, seed: 14 },
  );
  t.pass();
});

test('property: a generated valid karg of any form parses back to its digest, algorithm and insecure flag', (t) => {
  const hexOf = (n: number) => fc.uint8Array({ minLength: n / 2, maxLength: n / 2 }).map((b) => Buffer.from(b).toString('hex'));
  fc.assert(
    fc.property(fc.constantFrom('sha256', 'sha512') as fc.Arbitrary<'sha256' | 'sha512'>, fc.boolean(), fc.boolean(), fc.integer(), (alg, insecure, short, seed) => {
      const hex = fc.sample(hexOf(alg === 'sha256' ? 64 : 128), { numRuns: 1, seed })[0]!;
      const q = insecure ? '?' : '';
      const arg = short ? `composefs=${q}${hex}` : `composefs.digest=${q}v1-${alg}-12:${hex}`;
      const [k] = parse(`x ${arg} y`);
      return k !== undefined && k.digest === hex && k.alg === alg && k.insecure === insecure;
    }),
    { numRuns: 500, seed: 14 },
  );
  t.pass();
});
