/**
 * Fuzz targets for the lazy readers (issue 13 item 1, SPEC §2 "Limits"):
 * they must agree with decode(). validate refuses exactly what decode
 * refuses (except duplicate keys, which only decode looks for below the top
 * level); locateVardict + decodeLocated give decodeVardict's entries;
 * openCommit gives parseCommit's parent and metadata. Inputs: random typed
 * values (mutated), small hostile shapes (mutated), small a{sv}.
 * The memory-per-byte property is test/fuzz/memory.ts.
 */

import fc from 'fast-check';
import { CfsError } from '../../src/errors.js';
import { decode, decodeLocated, decodeVardict, encode, encodeVardict, locateVardict, validate, whole, type GValue } from '../../src/ostree/gvariant.js';
import { encodeCommit, openCommit, parseCommit } from '../../src/ostree/commit.js';
import { canon, commitArb, mutate, mutationArb, typedValueArb } from './arbitraries.js';
import { hostile, hostileArb, type Input } from './hostile-shapes.js';
import { refusalOrValue, type FuzzTarget } from './targets.js';

const CODES = ['EGVARIANT', 'ELIMIT', 'EOBJECT'] as const;

/** Random values of random types, encoded and sometimes mutated, and random bytes as a{sv}. */
const randomArb: fc.Arbitrary<Input> = fc.oneof(
  fc.tuple(typedValueArb({ doubles: false, maybes: true }), fc.array(mutationArb, { maxLength: 2 })).map(([{ type, value }, muts]) => ({
    what: `random '${type}'`,
    type,
    bytes: mutate(encode(type, value), muts),
  })),
  fc.uint8Array({ maxLength: 4096 }).map((bytes) => ({ what: 'random bytes as a{sv}', type: 'a{sv}', bytes })),
);

function assert(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

/** True if `fn` refuses (a CfsError with an allowed code), false if it returns. */
function refuses(fn: () => unknown): boolean {
  let returned = false;
  refusalOrValue(CODES, () => {
    fn();
    returned = true;
  });
  return !returned;
}

const isDuplicateKey = (fn: () => unknown): boolean => {
  try {
    fn();
    return false;
  } catch (e) {
    return e instanceof CfsError && /duplicate dictionary key/.test(e.message);
  }
};

function agreeWithDecode(input: Input): void {
  const decodeRefuses = refuses(() => decode(input.type, input.bytes));
  const validateRefuses = refuses(() => validate(whole(input.type, input.bytes)));
  if (decodeRefuses && !validateRefuses) {
    assert(isDuplicateKey(() => decode(input.type, input.bytes)), `validate accepted ${input.what} that decode refuses`);
  } else {
    assert(decodeRefuses === validateRefuses, `validate refused ${input.what} that decode accepts`);
  }
  if (input.type === 'a{sv}' && !decodeRefuses) {
    const full = decodeVardict(input.bytes);
    const located = locateVardict(whole('a{sv}', input.bytes));
    assert(canon([...full.keys()]) === canon([...located.keys()]), 'locateVardict keys differ from decodeVardict');
    for (const [k, v] of located) {
      const d = full.get(k)!;
      assert(v.type === d.type && canon(decodeLocated(v) as GValue) === canon(d.value), `key ${k}: located value differs`);
    }
  }
}

export function boundsTargets(): FuzzTarget[] {
  return [
    {
      name: 'bounds: validate / locateVardict agree with decode',
      weight: 3,
      property: fc.property(
        fc.oneof(
          randomArb,
          // Small hostile shapes, mutated: the lazy readers must refuse the same framing errors.
          fc.tuple(hostileArb.filter(([, n]) => n < 512), fc.array(mutationArb, { maxLength: 2 })).map(([r, muts]) => {
            const i = hostile(r);
            return { ...i, bytes: mutate(i.bytes, muts) };
          }),
          fc.tuple(fc.array(fc.tuple(fc.string({ maxLength: 4 }), fc.uint8Array({ maxLength: 8 })), { maxLength: 5 }), fc.array(mutationArb, { maxLength: 2 })).map(([entries, muts]) => ({
            what: 'a{sv} of ay values',
            type: 'a{sv}',
            bytes: mutate(encodeVardict(entries.map(([k, v]) => [k, { type: 'ay', value: v }])), muts),
          })),
        ),
        agreeWithDecode,
      ),
    },
    {
      name: 'bounds: openCommit agrees with parseCommit',
      weight: 2,
      property: fc.property(commitArb, fc.array(mutationArb, { maxLength: 2 }), (c, muts) => {
        const bytes = mutate(encodeCommit(c), muts);
        const full = refusalOrValue(CODES, () => parseCommit(bytes, 'fuzz.commit'));
        const view = refusalOrValue(CODES, () => openCommit(bytes, 'fuzz.commit'));
        // openCommit may accept what parseCommit refuses only in what the boot never reads:
        // the related objects' checksum lengths, duplicate keys below the metadata's top level.
        if (full === null) return;
        assert(view !== null, `openCommit refused a commit parseCommit accepts`);
        assert(Buffer.compare(Buffer.from(view.parent), Buffer.from(full.parent)) === 0, 'parent differs');
        assert(canon([...view.metadata.keys()]) === canon([...full.metadata.keys()]), 'metadata keys differ');
        for (const [k, v] of view.metadata) {
          assert(canon(decodeLocated(v) as GValue) === canon(full.metadata.get(k)!.value), `metadata ${k} differs`);
        }
      }),
    },
  ];
}
