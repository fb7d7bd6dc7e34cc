/**
 * bench/harness.ts balancedOrders: the run orders of the benchmarks. Each
 * variant must run once per round, in each position equally often, and
 * right after each other variant equally often (what a plain rotation did not
 * give: it kept one cyclic order).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { balancedOrders } from '../bench/harness.js';

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
