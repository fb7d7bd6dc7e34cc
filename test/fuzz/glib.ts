/**
 * Differential GVariant check against GLib (python3-gi), the reference
 * implementation (SPEC §2 "GVariant serialisation"): for generated values
 * and for mutated encodings of them, src/ostree/gvariant.ts and GLib must agree on
 * what is normal form.
 *
 *  - Everything we encode, GLib must call normal form, and GLib's normal
 *    form of it must be our bytes.
 *  - Bytes our reader accepts, GLib must call normal form (we never accept
 *    what the reference would not).
 *  - Bytes our reader refuses, GLib must call not normal form, except for
 *    cfsroot's deliberate extra refusals: duplicate dictionary keys, nesting
 *    deeper than MAX_DEPTH, and a 0-byte tuple, at any depth, whose members
 *    could all be empty (make fuzz found one nested: '((x(mvahah)))'). GLib (2.74, measured) calls both `` and `00` normal form
 *    for `(ayay)` ([], []) and itself writes `00`; cfsroot accepts only
 *    the bytes GLib writes, so a value has exactly one encoding.
 *
 * One python process checks a whole batch (one JSON line per case), so
 * thousands of cases cost about a second.
 */

import fc from 'fast-check';
import { spawnSync } from 'node:child_process';
import { CfsError } from '../../src/errors.js';
import { decode, encode } from '../../src/ostree/gvariant.js';
import { mutate, mutationArb, typedValueArb } from './arbitraries.js';

const PYTHON = `
import sys, json
from gi.repository import GLib
for line in sys.stdin:
    c = json.loads(line)
    v = GLib.Variant.new_from_bytes(GLib.VariantType.new(c['type']), GLib.Bytes.new(bytes.fromhex(c['hex'])), False)
    normal = v.is_normal_form()
    nf = bytes(v.get_normal_form().get_data_as_bytes().get_data()).hex() if normal else ''
    sys.stdout.write(json.dumps([normal, nf]) + '\\n')
`;

interface Case {
  type: string;
  bytes: Uint8Array;
  /** Our encoder produced these bytes (not mutated). */
  encoded: boolean;
}

export interface DifferentialResult {
  cases: number;
  /** Descriptions of disagreements (empty when all agree). */
  failures: string[];
  /** Mutated cases both sides accepted / both refused (both must be well above zero for the check to mean anything). */
  bothAccepted: number;
  bothRefused: number;
}

/** Generate `n` cases (a third unmutated, the rest mutated) with `seed`, and compare verdicts with GLib. */
export function glibDifferential(n: number, seed: number): DifferentialResult {
  const opts = { doubles: false, maybes: true };
  const arb = fc.tuple(typedValueArb(opts), fc.array(mutationArb, { minLength: 0, maxLength: 3 }));
  const cases: Case[] = fc.sample(arb, { numRuns: n, seed }).map(([{ type, value }, muts], i) => {
    const bytes = encode(type, value);
    // Every third case unmutated, so the encoder is compared too.
    return i % 3 === 0 || muts.length === 0 ? { type, bytes, encoded: true } : { type, bytes: mutate(bytes, muts), encoded: false };
  });
  const input = cases.map((c) => JSON.stringify({ type: c.type, hex: Buffer.from(c.bytes).toString('hex') })).join('\n') + '\n';
  const r = spawnSync('/usr/bin/python3', ['-c', PYTHON], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`python3-gi failed (${r.status}): ${r.stderr}`);
  const verdicts = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as [boolean, string]);
  if (verdicts.length !== cases.length) throw new Error(`python3-gi answered ${verdicts.length} of ${cases.length} cases`);

  const failures: string[] = [];
  let bothAccepted = 0;
  let bothRefused = 0;
  cases.forEach((c, i) => {
    const [glibNormal, glibBytes] = verdicts[i]!;
    const hex = Buffer.from(c.bytes).toString('hex');
    let ours: 'accepted' | string;
    try {
      decode(c.type, c.bytes);
      ours = 'accepted';
    } catch (e) {
      if (!(e instanceof CfsError)) {
        failures.push(`'${c.type}' ${hex}: decode threw a non-CfsError: ${String(e)}`);
        return;
      }
      ours = `${e.code}: ${e.message}`;
    }
    const where = `'${c.type}' ${hex}`;
    if (c.encoded && !glibNormal) failures.push(`${where}: our encoding is not normal form for GLib`);
    else if (c.encoded && glibBytes !== hex) failures.push(`${where}: GLib's normal form is ${glibBytes}`);
    else if (ours === 'accepted' && !glibNormal) failures.push(`${where}: we accept bytes GLib says are not normal form`);
    else if (ours !== 'accepted' && glibNormal && !/duplicate dictionary key|nests deeper|: 0 bytes cannot hold \d+ framing offset/.test(ours)) {
      failures.push(`${where}: we refuse normal-form bytes (${ours})`);
    } else if (!c.encoded) {
      if (ours === 'accepted') bothAccepted++;
      else if (!glibNormal) bothRefused++;
    }
  });
  return { cases: cases.length, failures, bothAccepted, bothRefused };
}
