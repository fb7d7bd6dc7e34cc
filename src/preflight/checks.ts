/**
 * `cfsroot preflight`: will the next boot work? Each check reads what that
 * boot will really use: the boot entry the loader picks, the initramfs it
 * names (read as a stream, src/preflight/cpio.ts), the config and key inside
 * it, the deployment its ostree= names, and the kernel it boots. The boot's
 * whole decision is the boot's own code (src/ostree/decide.ts), run with the
 * initramfs's prepare-root.conf and key, copied alone into a private
 * temporary directory (mode 0700, removed at once). Entries with
 * composefs-native kargs get that mode's checks (src/preflight/native-checks.ts).
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CfsError, describeSystemError, fail } from '../errors.js';
import { oneLine } from '../log.js';
import { parseKernelCmdline, splitKernelCmdline } from '../cmdline.js';
import { selectsNativeMode } from '../composefs-native/kargs.js';
import { CONF_PATHS, readKeyFileText, resolveBootConfig, resolveOstreeTarget } from '../ostree/config.js';
import { resolveDeployment } from '../ostree/deployment.js';
import { parsePublicKeys } from '../ostree/keys.js';
import { verifySignedCommit } from '../ostree/signature.js';
import { decideBoot } from '../ostree/decide.js';
import type { BootConfig, Deployment, PrepareRootConf } from '../ostree/model.js';
import { defaultBlsEntry, readBlsEntries, readBlsEntryFile, compareVersions, type BlsEntry } from './bls.js';
import { imageRedirects } from './erofs-redirects.js';
import { lookup, readInitramfs, S_IFMT, S_IFREG, type CpioEntry } from './cpio.js';
import { versionScanner } from './embedded-version.js';

export interface Check {
  /**
   * Stable name, also the JSON code: entry, initramfs, cfsroot, runs-at-boot, config, decision, kernel-modules,
   * kernel-version, verity; ostree mode: deployment, key; composefs-native mode: image.
   */
  code: string;
  ok: boolean;
  message: string;
  /** What to do about a failure (empty when ok). */
  fix: string;
}

export interface PreflightOptions {
  sysroot: string;
  boot: string;
  /** A BLS entry file; default: the one the loader boots next. */
  entry: string | null;
  /** Measures fs-verity of a file; null when the filesystem has none. Default: none available. */
  measureVerity?: (file: string) => string | null;
}

/** Kernel versions where what cfsroot mounts became possible (overlayfs). */
export const KERNEL_DATA_ONLY_LOWERS = '6.5';
export const KERNEL_VERITY_REQUIRE = '6.6';
const NEEDED_MODULES = ['erofs', 'overlay', 'loop'];

export async function runPreflight(o: PreflightOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const ok = (code: string, message: string) => checks.push({ code, ok: true, message, fix: '' });
  const bad = (code: string, message: string, fix: string) => checks.push({ code, ok: false, message: oneLine(message), fix });

  // The entry.
  let entry: BlsEntry;
  const entriesDir = path.join(o.boot, 'loader/entries');
  try {
    if (o.entry) entry = readBlsEntryFile(o.entry);
    else {
      const e = defaultBlsEntry(readBlsEntries(entriesDir));
      if (!e) {
        bad('entry', `no boot entry in ${entriesDir}`, 'deploy (ostree admin deploy / bootc upgrade), which writes the entry');
        return checks;
      }
      entry = e;
    }
  } catch (e) {
    bad('entry', message(e), 'name the entry with --entry FILE, or check --boot');
    return checks;
  }
  if (!entry.linux || entry.initrd.length === 0) {
    bad('entry', `${entry.file}: no ${entry.linux ? 'initrd' : 'linux'} line`, 'redeploy: the entry is incomplete');
    return checks;
  }
  ok('entry', `${entry.file} (version ${entry.version ?? 'none'}): linux ${entry.linux}, initrd ${entry.initrd.join(' ')}`);

  // The initramfs: the boot loader loads every initrd, one after the other.
  // Read as a stream; only the small files preflight reads are kept.
  let files: Map<string, CpioEntry>;
  try {
    const img = await readInitramfs(readFiles(entry.initrd.map((p) => path.join(o.boot, p))), entry.initrd.join('+'), {
      keep: keepInitramfsFile,
      scan: (name) => (/(^|\/)cfsroot$/.test(name) ? versionScanner() : null),
    });
    files = img.entries;
    ok('initramfs', `${img.entries.size} entries in ${img.segments.map((s) => s.compression).join(' + ')}`);
  } catch (e) {
    bad('initramfs', message(e), 'regenerate the initramfs (dracut -f, or ostree admin deploy again)');
    return checks;
  }
  const file = (p: string): CpioEntry | null => {
    const e = lookup(files, p);
    return e && (e.mode & S_IFMT) === S_IFREG ? e : null;
  };
  const text = (p: string): string | null => {
    const e = file(p);
    return e?.data ? Buffer.from(e.data).toString('utf8') : null;
  };

  // cfsroot itself.
  const bin = file('usr/bin/cfsroot') ?? file('usr/sbin/cfsroot');
  if (!bin) bad('cfsroot', 'no /usr/bin/cfsroot in the initramfs', 'rebuild the initramfs with the cfsroot module (dracut --add cfsroot)');
  else ok('cfsroot', `/usr/bin/cfsroot ${bin.scanned ?? '(version not found in the binary)'}, ${bin.size} bytes`);

  // Will it run?
  checkRunsAtBoot(files, ok, bad, splitKernelCmdline(entry.options));

  // composefs-native kargs: that mode's checks (src/preflight/native-checks.ts).
  if (selectsNativeMode(splitKernelCmdline(entry.options))) {
    const { checkNative } = await import('./native-checks.js');
    await checkNative(o, entry, files, text, ok, bad);
    return checks;
  }

  // The config: the one that wins in the initramfs against the deployment's.
  const confText: Record<string, string> = {};
  for (const rel of CONF_PATHS) {
    const t = text(rel);
    if (t !== null) confText[rel] = t;
  }
  let kargs;
  let config: BootConfig | null = null;
  let deployment: Deployment | null = null;
  try {
    kargs = parseKernelCmdline(entry.options);
    const target = resolveOstreeTarget(kargs).value;
    deployment = resolveDeployment(o.sysroot, target);
    ok('deployment', `ostree=${target} -> ${deployment.relDir}`);
  } catch (e) {
    bad('deployment', `the entry's options: ${message(e)}`, 'the entry names a deployment that is gone: redeploy, or pick another entry');
  }
  const tmp = privateDir();
  try {
    for (const [rel, t] of Object.entries(confText)) {
      fs.mkdirSync(path.join(tmp, path.dirname(rel)), { recursive: true, mode: 0o700 });
      fs.writeFileSync(path.join(tmp, rel), t, { mode: 0o600 });
    }
    let conf: PrepareRootConf | null = null;
    try {
      const { loadPrepareRootConf } = await import('../ostree/config.js');
      conf = loadPrepareRootConf(tmp);
    } catch (e) {
      bad('config', `the initramfs's prepare-root.conf: ${message(e)}`, 'fix the file and regenerate the initramfs');
    }
    if (conf && deployment) checkConfig(conf, confText, deployment, ok, bad);
    if (conf && kargs) {
      try {
        config = resolveBootConfig(kargs, conf, o.sysroot);
      } catch (e) {
        bad('decision', message(e), 'fix the kernel command line or the config');
      }
    }

    // The key.
    if (config && deployment) {
      if (!config.composefsSigned) ok('key', `not needed: composefs=${config.composefs}${config.composefsVerity ? ' (verity)' : ''}, not signed`);
      else {
        const keyText = text(config.keypath);
        const keyEntry = file(config.keypath);
        if (keyText === null && keyEntry) {
          bad('key', `keypath ${config.keypath} in the initramfs is ${keyEntry.size} bytes, too large for a key file (preflight reads up to ${KEEP_FILE_BYTES})`, `install the public key at ${config.keypath} and regenerate the initramfs`);
        } else if (keyText === null) bad('key', `keypath ${config.keypath} is not in the initramfs`, `install the public key at ${config.keypath} and regenerate the initramfs`);
        else {
          try {
            const keys = parsePublicKeys(keyText, `${config.keypath} in the initramfs`);
            const s = verifySignedCommit(path.join(o.sysroot, 'ostree/repo'), deployment.commit, keys, config.keypath);
            ok('key', `${config.keypath}: key ${s.keyIndex + 1} of ${keys.length} signed commit ${s.commit}${s.viaParent ? ' (parent, bootc)' : ''}`);
          } catch (e) {
            bad('key', message(e), (e as CfsError).code === 'EKEYS' ? 'put a valid key in the initramfs' : 'sign the commit with the key the initramfs holds, or put the signing key in the initramfs');
          }
        }
        const kt = keyText;
        if (kt !== null) {
          const kp = path.join(tmp, config.keypath);
          fs.mkdirSync(path.dirname(kp), { recursive: true, mode: 0o700 });
          fs.writeFileSync(kp, kt, { mode: 0o600 });
        }
      }
    }

    // The boot's own decision.
    if (config && deployment) {
      try {
        const d = await decideBoot({ sysroot: o.sysroot, cmdline: entry.options, initramfsRoot: tmp, measure: true, runDir: '/nonexistent-run' });
        ok('decision', d.composefs ? `composefs image ${d.deployment.relDir}/.ostree.cfs${d.composefs.expectedDigest ? `, digest matches the ${d.composefs.expectedDigestSource}` : ''}` : 'legacy boot (no composefs)');
      } catch (e) {
        if (!checks.some((c) => c.code === 'decision')) bad('decision', message(e), 'see the message; `cfsroot verify` on the booted system says the same');
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  // The kernel, and fs-verity on the image and the objects.
  if (config && config.composefs !== 'no') checkKernel(files, entry, config.composefsVerity, o.sysroot, deployment?.dir ?? null, ok, bad);
  if (config && deployment && config.composefsVerity) {
    checkVerity(o.measureVerity ?? null, path.join(deployment.dir, '.ostree.cfs'), path.join(o.sysroot, 'ostree/repo/objects'), OSTREE_OBJECT, ok, bad);
  }
  return checks;
}

export type Ok = (code: string, message: string) => void;
export type Bad = (code: string, message: string, fix: string) => void;

/**
 * The unit wanted by initrd-root-fs.target, or dracut's hook, or a busybox
 * /init: what starts cfsroot at boot. With `args` (the entry's kernel
 * command line) also whether it starts for these kargs: the unit's
 * ConditionKernelCommandLine= lines, or the names the hook's getarg asks for
 * (a unit triggered by `composefs` alone does not run for `composefs.digest=`).
 */
export function checkRunsAtBoot(files: Map<string, CpioEntry>, ok: Ok, bad: Bad, args?: readonly string[]): void {
  const text = (p: string): string | null => {
    const e = lookup(files, p);
    return e?.data && (e.mode & S_IFMT) === S_IFREG ? Buffer.from(e.data).toString('utf8') : null;
  };
  const unitDirs = ['etc/systemd/system', 'usr/lib/systemd/system'];
  const hasSystemd = lookup(files, 'usr/lib/systemd/systemd') !== null;
  if (hasSystemd) {
    const unit = unitDirs.map((d) => text(`${d}/cfsroot.service`)).find((t) => t !== null) ?? null;
    const wanted = unitDirs.some((d) => files.has(`${d}/initrd-root-fs.target.wants/cfsroot.service`));
    if (!unit) bad('runs-at-boot', 'systemd initramfs without cfsroot.service', 'rebuild the initramfs with the cfsroot dracut module');
    else if (!wanted) bad('runs-at-boot', 'cfsroot.service is not wanted by initrd-root-fs.target', 'systemctl --root the initramfs enable cfsroot.service (the dracut module does it)');
    else if (!/^ExecStart=\S*cfsroot\s/m.test(unit)) bad('runs-at-boot', 'cfsroot.service does not run cfsroot', 'reinstall the cfsroot dracut module');
    else {
      const c = args ? unitConditions(unit, args) : null;
      if (c && !c.met) {
        bad('runs-at-boot', `cfsroot.service is skipped for this entry: ${c.why}`, 'install a cfsroot dracut module whose unit is triggered by the mode\'s karg, and regenerate the initramfs');
      } else ok('runs-at-boot', `cfsroot.service, wanted by initrd-root-fs.target${c?.why ? `, ${c.why}` : ''}`);
    }
    return;
  }
  for (const name of files.keys()) {
    if (/\/hooks\/pre-pivot\/[^/]*cfsroot[^/]*\.sh$/.test(name)) {
      const hook = text(name) ?? '';
      const asks = [...hook.matchAll(/getarg\s+([A-Za-z0-9_.-]+)/g)].map((m) => m[1]!);
      if (args && asks.length > 0 && !args.some((a) => asks.some((n) => kargIs(a, n)))) {
        bad('runs-at-boot', `the dracut pre-pivot hook /${name} runs cfsroot only for ${asks.join(' or ')}, and the entry has none of them`, 'install a cfsroot dracut module whose hook asks for the mode\'s karg, and regenerate the initramfs');
      } else ok('runs-at-boot', `dracut pre-pivot hook /${name}`);
      return;
    }
  }
  const init = text('init');
  if (init !== null && /cfsroot \/sysroot|cfsroot "?\$/.test(init)) {
    ok('runs-at-boot', '/init runs cfsroot (busybox initramfs)');
    return;
  }
  bad('runs-at-boot', 'nothing in the initramfs runs cfsroot (no systemd unit, no dracut hook, no /init calling it)', 'rebuild the initramfs with the cfsroot dracut module (dracut --add cfsroot)');
}

/** systemd's match of one ConditionKernelCommandLine= word: `name` is the karg name alone or with any value, `name=value` exactly. */
function kargIs(arg: string, word: string): boolean {
  return word.includes('=') ? arg === word : arg === word || arg.startsWith(`${word}=`);
}

/**
 * The unit's ConditionKernelCommandLine= lines against the kargs, as systemd
 * reads them: every plain condition must hold, and of the triggering ones
 * (`|`) at least one; `!` negates.
 */
export function unitConditions(unit: string, args: readonly string[]): { met: boolean; why: string } {
  const plain: string[] = [];
  const triggers: string[] = [];
  for (const m of unit.matchAll(/^\s*ConditionKernelCommandLine\s*=\s*(\S+)\s*$/gm)) {
    const v = m[1]!;
    (v.startsWith('|') ? triggers : plain).push(v.startsWith('|') ? v.slice(1) : v);
  }
  const holds = (c: string) => (c.startsWith('!') ? !args.some((a) => kargIs(a, c.slice(1))) : args.some((a) => kargIs(a, c)));
  const failing = plain.filter((c) => !holds(c));
  if (failing.length > 0) return { met: false, why: `ConditionKernelCommandLine=${failing.join(', ')} does not hold` };
  if (triggers.length === 0) return { met: true, why: '' };
  const hit = triggers.find(holds);
  if (!hit) return { met: false, why: `no karg matches its triggers ConditionKernelCommandLine=|${triggers.join(', |')}` };
  return { met: true, why: `triggered by ConditionKernelCommandLine=|${hit}` };
}

function checkConfig(conf: PrepareRootConf, confText: Record<string, string>, dep: Deployment, ok: Ok, bad: Bad): void {
  const imageRel = CONF_PATHS[0];
  const file = path.join(dep.dir, imageRel);
  let imageSections: Record<string, Record<string, string>> | null = null;
  try {
    imageSections = readKeyFileText(fs.readFileSync(file, 'utf8'), file).sections as never;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      bad('config', `${file}: ${message(e)}`, 'fix the image');
      return;
    }
  }
  const mine = conf.sections as unknown as Record<string, Record<string, string>>;
  const winner = confText[CONF_PATHS[1]] !== undefined ? CONF_PATHS[1] : confText[CONF_PATHS[0]] !== undefined ? CONF_PATHS[0] : null;
  const diffs: string[] = [];
  const theirs: Record<string, Record<string, string>> = imageSections ?? {};
  const groups = new Set([...Object.keys(mine), ...Object.keys(theirs)]);
  for (const g of [...groups].sort()) {
    const a = mine[g] ?? {};
    const b = theirs[g] ?? {};
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      if (a[k] !== b[k]) diffs.push(`[${g}] ${k}: initramfs ${a[k] === undefined ? 'unset' : `"${a[k]}"`}, image ${b[k] === undefined ? 'unset' : `"${b[k]}"`}`);
    }
  }
  const where = `${winner ? `/${winner.replace(/^\//, '')}` : 'no prepare-root.conf'} in the initramfs vs ${imageSections ? `${imageRel} of the deployment` : 'none in the deployment'}`;
  if (diffs.length === 0) ok('config', `${where}: the same settings`);
  else bad('config', `${where} differ: ${diffs.join('; ')}`, 'regenerate the initramfs from the deployment (dracut -f, or let ostree/bootc do it on deploy)');
}

function checkModules(files: Map<string, CpioEntry>, kver: string, sysroot: string, checkout: string | null, ok: Ok, bad: Bad): void {
  const modDir = `usr/lib/modules/${kver}`;
  const inInitramfs = new Map<string, string>();
  const prefix = (lookup(files, `lib/modules/${kver}`) ? `lib/modules/${kver}` : modDir) + '/';
  for (const name of files.keys()) {
    const n = name.startsWith('usr/') ? name : name;
    for (const m of NEEDED_MODULES) {
      if ((n.startsWith(prefix) || n.startsWith(`usr/${prefix}`)) && new RegExp(`/${m}\\.ko(\\.(xz|zst|gz))?$`).test(n)) inInitramfs.set(m, n);
    }
  }
  let builtinText = '';
  const candidates = [
    () => {
      const e = lookup(files, `lib/modules/${kver}/modules.builtin`);
      return e?.data ? Buffer.from(e.data).toString('utf8') : null;
    },
    () => (checkout ? readOrNull(path.join(checkout, modDir, 'modules.builtin')) : null),
    () => readOrNull(path.join(sysroot, 'lib/modules', kver, 'modules.builtin')),
    () => readOrNull(path.join('/lib/modules', kver, 'modules.builtin')),
  ];
  for (const c of candidates) {
    const t = c();
    if (t !== null) {
      builtinText = t;
      break;
    }
  }
  const builtin = new Set(builtinText.split('\n').map((l) => /([^/]+)\.ko$/.exec(l.trim())?.[1]).filter((x): x is string => !!x));
  const missing = NEEDED_MODULES.filter((m) => !inInitramfs.has(m) && !builtin.has(m));
  const said = NEEDED_MODULES.map((m) => `${m} ${inInitramfs.has(m) ? 'module' : builtin.has(m) ? 'built in' : 'MISSING'}`).join(', ');
  if (missing.length) bad('kernel-modules', `kernel ${kver}: ${said}`, `rebuild the initramfs with the modules (dracut --add-drivers "${missing.join(' ')}"; the cfsroot module adds them)`);
  else ok('kernel-modules', `kernel ${kver}: ${said}`);
}

/** A redirect naming an ostree object: "/xx/<62 hex>.file", relative to the repo's objects/. */
export const OSTREE_OBJECT = /^\/[0-9a-f]{2}\/[0-9a-f]{62}\.file$/;

/**
 * fs-verity on the composefs image and on every backing object it names
 * (its redirects, under objectsDir), each measured with the ioctl: the
 * count and the first few without it.
 */
export function checkVerity(measure: PreflightOptions['measureVerity'] | null, image: string, objectsDir: string, objectName: RegExp, ok: Ok, bad: Bad): void {
  if (!measure) {
    bad('verity', 'cannot measure fs-verity here (no measuring tool)', 'run preflight on the booted system');
    return;
  }
  let first: string | null;
  try {
    first = measure(image);
  } catch (e) {
    bad('verity', message(e), 'redeploy: the image is missing');
    return;
  }
  if (first === 'unsupported') {
    bad('verity', `${image}: the filesystem does not support fs-verity`, 'put the sysroot on a filesystem with fs-verity (ext4 -O verity, btrfs, f2fs), or do not require verity');
    return;
  }
  const missing: string[] = [];
  if (first === null) missing.push(image);
  let redirects: string[];
  try {
    redirects = imageRedirects(fs.readFileSync(image), image);
  } catch (e) {
    bad('verity', `reading the backing objects the image names: ${message(e)}`, 'rebuild the composefs image (redeploy)');
    return;
  }
  for (const r of redirects) {
    if (!objectName.test(r)) {
      missing.push(`${r} (not an object path)`);
      continue;
    }
    const p = path.join(objectsDir, r);
    let m: string | null;
    try {
      m = measure(p);
    } catch (e) {
      m = null;
      missing.push(`${p} (${message(e)})`);
      continue;
    }
    if (m === null || m === 'unsupported') missing.push(p);
  }
  const total = redirects.length + 1;
  if (missing.length) bad('verity', `${missing.length} of ${total} files without fs-verity (the image and the ${redirects.length} backing objects it names), first: ${missing.slice(0, 3).join(', ')}`, 'fsverity enable each file (ostree does it with [ex-integrity] fsverity=yes)');
  else ok('verity', `fs-verity enabled on the image and the ${redirects.length} backing objects it names`);
}

/**
 * The kernel the entry boots: new enough for what the mode asks (data-only
 * overlayfs lowers; verity=require), and erofs, overlay and loop in the
 * initramfs or built in.
 */
export function checkKernel(files: Map<string, CpioEntry>, entry: BlsEntry, verity: boolean, sysroot: string, checkout: string | null, ok: Ok, bad: Bad): void {
  const kver = /vmlinuz-(.+)$/.exec(entry.linux ?? '')?.[1] ?? null;
  if (!kver) {
    bad('kernel-version', `cannot tell the kernel version from ${entry.linux}`, 'name the kernel vmlinuz-<version>');
    return;
  }
  const need = verity ? KERNEL_VERITY_REQUIRE : KERNEL_DATA_ONLY_LOWERS;
  const why = verity ? 'verity=require' : 'data-only overlayfs lowers';
  if (compareVersions(kver, need) < 0) bad('kernel-version', `kernel ${kver} is older than ${need}, needed for ${why}`, `boot a kernel ${need} or newer`);
  else ok('kernel-version', `kernel ${kver} >= ${need} (${why})`);
  checkModules(files, kver, sysroot, checkout, ok, bad);
}

function readOrNull(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return null;
  }
}

export function message(e: unknown): string {
  return oneLine(e instanceof CfsError ? e.message : describeSystemError(e));
}

/**
 * Regular files preflight reads, kept in memory: configs, keys, units,
 * hooks, /init, modules.builtin, all small text. Larger files (the cfsroot
 * binary, libraries, kernel modules) stream past and are dropped; their
 * names, modes and sizes are still known.
 */
export const KEEP_FILE_BYTES = 256 * 1024;
export function keepInitramfsFile(name: string, size: number): boolean {
  return size <= KEEP_FILE_BYTES && !/\.ko(\.(xz|zst|gz))?$|\.so(\.[0-9.]+)?$/.test(name);
}

/**
 * A private directory (0700) for the initramfs's config and key, which the
 * boot's decision reads from files. The booted system's root is read-only
 * (composefs): the temporary directory when it is writable, else /run (a
 * tmpfs on every systemd system).
 */
export function privateDir(): string {
  const reasons: string[] = [];
  for (const dir of [...new Set([os.tmpdir(), '/run'])]) {
    try {
      return fs.mkdtempSync(path.join(dir, 'cfsroot-preflight-'));
    } catch (e) {
      reasons.push(`${dir}: ${describeSystemError(e)}`);
    }
  }
  return fail('EIO', `preflight needs a private directory for the initramfs's config and key, and none could be made (${reasons.join('; ')}): set TMPDIR to a writable directory`);
}

/** The initrd files one after the other, as the boot loader loads them, each opened once and read in pieces. */
async function* readFiles(files: string[]): AsyncGenerator<Uint8Array> {
  const PIECE = 1 << 20;
  for (const file of files) {
    const fd = fs.openSync(file, 'r');
    try {
      for (;;) {
        const buf = Buffer.allocUnsafe(PIECE);
        const n = fs.readSync(fd, buf, 0, PIECE, null);
        if (n === 0) break;
        yield buf.subarray(0, n);
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

export { embeddedVersion } from './embedded-version.js';
