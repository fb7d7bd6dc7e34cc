/**
 * `cfsroot preflight` for an entry whose options select the composefs-native
 * mode (composefs= / composefs.digest=, SPEC §6). The checks after the
 * shared ones (entry, initramfs, cfsroot, runs-at-boot):
 *   image     a karg names an image in SYSROOT/composefs/images
 *   config    the initramfs's setup-root-conf.toml against the one inside
 *             that image, setting by setting (both read as the boot reads one)
 *   decision  the mode's own decision (src/composefs-native/decide.ts) with the
 *             initramfs's setup-root-conf.toml: the code that boot runs
 *   kernel-version, kernel-modules, and (secure kargs only) verity on the
 *   image and the objects under SYSROOT/composefs/objects.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { splitKernelCmdline } from '../cmdline.js';
import { fsverityDigestFile } from '../image/fsverity.js';
import { isNativeKarg, parseNativeKargs, refuseBothModes, type NativeKarg } from '../composefs-native/kargs.js';
import { checkKargAlgorithm, findImage, openRepository, type NativeImageFile, type NativeRepository } from '../composefs-native/repository.js';
import { loadSetupRootConf, SETUP_ROOT_CONF, type SetupRootConf } from '../composefs-native/setup-root-conf.js';
import { decideNative } from '../composefs-native/decide.js';
import type { BlsEntry } from './bls.js';
import type { CpioEntry } from './cpio.js';
import { imageFile } from './erofs-redirects.js';
import { checkKernel, checkVerity, message, privateDir, type Bad, type Ok, type PreflightOptions } from './checks.js';

/** The initramfs's copy, relative to its root. */
const CONF_IN_INITRAMFS = SETUP_ROOT_CONF.slice(1);

export async function checkNative(
  o: PreflightOptions,
  entry: BlsEntry,
  files: Map<string, CpioEntry>,
  text: (p: string) => string | null,
  ok: Ok,
  bad: Bad,
): Promise<void> {
  const args = splitKernelCmdline(entry.options);
  const ostree = args.find((a) => a === 'ostree' || a.startsWith('ostree='));
  if (ostree) {
    try {
      refuseBothModes(args.filter(isNativeKarg), ostree);
    } catch (e) {
      bad('decision', message(e), 'remove one of the two from the entry\'s options');
      return;
    }
  }

  // The image the kargs name.
  let found: { karg: NativeKarg; image: NativeImageFile; repo: NativeRepository } | null = null;
  try {
    const kargs = parseNativeKargs(args);
    const repo = openRepository(o.sysroot);
    const tried: string[] = [];
    for (const karg of kargs) {
      checkKargAlgorithm(repo, karg);
      const image = findImage(repo, karg.digest, (why) => tried.push(`${karg.karg}: ${why}`));
      if (image) {
        found = { karg, image, repo };
        break;
      }
    }
    if (!found) {
      bad('image', `no composefs image in ${repo.dir}/images for the entry's kargs (${tried.join('; ')})`,
        'the entry names an image that was never deployed here, or was removed: redeploy (bootc upgrade), or pick another entry');
    } else {
      ok('image', `${found.karg.karg} -> ${path.relative(o.sysroot, found.image.path)} (${found.image.size} bytes)`);
    }
  } catch (e) {
    bad('image', `the entry's options: ${message(e)}`, 'fix the entry\'s composefs karg, or the repository (bootc upgrade redeploys)');
  }
  if (!found) return;

  const tmp = privateDir();
  try {
    // The config: the initramfs's against the image's.
    const mine = text(CONF_IN_INITRAMFS);
    if (mine !== null) writePrivate(path.join(tmp, CONF_IN_INITRAMFS), mine);
    let conf: SetupRootConf | null = null;
    try {
      conf = loadSetupRootConf(tmp);
    } catch (e) {
      bad('config', `the initramfs's setup-root-conf.toml: ${message(e)}`, 'fix the file and regenerate the initramfs');
    }
    if (conf) compareConf(conf, mine !== null, found.image.file, found.repo.objects, tmp, ok, bad);

    // The mode's own decision, with the initramfs's config. fs-verity is the
    // verity check's: here the image's digest is computed from its bytes.
    try {
      const d = await decideNative({
        sysroot: o.sysroot,
        cmdline: entry.options,
        initramfsRoot: tmp,
        measure: true,
        digestImage: (file, alg) => fsverityDigestFile(file, alg),
        runDir: '/nonexistent-run',
      });
      ok('decision', `composefs-native image ${d.karg.digest} (its digest matches its name)${d.insecure ? ', insecure karg' : ''}; ` +
        `root${d.rootTransient.value ? ' transient' : ''}, /etc ${d.etc.mount}, /var ${d.var.mount}${d.var.skippedFor ? ` (${d.var.skippedFor})` : ''}`);
    } catch (e) {
      bad('decision', message(e), 'see the message; `cfsroot verify` with the entry\'s options says the same');
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  checkKernel(files, entry, !found.karg.insecure, o.sysroot, null, ok, bad);
  if (!found.karg.insecure) {
    checkVerity(o.measureVerity ?? null, found.image.file, found.repo.objects, objectName(found.karg), ok, bad);
  }
}

/** A redirect naming a composefs object: "/xx/<rest of the digest>", relative to the repository's objects/. */
function objectName(karg: NativeKarg): RegExp {
  const rest = karg.digest.length - 2;
  return new RegExp(`^/[0-9a-f]{2}/[0-9a-f]{${rest}}$`);
}

function writePrivate(file: string, content: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, content, { mode: 0o600 });
}

/**
 * The image's /usr/lib/composefs/setup-root-conf.toml (its bytes inline, or
 * in the backing object it redirects to), read as the boot reads the
 * initramfs's, and each effective setting compared.
 */
function compareConf(conf: SetupRootConf, inInitramfs: boolean, image: string, objects: string, tmp: string, ok: Ok, bad: Bad): void {
  let theirs: SetupRootConf;
  let imageHas: boolean;
  try {
    const f = imageFile(fs.readFileSync(image), SETUP_ROOT_CONF, image);
    const imageRoot = path.join(tmp, 'image');
    fs.mkdirSync(imageRoot, { mode: 0o700 });
    imageHas = f !== null;
    if (f) writePrivate(path.join(imageRoot, CONF_IN_INITRAMFS), 'data' in f ? f.data : readObject(objects, f.redirect));
    theirs = loadSetupRootConf(imageRoot);
  } catch (e) {
    bad('config', `the image's ${SETUP_ROOT_CONF}: ${message(e)}`, 'rebuild the image: its setup-root-conf.toml does not read');
    return;
  }
  const show = (v: string | boolean) => (typeof v === 'string' ? `"${v}"` : String(v));
  const diffs: string[] = [];
  const cmp = (what: string, a: string | boolean, b: string | boolean) => {
    if (a !== b) diffs.push(`${what}: initramfs ${show(a)}, image ${show(b)}`);
  };
  cmp('[root] transient', conf.rootTransient, theirs.rootTransient);
  cmp('[etc] mount', conf.etc, theirs.etc);
  cmp('[var] mount', conf.var, theirs.var);
  const where = `${inInitramfs ? SETUP_ROOT_CONF : 'no setup-root-conf.toml (defaults)'} in the initramfs vs ${imageHas ? `${SETUP_ROOT_CONF} of the image` : 'none in the image (defaults)'}`;
  if (diffs.length === 0) ok('config', `${where}: the same settings`);
  else bad('config', `${where} differ: ${diffs.join('; ')}`, 'regenerate the initramfs from the image (bootc does it on deploy; dracut -f from the booted image)');
}

/** A backing object's bytes: opened beneath objects/ without following a symlink, at most 1 MiB (a config file). */
function readObject(objects: string, redirect: string): Uint8Array {
  if (!/^\/?[0-9a-f]{2}\/[0-9a-f]+$/.test(redirect)) throw new Error(`redirect "${redirect}" is not an object name`);
  const fd = fs.openSync(path.join(objects, redirect), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error(`object ${redirect} is not a regular file`);
    if (st.size > 1 << 20) throw new Error(`object ${redirect} is ${st.size} bytes, more than a config file`);
    const buf = Buffer.alloc(st.size);
    const n = fs.readSync(fd, buf, 0, st.size, 0);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}
