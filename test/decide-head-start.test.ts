/**
 * decideBoot's head start (issue 5): `onImage` is told the image as soon as
 * the kernel arguments name the deployment, before prepare-root.conf is read,
 * so the boot can start copying and hashing it early. It must change nothing
 * that is decided or reported: errors come in their usual order and words,
 * and nothing is announced that the real checks would not reach.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decideBoot } from '../src/decide.js';
import { CfsError } from '../src/errors.js';
import { makeFixture, type Fixture } from './helpers/fixture.js';

const fixtures: Fixture[] = [];
const fixture = (...a: Parameters<typeof makeFixture>): Fixture => {
  const fx = makeFixture(...a);
  fixtures.push(fx);
  return fx;
};
test.after.always(() => fixtures.forEach((f) => f.cleanup()));

function decide(fx: Fixture, seen: string[], extra: Partial<Parameters<typeof decideBoot>[0]> = {}) {
  return decideBoot({
    sysroot: fx.sysroot,
    cmdline: fx.cmdline,
    initramfsRoot: fx.initramfs,
    measure: false,
    runDir: fx.dir,
    onImage: (image) => seen.push(image),
    ...extra,
  });
}

test('the image is announced early, and the decision is the same as without the hook', async (t) => {
  const fx = fixture();
  const seen: string[] = [];
  const withHook = await decide(fx, seen);
  const without = await decideBoot({ sysroot: fx.sysroot, cmdline: fx.cmdline, initramfsRoot: fx.initramfs, measure: false, runDir: fx.dir });
  t.deepEqual(withHook, without);
  t.true(seen.length >= 1);
  t.true(seen.every((p) => p === path.join(withHook.deployment.dir, '.ostree.cfs')));
});

test('a broken prepare-root.conf is still the error reported, though the image was announced first', async (t) => {
  const fx = fixture({ conf: '[composefs]\nenabled = sometimes\n' });
  const seen: string[] = [];
  const e = await t.throwsAsync(decide(fx, seen), { instanceOf: CfsError });
  t.is(e?.code, 'ECONFIG');
  t.is(seen.length, 1, 'announced from the kernel arguments alone');
});

test('a missing deployment: nothing announced, the usual EDEPLOY', async (t) => {
  const fx = fixture();
  const seen: string[] = [];
  const e = await t.throwsAsync(decide(fx, seen, { cmdline: 'ostree=/ostree/boot.1/nope/0' }), { instanceOf: CfsError });
  t.is(e?.code, 'EDEPLOY');
  t.deepEqual(seen, []);
});

test('an image larger than the free space, or not a regular file, is never announced', async (t) => {
  const fx = fixture();
  const seen: string[] = [];
  // Free space of a full "runDir": statfs of a directory whose filesystem is
  // the fixture's; a 1 TiB sparse image cannot fit in it.
  const image = path.join((await decide(fx, [])).deployment.dir, '.ostree.cfs');
  fs.truncateSync(image, 2 ** 40);
  const e = await t.throwsAsync(decide(fx, seen), { instanceOf: CfsError });
  t.is(e?.code, 'ELIMIT');
  t.deepEqual(seen, []);
  fs.rmSync(image);
  fs.mkdirSync(image);
  await t.throwsAsync(decide(fx, seen), { instanceOf: CfsError });
  t.deepEqual(seen, []);
});

test('composefs off: the early announcement may happen, the decision has no composefs', async (t) => {
  const fx = fixture({ conf: '[composefs]\nenabled = no\n' });
  const seen: string[] = [];
  const d = await decide(fx, seen);
  t.is(d.composefs, null);
  t.true(seen.length <= 1);
});
