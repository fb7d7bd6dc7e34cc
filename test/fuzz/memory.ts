/**
 * Fuzz property: memory kept per input byte by each GVariant reader (issue
 * 13 item 1, SPEC §2 "Limits"). Inputs are the hostile shapes of
 * hostile-shapes.ts (arrays of millions of empty elements and the like, from
 * a few bytes to ~4 MiB) and random bytes read as several types. For each
 * reader, the memory its result keeps (heap + external + array buffers after
 * a full GC, the result still alive) must stay under k × input bytes + SLACK:
 *
 *  - BOOT_BYTES_PER_BYTE for what the boot runs on whole objects: validate
 *    (keeps nothing), locateVardict and openCommit (a Map of at most
 *    MAX_VARDICT_ENTRIES located values);
 *  - DECODE_BYTES_PER_BYTE for decode(), which builds a JS value per
 *    element (and so is only run on the values the boot needs).
 *
 * A case costs a full GC per reader, and a GC walks the whole heap, so this
 * runs in a process of its own that loads nothing else (`make fuzz` and the
 * quick seed spawn it): `tsx test/fuzz/memory.ts --cases N --seed S` prints
 * one JSON line {cases, failed, message, counterexample}.
 */

import fc from 'fast-check';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CfsError } from '../../src/errors.js';
import { decode, locateVardict, validate, whole } from '../../src/ostree/gvariant.js';
import { COMMIT_TYPE, openCommit } from '../../src/ostree/commit.js';
import { hostile, hostileArb, type Input } from './hostile-shapes.js';

/** Heap a boot reader may keep per input byte (measured: at most ~10, a 4096-entry a{sv} located). */
export const BOOT_BYTES_PER_BYTE = 16;
/** Heap decode() may keep per input byte (measured: ~210 for an aay of empty arrays with 1-byte offsets). */
export const DECODE_BYTES_PER_BYTE = 256;
/**
 * Constant allowance: the readers' fixed costs, and the measurement's noise,
 * which is large (V8's compiled code and feedback, lazy sweeping: measured
 * up to ~500 KiB either way for a reader that keeps nothing).
 */
export const SLACK = 1024 * 1024;

// V8 accepts --expose-gc at run time, so the property needs no node flags.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function retained(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}

const CODES: readonly string[] = ['EGVARIANT', 'ELIMIT', 'EOBJECT'];

/** A refusal (CfsError with an allowed code) keeps nothing: null. Anything else thrown fails the property. */
function valueOrNull(read: () => unknown): unknown {
  try {
    return read();
  } catch (e) {
    if (e instanceof CfsError && CODES.includes(e.code)) return null;
    throw e;
  }
}

/** Memory `read`'s result keeps over `base`, measured while it is alive. */
function keptBy(read: () => unknown, base: number): number {
  const result = valueOrNull(read);
  const kept = retained() - base;
  // Used after the measurement, so the result is alive during it.
  if (result === undefined) throw new Error('reader returned undefined');
  return kept;
}

export interface MemoryBounds {
  boot: number;
  decode: number;
}

export function checkMemory(input: Input, k: MemoryBounds = { boot: BOOT_BYTES_PER_BYTE, decode: DECODE_BYTES_PER_BYTE }): void {
  const len = input.bytes.length;
  // The boot's readers first: decode() keeps the most, and V8 sometimes keeps
  // a dropped result alive through the next measurement or two.
  const readers: Array<[string, number, () => unknown]> = [['validate', k.boot, () => (validate(whole(input.type, input.bytes), 'fuzz'), true)]];
  if (input.type === 'a{sv}') readers.push(['locateVardict', k.boot, () => locateVardict(whole('a{sv}', input.bytes), 'fuzz')]);
  if (input.type === COMMIT_TYPE) readers.push(['openCommit', k.boot, () => openCommit(input.bytes, 'fuzz')]);
  readers.push(['decode', k.decode, () => decode(input.type, input.bytes, 'fuzz')]);
  // A result is garbage once keptBy has returned (a running frame can keep a dead local alive).
  const base = retained();
  for (const [name, perByte, read] of readers) {
    const kept = keptBy(read, base);
    const bound = perByte * len + SLACK;
    if (kept > bound) {
      throw new Error(`${name} of ${input.what} (${len} bytes) kept ${kept} bytes, over ${perByte} x ${len} + ${SLACK} = ${bound}`);
    }
  }
}

/** Random bytes read as the types the boot reads, and as the costliest array types. */
const randomBytesArb: fc.Arbitrary<Input> = fc
  .tuple(fc.constantFrom('a{sv}', COMMIT_TYPE, 'aay', 'av', 'a(yy)'), fc.uint8Array({ maxLength: 8192 }))
  .map(([type, bytes]) => ({ what: `random bytes as '${type}'`, type, bytes }));

export const memoryProperty = fc.property(
  fc.oneof({ arbitrary: hostileArb.map((recipe) => ({ recipe })), weight: 3 }, { arbitrary: randomBytesArb.map((input) => ({ input })), weight: 1 }),
  (c) => checkMemory('recipe' in c ? hostile(c.recipe) : c.input),
);

export interface MemoryRunResult {
  cases: number;
  failed: boolean;
  message: string;
  counterexample: string;
}

const SELF = fileURLToPath(import.meta.url);

/** Run the property in a fresh process (see the header): `cases` cases from `seed`. */
export function runMemoryProperty(cases: number, seed: number): MemoryRunResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', SELF, '--cases', String(cases), '--seed', String(seed)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${SELF} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as MemoryRunResult;
}

if (process.argv[1] === SELF) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const r = fc.check(memoryProperty, { numRuns: arg('--cases') ?? 500, seed: arg('--seed') ?? Date.now() % 2 ** 31 });
  const out: MemoryRunResult = {
    cases: r.numRuns,
    failed: r.failed,
    message: r.failed ? (r.errorInstance instanceof Error ? r.errorInstance.message : String(r.errorInstance)) : '',
    counterexample: r.failed ? fc.stringify(r.counterexample) : '',
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
