/**
 * Hostile GVariant shapes for the bounds properties (issue 13 item 1): the
 * shapes that cost the most per input byte when decoded (arrays of empty or
 * one-byte elements, unit tuples, tiny variants, dictionaries of tiny
 * entries, the same nested under keys or inside a commit's metadata), at
 * element counts from 0 to 2^17 and just over MAX_VALUES.
 *
 * An arbitrary yields a recipe and `hostile` builds its bytes, so fast-check
 * never holds megabytes of generated inputs. Kept apart from
 * arbitraries.ts, whose string tables add ~80 MiB of heap that every forced
 * GC of the memory property would walk.
 */

import fc from 'fast-check';
import { MAX_VALUES } from '../../src/ostree/gvariant.js';
import { COMMIT_TYPE } from '../../src/ostree/commit.js';
import { commitWith, uniformArray, vardict } from '../helpers/hostile-gvariant.js';

export interface Input {
  what: string;
  type: string;
  bytes: Uint8Array;
}

const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/**
 * Element counts: log-uniform from 0 to 2^17 (most cases small and cheap),
 * or just over MAX_VALUES (refused from the framing, so cheap too).
 */
const countArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 17 }).chain((e) => fc.integer({ min: e === 0 ? 0 : 2 ** (e - 1), max: 2 ** e })), weight: 9 },
  { arbitrary: fc.integer({ min: MAX_VALUES + 1, max: MAX_VALUES + 2 ** 16 }), weight: 1 },
);

const SHAPES = ['aay0', 'aay1', 'a()', 'ab', 'a(yy)', 'as', 'av', 'a{sv}', 'nested', 'commit'] as const;

/**
 * The shapes that cost the most per byte when decoded, at a generated size.
 * The arbitrary yields the recipe and the property builds the bytes, so
 * fast-check never holds megabytes of generated inputs (which the memory
 * measurement would see, and every forced GC would walk).
 */
export type Recipe = [(typeof SHAPES)[number], number];

export const hostileArb: fc.Arbitrary<Recipe> = fc.tuple(fc.constantFrom(...SHAPES), countArb);

export function hostile([shape, n]: Recipe): Input {
  switch (shape) {
    case 'aay0':
      return { what: `aay of ${n} empty arrays`, type: 'aay', bytes: u8(uniformArray(n, 0)) };
    case 'aay1':
      return { what: `aay of ${n} one-byte arrays`, type: 'aay', bytes: u8(uniformArray(n, 1)) };
    case 'a()':
      return { what: `a() of ${n}`, type: 'a()', bytes: new Uint8Array(n) };
    case 'ab':
      return { what: `ab of ${n}`, type: 'ab', bytes: new Uint8Array(n) };
    case 'a(yy)':
      return { what: `a(yy) of ${n}`, type: 'a(yy)', bytes: new Uint8Array(2 * n) };
    case 'as':
      // n empty strings: each is its NUL.
      return { what: `as of ${n} empty strings`, type: 'as', bytes: u8(uniformArray(n, 1)) };
    case 'av': {
      // n variants <()>: 00 NUL ( ) each.
      const b = uniformArray(n, 4, (_i, into) => into.set([0, 0, 0x28, 0x29]));
      return { what: `av of ${n} unit variants`, type: 'av', bytes: u8(b) };
    }
    case 'a{sv}': {
      const k = Math.min(n, 5000);
      const entries = Array.from({ length: k }, (_, i): [string, Buffer, string] => [String(i), Buffer.alloc(0), 'ay']);
      return { what: `a{sv} of ${k} entries`, type: 'a{sv}', bytes: u8(vardict(entries)) };
    }
    case 'nested': {
      const inner = vardict([['inner', uniformArray(n, 0), 'aay']]);
      return { what: `a{sv} > a{sv} > aay of ${n}`, type: 'a{sv}', bytes: u8(vardict([['outer', inner, 'a{sv}']])) };
    }
    default: {
      const meta = vardict([
        ['ostree.composefs.digest.v0', Buffer.alloc(32, 7), 'ay'],
        ['bomb', uniformArray(n, 0), 'aay'],
      ]);
      return { what: `commit with an aay of ${n} in its metadata`, type: COMMIT_TYPE, bytes: u8(commitWith(meta, 'fuzz')) };
    }
  }
}

