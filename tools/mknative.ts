/**
 * mknative: generate a composefs-native physical root (SPEC §6) from a tree,
 * laid out as composefs-rs and bootc write it, for the QEMU disks
 * (qemu/mkdisk-native.sh):
 *
 *   OUT/composefs/meta.json           {"version":1,"algorithm":"fsverity-<alg>-12",...}
 *   OUT/composefs/objects/XX/REST     every non-empty regular file of the tree, and the
 *                                     image itself, each named by its fs-verity digest
 *   OUT/composefs/images/<hex>        -> ../objects/XX/REST (relative link, `--no-link`:
 *                                     the image file itself)
 *   OUT/state/deploy/<hex>/{etc,var}  the image's state (etc's upper/work are left
 *                                     for the boot to create)
 *
 * The image is tools/mksysroot.ts's buildComposefsImage with the metacopy
 * digests in the repository's algorithm, so overlayfs' verity=require can
 * check sha512 objects. fs-verity itself is not enabled here (the host kernel
 * may have none): the disk's prepare boot does it (qemu/prepare-init.sh).
 * Needs root (trusted.* xattrs) and mkfs.erofs + setfattr.
 *
 * Prints a JSON object: the digest, the image's paths, and the object each
 * file of the tree is stored as (paths relative to OUT).
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsverityDigest, type VerityAlg } from '../src/image/fsverity.js';
import { buildComposefsImage, parseOptions } from './mksysroot.js';

export interface NativeRootOptions {
  /** Directory to create (must not exist or be empty). */
  out: string;
  /** Content of the image: a root tree with usr/ and etc/. */
  tree: string;
  alg: VerityAlg;
  /** Write composefs/meta.json (default true). */
  meta?: boolean;
  /** images/<hex> as a relative link into objects/ (default true). */
  link?: boolean;
}

export interface NativeRootInfo {
  sysroot: string;
  alg: VerityAlg;
  /** The image's fs-verity digest (hex): its name, and the composefs= karg's value. */
  digest: string;
  /** composefs/images/<hex>, relative to sysroot. */
  imageName: string;
  /** The file holding the image's bytes (composefs/objects/XX/REST, or imageName), relative to sysroot. */
  imageFile: string;
  /** state/deploy/<hex>, relative to sysroot. */
  stateDir: string;
  /** Tree path (e.g. usr/share/cfstest/victim.txt) -> its backing object, relative to sysroot. */
  objectOf: Record<string, string>;
  /** Distinct backing objects written (the image not counted). */
  objects: number;
}

/** objects/XX/REST, the name composefs-rs gives a file of digest `hex`. */
function objectRel(hex: string): string {
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

export function makeNativeRoot(opts: NativeRootOptions): NativeRootInfo {
  const out = path.resolve(opts.out);
  fs.mkdirSync(out, { recursive: true });
  if (fs.readdirSync(out).length > 0) throw new Error(`mknative: ${out} is not empty`);
  const repo = path.join(out, 'composefs');
  const objects = path.join(repo, 'objects');
  fs.mkdirSync(path.join(repo, 'images'), { recursive: true });
  fs.mkdirSync(objects, { recursive: true });

  const objectOf: Record<string, string> = {};
  let count = 0;
  const store = (data: Buffer): string => {
    const rel = objectRel(fsverityDigest(data, opts.alg).toString('hex'));
    const file = path.join(objects, rel);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data, { mode: 0o644 });
      count++;
    }
    return rel;
  };

  const work = fs.mkdtempSync(path.join(out, '.mknative-'));
  let image: Buffer;
  try {
    image = buildComposefsImage(
      path.resolve(opts.tree),
      path.join(work, 'image'),
      (rel, data) => {
        const obj = store(data);
        objectOf[rel] = `composefs/objects/${obj}`;
        return obj;
      },
      false,
      opts.alg,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }

  const digest = fsverityDigest(image, opts.alg).toString('hex');
  const imageName = `composefs/images/${digest}`;
  let imageFile = imageName;
  if (opts.link ?? true) {
    imageFile = `composefs/objects/${objectRel(digest)}`;
    fs.mkdirSync(path.dirname(path.join(out, imageFile)), { recursive: true });
    fs.writeFileSync(path.join(out, imageFile), image, { mode: 0o644 });
    fs.symlinkSync(`../objects/${objectRel(digest)}`, path.join(out, imageName));
  } else {
    fs.writeFileSync(path.join(out, imageName), image, { mode: 0o644 });
  }
  if (opts.meta ?? true) {
    const meta = { version: 1, algorithm: `fsverity-${opts.alg}-12`, features: { compatible: [], read_only_compatible: [], incompatible: [] } };
    fs.writeFileSync(path.join(repo, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  }
  const stateDir = `state/deploy/${digest}`;
  for (const sub of ['etc', 'var']) fs.mkdirSync(path.join(out, stateDir, sub), { recursive: true });

  return { sysroot: out, alg: opts.alg, digest, imageName, imageFile, stateDir, objectOf, objects: count };
}

// ---------------------------------------------------------------- CLI
function usage(): never {
  process.stderr.write('usage: mknative --out DIR --tree ROOTFS --alg sha256|sha512 [--no-meta] [--no-link]\n');
  process.exit(2);
}

function main(argv: string[]): void {
  const { values: v } = parseOptions(argv, {
    out: { type: 'string' },
    tree: { type: 'string' },
    alg: { type: 'string', default: 'sha512' },
    'no-meta': { type: 'boolean' },
    'no-link': { type: 'boolean' },
  }, usage);
  if (!v.out || !v.tree || (v.alg !== 'sha256' && v.alg !== 'sha512')) usage();
  const opts: NativeRootOptions = { out: v.out, tree: v.tree, alg: v.alg };
  if (v['no-meta']) opts.meta = false;
  if (v['no-link']) opts.link = false;
  process.stdout.write(JSON.stringify(makeNativeRoot(opts), null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main(process.argv.slice(2));
}
