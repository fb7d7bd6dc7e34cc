/**
 * decideNative (src/composefs-native/decide.ts) in process, for what the
 * binary cannot show yet: the kernel's fs-verity answer, injected as the
 * mount side will inject it (secure: required; insecure: tolerated missing;
 * a kernel digest other than the name: fatal), and the measure=false path.
 */

import test from 'ava';
import { parseRepositoryMeta } from '../src/composefs-native/repository.js';
import { CfsError } from '../src/errors.js';
import { decideNative, type DecideNativeOptions } from '../src/composefs-native/decide.js';
import { fsverityDigestFile } from '../src/image/fsverity.js';
import { buildNativeImage, makeNativeRepo, type NativeRepo } from './helpers/native-repo.js';

let built: ReturnType<typeof buildNativeImage>;
let r: NativeRepo;
test.before(() => {
  built = buildNativeImage('sha512');
  r = makeNativeRepo(built, { alg: 'sha512' });
});
test.after.always(() => r?.cleanup());

const opts = (cmdline: string, extra: Partial<DecideNativeOptions> = {}): DecideNativeOptions => ({
  sysroot: r.sysroot,
  initramfsRoot: r.initramfs,
  cmdline,
  measure: true,
  digestImage: fsverityDigestFile,
  ...extra,
});

test('the kernel digest equal to the name: kernel "matches"', async (t) => {
  const d = await decideNative(opts(`composefs=${r.digest}`, { measureVerity: async () => Buffer.from(r.digest, 'hex') }));
  t.is(d.verity.kernel, 'matches');
  t.true(d.verity.require);
});

test('secure and no fs-verity on the image: refused, saying how to enable it', async (t) => {
  const e = await t.throwsAsync(decideNative(opts(`composefs=${r.digest}`, { measureVerity: async () => null })));
  t.true(e instanceof CfsError);
  t.is((e as CfsError).code, 'EIMAGE');
  t.regex(e!.message, /has no fs-verity, which composefs=[0-9a-f]+ requires: enable it \(fsverity enable --hash-alg=sha512/);
});

test('insecure and no fs-verity: tolerated with a warning', async (t) => {
  const d = await decideNative(opts(`composefs=?${r.digest}`, { measureVerity: async () => null }));
  t.is(d.verity.kernel, 'absent');
  t.false(d.verity.require);
  t.true(d.warnings.some((w) => /has no fs-verity: tolerated by the insecure karg/.test(w)));
});

test('a kernel digest other than the name is fatal, insecure too', async (t) => {
  for (const q of ['', '?']) {
    const e = await t.throwsAsync(decideNative(opts(`composefs=${q}${r.digest}`, { measureVerity: async () => Buffer.alloc(64, 7) })));
    t.is((e as CfsError).code, 'EDIGEST');
    t.regex(e!.message, /the kernel's fs-verity digest sha512:(07){64} is not its name/);
  }
});

test('measure=false does not read the image bytes', async (t) => {
  let called = 0;
  const d = await decideNative(opts(`composefs=${r.digest}`, { measure: false, digestImage: async () => { called++; return Buffer.alloc(64); } }));
  t.is(called, 0);
  t.is(d.image.measuredDigest, null);
});

test('the ECMDLINE for no composefs karg at all', async (t) => {
  const e = await t.throwsAsync(decideNative(opts('root=/dev/vda')));
  t.is((e as CfsError).code, 'ECMDLINE');
});

test('meta.json: features.incompatible that cfsroot does not know is refused (as composefs-rs refuses it); an empty list or other features are fine', (t) => {
  const base = { version: 1, algorithm: 'fsverity-sha256-12' };
  t.deepEqual(parseRepositoryMeta(JSON.stringify(base), 'meta.json'), { version: 1, algorithm: 'sha256' });
  t.deepEqual(parseRepositoryMeta(JSON.stringify({ ...base, features: { incompatible: [], compatible: ['x'] } }), 'meta.json'), { version: 1, algorithm: 'sha256' });
  const e = t.throws(() => parseRepositoryMeta(JSON.stringify({ ...base, features: { incompatible: ['future-thing'] } }), 'meta.json'));
  t.regex(e!.message, /^meta\.json: the repository needs features this cfsroot does not know \(future-thing\): update cfsroot$/);
  t.throws(() => parseRepositoryMeta(JSON.stringify({ ...base, features: { incompatible: 'x' } }), 'meta.json'), { message: /expected an array/ });
});
