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
import { checkMemory, runMemoryProperty } from './memory.js';
import { hostile } from './hostile-shapes.js';

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

// The memory-per-byte property (test/fuzz/memory.ts) runs in a process of its own; a few dozen cases here.
test('fuzz seed: memory kept per input byte by the GVariant readers', (t) => {
  const r = runMemoryProperty(40, SEED);
  t.false(r.failed, `${r.message}\ncounterexample: ${r.counterexample}`);
  t.is(r.cases, 40);
});

// ... and can fail: held to the boot readers' bound, decode() of an aay of empty arrays is over it.
test('memory property: decode() measured against the boot readers\' bound fails', (t) => {
  t.throws(() => checkMemory(hostile(['aay0', 100_000]), { boot: 16, decode: 16 }), { message: /^decode of aay of 100000 empty arrays \(400000 bytes\) kept \d+ bytes, over 16 x 400000/ });
  t.notThrows(() => checkMemory(hostile(['aay0', 100_000])));
});
