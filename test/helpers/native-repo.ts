/**
 * composefs-native repositories for the tests (SPEC §6), laid out as
 * composefs-rs and bootc lay them out:
 *
 *   SYSROOT/composefs/meta.json                 {"version":1,"algorithm":"fsverity-<alg>-12",...} (optional)
 *   SYSROOT/composefs/objects/XX/REST           backing files and the image, named by fs-verity digest
 *   SYSROOT/composefs/images/<hex>              -> ../objects/XX/REST (or the image itself, `link: false`)
 *   SYSROOT/state/deploy/<hex>/{etc,var}
 *
 * The image is made by tools/mksysroot.ts's buildComposefsImage (mkfs.erofs,
 * needs root). Its metacopy xattrs carry sha256 digests of the objects
 * whatever the repository's algorithm: enough for verify, which reads the
 * image's header and digest, not the objects.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildComposefsImage } from '../../tools/mksysroot.js';
import { fsverityDigest, type VerityAlg } from '../../src/image/fsverity.js';

export interface NativeRepo {
  dir: string;
  sysroot: string;
  initramfs: string;
  /** The image's fs-verity digest (hex), its name under images/. */
  digest: string;
  /** SYSROOT/composefs/images/<digest> */
  imageName: string;
  /** The file holding the image's bytes (the object the link leads to, or imageName). */
  imageFile: string;
  cleanup(): void;
}

export interface NativeRepoOptions {
  alg: VerityAlg;
  /** Write meta.json (default true). */
  meta?: boolean;
  /** images/<hex> as a relative link into objects/ (default true, as composefs-rs makes it). */
  link?: boolean;
  /** setup-root-conf.toml content for the initramfs root (default none). */
  conf?: string;
}

function objectPath(hex: string): string {
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

function writeTree(dir: string, extra: Record<string, string> = {}): string {
  const files: Record<string, string> = {
    ...extra,
    'usr/lib/os-release': 'NAME="cfsroot native example"\nID=native\n',
    'usr/bin/hello': '#!/bin/sh\necho "hello from a composefs-native root"\n',
    'etc/hostname': 'native\n',
    'usr/share/cfsroot/data.txt': 'content from a composefs object\n'.repeat(100),
  };
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content, { mode: rel.startsWith('usr/bin/') ? 0o755 : 0o644 });
  }
  // The mount points a booted root needs: the physical root and /var (bootc images have both).
  for (const d of ['sysroot', 'var']) fs.mkdirSync(path.join(dir, d), { mode: 0o755 });
  return dir;
}

/** Build one image with its objects, once (mkfs.erofs); repositories copy it. `files`: more of the tree (path -> content). */
export function buildNativeImage(alg: VerityAlg, files: Record<string, string> = {}): { image: Buffer; objects: Map<string, Buffer> } {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-nimg-'));
  try {
    const tree = writeTree(path.join(work, 'tree'), files);
    const objects = new Map<string, Buffer>();
    const image = buildComposefsImage(tree, path.join(work, 'build'), (_rel, data) => {
      const name = objectPath(Buffer.from(fsverityDigest(data, alg)).toString('hex'));
      objects.set(name, data);
      return name;
    });
    return { image, objects };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function makeNativeRepo(built: { image: Buffer; objects: Map<string, Buffer> }, opts: NativeRepoOptions): NativeRepo {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-'));
  const sysroot = path.join(dir, 'sysroot');
  const initramfs = path.join(dir, 'initramfs');
  const repo = path.join(sysroot, 'composefs');
  fs.mkdirSync(path.join(repo, 'images'), { recursive: true });
  fs.mkdirSync(initramfs, { recursive: true });
  for (const [name, data] of built.objects) {
    fs.mkdirSync(path.dirname(path.join(repo, 'objects', name)), { recursive: true });
    fs.writeFileSync(path.join(repo, 'objects', name), data);
  }
  const digest = Buffer.from(fsverityDigest(built.image, opts.alg)).toString('hex');
  const imageName = path.join(repo, 'images', digest);
  let imageFile = imageName;
  if (opts.link ?? true) {
    imageFile = path.join(repo, 'objects', objectPath(digest));
    fs.mkdirSync(path.dirname(imageFile), { recursive: true });
    fs.writeFileSync(imageFile, built.image);
    fs.symlinkSync(`../objects/${objectPath(digest)}`, imageName);
  } else {
    fs.mkdirSync(path.join(repo, 'objects'), { recursive: true });
    fs.writeFileSync(imageName, built.image);
  }
  if (opts.meta ?? true) {
    fs.writeFileSync(
      path.join(repo, 'meta.json'),
      JSON.stringify({ version: 1, algorithm: `fsverity-${opts.alg}-12`, features: { compatible: [], read_only_compatible: [], incompatible: [] } }, null, 2) + '\n',
    );
  }
  for (const sub of ['etc', 'var']) fs.mkdirSync(path.join(sysroot, 'state/deploy', digest, sub), { recursive: true });
  if (opts.conf !== undefined) {
    const f = path.join(initramfs, 'usr/lib/composefs/setup-root-conf.toml');
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, opts.conf);
  }
  return { dir, sysroot, initramfs, digest, imageName, imageFile, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
