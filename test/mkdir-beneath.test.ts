/**
 * mkdirBeneath (src/sys/mkdir-beneath.ts): the /etc overlay's upper and work
 * are made in SYSROOT/state, which the disk decides: a symlink on the way is
 * refused, never followed; an existing directory is kept; the mode is exact.
 */

import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdirBeneath } from '../src/sys/mkdir-beneath.js';

function tree() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-mkb-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-mkb-out-'));
  fs.mkdirSync(path.join(root, 'state/deploy/x/etc'), { recursive: true });
  return { root, outside, done: () => [root, outside].forEach((d) => fs.rmSync(d, { recursive: true, force: true })) };
}
const ref = (root: string, rel: string) => ({ root, rel, path: `${root}/${rel}` });

test('makes the directory with exactly the mode (umask ignored); false for one already there', (t) => {
  const { root, done } = tree();
  const old = process.umask(0o077);
  try {
    t.true(mkdirBeneath(ref(root, 'state/deploy/x/etc/upper'), 0o755));
    t.is(fs.statSync(path.join(root, 'state/deploy/x/etc/upper')).mode & 0o7777, 0o755);
    t.true(mkdirBeneath(ref(root, 'state/deploy/x/etc/work'), 0o700));
    t.is(fs.statSync(path.join(root, 'state/deploy/x/etc/work')).mode & 0o7777, 0o700);
    t.false(mkdirBeneath(ref(root, 'state/deploy/x/etc/upper'), 0o755));
  } finally {
    process.umask(old);
    done();
  }
});

test('a symlink anywhere on the way, or in place of the directory, is refused and nothing is made outside', (t) => {
  const { root, outside, done } = tree();
  try {
    fs.rmSync(path.join(root, 'state/deploy/x/etc'), { recursive: true });
    fs.symlinkSync(outside, path.join(root, 'state/deploy/x/etc'));
    const e = t.throws(() => mkdirBeneath(ref(root, 'state/deploy/x/etc/upper'), 0o755));
    t.regex(e!.message, /etc\/upper lies under a symlink or a non-directory: directories the disk decides must lie beneath /);
    t.deepEqual(fs.readdirSync(outside), []);
    fs.rmSync(path.join(root, 'state/deploy/x/etc'));
    fs.mkdirSync(path.join(root, 'state/deploy/x/etc'));
    fs.symlinkSync(outside, path.join(root, 'state/deploy/x/etc/upper'));
    t.throws(() => mkdirBeneath(ref(root, 'state/deploy/x/etc/upper'), 0o755), { message: /exists and is not a directory/ });
    t.throws(() => mkdirBeneath(ref(root, 'state/../x'), 0o755), { message: /leaves the directory/ });
    t.deepEqual(fs.readdirSync(outside), []);
  } finally {
    done();
  }
});
