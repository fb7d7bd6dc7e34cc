/**
 * The quick fuzz seed that `make check` runs (issue 6): every target of
 * test/fuzz/targets.ts with a few hundred cases and a fixed seed, so the
 * run is reproducible and takes a few seconds. `make fuzz` runs the same
 * properties with >= 1,000,000 cases and a fresh seed.
 */
import test from 'ava';
import fc from 'fast-check';
import { makeFuzzEnv, refusalOrValue, type FuzzEnv } from './targets.js';
import { CfsError } from '../../src/errors.js';

const SEED = 20261123;
const RUNS = 150;

// Created at load time: ava needs the test list synchronously, one test per
// target, from the same list `make fuzz` uses.
const env: FuzzEnv = makeFuzzEnv();
test.after.always(() => env.cleanup());

for (const target of env.targets) {
  test(`fuzz seed: ${target.name}`, (t) => {
    const r = fc.check(target.property, { numRuns: RUNS, seed: SEED });
    t.false(r.failed, r.failed ? `${r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)}\ncounterexample: ${fc.stringify(r.counterexample)}` : '');
    t.is(r.numRuns, RUNS);
  });
}

// The harness itself must be able to fail: a raw TypeError, a wrong code and a two-line message are all caught.
test('fuzz harness: refuses non-CfsError exceptions, unexpected codes and empty messages', (t) => {
  t.throws(() => refusalOrValue(['EGVARIANT'], () => { throw new TypeError('boom'); }), { message: /not a CfsError: TypeError: boom/ });
  t.throws(() => refusalOrValue(['EGVARIANT'], () => { throw new CfsError('EIO', 'x'); }), { message: /unexpected code EIO/ });
  t.throws(() => refusalOrValue(['EIO'], () => { throw new CfsError('EIO', '   '); }), { message: /empty error message/ });
  t.is(refusalOrValue(['EIO'], () => { throw new CfsError('EIO', 'name from disk: a\nb'); }), null, 'printed escaped, so still one line');
  t.is(refusalOrValue(['EIO'], () => { throw new CfsError('EIO', 'one line'); }), null);
  t.is(refusalOrValue(['EIO'], () => 42), 42);
});
