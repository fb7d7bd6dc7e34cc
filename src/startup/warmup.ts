/**
 * Warm-up run while the single executable's V8 startup snapshot is built
 * (src/startup/sea.ts, issue 5). V8 compiles a function on its first call, and
 * Node loads many of its own internals on first use; both then stay in the
 * heap that the snapshot saves. So the build runs every stage of the boot
 * once, on throw-away deployments it writes to a temp directory (an ostree
 * one, signed, and a composefs-native repository), with a `Sys` whose mount
 * calls do nothing; a real boot then starts with that code already
 * compiled. Measured: the decision stage of a boot went from ~24 ms to ~7 ms
 * on the loaded 2-core bench machine (bench/RESULTS.md). What a boot still
 * compiles for itself, `make bench-compiles` lists, and
 * test/integration/snapshot-warm.test.ts keeps at nothing beyond what
 * `--version` compiles.
 *
 * Nothing here may leave state a real run would see: no logging to the real
 * logger, no files outside the temp directory (removed at the end), no open
 * handles (the snapshot cannot hold them). Keys made here are garbage by
 * the time the snapshot is taken.
 */

import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { boot } from '../boot.js';
import { defaultIo, describeDecision, run, toJson } from '../cli.js';
import { encodeCommit, objectPath, type Commit } from '../ostree/commit.js';
import { decideBoot } from '../ostree/decide.js';
import { fsverityDigest, fsverityDigestFile } from '../image/fsverity.js';
import { encodeVardict } from '../ostree/gvariant.js';
import { COMPOSEFS_MAGIC, COMPOSEFS_VERSION, EROFS_SUPER_MAGIC, EROFS_SUPER_OFFSET } from '../image/header.js';
import { allOutputWritten, createLogger, writeToFd } from '../log.js';
import { noteActivity, notePlanSteps, noteStep, onActivity } from '../activity.js';
import { ignoreNodeEnvironment, nodeVariables } from './environment.js';
import { detectPlanEnv, formatPlan } from '../plan/steps.js';
import { planMounts } from '../ostree/plan.js';
import { armBootDeadline, bootSys, loadNativeAddon, loadNativeAddonQuietly, nativeSysFrom, warmCryptoIfLoaded, type NativeAddon } from '../sys/native.js';
import { spawnSys } from '../sys/spawn.js';
import type { Sys } from '../sys/types.js';

const BOOTCSUM = 'b'.repeat(64);

/** A minimal image: composefs header (SPEC §3) and the EROFS superblock magic at 1024. */
function warmImage(): Buffer {
  const image = Buffer.alloc(3 * 4096 + 100); // more than one block: the Merkle tree has a level above the data
  image.writeUInt32LE(COMPOSEFS_MAGIC, 0);
  image.writeUInt32LE(COMPOSEFS_VERSION, 4); // header version
  image.writeUInt32LE(EROFS_SUPER_MAGIC, EROFS_SUPER_OFFSET);
  return image;
}

/**
 * Lay out a composefs-native repository (SPEC §6) under SYSROOT: the image
 * in objects/, named by its fs-verity digest in images/, meta.json, and the
 * deployment's state directories. Returns the image's digest (hex).
 */
function writeNativeRepository(sysroot: string): string {
  const image = warmImage();
  const digest = Buffer.from(fsverityDigest(image, 'sha256')).toString('hex');
  const repo = path.join(sysroot, 'composefs');
  const object = `${digest.slice(0, 2)}/${digest.slice(2)}`;
  fs.mkdirSync(path.join(repo, 'objects', digest.slice(0, 2)), { recursive: true });
  fs.mkdirSync(path.join(repo, 'images'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'objects', object), image);
  fs.symlinkSync(`../objects/${object}`, path.join(repo, 'images', digest));
  fs.writeFileSync(
    path.join(repo, 'meta.json'),
    JSON.stringify({ version: 1, algorithm: 'fsverity-sha256-12', features: { compatible: [], read_only_compatible: [], incompatible: [] } }),
  );
  for (const sub of ['etc', 'var']) fs.mkdirSync(path.join(sysroot, 'state/deploy', digest, sub), { recursive: true });
  return digest;
}

/** Lay out SYSROOT + initramfs root for a signed composefs boot; returns the kernel command line. */
function writeDeployment(sysroot: string, initramfs: string): string {
  const image = warmImage();
  const commit: Commit = {
    metadata: new Map([['ostree.composefs.digest.v0', { type: 'ay', value: fsverityDigest(image, 'sha256') }]]),
    parent: new Uint8Array(0),
    related: [],
    subject: 'cfsroot snapshot warm-up',
    body: '',
    timestamp: 0n,
    rootTree: new Uint8Array(32),
    rootMeta: new Uint8Array(32),
  };
  const bytes = encodeCommit(commit);
  const checksum = createHash('sha256').update(bytes).digest('hex');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const repo = path.join(sysroot, 'ostree/repo');
  const commitFile = objectPath(repo, checksum, 'commit');
  fs.mkdirSync(path.dirname(commitFile), { recursive: true });
  fs.writeFileSync(path.join(repo, 'config'), '[core]\nrepo_version=1\nmode=bare\n');
  fs.writeFileSync(commitFile, bytes);
  fs.writeFileSync(
    objectPath(repo, checksum, 'commitmeta'),
    encodeVardict([['ostree.sign.ed25519', { type: 'aay', value: [new Uint8Array(sign(null, bytes, privateKey))] }]]),
  );
  const deploy = path.join(sysroot, 'ostree/deploy/warm/deploy', `${checksum}.0`);
  for (const d of [path.join(deploy, 'etc'), path.join(deploy, 'usr/etc'), path.join(sysroot, 'ostree/deploy/warm/var')]) {
    fs.mkdirSync(d, { recursive: true });
  }
  fs.writeFileSync(path.join(deploy, '.ostree.cfs'), image);
  const boot = path.join(sysroot, 'ostree/boot.1/warm', BOOTCSUM);
  fs.mkdirSync(boot, { recursive: true });
  fs.symlinkSync(`../../../deploy/warm/deploy/${checksum}.0`, path.join(boot, '0'));

  const conf = path.join(initramfs, 'etc/ostree');
  fs.mkdirSync(conf, { recursive: true });
  fs.writeFileSync(path.join(conf, 'prepare-root.conf'), '[composefs]\nenabled = signed\n[etc]\ntransient = false\n');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  fs.writeFileSync(path.join(conf, 'initramfs-root-binding.key'), `\n${raw.toString('base64')}\n`);
  return `BOOT_IMAGE=/vmlinuz root=UUID=0 rw quiet "x=a b" ostree=/ostree/boot.1/warm/${BOOTCSUM}/0`;
}

/** Copies made by dry runs, for names none of them repeats. */
let dryCopies = 0;

/**
 * node:fs for files, no-ops for mounts (by descriptor, as the boot makes
 * them), and the addon's image calls done with node:fs and src/image/fsverity.ts:
 * the executor runs every step, the namespace is untouched, and the boot's
 * own wrappers around those calls are compiled too. `verity`: the image
 * measures as having fs-verity with `verity` as its digest (the fs-verity
 * path), else as having none (the private copy path).
 */
function dryRunSys(dir: string, verity: string | null): { sys: Sys; addon: NativeAddon; descriptorMounts: () => number } {
  const files = spawnSys();
  const noop = () => {};
  // Mount by descriptor as the boot does (src/sys/native.ts descriptorMounts),
  // with descriptor numbers nothing opens: the mounts are no-ops, so the
  // targets under the staging dir (its etc, var, …) never exist here.
  // The image and its copy are real files: their headers are read.
  let nextFd = 1000;
  let mounts = 0;
  const real = new Set<number>();
  const openReal = (p: string) => {
    const fd = fs.openSync(p, 'r');
    real.add(fd);
    return fd;
  };
  const fakeFd = () => nextFd++;
  const mounted = () => (mounts++, nextFd++);
  const addon: NativeAddon = {
    openDir: fakeFd,
    openImage: (root, rel) => openReal(path.join(root, rel)),
    closeFd: (fd) => {
      if (real.delete(fd)) fs.closeSync(fd);
    },
    bindAt: mounted,
    mountAt: mounted,
    mount: noop,
    umount: noop,
    setReadonly: noop,
    isReadonly: () => false,
    mountLoop: () => '/dev/loop0',
    measureVerity: () => (verity === null ? null : `sha256:${verity}`),
    measureVerityFd: () => (verity === null ? null : `sha256:${verity}`),
    copyImage: (fd, alg) => {
      const bytes = fs.readFileSync(fd);
      const copy = path.join(dir, `copy.${++dryCopies}`);
      fs.writeFileSync(copy, bytes, { flag: 'wx' });
      return { digest: Buffer.from(fsverityDigest(bytes, alg)), fd: openReal(copy) };
    },
  };
  return { sys: nativeSysFrom(addon, files), addon, descriptorMounts: () => mounts };
}

/** A logger for a warm-up boot that keeps what the boot said, for the error when it fails; kmsgPath as createLogger's. */
function toldLogger(kmsgPath: string | null = null) {
  const told: string[] = [];
  return { logger: createLogger({ stderr: (line) => void told.push(line), kmsgPath }), text: () => told.join('').trim() };
}

/** Run decide -> plan -> execute (dry) -> the CLI's formatting once. Resolves when done. */
export async function warmUp(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-warmup-'));
  try {
    const sysroot = path.join(dir, 'sysroot');
    const initramfs = path.join(dir, 'initramfs');
    const cmdline = writeDeployment(sysroot, initramfs);
    // The snapshot builder runs without Atomics/SharedArrayBuffer; only the
    // worker path of fsverityDigestFile uses them, so the one-thread path
    // (every image below 48 MiB, and `cfsroot digest` of small files) is
    // warmed here, and the boot's copy-and-hash runs for real in executePlan.
    const imageFile = path.join(dir, 'image');
    fs.writeFileSync(imageFile, warmImage());
    await fsverityDigestFile(imageFile, 'sha256', { workers: 0 });
    const decision = await decideBoot({ sysroot, cmdline, initramfsRoot: initramfs, measure: false });
    describeDecision(decision);
    toJson(decision);
    const runDir = path.join(dir, 'run');
    fs.mkdirSync(runDir);
    const env = { ...detectPlanEnv(decision, runDir), stagingDir: path.join(dir, 'staging') };
    formatPlan(planMounts(decision, env));
    // The decision without composefs (`enabled = no`), which alone reads the
    // repo's [sysroot] readonly; its binds are the other boots' steps.
    const initramfsNo = path.join(dir, 'initramfs-no');
    fs.mkdirSync(path.join(initramfsNo, 'etc/ostree'), { recursive: true });
    fs.writeFileSync(path.join(initramfsNo, 'etc/ostree/prepare-root.conf'), '[composefs]\nenabled = no\n');
    const legacy = await decideBoot({ sysroot, cmdline, initramfsRoot: initramfsNo, measure: false });
    formatPlan(planMounts(legacy, env));
    // The boot itself, as the initramfs runs it, minus the kernel: decide,
    // plan, execute, the closing line; once on the private copy path, once
    // on the fs-verity path (src/image/plan.ts).
    const nullIo = { out: () => {}, err: () => {} };
    const digest = Buffer.from(fsverityDigest(warmImage(), 'sha256')).toString('hex');
    // Someone listens to the boot's activity, as the deadline does at boot:
    // otherwise the notes' closures (each check's, each step's, with
    // stepSubject) are never called here and a boot compiles them itself
    // (V8's function events: about 0.15 ms). Nothing is kept of what is said.
    onActivity({ note: () => {}, steps: () => {}, step: () => {} });
    for (const [i, verity] of [null, digest].entries()) {
      const dry = dryRunSys(dir, verity);
      const run = path.join(dir, `run${i}`);
      fs.mkdirSync(run);
      const told = toldLogger();
      const status = await boot({ sysroot, cmdline, initramfsRoot: initramfs }, nullIo, told.logger, {
        sys: dry.sys,
        runDir: run,
        stagingDir: path.join(dir, `staging${i}`),
      });
      if (status !== 0) throw new Error(`the warm-up boot (${verity === null ? 'private copy' : 'fs-verity'} path) failed (status ${status}): ${told.text()}`);
      // The snapshot must hold the code the boot runs: the mounts by descriptor.
      if (dry.descriptorMounts() === 0) throw new Error('the warm-up boot made no mount by descriptor');
    }
    // The composefs-native boot (composefs= kargs, SPEC §6), whose modules
    // nothing above loads: pinned (which needs fs-verity on the image: the
    // dry addon says it has it), and unpinned (`?`, the private copy) with a
    // setup-root-conf.toml (a transient root).
    const nativeSysroot = path.join(dir, 'native-sysroot');
    const nativeDigest = writeNativeRepository(nativeSysroot);
    const nativeInitramfs = path.join(dir, 'native-initramfs');
    fs.mkdirSync(path.join(nativeInitramfs, 'usr/lib/composefs'), { recursive: true });
    const nativeRuns = [
      { karg: `composefs=${nativeDigest}`, verity: nativeDigest },
      { karg: `composefs=?${nativeDigest}`, verity: null, conf: '[root]\ntransient = true\n' },
    ];
    for (const [i, n] of nativeRuns.entries()) {
      if (n.conf !== undefined) fs.writeFileSync(path.join(nativeInitramfs, 'usr/lib/composefs/setup-root-conf.toml'), n.conf);
      const dry = dryRunSys(dir, n.verity);
      const run = path.join(dir, `native-run${i}`);
      fs.mkdirSync(run);
      const told = toldLogger();
      const status = await boot({ sysroot: nativeSysroot, cmdline: `root=LABEL=root rw ${n.karg}`, initramfsRoot: nativeInitramfs }, nullIo, told.logger, {
        sys: dry.sys,
        addon: dry.addon,
        runDir: run,
        stagingDir: path.join(dir, `native-staging${i}`),
      });
      if (status !== 0) throw new Error(`the warm-up composefs-native boot ${n.karg} failed (status ${status}): ${told.text()}`);
    }
    // The boot form through the command line, as the initramfs runs it
    // (argv -> parseBootForm -> boot), with `enabled = yes`: the unpinned
    // path (the image mounted as it is), logging to a kernel log that is a
    // file here.
    const initramfsYes = path.join(dir, 'initramfs-yes');
    fs.mkdirSync(path.join(initramfsYes, 'etc/ostree'), { recursive: true });
    fs.writeFileSync(path.join(initramfsYes, 'etc/ostree/prepare-root.conf'), '[composefs]\nenabled = yes\n');
    const initrdRelease = path.join(initramfsYes, 'etc/initrd-release');
    fs.writeFileSync(initrdRelease, 'NAME=warm-up\n');
    const said = toldLogger(path.join(dir, 'kmsg'));
    const yes = dryRunSys(dir, null);
    fs.mkdirSync(path.join(dir, 'run-yes'));
    const cliStatus = await run([sysroot, cmdline], nullIo, {
      boot: { sys: yes.sys, runDir: path.join(dir, 'run-yes'), stagingDir: path.join(dir, 'staging-yes') },
      logger: said.logger,
      initramfsRoot: initramfsYes,
      initrdRelease,
    });
    if (cliStatus !== 0) throw new Error(`the warm-up boot form failed (status ${cliStatus}): ${said.text()}`);
    writeToFd(2, ''); // compiled, writes nothing
    // The command line's own writers, which the runs above replace (nothing written).
    defaultIo.out('');
    defaultIo.err('');
    // What a real boot runs before and around the plan, which the injected
    // Sys above skips: the addon's extraction (an asset that is no library:
    // written, refused by dlopen, removed), the backend's choice, the
    // deadline (an addon whose watchdog does nothing), the environment check.
    let loaded: NativeAddon | null = null;
    try {
      loaded = loadNativeAddon({ asset: new ArrayBuffer(64), extractDirs: [dir] });
    } catch {
      /* refused, as it must be */
    }
    if (loaded !== null) throw new Error('the warm-up loaded an addon from 64 zero bytes');
    warmCryptoIfLoaded(); // no addon is loaded here: compiled, does nothing
    // The native boot's own load of the addon (none here: it returns null).
    if (loadNativeAddonQuietly({ asset: new ArrayBuffer(64), extractDirs: [dir] }) !== null) throw new Error('the warm-up loaded an addon from 64 zero bytes');
    const watchdog = { ...yes.addon, watchdogStart: () => {}, watchdogNote: () => {}, watchdogSteps: () => {}, watchdogStep: () => {}, watchdogStop: () => {} };
    bootSys({ addon: watchdog, fallback: spawnSys() });
    const disarm = armBootDeadline(watchdog);
    noteActivity(() => 'warm-up');
    notePlanSteps(() => ['warm-up /']);
    noteStep(0);
    disarm();
    nodeVariables({ PATH: '/bin', NODE_WARM_UP: '1' });
    // What every run calls first and last, compiled here so that no run
    // compiles them (V8's function events: about 0.1 ms): on an environment
    // without Node's variables, where it does nothing; and the output check.
    ignoreNodeEnvironment({ PATH: '/bin' });
    allOutputWritten();
    // The command line's dispatch, on the one command that touches nothing.
    if ((await run(['--version'], nullIo)) !== 0) throw new Error('the warm-up --version failed');
  } finally {
    onActivity(null);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
