/**
 * mksysroot: generate an OSTree-layout sysroot with a composefs deployment,
 * for the demo, the tests, the QEMU disk and the benchmarks.
 *
 * Layout produced under OUT (what ostree-prepare-root expects, SPEC §1–§3):
 *   ostree/repo/config
 *   ostree/repo/objects/xx/<62 hex>.file        backing files (content objects)
 *   ostree/repo/objects/xx/<62 hex>.commit      signed commit carrying the image digest
 *   ostree/repo/objects/xx/<62 hex>.commitmeta  a{sv} with ostree.sign.ed25519
 *   ostree/deploy/<os>/deploy/<commit>.0/       checkout: usr/ (hardlinks to objects), etc/, .ostree.cfs
 *   ostree/deploy/<os>/var/                     stateroot /var
 *   ostree/boot.1 -> boot.1.1, ostree/boot.1.1/<os>/<bootcsum>/0 -> ../../../deploy/<os>/deploy/<commit>.0
 *
 * Simplifications, deliberate and harmless for what cfsroot reads: content
 * objects are named by the SHA-256 of their bytes (ostree hashes a header
 * with the content), and the commit's root dirtree/dirmeta checksums point
 * at no written objects (cfsroot never reads them).
 *
 * The composefs image is made with mkfs.erofs (erofs-utils) from a staging
 * tree of sparse files carrying trusted.overlay.redirect and
 * trusted.overlay.metacopy (with each object's fs-verity digest), then the
 * 32-byte composefs header is written into the first 1024 bytes, which
 * EROFS leaves free. Needs root (trusted.* xattrs) and mkfs.erofs + setfattr.
 */

import { createHash, createPrivateKey, generateKeyPairSync, KeyObject, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fsverityDigest, type VerityAlg } from '../src/image/fsverity.js';
import { encodeVardict, type Variant } from '../src/ostree/gvariant.js';
import { encodeCommit, type Commit } from '../src/ostree/commit.js';
import {
  checkErofsSuperblock,
  COMPOSEFS_FLAG_HAS_ACL,
  COMPOSEFS_HEADER_SIZE,
  COMPOSEFS_MAGIC,
  COMPOSEFS_VERSION,
} from '../src/image/header.js';

export interface SysrootOptions {
  /** Directory to create (must not exist or be empty). */
  out: string;
  /** Stateroot name. */
  os?: string;
  /** Content of the commit (a root tree with usr/ and usr/etc or etc/). Default: a built-in example. */
  tree?: string;
  /** Extra synthetic files under usr/share/cfsroot-bulk (for benchmarks). */
  bulkFiles?: number;
  /** Bytes per synthetic file (default 600). */
  bulkFileSize?: number;
  /** Build and reference the composefs image (default true). */
  image?: boolean;
  /** Put ostree.composefs.digest.v0 in the commit (default true when image). Or a custom byte value. */
  commitDigest?: boolean | Uint8Array;
  /** Sign the commit (default true). */
  sign?: boolean;
  /** Signing key (PKCS8 PEM or KeyObject); generated if absent. */
  privateKey?: KeyObject | string;
  /** Write the public key (base64, one line) here. */
  keyOut?: string;
  /** Write the private key (PKCS8 PEM) here. */
  privateKeyOut?: string;
  /** Create <deploy>/.usr-ovl-work and .usr-ovl-upper (the hotfix overlay). */
  usrOverlay?: boolean;
  /** Value of [sysroot] readonly in ostree/repo/config (omitted when undefined). */
  repoSysrootReadonly?: boolean;
  /** Extra commit metadata entries. */
  extraMetadata?: Array<[string, Variant]>;
  /** Deployment serial (default 0). */
  serial?: number;
  /** Set the image header's ACL flag (default false). */
  imageHasAcl?: boolean;
  /** Pad the image with zeros to this many bytes (a large but valid image: EROFS ignores what follows its blocks). */
  imagePadTo?: number;
}

export interface SysrootInfo {
  sysroot: string;
  os: string;
  commit: string;
  serial: number;
  deployDir: string;
  /** Value for the ostree= karg. */
  ostreeKarg: string;
  /** Full kernel command line fragment: `ostree=...`. */
  cmdline: string;
  image: string | null;
  imageDigest: string | null;
  keyFile: string | null;
  privateKeyPem: string | null;
  publicKeyBase64: string | null;
  objects: number;
  files: number;
  imageSize: number;
}

const BOOTCSUM = 'b'.repeat(64);

export function makeSysroot(opts: SysrootOptions): SysrootInfo {
  const out = path.resolve(opts.out);
  const os = opts.os ?? 'cfsdemo';
  const serial = opts.serial ?? 0;
  const withImage = opts.image ?? true;
  const withSign = opts.sign ?? true;
  fs.mkdirSync(out, { recursive: true });
  if (fs.readdirSync(out).length > 0) throw new Error(`mksysroot: ${out} is not empty`);

  const work = fs.mkdtempSync(path.join(out, '.mksysroot-'));
  try {
    const tree = opts.tree ? path.resolve(opts.tree) : writeExampleTree(path.join(work, 'tree'), os);
    if (opts.bulkFiles) writeBulkFiles(tree, opts.bulkFiles, opts.bulkFileSize ?? 600);

    const repo = path.join(out, 'ostree/repo');
    const objectsDir = path.join(repo, 'objects');
    fs.mkdirSync(objectsDir, { recursive: true });
    fs.mkdirSync(path.join(repo, 'refs/heads'), { recursive: true });
    fs.mkdirSync(path.join(repo, 'tmp'), { recursive: true });
    let repoConfig = '[core]\nrepo_version=1\nmode=bare\n';
    if (opts.repoSysrootReadonly !== undefined) repoConfig += `\n[sysroot]\nreadonly=${opts.repoSysrootReadonly}\n`;
    fs.writeFileSync(path.join(repo, 'config'), repoConfig);

    const stateroot = path.join(out, 'ostree/deploy', os);
    fs.mkdirSync(path.join(stateroot, 'deploy'), { recursive: true });
    fs.mkdirSync(path.join(stateroot, 'var/lib'), { recursive: true });
    fs.mkdirSync(path.join(stateroot, 'var/log'), { recursive: true });
    fs.writeFileSync(path.join(stateroot, 'var/lib/cfsroot-state'), 'persistent state from the stateroot var\n');

    // Checkout + objects in one walk; the image is built from the same tree.
    const deployTmp = path.join(work, 'deploy');
    const stats = { objects: 0, files: 0 };
    const seen = new Set<string>();
    fs.mkdirSync(deployTmp, { mode: 0o755 });
    walkTree(tree, '', (rel, st, abs) => {
      const dDst = path.join(deployTmp, rel);
      if (st.isDirectory()) {
        fs.mkdirSync(dDst, { recursive: true, mode: st.mode & 0o7777 });
        fs.chmodSync(dDst, st.mode & 0o7777);
      } else if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(abs), dDst);
      } else if (st.isFile()) {
        const data = fs.readFileSync(abs);
        const obj = path.join(objectsDir, objectNameBySha256(data));
        if (!seen.has(obj)) {
          seen.add(obj);
          fs.mkdirSync(path.dirname(obj), { recursive: true });
          fs.writeFileSync(obj, data, { mode: st.mode & 0o7777 });
          stats.objects++;
        }
        fs.linkSync(obj, dDst);
        stats.files++;
      }
    });
    // Mount points the overlay root needs even when the tree lacks them.
    for (const d of MOUNT_POINTS) ensureDir(path.join(deployTmp, d));
    // ostree keeps the default /etc in usr/etc; the deployment's etc starts as a copy.
    const usrEtc = path.join(deployTmp, 'usr/etc');
    if (fs.existsSync(usrEtc)) fs.cpSync(usrEtc, path.join(deployTmp, 'etc'), { recursive: true, dereference: false, verbatimSymlinks: true });
    if (opts.usrOverlay) {
      fs.mkdirSync(path.join(deployTmp, '.usr-ovl-work'));
      fs.mkdirSync(path.join(deployTmp, '.usr-ovl-upper'));
    }

    let imageDigest: Buffer | null = null;
    let imageBytes: Buffer | null = null;
    if (withImage) {
      imageBytes = buildComposefsImage(tree, path.join(work, 'image'), (_rel, data) => objectNameBySha256(data), opts.imageHasAcl ?? false);
      if (opts.imagePadTo !== undefined && opts.imagePadTo > imageBytes.length) {
        imageBytes = Buffer.concat([imageBytes, Buffer.alloc(opts.imagePadTo - imageBytes.length)]);
      }
      imageDigest = fsverityDigest(imageBytes, 'sha256');
    }

    // The commit.
    const metadata = new Map<string, Variant>();
    const digestOpt = opts.commitDigest ?? withImage;
    if (digestOpt instanceof Uint8Array) metadata.set('ostree.composefs.digest.v0', { type: 'ay', value: digestOpt });
    else if (digestOpt && imageDigest) metadata.set('ostree.composefs.digest.v0', { type: 'ay', value: imageDigest });
    metadata.set('version', { type: 's', value: '1.0' });
    for (const [k, v] of opts.extraMetadata ?? []) metadata.set(k, v);
    const commit: Commit = {
      metadata,
      parent: new Uint8Array(0),
      related: [],
      subject: `cfsroot example ${os}`,
      body: '',
      timestamp: 1_700_000_000n,
      rootTree: createHash('sha256').update('dirtree').digest(),
      rootMeta: createHash('sha256').update('dirmeta').digest(),
    };
    const commitBytes = encodeCommit(commit);
    const checksum = createHash('sha256').update(commitBytes).digest('hex');
    const commitObj = path.join(objectsDir, checksum.slice(0, 2), `${checksum.slice(2)}.commit`);
    fs.mkdirSync(path.dirname(commitObj), { recursive: true });
    fs.writeFileSync(commitObj, commitBytes);
    fs.writeFileSync(path.join(repo, 'refs/heads', os), `${checksum}\n`);

    let privateKeyPem: string | null = null;
    let publicKeyBase64: string | null = null;
    if (withSign) {
      const priv = loadOrGenerateKey(opts.privateKey);
      privateKeyPem = priv.export({ type: 'pkcs8', format: 'pem' }).toString();
      publicKeyBase64 = rawPublicKey(priv).toString('base64');
      const sig = sign(null, commitBytes, priv);
      // .commitmeta is a bare a{sv} (no GVariant header).
      const meta = encodeVardict([['ostree.sign.ed25519', { type: 'aay', value: [new Uint8Array(sig)] }]]);
      fs.writeFileSync(commitObj.replace(/\.commit$/, '.commitmeta'), meta);
      if (opts.keyOut) {
        fs.mkdirSync(path.dirname(path.resolve(opts.keyOut)), { recursive: true });
        fs.writeFileSync(opts.keyOut, `${publicKeyBase64}\n`);
      }
      if (opts.privateKeyOut) fs.writeFileSync(opts.privateKeyOut, privateKeyPem, { mode: 0o600 });
    }

    // Move the checkout into place under its commit name.
    const deployName = `${checksum}.${serial}`;
    const deployDir = path.join(stateroot, 'deploy', deployName);
    fs.renameSync(deployTmp, deployDir);
    fs.writeFileSync(`${deployDir}.origin`, `[origin]\nrefspec=${os}\n`);
    let image: string | null = null;
    if (imageBytes) {
      image = path.join(deployDir, '.ostree.cfs');
      fs.writeFileSync(image, imageBytes, { mode: 0o644 });
    }

    // Boot links, as ostree lays them out: boot.1 -> boot.1.1, then a relative link per deployment.
    const bootDir = path.join(out, 'ostree/boot.1.1', os, BOOTCSUM);
    fs.mkdirSync(bootDir, { recursive: true });
    fs.symlinkSync(`../../../deploy/${os}/deploy/${deployName}`, path.join(bootDir, '0'));
    fs.symlinkSync('boot.1.1', path.join(out, 'ostree/boot.1'));
    const ostreeKarg = `/ostree/boot.1/${os}/${BOOTCSUM}/0`;

    return {
      sysroot: out,
      os,
      commit: checksum,
      serial,
      deployDir,
      ostreeKarg,
      cmdline: `ostree=${ostreeKarg}`,
      image,
      imageDigest: imageDigest ? imageDigest.toString('hex') : null,
      keyFile: withSign && opts.keyOut ? path.resolve(opts.keyOut) : null,
      privateKeyPem,
      publicKeyBase64,
      objects: stats.objects,
      files: stats.files,
      imageSize: imageBytes ? imageBytes.length : 0,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** Directories every composefs root gets, for the mounts the boot makes on them. */
const MOUNT_POINTS = ['etc', 'var', 'sysroot', 'proc', 'sys', 'dev', 'run', 'tmp', 'boot'];

/** mkdir unless something (a directory, or a symlink such as home -> var/home) is already there. */
function ensureDir(dir: string): void {
  if (fs.lstatSync(dir, { throwIfNoEntry: false }) === undefined) fs.mkdirSync(dir, { recursive: true });
}

/** This tool's object name for a file's bytes: "xx/<62 hex>.file" from their SHA-256 (see the top of this file). */
function objectNameBySha256(data: Buffer): string {
  const sum = createHash('sha256').update(data).digest('hex');
  return `${sum.slice(0, 2)}/${sum.slice(2)}.file`;
}

/**
 * A composefs image of `tree` (EROFS + the composefs header): directories,
 * symlinks and modes as in the tree, and each non-empty regular file a
 * sparse stand-in whose data overlayfs takes from the repo object
 * `objectOf(rel, data)` names ("xx/<62 hex>.file", relative to
 * ostree/repo/objects), with that data's fs-verity digest in the metacopy
 * xattr, computed with `metacopyAlg` (sha512 for a composefs-native sha512
 * repository: overlayfs' `verity=require` compares the backing file's digest
 * and algorithm with the xattr's). `work` must not exist; it is removed
 * again. Needs root and mkfs.erofs + setfattr.
 */
export function buildComposefsImage(
  tree: string,
  work: string,
  objectOf: (rel: string, data: Buffer) => string,
  hasAcl = false,
  metacopyAlg: VerityAlg = 'sha256',
): Buffer {
  const staging = path.join(work, 'staging');
  fs.mkdirSync(staging, { recursive: true, mode: 0o755 });
  try {
    const xattrDump: string[] = [];
    walkTree(tree, '', (rel, st, abs) => {
      const dst = path.join(staging, rel);
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        fs.mkdirSync(dst, { recursive: true, mode });
        fs.chmodSync(dst, mode);
      } else if (st.isSymbolicLink()) {
        fs.symlinkSync(fs.readlinkSync(abs), dst);
      } else if (st.isFile()) {
        const data = fs.readFileSync(abs);
        fs.writeFileSync(dst, '', { mode });
        fs.truncateSync(dst, data.length);
        fs.chmodSync(dst, mode);
        if (data.length > 0) {
          const metacopy = overlayMetacopy(fsverityDigest(data, metacopyAlg), metacopyAlg);
          xattrDump.push(
            `# file: ${escapeDumpPath(dst)}`,
            `trusted.overlay.redirect=0s${Buffer.from(`/${objectOf(rel, data)}`).toString('base64')}`,
            `trusted.overlay.metacopy=0s${metacopy.toString('base64')}`,
            '',
          );
        }
      }
    });
    // A mount point the tree already has (a directory, or a symlink) stays as it is.
    for (const d of MOUNT_POINTS) ensureDir(path.join(staging, d));
    if (xattrDump.length > 0) {
      const dumpFile = path.join(work, 'xattrs.dump');
      fs.writeFileSync(dumpFile, xattrDump.join('\n') + '\n');
      execFileSync('setfattr', [`--restore=${dumpFile}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    const img = path.join(work, 'image.cfs');
    // --chunksize keeps the sparse staging files as holes (no data in the image);
    // -T0 and a fixed UUID make the image, and so its digest, reproducible.
    execFileSync(
      'mkfs.erofs',
      ['--quiet', '--chunksize=4096', '-T0', '-U', '00000000-0000-0000-0000-000000000000', '--all-root', img, staging],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const image = fs.readFileSync(img);
    writeComposefsHeader(image, hasAcl);
    return image;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** FS_VERITY_HASH_ALG_* (linux/fsverity.h), the algorithm byte of the metacopy xattr. */
const VERITY_ALG_NUMBER: Record<VerityAlg, number> = { sha256: 1, sha512: 2 };

/**
 * trusted.overlay.metacopy carrying a digest: overlayfs' struct ovl_metacopy
 * as stored, {u8 version = 0, u8 len (these 4 bytes + the digest), u8 flags = 0,
 * u8 digest_algo} followed by the digest (32 bytes sha256, 64 sha512).
 */
export function overlayMetacopy(digest: Uint8Array, alg: VerityAlg): Buffer {
  return Buffer.concat([Buffer.from([0, 4 + digest.length, 0, VERITY_ALG_NUMBER[alg]]), digest]);
}

export function writeComposefsHeader(image: Buffer, hasAcl: boolean): void {
  checkErofsSuperblock(image, 'mksysroot: mkfs.erofs output');
  image.fill(0, 0, COMPOSEFS_HEADER_SIZE);
  image.writeUInt32LE(COMPOSEFS_MAGIC, 0);
  image.writeUInt32LE(COMPOSEFS_VERSION, 4); // header version
  image.writeUInt32LE(hasAcl ? COMPOSEFS_FLAG_HAS_ACL : 0, 8); // flags
  image.writeUInt32LE(2, 12); // composefs version
}

export function generateSigningKey(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey;
}

export function rawPublicKey(priv: KeyObject): Buffer {
  const jwk = priv.export({ format: 'jwk' }) as { x?: string };
  if (!jwk.x) throw new Error('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

function loadOrGenerateKey(k: KeyObject | string | undefined): KeyObject {
  if (k === undefined) return generateSigningKey();
  return typeof k === 'string' ? createPrivateKey(k) : k;
}

/** Re-sign an existing commit object (tests use this for wrong-key and swapped-signature cases). */
export function signCommitFile(sysroot: string, commit: string, keys: KeyObject[]): void {
  const obj = path.join(sysroot, 'ostree/repo/objects', commit.slice(0, 2), `${commit.slice(2)}.commit`);
  const bytes = fs.readFileSync(obj);
  const sigs = keys.map((k) => new Uint8Array(sign(null, bytes, k)));
  fs.writeFileSync(obj.replace(/\.commit$/, '.commitmeta'), encodeVardict([['ostree.sign.ed25519', { type: 'aay', value: sigs }]]));
}

function escapeDumpPath(p: string): string {
  // getfattr dump format escapes non-printable bytes and backslashes as octal.
  return p.replace(/[\\\x00-\x20\x7f]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

function walkTree(root: string, rel: string, visit: (rel: string, st: fs.Stats, abs: string) => void): void {
  const abs = path.join(root, rel);
  const st = fs.lstatSync(abs);
  if (rel !== '') visit(rel, st, abs);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(abs).sort()) walkTree(root, path.join(rel, name), visit);
  }
}

/** A small but real-looking root: os-release, a script, config in usr/etc. */
export function writeExampleTree(dir: string, os: string): string {
  const files: Record<string, string> = {
    'usr/lib/os-release': `NAME="cfsroot example"\nID=${os}\nVERSION_ID=1\nPRETTY_NAME="cfsroot example (${os})"\n`,
    'usr/etc/os-release': '../lib/os-release',
    'usr/etc/hostname': `${os}\n`,
    'usr/etc/motd': 'Welcome to a verified composefs root.\n',
    'usr/bin/hello': '#!/bin/sh\necho "hello from a composefs root"\n',
    'usr/share/cfsroot/data.txt': 'this content comes from an OSTree object\n'.repeat(100),
    'usr/share/cfsroot/empty': '',
  };
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (rel === 'usr/etc/os-release') fs.symlinkSync(content, p);
    else fs.writeFileSync(p, content, { mode: rel.startsWith('usr/bin/') ? 0o755 : 0o644 });
  }
  fs.symlinkSync('usr/bin', path.join(dir, 'bin'));
  fs.symlinkSync('usr/lib', path.join(dir, 'lib'));
  return dir;
}

function writeBulkFiles(tree: string, count: number, size: number): void {
  const base = path.join(tree, 'usr/share/cfsroot-bulk');
  for (let i = 0; i < count; i++) {
    const dir = path.join(base, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    const buf = Buffer.alloc(size, `bulk file ${i} `);
    fs.writeFileSync(path.join(dir, `f${i}`), buf);
  }
}

// ---------------------------------------------------------------- CLI
function usage(): never {
  process.stderr.write(
    'usage: mksysroot --out DIR [--tree ROOTFS] [--os NAME] [--key-out FILE] [--private-key-out FILE]\n' +
      '                 [--private-key FILE] [--no-sign] [--no-image] [--no-digest] [--bulk N] [--usr-overlay]\n',
  );
  process.exit(2);
}

/**
 * The tools' command lines, parsed by node:util's parseArgs: an unknown
 * option, a missing value or a stray argument calls `usage`.
 */
export function parseOptions<T extends ParseArgsConfig['options']>(argv: string[], options: T, usage: () => never) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch {
    return usage();
  }
}

function main(argv: string[]): void {
  const { values: v } = parseOptions(argv, {
    out: { type: 'string' },
    tree: { type: 'string' },
    os: { type: 'string' },
    'key-out': { type: 'string' },
    'private-key-out': { type: 'string' },
    'private-key': { type: 'string' },
    sign: { type: 'boolean' },
    'no-sign': { type: 'boolean' },
    'no-image': { type: 'boolean' },
    'no-digest': { type: 'boolean' },
    bulk: { type: 'string' },
    'usr-overlay': { type: 'boolean' },
  }, usage);
  const bulk = v.bulk === undefined ? undefined : Number(v.bulk);
  if (!v.out || (v.sign && v['no-sign']) || (bulk !== undefined && !(Number.isInteger(bulk) && bulk >= 0))) usage();
  const opts: SysrootOptions = { out: v.out };
  if (v.tree !== undefined) opts.tree = v.tree;
  if (v.os !== undefined) opts.os = v.os;
  if (v['key-out'] !== undefined) opts.keyOut = v['key-out'];
  if (v['private-key-out'] !== undefined) opts.privateKeyOut = v['private-key-out'];
  if (v['private-key'] !== undefined) opts.privateKey = fs.readFileSync(v['private-key'], 'utf8');
  if (v.sign || v['no-sign']) opts.sign = !v['no-sign'];
  if (v['no-image']) opts.image = false;
  if (v['no-digest']) opts.commitDigest = false;
  if (bulk !== undefined) opts.bulkFiles = bulk;
  if (v['usr-overlay']) opts.usrOverlay = true;
  const info = makeSysroot(opts);
  process.stdout.write(JSON.stringify({ ...info, privateKeyPem: undefined }, null, 2) + '\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main(process.argv.slice(2));
}
