/**
 * tools/mknative.ts, the composefs-native root of the QEMU disks: the layout
 * composefs-rs writes, every object and the image named by its fs-verity
 * digest in the repository's algorithm, and metacopy xattrs in that
 * algorithm (overlayfs' struct ovl_metacopy), which verity=require compares
 * with the objects' own fs-verity. Needs root and mkfs.erofs + setfattr.
 */

import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsverityDigest, type VerityAlg } from '../src/image/fsverity.js';
import { makeNativeRoot } from '../tools/mknative.js';
import { overlayMetacopy } from '../tools/mksysroot.js';
import { BINARY, runBinary } from './helpers/fixture.js';

test('overlayMetacopy: version 0, length = 4 + digest, flags 0, FS_VERITY_HASH_ALG_* byte, then the digest', (t) => {
  const d256 = fsverityDigest(Buffer.from('hello world'), 'sha256');
  const d512 = fsverityDigest(Buffer.from('hello world'), 'sha512');
  const m256 = overlayMetacopy(d256, 'sha256');
  const m512 = overlayMetacopy(d512, 'sha512');
  t.deepEqual([...m256.subarray(0, 4)], [0, 36, 0, 1]);
  t.is(m256.length, 36);
  t.true(m256.subarray(4).equals(d256));
  t.deepEqual([...m512.subarray(0, 4)], [0, 68, 0, 2]);
  t.is(m512.length, 68);
  t.true(m512.subarray(4).equals(d512));
});

function tree(dir: string): Record<string, string> {
  const files: Record<string, string> = {
    'usr/share/cfstest/victim.txt': 'victim line\n'.repeat(600),
    'usr/bin/hello': '#!/bin/sh\necho hello\n',
    'etc/hostname': 'native\n',
  };
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
  return files;
}

for (const alg of ['sha512', 'sha256'] as VerityAlg[]) {
  test(`makeNativeRoot ${alg}: objects and image named by their ${alg} fs-verity digests, images/<hex> a relative link, state dirs, metacopy in ${alg}`, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-mknative-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const files = tree(path.join(dir, 'tree'));
    const info = makeNativeRoot({ out: path.join(dir, 'sys'), tree: path.join(dir, 'tree'), alg });
    const sys = info.sysroot;

    const meta = JSON.parse(fs.readFileSync(path.join(sys, 'composefs/meta.json'), 'utf8')) as { version: number; algorithm: string };
    t.is(meta.version, 1);
    t.is(meta.algorithm, `fsverity-${alg}-12`);

    const image = fs.readFileSync(path.join(sys, info.imageFile));
    t.is(fsverityDigest(image, alg).toString('hex'), info.digest);
    t.is(info.digest.length, alg === 'sha512' ? 128 : 64);
    t.is(fs.readlinkSync(path.join(sys, info.imageName)), `../objects/${info.digest.slice(0, 2)}/${info.digest.slice(2)}`);

    t.deepEqual(Object.keys(info.objectOf).sort(), Object.keys(files).sort());
    for (const [rel, obj] of Object.entries(info.objectOf)) {
      const data = fs.readFileSync(path.join(sys, obj));
      t.is(data.toString(), files[rel] ?? '(not in the tree)', `${obj} holds ${rel}`);
      const hex = fsverityDigest(data, alg).toString('hex');
      t.is(obj, `composefs/objects/${hex.slice(0, 2)}/${hex.slice(2)}`);
      // EROFS keeps xattr values as they are: the image holds this file's metacopy, in the repository's algorithm.
      t.true(image.includes(overlayMetacopy(fsverityDigest(data, alg), alg)), `metacopy of ${rel} in ${alg}`);
      const other: VerityAlg = alg === 'sha512' ? 'sha256' : 'sha512';
      t.false(image.includes(overlayMetacopy(fsverityDigest(data, other), other)), `no ${other} metacopy of ${rel}`);
    }
    for (const sub of ['etc', 'var']) t.true(fs.statSync(path.join(sys, info.stateDir, sub)).isDirectory());
    t.is(info.stateDir, `state/deploy/${info.digest}`);
  });
}

test('cfsroot verify accepts a root made by mknative (insecure karg: no fs-verity on this filesystem)', (t) => {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} is missing: run make first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-mknative-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  tree(path.join(dir, 'tree'));
  fs.mkdirSync(path.join(dir, 'initramfs'));
  const info = makeNativeRoot({ out: path.join(dir, 'sys'), tree: path.join(dir, 'tree'), alg: 'sha512' });
  const res = runBinary(['verify', '--sysroot', info.sysroot, '--initramfs-root', path.join(dir, 'initramfs'), '--cmdline', `composefs=?${info.digest}`]);
  t.is(res.status, 0, res.stderr);
  t.regex(res.stdout, new RegExp(`sha512:${info.digest} matches its name`));
});
