/**
 * Quick seed of the GLib differential check (test/fuzz/glib.ts): a few
 * thousand generated and mutated GVariants, our reader vs python3-gi.
 */
import test from 'ava';
import { glibDifferential } from './glib.js';

test('gvariant: src/ostree/gvariant.ts and GLib agree on normal form (generated and mutated values)', (t) => {
  const r = glibDifferential(3000, 20261123);
  t.is(r.cases, 3000);
  t.deepEqual(r.failures.slice(0, 5), [], `${r.failures.length} disagreements`);
  // Both verdicts occur often, so agreement is not vacuous.
  t.true(r.bothAccepted > 100, `mutated cases both accepted: ${r.bothAccepted}`);
  t.true(r.bothRefused > 100, `mutated cases both refused: ${r.bothRefused}`);
});
