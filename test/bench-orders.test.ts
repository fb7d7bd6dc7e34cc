/**
 * bench/harness.ts balancedOrders: the run orders of the benchmarks. Each
 * variant must run once per round, in each position equally often, and
 * right after each other variant equally often (what a plain rotation did not
 * give: it kept one cyclic order). interleaveOver, which shares the rounds
 * out over copies of the binary, and spreadOverSetups, which reports them copy by copy.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { balancedOrders, interleave, interleaveOver, spreadOverSetups, type Sample } from '../bench/harness.js';

test('balancedOrders is a balanced Latin square for 1 to 9 variants', (t) => {
  for (let n = 1; n <= 9; n++) {
    const rows = balancedOrders(n);
    t.is(rows.length, n % 2 === 0 ? n : 2 * n, `rows for ${n}`);
    const atPosition = new Map<string, number>();
    const after = new Map<string, number>();
    for (const row of rows) {
      t.deepEqual([...row].sort((a, b) => a - b), [...Array(n).keys()], `a row for ${n} runs each variant once`);
      row.forEach((v, i) => atPosition.set(`${v}@${i}`, (atPosition.get(`${v}@${i}`) ?? 0) + 1));
      for (let i = 1; i < row.length; i++) after.set(`${row[i - 1]}>${row[i]}`, (after.get(`${row[i - 1]}>${row[i]}`) ?? 0) + 1);
    }
    t.is(atPosition.size, n * n, `every variant in every position (${n})`);
    t.is(new Set(atPosition.values()).size, 1, `positions equally often (${n})`);
    t.is(after.size, n * (n - 1), `every variant after every other (${n})`);
    t.true(after.size === 0 || new Set(after.values()).size === 1, `successions equally often (${n})`);
  }
});

test("the guest bench's ten orders (qemu/guest-bench-init.sh) are balancedOrders(5)", (t) => {
  const script = fs.readFileSync(path.join(import.meta.dirname, '../qemu/guest-bench-init.sh'), 'utf8');
  const variants = ['version', 'unpinned', 'verity', 'signed', 'copy'];
  const orders = [...script.matchAll(/^\s*\d\) order="([a-z ]+)" ;;$/gm)].map((m) => m[1]!.split(' ').map((v) => variants.indexOf(v)));
  t.deepEqual(orders, balancedOrders(5));
});

/** A fake variant: records (set-up, variant) in `log` and returns a sample whose ms says which call it was. */
function fakeSetups(n: number, names: readonly string[], log: string[]) {
  let calls = 0;
  return Array.from({ length: n }, (_, s) =>
    Object.fromEntries(names.map((k) => [k, () => {
      log.push(`${s}${k}`);
      return { ms: ++calls, maxRssKiB: s, rc: 0, cpuMs: 0 };
    }])) as Record<string, () => Sample>,
  );
}

test('interleaveOver takes the set-ups in turn, round by round, each through its own balanced orders', (t) => {
  const log: string[] = [];
  const names = ['x', 'y', 'z'];
  const { all, each } = interleaveOver(13, fakeSetups(4, names, log));
  // One unrecorded warm-up round per set-up first.
  t.deepEqual(log.slice(0, 12), ['0x', '0y', '0z', '1x', '1y', '1z', '2x', '2y', '2z', '3x', '3y', '3z']);
  const rounds = log.slice(12);
  t.is(rounds.length, 13 * 3);
  const orders = balancedOrders(3);
  for (let r = 0; r < 13; r++) {
    const round = rounds.slice(3 * r, 3 * r + 3);
    // Round r belongs to set-up r mod 4, and that set-up's k-th round has its k-th order.
    t.true(round.every((c) => c[0] === String(r % 4)), `round ${r} is set-up ${r % 4}'s`);
    t.deepEqual(round.map((c) => c[1]), orders[Math.floor(r / 4) % orders.length]!.map((i) => names[i]));
  }
  t.deepEqual(each.map((s) => s['x']!.length), [4, 3, 3, 3]);
  // Pooled, the i-th samples of every variant come from the same set-up and round.
  for (const k of names) t.is(all[k]!.length, 13);
  for (let i = 0; i < 13; i++) {
    const setup = all['x']![i]!.maxRssKiB;
    t.true(names.every((k) => all[k]![i]!.maxRssKiB === setup));
    t.true(names.every((k) => Math.abs(all[k]![i]!.ms - all['x']![i]!.ms) < 3), 'paired samples come from one round');
  }
});

test("spreadOverSetups gives each set-up's paired median, and their min, median and max", (t) => {
  const s = (...ms: number[]) => ms.map((v) => ({ ms: v, maxRssKiB: 0, rc: 0, cpuMs: 0 }));
  const each = [
    { base: s(10, 20, 30), x: s(11, 21, 31) },
    { base: s(10, 10, 10), x: s(13, 14, 15) },
    { base: s(5, 5), x: s(4, 4) },
  ];
  const sp = spreadOverSetups(each, 'x', 'base');
  t.deepEqual(sp.each, [1, 4, -1]);
  t.is(sp.min, -1);
  t.is(sp.median, 1);
  t.is(sp.max, 4);
});

test('interleave is one set-up: a warm-up round, then round r in the r-th balanced order', (t) => {
  const log: string[] = [];
  const names = ['x', 'y', 'z', 'w'];
  const out = interleave(6, fakeSetups(1, names, log)[0]!);
  t.deepEqual(log.slice(0, 4), ['0x', '0y', '0z', '0w']);
  const orders = balancedOrders(4);
  for (let r = 0; r < 6; r++) t.deepEqual(log.slice(4 + 4 * r, 8 + 4 * r).map((c) => c[1]), orders[r % orders.length]!.map((i) => names[i]));
  for (const k of names) t.is(out[k]!.length, 6);
});
