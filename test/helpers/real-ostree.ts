/**
 * A sysroot made by the real ostree (Debian's 2022.7), not by
 * tools/mksysroot.ts: `ostree admin init-fs` / `os-init`, `ostree commit`
 * of a tree laid out like a distribution's (top-level symlinks, usr/etc,
 * a kernel in usr/lib/modules), and `ostree admin deploy`, which writes the
 * deployment checkout, the stateroot /var, the ostree/boot.N links and the
 * BLS entry whose `options` line is the kernel command line a bootloader
 * would pass. So the object names (ostree's content checksums), the
 * .commit bytes, the deployment paths and the ostree= karg are all ostree's.
 *
 * What this ostree cannot do is added the way a newer one would:
 *  - the composefs image: built from the same tree with every file's data
 *    redirected to the object ostree stored it as (`ostree ls -R -C`
 *    names it), put at <deployment>/.ostree.cfs; its fs-verity digest goes
 *    into the commit as ostree.composefs.digest.v0 (`--add-metadata`);
 *  - the Ed25519 signature (Debian builds ostree without libsodium): made
 *    here over the .commit bytes ostree wrote, and stored by libostree
 *    itself (python3-gi, OSTree.Repo.write_commit_detached_metadata), so the
 *    .commitmeta is ostree's encoding.
 * Needs root, ostree, gir1.2-ostree-1.0, python3-gi, mkfs.erofs, setfattr.
 */

import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { objectPath } from '../../src/ostree/commit.js';
import { fsverityDigest } from '../../src/image/fsverity.js';
import { buildComposefsImage, rawPublicKey } from '../../tools/mksysroot.js';

export const OS_NAME = 'cfsreal';
export const KERNEL = '6.1.0-cfsroot';

export interface RealOstreeSysroot {
  sysroot: string;
  commit: string;
  deployDir: string;
  /** The `options` line of the BLS entry ostree wrote (kernel command line). */
  bootOptions: string;
  image: string;
  imageDigest: string;
  privateKey: KeyObject;
  publicKeyBase64: string;
  /** Tree path (no leading slash) -> the object ostree stored its data as ("xx/<62 hex>.file"). */
  objects: Map<string, string>;
  /** The commit's root dirtree and dirmeta checksums, as `ostree ls -C` prints them. */
  rootTree: string;
  rootMeta: string;
  /** The data of a file in the commit. */
  content: Record<string, string>;
  remove(): void;
}

/** The commit's files: regular ones with their data, and the usual top-level links of an ostree OS. */
const FILES: Record<string, string> = {
  'usr/bin/hello': 'hello from a commit ostree made\n',
  'usr/share/cfsroot/same-as-hello': 'hello from a commit ostree made\n',
  'usr/share/cfsroot/empty': '',
  'usr/lib/os-release': 'ID=cfsroot-real-ostree\n',
  'usr/etc/motd': 'motd from usr/etc\n',
  [`usr/lib/modules/${KERNEL}/vmlinuz`]: 'not really a kernel\n',
  [`usr/lib/modules/${KERNEL}/initramfs.img`]: 'not really an initramfs\n',
};
/** Mode 0755; the rest 0644. The copy has hello's mode too: ostree's object name covers data and metadata. */
const EXECUTABLES = new Set(['usr/bin/hello', 'usr/share/cfsroot/same-as-hello']);
const SYMLINKS: Record<string, string> = {
  bin: 'usr/bin',
  lib: 'usr/lib',
  home: 'var/home',
  ostree: 'sysroot/ostree',
  'usr/etc/os-release': '../lib/os-release',
};
const EMPTY_DIRS = ['boot', 'dev', 'proc', 'run', 'sys', 'sysroot', 'tmp', 'var'];

/** Run ostree; its trimmed stdout. */
export function ostree(args: string[]): string {
  return execFileSync('ostree', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    // No chattr +i on the deployment: the test writes .ostree.cfs into it and removes it after.
    env: { ...process.env, OSTREE_SYSROOT_DEBUG: 'mutable-deployments' },
  }).trim();
}

/** Store `signatures` as the commit's detached metadata, through libostree. */
export function writeSignatures(sysroot: string, commit: string, signatures: Uint8Array[]): void {
  const script = [
    'import sys, gi',
    "gi.require_version('OSTree', '1.0')",
    'from gi.repository import OSTree, GLib, Gio',
    'repo = OSTree.Repo.new(Gio.File.new_for_path(sys.argv[1]))',
    'repo.open(None)',
    "sigs = [bytes.fromhex(h) for h in sys.argv[3].split(',')]",
    "meta = GLib.Variant('a{sv}', {'ostree.sign.ed25519': GLib.Variant('aay', sigs)})",
    'repo.write_commit_detached_metadata(sys.argv[2], meta, None)',
  ].join('\n');
  const hex = signatures.map((s) => Buffer.from(s).toString('hex')).join(',');
  execFileSync('/usr/bin/python3', ['-c', script, path.join(sysroot, 'ostree/repo'), commit, hex], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The .commit bytes ostree wrote for `commit`. */
export function commitBytes(sysroot: string, commit: string): Buffer {
  return fs.readFileSync(objectPath(path.join(sysroot, 'ostree/repo'), commit, 'commit'));
}

export function makeRealOstreeSysroot(): RealOstreeSysroot {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-real-ostree-'));
  try {
    const tree = path.join(base, 'tree');
    for (const [rel, data] of Object.entries(FILES)) {
      fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
      fs.writeFileSync(path.join(tree, rel), data, { mode: EXECUTABLES.has(rel) ? 0o755 : 0o644 });
    }
    for (const [rel, target] of Object.entries(SYMLINKS)) fs.symlinkSync(target, path.join(tree, rel));
    for (const d of EMPTY_DIRS) fs.mkdirSync(path.join(tree, d));

    const sysroot = path.join(base, 'sysroot');
    fs.mkdirSync(sysroot);
    ostree(['admin', 'init-fs', sysroot]);
    ostree(['admin', 'os-init', `--sysroot=${sysroot}`, OS_NAME]);
    const repo = `--repo=${path.join(sysroot, 'ostree/repo')}`;

    // A first commit of the tree, only to learn the object names ostree gives its files.
    const probe = ostree(['commit', repo, '--branch=cfsroot/probe', `--tree=dir=${tree}`, '--subject=object names']);
    const objects = new Map<string, string>();
    let rootTree = '';
    let rootMeta = '';
    for (const line of ostree(['ls', repo, '-R', '-C', probe]).split('\n')) {
      const r = /^d\S+\s+\d+\s+\d+\s+\d+\s+([0-9a-f]{64})\s+([0-9a-f]{64})\s+\/$/.exec(line);
      if (r) [rootTree, rootMeta] = [r[1]!, r[2]!];
      // "-00644 0 0     22 <checksum> /usr/bin/hello"
      const m = /^-\S+\s+\d+\s+\d+\s+\d+\s+([0-9a-f]{64})\s+\/(.+)$/.exec(line);
      if (m) objects.set(m[2]!, `${m[1]!.slice(0, 2)}/${m[1]!.slice(2)}.file`);
    }
    if (objects.size !== Object.keys(FILES).length) throw new Error(`real-ostree: ostree ls listed ${objects.size} files, expected ${Object.keys(FILES).length}`);

    const image = buildComposefsImage(tree, path.join(base, 'image-work'), (rel) => {
      const name = objects.get(rel);
      if (name === undefined) throw new Error(`real-ostree: no object for ${rel}`);
      return name;
    });
    const imageDigest = fsverityDigest(image, 'sha256');
    const bytes = [...imageDigest].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ');
    const commit = ostree([
      'commit', repo, `--branch=${OS_NAME}/stable`, `--tree=dir=${tree}`, '--subject=cfsroot real-ostree test',
      `--add-metadata=ostree.composefs.digest.v0=@ay [${bytes}]`, '--add-metadata-string=version=1.0',
    ]);

    const privateKey = generateKeyPairSync('ed25519').privateKey;
    writeSignatures(sysroot, commit, [sign(null, commitBytes(sysroot, commit), privateKey)]);

    ostree(['admin', 'deploy', `--sysroot=${sysroot}`, `--os=${OS_NAME}`, '--karg=rw', '--karg=quiet', `${OS_NAME}/stable`]);
    const deployDir = path.join(sysroot, 'ostree/deploy', OS_NAME, 'deploy', `${commit}.0`);
    if (!fs.statSync(deployDir).isDirectory()) throw new Error(`real-ostree: ostree deployed no ${deployDir}`);
    const imagePath = path.join(deployDir, '.ostree.cfs');
    fs.writeFileSync(imagePath, image, { mode: 0o644 });

    const entries = path.join(sysroot, 'boot/loader/entries');
    const entry = fs.readdirSync(entries).filter((f) => f.endsWith('.conf'));
    if (entry.length !== 1) throw new Error(`real-ostree: expected one BLS entry in ${entries}, found ${entry.join(', ')}`);
    const options = /^options (.*)$/m.exec(fs.readFileSync(path.join(entries, entry[0]!), 'utf8'))?.[1];
    if (!options) throw new Error(`real-ostree: no options line in ${entry[0]}`);

    return {
      sysroot,
      commit,
      deployDir,
      bootOptions: options,
      image: imagePath,
      imageDigest: imageDigest.toString('hex'),
      privateKey,
      publicKeyBase64: rawPublicKey(privateKey).toString('base64'),
      objects,
      rootTree,
      rootMeta,
      content: FILES,
      remove: () => fs.rmSync(base, { recursive: true, force: true }),
    };
  } catch (e) {
    fs.rmSync(base, { recursive: true, force: true });
    throw e;
  }
}
