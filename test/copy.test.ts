/**
 * src/sys/copy.ts: the mount(8) backend's image copy reads the open image
 * once (from offset 0, whatever the descriptor's position) and hands each
 * written buffer to the observer (the fs-verity hasher). Checked: the
 * observed bytes, in order, are the copy's bytes and the source's; the
 * digest computed from them matches the one computed from the file, cross-
 * checked with @noble/hashes; an existing destination is never touched
 * (EEXIST); a failure part-way removes the partial copy; spawnSys's
 * copyImage is this copy with src/image/fsverity.ts as the observer.
 */

import test from 'ava';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { copyFdObserved } from '../src/sys/copy.js';
import { createVerityHasher, fsverityDigestFile } from '../src/image/fsverity.js';
import { spawnSys } from '../src/sys/spawn.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-copy-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${seq++}`);

/** copyFdObserved from a descriptor of `src`, read past its start first: the copy must not depend on the position. */
async function copyFileObserved(src: string, dest: string, observe: (written: Uint8Array) => void): Promise<void> {
  const fd = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    if (fs.fstatSync(fd).isFile()) fs.readSync(fd, Buffer.alloc(3), 0, 3, null);
    await copyFdObserved(fd, dest, observe);
  } finally {
    fs.closeSync(fd);
  }
}

test('observed bytes are the copy and the source, in order; digest equals the file digest', async (t) => {
  for (const size of [0, 1, 4096, (1 << 20) - 1, (1 << 20) + 4097, 3 * (1 << 20)]) {
    const src = fresh('src');
    const data = crypto.randomBytes(size);
    fs.writeFileSync(src, data, { mode: 0o640 });
    fs.chmodSync(src, 0o640);
    const dest = fresh('dest');
    const pieces: Buffer[] = [];
    const h = createVerityHasher('sha256');
    await copyFileObserved(src, dest, (w) => {
      pieces.push(Buffer.from(w)); // copy: the buffer is reused
      h.update(w);
    });
    const observed = Buffer.concat(pieces);
    const copy = fs.readFileSync(dest);
    // Independent check of equality: noble SHA-256 of each, not just Buffer.equals.
    t.is(Buffer.from(sha256(observed)).toString('hex'), Buffer.from(sha256(data)).toString('hex'), `${size}: observed`);
    t.is(Buffer.from(sha256(copy)).toString('hex'), Buffer.from(sha256(data)).toString('hex'), `${size}: copy`);
    t.is(Buffer.from(h.digest()).toString('hex'), (await fsverityDigestFile(src, 'sha256', { workers: 0 })).toString('hex'));
    t.is(fs.statSync(dest).mode & 0o777, 0o600, 'only root reads the copy');
  }
});

test('an existing destination is EEXIST and left as it was; a symlink there is not followed', async (t) => {
  const src = fresh('src');
  fs.writeFileSync(src, 'new');
  const dest = fresh('dest');
  fs.writeFileSync(dest, 'stale');
  const e = await t.throwsAsync(copyFileObserved(src, dest, () => t.fail('nothing may be observed')));
  t.is((e as NodeJS.ErrnoException).code, 'EEXIST');
  t.is(fs.readFileSync(dest, 'utf8'), 'stale');
  const target = fresh('target');
  const link = fresh('link');
  fs.symlinkSync(target, link);
  t.is(((await t.throwsAsync(copyFileObserved(src, link, () => {}))) as NodeJS.ErrnoException).code, 'EEXIST');
  t.false(fs.existsSync(target));
});

test('a failure part-way (observer throws) removes the partial copy', async (t) => {
  const src = fresh('src');
  fs.writeFileSync(src, crypto.randomBytes(3 << 20));
  const dest = fresh('dest');
  let n = 0;
  await t.throwsAsync(copyFileObserved(src, dest, () => {
    if (++n === 2) throw new Error('boom');
  }), { message: 'boom' });
  t.is(n, 2);
  t.false(fs.existsSync(dest));
});

test('a non-regular source is refused and no copy is created; spawnSys copyImage is this copy plus the JS digest', async (t) => {
  const dest = fresh('dest');
  await t.throwsAsync(copyFileObserved(tmp, dest, () => {}), { message: /not a regular file/ });
  t.false(fs.existsSync(dest));
  const src = fresh('src');
  fs.writeFileSync(src, 'abc');
  const fd = fs.openSync(src, 'r');
  try {
    const copy = await spawnSys().copyImage(fd, dest, 'sha256');
    t.is(copy.path, dest);
    t.is(Buffer.from(copy.digest).toString('hex'), (await fsverityDigestFile(src, 'sha256', { workers: 0 })).toString('hex'));
    t.is(fs.readFileSync(dest, 'utf8'), 'abc');
    await t.throwsAsync(async () => spawnSys().copyImage(fd, 'private', 'sha256'), { message: /cannot make a private copy/ });
  } finally {
    fs.closeSync(fd);
  }
});
