/**
 * src/ostree/signature.ts (SPEC §2): signed-commit verification on repositories
 * built in temporary directories. Every verdict is cross-checked with
 * tweetnacl and every commit checksum with @noble/hashes, both independent
 * of the node:crypto code under test.
 */

import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import nacl from 'tweetnacl';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { MAX_SIGNATURES, verifySignedCommit } from '../src/ostree/signature.js';
import { encodeCommit, objectPath, readObject, MAX_OBJECT_SIZE, type Commit } from '../src/ostree/commit.js';
import { CfsError, type ErrorCode } from '../src/errors.js';
import type { Variant } from '../src/ostree/gvariant.js';
import { generateKeyPair, makeCommit, signatureEntry, signCommit, writeCommit, writeCommitmeta, type KeyPair } from './helpers/ostree-objects.js';

const KEYPATH = '/etc/ostree/initramfs-root-binding.key';

function repo(t: ExecutionContext): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-sig-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A 32-byte digest distinct per label. */
const digestOf = (label: string): Uint8Array => sha256(new TextEncoder().encode(label));

function commitWith(meta: Array<[string, Variant]>, over: Partial<Commit> = {}): Commit {
  return makeCommit({ metadata: new Map(meta), ...over });
}
const digestEntry = (d: Uint8Array): [string, Variant] => ['ostree.composefs.digest.v0', { type: 'ay', value: d }];

function commitBytes(dir: string, checksum: string): Uint8Array {
  return readObject(objectPath(dir, checksum, 'commit'), 'test');
}

/** Independent verdict: does any signature verify with any key (tweetnacl)? Also checks the checksum with noble. */
function naclAccepts(dir: string, checksum: string, sigs: Uint8Array[], keys: Uint8Array[]): boolean {
  const bytes = fs.readFileSync(objectPath(dir, checksum, 'commit'));
  if (bytesToHex(sha256(bytes)) !== checksum) return false;
  return sigs.some((s) => s.length === 64 && keys.some((k) => nacl.sign.detached.verify(bytes, s, k)));
}

/** A signed commit carrying `digest`; returns its checksum. */
function signedCommit(dir: string, signer: KeyPair, digest = digestOf('image'), extra: Array<[string, Variant]> = []): { checksum: string; sig: Uint8Array } {
  const checksum = writeCommit(dir, commitWith([digestEntry(digest), ...extra]));
  const sig = signCommit(commitBytes(dir, checksum), signer.privateKey);
  writeCommitmeta(dir, checksum, [signatureEntry([sig])]);
  return { checksum, sig };
}

function refuses(t: ExecutionContext, fn: () => unknown, code: ErrorCode, re: RegExp): CfsError {
  const e = t.throws(fn, { instanceOf: CfsError });
  t.is(e.code, code);
  t.regex(e.message, re);
  return e;
}

const A = generateKeyPair();
const B = generateKeyPair();
const C = generateKeyPair();

test('a valid signed commit verifies and yields its digest', (t) => {
  const dir = repo(t);
  const digest = digestOf('image');
  const { checksum, sig } = signedCommit(dir, A, digest);
  t.true(naclAccepts(dir, checksum, [sig], [A.publicKey]));
  const r = verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH);
  t.deepEqual(r, { commit: checksum, viaParent: false, keyPath: KEYPATH, keyIndex: 0, digest: bytesToHex(digest) });
});

test('a signature made by tweetnacl verifies (cross-implementation)', (t) => {
  const dir = repo(t);
  const kp = nacl.sign.keyPair();
  const checksum = writeCommit(dir, commitWith([digestEntry(digestOf('x'))]));
  const sig = nacl.sign.detached(commitBytes(dir, checksum), kp.secretKey);
  writeCommitmeta(dir, checksum, [signatureEntry([sig])]);
  t.is(verifySignedCommit(dir, checksum, [kp.publicKey], KEYPATH).keyIndex, 0);
});

test('wrong key: ESIGNATURE naming the commit and what was tried', (t) => {
  const dir = repo(t);
  const { checksum, sig } = signedCommit(dir, A);
  t.false(naclAccepts(dir, checksum, [sig], [B.publicKey]));
  refuses(
    t,
    () => verifySignedCommit(dir, checksum, [B.publicKey], KEYPATH),
    'ESIGNATURE',
    new RegExp(`no valid signature on commit ${checksum}: tried 1 signature\\(s\\) from .*\\.commitmeta against 1 key\\(s\\) from ${KEYPATH}`),
  );
});

test('a signature over another commit does not verify', (t) => {
  const dir = repo(t);
  const other = signedCommit(dir, A, digestOf('other'));
  const checksum = writeCommit(dir, commitWith([digestEntry(digestOf('this'))]));
  writeCommitmeta(dir, checksum, [signatureEntry([other.sig])]);
  t.false(naclAccepts(dir, checksum, [other.sig], [A.publicKey]));
  t.true(naclAccepts(dir, other.checksum, [other.sig], [A.publicKey]));
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'ESIGNATURE', /no valid signature on commit/);
});

test('one flipped byte in .commit: checksum mismatch (EOBJECT)', (t) => {
  const dir = repo(t);
  const { checksum, sig } = signedCommit(dir, A);
  const file = objectPath(dir, checksum, 'commit');
  const b = fs.readFileSync(file);
  b[b.length - 3]! ^= 0x01;
  fs.writeFileSync(file, b);
  t.not(bytesToHex(sha256(b)), checksum);
  t.false(naclAccepts(dir, checksum, [sig], [A.publicKey]));
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EOBJECT', new RegExp(`content hashes to ${bytesToHex(sha256(b))}, not to its name ${checksum}`));
});

test('missing .commit is EOBJECT naming the object', (t) => {
  const dir = repo(t);
  const checksum = 'ab'.repeat(32);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EOBJECT', /objects\/ab\/(ab){31}\.commit does not exist/);
});

test('missing .commitmeta without the bootc marker: ESIGNATURE naming the path and the usual cause', (t) => {
  const dir = repo(t);
  const checksum = writeCommit(dir, commitWith([digestEntry(digestOf('i'))]));
  refuses(
    t,
    () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH),
    'ESIGNATURE',
    new RegExp(`${objectPath(dir, checksum, 'commitmeta')} is missing: .*lost on a container round-trip`),
  );
});

/** A signed parent with `digest` and an unsigned bootc child on top of it. */
function bootcPair(dir: string, signer: KeyPair, digest: Uint8Array, signParent = true) {
  let parent: string;
  let sig: Uint8Array | null = null;
  if (signParent) ({ checksum: parent, sig } = signedCommit(dir, signer, digest));
  else parent = writeCommit(dir, commitWith([digestEntry(digest)]));
  const child = writeCommit(
    dir,
    commitWith([['ostree.container.image-config', { type: 's', value: '{"config":{}}' }]], {
      parent: Buffer.from(parent, 'hex'),
      subject: 'bootc layer',
    }),
  );
  return { parent, child, sig };
}

test('bootc fallback: no .commitmeta + image-config -> the signed parent is verified', (t) => {
  const dir = repo(t);
  const digest = digestOf('parent image');
  const { parent, child, sig } = bootcPair(dir, A, digest);
  t.true(naclAccepts(dir, parent, [sig!], [A.publicKey]));
  t.false(fs.existsSync(objectPath(dir, child, 'commitmeta')));
  const r = verifySignedCommit(dir, child, [B.publicKey, A.publicKey], KEYPATH);
  t.deepEqual(r, { commit: parent, viaParent: true, keyPath: KEYPATH, keyIndex: 1, digest: bytesToHex(digest) });
});

test('bootc fallback: parent signed by an untrusted key is refused, saying so', (t) => {
  const dir = repo(t);
  const { parent, child } = bootcPair(dir, C, digestOf('p'));
  refuses(t, () => verifySignedCommit(dir, child, [A.publicKey], KEYPATH), 'ESIGNATURE', new RegExp(`no valid signature on commit ${parent} \\(parent, bootc fallback\\)`));
});

test('bootc fallback: parent present but unsigned', (t) => {
  const dir = repo(t);
  const { parent, child } = bootcPair(dir, A, digestOf('p'), false);
  refuses(t, () => verifySignedCommit(dir, child, [A.publicKey], KEYPATH), 'ESIGNATURE', new RegExp(`neither has its parent ${parent}`));
});

test('bootc fallback: parent commit absent -> the usual missing-.commitmeta error for the child', (t) => {
  const dir = repo(t);
  const { parent, child } = bootcPair(dir, A, digestOf('p'));
  fs.rmSync(objectPath(dir, parent, 'commit'));
  refuses(t, () => verifySignedCommit(dir, child, [A.publicKey], KEYPATH), 'ESIGNATURE', new RegExp(`${objectPath(dir, child, 'commitmeta')} is missing`));
});

test('no fallback without the image-config marker, even with a signed parent', (t) => {
  const dir = repo(t);
  const parent = signedCommit(dir, A, digestOf('p')).checksum;
  const child = writeCommit(dir, commitWith([digestEntry(digestOf('c'))], { parent: Buffer.from(parent, 'hex') }));
  refuses(t, () => verifySignedCommit(dir, child, [A.publicKey], KEYPATH), 'ESIGNATURE', /\.commitmeta is missing/);
});

test('a bootc child that has its own .commitmeta is verified itself', (t) => {
  const dir = repo(t);
  const { parent } = bootcPair(dir, A, digestOf('p'));
  const child = writeCommit(
    dir,
    commitWith([digestEntry(digestOf('child')), ['ostree.container.image-config', { type: 's', value: '{}' }]], { parent: Buffer.from(parent, 'hex') }),
  );
  const sig = signCommit(commitBytes(dir, child), B.privateKey);
  writeCommitmeta(dir, child, [signatureEntry([sig])]);
  t.true(naclAccepts(dir, child, [sig], [B.publicKey]));
  const r = verifySignedCommit(dir, child, [A.publicKey, B.publicKey], KEYPATH);
  t.is(r.viaParent, false);
  t.is(r.commit, child);
  t.is(r.digest, bytesToHex(digestOf('child')));
});

test('digest missing / 31 bytes / wrong type: EDIGEST explaining the cause', (t) => {
  const dir = repo(t);
  const cases: Array<[Array<[string, Variant]>, RegExp]> = [
    [[], /has no ostree\.composefs\.digest\.v0 metadata; the commit was built without a composefs digest: create it with composefs metadata/],
    [[digestEntry(digestOf('x').subarray(0, 31))], /ostree\.composefs\.digest\.v0 is 31 bytes, expected 32/],
    [[['ostree.composefs.digest.v0', { type: 's', value: bytesToHex(digestOf('x')) }]], /ostree\.composefs\.digest\.v0 has type 's', expected 'ay'/],
    [[['ostree.composefs.digest.v0', { type: 'aay', value: [digestOf('x')] }]], /has type 'aay', expected 'ay'/],
  ];
  for (const [meta, re] of cases) {
    const checksum = writeCommit(dir, commitWith([['version', { type: 's', value: '1' }], ...meta]));
    const sig = signCommit(commitBytes(dir, checksum), A.privateKey);
    writeCommitmeta(dir, checksum, [signatureEntry([sig])]);
    t.true(naclAccepts(dir, checksum, [sig], [A.publicKey]), 'the signature itself is good');
    const e = refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EDIGEST', re);
    t.true(e.message.includes(checksum));
  }
});

test('any signature x any key: the result names the key that verified; tweetnacl agrees on every pair', (t) => {
  const dir = repo(t);
  const checksum = writeCommit(dir, commitWith([digestEntry(digestOf('multi'))]));
  const bytes = commitBytes(dir, checksum);
  const sigs = [signCommit(bytes, C.privateKey), signCommit(encodeCommit(makeCommit()), A.privateKey), signCommit(bytes, A.privateKey)];
  writeCommitmeta(dir, checksum, [['other.key', { type: 's', value: 'x' }], signatureEntry(sigs)]);
  const keys = [B.publicKey, A.publicKey];
  // Expected index from tweetnacl: the first signature that verifies with some key, then that key.
  let expected = -1;
  for (const s of sigs) {
    const k = keys.findIndex((key) => nacl.sign.detached.verify(bytes, s, key));
    if (k >= 0) {
      expected = k;
      break;
    }
  }
  t.is(expected, 1);
  t.is(verifySignedCommit(dir, checksum, keys, KEYPATH).keyIndex, expected);
  t.is(verifySignedCommit(dir, checksum, [C.publicKey, B.publicKey], KEYPATH).keyIndex, 0);
  t.false(naclAccepts(dir, checksum, sigs, [B.publicKey]));
  refuses(t, () => verifySignedCommit(dir, checksum, [B.publicKey], KEYPATH), 'ESIGNATURE', /tried 3 signature\(s\) .* against 1 key\(s\)/);
  refuses(t, () => verifySignedCommit(dir, checksum, [], KEYPATH), 'ESIGNATURE', /tried 3 signature\(s\) .* against 0 key\(s\)/);
});

test('malformed .commitmeta contents', (t) => {
  const dir = repo(t);
  const checksum = writeCommit(dir, commitWith([digestEntry(digestOf('m'))]));
  const sig = signCommit(commitBytes(dir, checksum), A.privateKey);
  const metaPath = objectPath(dir, checksum, 'commitmeta');
  const cases: Array<[() => void, ErrorCode, RegExp]> = [
    [() => writeCommitmeta(dir, checksum, [['other', { type: 'b', value: true }]]), 'ESIGNATURE', /no ostree\.sign\.ed25519 signatures for commit/],
    [() => writeCommitmeta(dir, checksum, [['ostree.sign.ed25519', { type: 'ay', value: sig }]]), 'ESIGNATURE', /ostree\.sign\.ed25519 has type 'ay', expected 'aay'/],
    [() => writeCommitmeta(dir, checksum, [signatureEntry([sig.subarray(0, 63)])]), 'ESIGNATURE', /signature 0 is 63 bytes, an Ed25519 signature is 64/],
    [() => writeCommitmeta(dir, checksum, [signatureEntry([])]), 'ESIGNATURE', /tried 0 signature\(s\)/],
    [() => fs.writeFileSync(metaPath, Uint8Array.from([1, 2, 3, 4, 5])), 'EGVARIANT', new RegExp(`^${metaPath}: GVariant 'a\\{sv\\}'`)],
  ];
  for (const [write, code, re] of cases) {
    write();
    refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), code, re);
  }
  writeCommitmeta(dir, checksum, [signatureEntry([sig])]);
  t.is(verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH).commit, checksum);
});

test(`at most ${MAX_SIGNATURES} signatures: the valid one ${MAX_SIGNATURES}th verifies, one more is refused before any is checked`, (t) => {
  const dir = repo(t);
  const checksum = writeCommit(dir, commitWith([digestEntry(digestOf('cap'))]));
  const good = signCommit(commitBytes(dir, checksum), A.privateKey);
  const junk = (n: number) => Array.from({ length: n }, (_, i) => new Uint8Array(64).fill(i + 1));
  writeCommitmeta(dir, checksum, [signatureEntry([...junk(MAX_SIGNATURES - 1), good])]);
  t.is(verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH).commit, checksum);
  writeCommitmeta(dir, checksum, [signatureEntry([...junk(MAX_SIGNATURES), good])]);
  const metaPath = objectPath(dir, checksum, 'commitmeta');
  const e = refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'ELIMIT', /./);
  t.is(e.message, `${metaPath}: ${MAX_SIGNATURES + 1} ostree.sign.ed25519 signatures, over the limit of ${MAX_SIGNATURES} (ostree sign adds one per key); none was verified`);
  // Counted before anything else is looked at: a wrong-length signature among them is not what is reported.
  writeCommitmeta(dir, checksum, [signatureEntry([new Uint8Array(3), ...junk(MAX_SIGNATURES), good])]);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'ELIMIT', new RegExp(`: ${MAX_SIGNATURES + 2} ostree\\.sign\\.ed25519 signatures, over the limit`));
});

test('.commit that is not a regular file, or over 128 MiB, is refused before reading', (t) => {
  const dir = repo(t);
  const checksum = 'cd'.repeat(32);
  const file = objectPath(dir, checksum, 'commit');
  fs.mkdirSync(file, { recursive: true });
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EOBJECT', /\.commit is not a regular file/);
  fs.rmdirSync(file);
  execFileSync('mkfifo', [file]);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EOBJECT', /\.commit is not a regular file/);
  fs.rmSync(file);
  // Sparse: the size is real, the blocks are not; a whole read would allocate 128 MiB.
  fs.writeFileSync(file, '');
  fs.truncateSync(file, MAX_OBJECT_SIZE + 1);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'ELIMIT', /134217729 bytes, over the 134217728-byte object limit/);
});

test('a commit that is not valid GVariant is EGVARIANT after the checksum check', (t) => {
  const dir = repo(t);
  const junk = Uint8Array.from([0xde, 0xad, 0xbe, 0xef]);
  const checksum = bytesToHex(sha256(junk));
  fs.mkdirSync(path.dirname(objectPath(dir, checksum, 'commit')), { recursive: true });
  fs.writeFileSync(objectPath(dir, checksum, 'commit'), junk);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EGVARIANT', /\.commit: GVariant '\(a\{sv\}aya\(say\)sstayay\)'/);
});

test('objectPath refuses a non-checksum', (t) => {
  refuses(t, () => objectPath('/r', 'ABC', 'commit'), 'EOBJECT', /'ABC' is not an object checksum/);
  refuses(t, () => verifySignedCommit('/r', '../'.repeat(21) + 'x', [A.publicKey], KEYPATH), 'EOBJECT', /not an object checksum/);
  t.is(objectPath('/r', 'ab'.repeat(32), 'dirtree'), `/r/objects/ab/${'ab'.repeat(31)}.dirtree`);
});

// Issue 13 item 10: an object is never followed out of the repo.
test('a .commit that is a symlink, or under a directory on another filesystem, is refused before it is read', (t) => {
  const dir = repo(t);
  const { checksum } = signedCommit(dir, A);
  const file = objectPath(dir, checksum, 'commit');
  const bytes = fs.readFileSync(file);
  // A symlink named after the commit, to a copy of it: never followed, though the copy is the real commit.
  const copy = path.join(dir, 'elsewhere.commit');
  fs.writeFileSync(copy, bytes);
  fs.rmSync(file);
  fs.symlinkSync(copy, file);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EOBJECT', /\.commit is a symlink: expected a regular file/);
  fs.rmSync(file);
  fs.writeFileSync(file, bytes);
  t.notThrows(() => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH));
  // The object's directory swapped for a symlink to another filesystem (the initramfs, say): its files are not the repo's.
  const shm = fs.mkdtempSync('/dev/shm/cfsroot-sig-');
  t.teardown(() => fs.rmSync(shm, { recursive: true, force: true }));
  if (fs.statSync(shm).dev === fs.statSync(dir).dev) return t.fail('the test needs /dev/shm on another filesystem than the temp dir');
  const objDir = path.dirname(file);
  fs.cpSync(objDir, path.join(shm, 'objs'), { recursive: true });
  fs.rmSync(objDir, { recursive: true });
  fs.symlinkSync(path.join(shm, 'objs'), objDir);
  refuses(t, () => verifySignedCommit(dir, checksum, [A.publicKey], KEYPATH), 'EOBJECT', /\.commit is not on the filesystem of the sysroot/);
});
