/**
 * Every combination of `[composefs] enabled`, `ostree.prepare-root.composefs=`
 * and `ot-composefs=` (src/ostree/composefs-mode.ts; issue 13 item 7: a pin is never
 * dropped without a refusal). Two tables written from the rule in README
 * "Modes", not from the code:
 *  - KARGS: what the two kargs together ask for, or a refusal;
 *  - OVER_CONFIG: what that asks for over each config value, or a refusal.
 * The test runs all 6 x 5 x 6 = 180 combinations through resolveBootConfig;
 * refusals must name both sides, values included.
 */
import test from 'ava';
import { CfsError } from '../src/errors.js';
import { parseKernelCmdline } from '../src/cmdline.js';
import { resolveBootConfig } from '../src/ostree/config.js';
import type { BootConfig, PrepareRootConf, Tristate } from '../src/ostree/model.js';

const HEX = '0123456789abcdef'.repeat(4);
const CONF = '/etc/ostree/prepare-root.conf';

const CONFIGS = [null, 'no', 'maybe', 'yes', 'verity', 'signed'] as const;
const P = [null, 'no', 'maybe', 'yes', 'signed'] as const;
const O = [null, 'off', 'maybe', 'on', 'signed', `digest=${HEX}`] as const;

/** What the kargs ask for: none, a mode, a pin, or both pins. */
type Kargs = 'none' | 'no' | 'maybe' | 'yes' | 'signed' | 'digest' | 'signed+digest';
const X = 'refused' as const;

// Rows: ostree.prepare-root.composefs (absent, no, maybe, yes, signed).
// Columns: ot-composefs (absent, off, maybe, on, signed, digest=).
const KARGS: Record<string, readonly (Kargs | typeof X)[]> = {
  absent: ['none', 'no', 'maybe', 'yes', 'signed', 'digest'],
  no: ['no', 'no', X, X, X, X],
  maybe: ['maybe', X, 'maybe', X, X, X],
  yes: ['yes', X, X, 'yes', X, X],
  signed: ['signed', X, X, X, 'signed', 'signed+digest'],
};

/** [composefs, verity, signed, digest] */
type Mode = readonly [Tristate, boolean, boolean, boolean];
const NO: Mode = ['no', false, false, false];
const MAYBE: Mode = ['maybe', false, false, false];
const YES: Mode = ['yes', false, false, false];
const VERITY: Mode = ['yes', true, false, false];
const SIGNED: Mode = ['yes', true, true, false];
const DIGEST: Mode = ['yes', true, false, true];
const BOTH: Mode = ['yes', true, true, true];

// Rows: the config's enabled. Columns: the kargs' ask, in the order of KARG_ORDER.
const KARG_ORDER: readonly Kargs[] = ['none', 'no', 'maybe', 'yes', 'signed', 'digest', 'signed+digest'];
const OVER_CONFIG: Record<string, readonly (Mode | typeof X)[]> = {
  absent: [NO, NO, MAYBE, YES, SIGNED, DIGEST, BOTH],
  no: [NO, NO, MAYBE, YES, SIGNED, DIGEST, BOTH],
  maybe: [MAYBE, NO, MAYBE, YES, SIGNED, DIGEST, BOTH],
  yes: [YES, NO, MAYBE, YES, SIGNED, DIGEST, BOTH],
  // The config's verity stays under a karg, unless composefs ends up off (as in ostree).
  verity: [VERITY, NO, ['maybe', true, false, false], VERITY, SIGNED, DIGEST, BOTH],
  // A karg without a pin cannot replace the config's signature; a digest adds to it.
  signed: [SIGNED, X, X, X, SIGNED, BOTH, BOTH],
};

function resolve(enabled: string | null, cmdline: string): BootConfig {
  const conf: PrepareRootConf = enabled === null
    ? { path: null, sections: {} }
    : { path: CONF, sections: { composefs: { enabled } }, lines: { composefs: { enabled: 2 } } };
  return resolveBootConfig(parseKernelCmdline(`ostree=/x ${cmdline}`), conf, '/nonexistent-sysroot');
}

let combinations = 0;
for (const enabled of CONFIGS) {
  for (const p of P) {
    for (const [oi, o] of O.entries()) {
      combinations++;
      const kargs = [p && `ostree.prepare-root.composefs=${p}`, o && `ot-composefs=${o}`].filter((k) => k) as string[];
      const name = `enabled=${enabled ?? '(unset)'} ${kargs.join(' ') || '(no composefs karg)'}`;
      const ask = KARGS[p ?? 'absent']![oi]!;
      const expected = ask === X ? X : OVER_CONFIG[enabled ?? 'absent']![KARG_ORDER.indexOf(ask)]!;
      test(`mode: ${name} -> ${expected === X ? 'refused' : expected.join(' ')}`, (t) => {
        if (expected === X) {
          const e = t.throws(() => resolve(enabled, kargs.join(' ')));
          t.true(e instanceof CfsError, String(e));
          t.is((e as CfsError).code, 'ECMDLINE');
          // One message naming both sides, with their values.
          for (const k of kargs) t.true(e!.message.includes(k), `${e!.message} lacks ${k}`);
          if (ask !== X) t.true(e!.message.includes(`[composefs] enabled = ${enabled} (${CONF} line 2)`), e!.message);
          t.false(e!.message.includes('\n'));
          return;
        }
        const c = resolve(enabled, kargs.join(' '));
        t.deepEqual([c.composefs, c.composefsVerity, c.composefsSigned, c.composefsDigest !== null], [...expected]);
        if (c.composefsDigest !== null) t.is(c.composefsDigest, HEX);
        // Where each requirement came from is recorded ('none' when nobody asked).
        t.is(c.sources.composefsSigned === 'none', !c.composefsSigned);
        t.is(c.sources.composefsDigest === 'none', c.composefsDigest === null);
      });
    }
  }
}

test('the tables cover 6 configs x 5 x 6 kargs', (t) => {
  t.is(combinations, 180);
});

// Synonyms mean what their word means, in both kargs and the config.
for (const [a, b] of [
  ['ostree.prepare-root.composefs=true', 'ostree.prepare-root.composefs=yes'],
  ['ostree.prepare-root.composefs=1', 'ostree.prepare-root.composefs=yes'],
  ['ostree.prepare-root.composefs=false', 'ostree.prepare-root.composefs=no'],
  ['ostree.prepare-root.composefs=0', 'ostree.prepare-root.composefs=no'],
  ['ostree.prepare-root.composefs=SIGNED', 'ostree.prepare-root.composefs=signed'],
  ['ot-composefs=ON', 'ot-composefs=on'],
  [`ot-composefs=digest=${HEX.toUpperCase()}`, `ot-composefs=digest=${HEX}`],
] as const) {
  test(`mode: ${a} means ${b}, alone, with the other karg and over each config`, (t) => {
    for (const enabled of CONFIGS) {
      for (const extra of ['', ...O.filter((o) => o).map((o) => `ot-composefs=${o}`), ...P.filter((p) => p).map((p) => `ostree.prepare-root.composefs=${p}`)]) {
        if (extra.split('=')[0] === a.split('=')[0]) continue;
        const run = (k: string) => {
          try {
            const c = resolve(enabled, `${k} ${extra}`);
            return [c.composefs, c.composefsVerity, c.composefsSigned, c.composefsDigest];
          } catch (e) {
            return (e as CfsError).code;
          }
        };
        t.deepEqual(run(a), run(b), `${enabled} ${extra}`);
      }
    }
  });
}

test('mode: a composefs karg repeated with different values is refused naming both; the same value twice is fine', (t) => {
  for (const cmd of [
    `ot-composefs=off ot-composefs=digest=${HEX}`,
    `ot-composefs=digest=${HEX} ot-composefs=off`,
    'ostree.prepare-root.composefs=yes ostree.prepare-root.composefs=signed',
    'ot-composefs=signed ot-composefs',
  ]) {
    const e = t.throws(() => resolve(null, cmd));
    t.is((e as CfsError).code, 'ECMDLINE', cmd);
    for (const k of cmd.split(' ')) t.true(e!.message.includes(k), `${e!.message} lacks ${k}`);
  }
  t.is(resolve(null, `ot-composefs=digest=${HEX} ot-composefs=digest=${HEX}`).composefsDigest, HEX);
  t.true(resolve('signed', 'ostree.prepare-root.composefs=signed ostree.prepare-root.composefs=signed').composefsSigned);
});

test('mode: a malformed karg is refused even when the other karg is valid (nothing is ignored)', (t) => {
  for (const cmd of ['ot-composefs=bogus ostree.prepare-root.composefs=no', 'ostree.prepare-root.composefs=bogus ot-composefs=off']) {
    const e = t.throws(() => resolve(null, cmd));
    t.is((e as CfsError).code, 'ECMDLINE');
    t.regex(e!.message, /bogus/);
  }
});

test('mode: the issue example, yes + digest=, is refused with both kargs named', (t) => {
  const e = t.throws(() => resolve(null, `ostree.prepare-root.composefs=yes ot-composefs=digest=${HEX}`));
  t.is(
    e!.message,
    `kernel command line: ostree.prepare-root.composefs=yes and ot-composefs=digest=${HEX} conflict: ` +
      `ostree.prepare-root.composefs=yes would drop the image digest that ot-composefs=digest=${HEX} asks for; ` +
      'expected one of them, or both meaning the same',
  );
});
