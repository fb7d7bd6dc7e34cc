/**
 * A minimal initramfs-like root for the integration tests (issue 3): busybox
 * (static) for the shell, util-linux mount/umount/losetup with the shared
 * libraries ldd reports, and cfsroot at /usr/bin/cfsroot: the single
 * executable dist/cfsroot when it has been built, else a Node bundle of
 * test/integration/boot-entry.ts run by a copy of `node` (same libraries as
 * the SEA binary, same code path: decide -> plan -> execute).
 *
 * `bootInNamespace` runs cfsroot the way the boot does, as root in a private
 * mount namespace (unshare -m --propagation private): tmpfs on /run, the
 * test sysroot bound at /sysroot, chroot, then `/usr/bin/cfsroot /sysroot
 * "<cmdline>"`. It captures /proc/self/mountinfo, `losetup` and /run before
 * and after, plus the output of a probe script that reads through the new
 * root. Everything the namespace mounted disappears when it exits.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { parseMountinfo, type MountInfo } from '../../src/sys/mountinfo.js';
import { tableLines } from './mountinfo.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BUSYBOX_APPLETS = ['sh', 'cat', 'ls', 'mkdir', 'echo', 'grep', 'find', 'readlink', 'stat', 'head', 'sed', 'sort', 'test', 'true', 'false', 'od', 'wc', 'dd', 'touch', 'rm', 'cp', 'env', 'tr'];

export interface InitramfsRoot {
  dir: string;
  /** How cfsroot got in: 'sea' (dist/cfsroot) or 'bundle' (node + boot-entry bundle). */
  flavour: 'sea' | 'bundle';
  remove(): void;
}

/**
 * One initramfs root for a whole test file: built before its tests (and
 * handed to `use`), removed after them, together with every directory the
 * tests push onto the returned list.
 */
export function initramfsRootForFile(use: (root: InitramfsRoot) => void): string[] {
  let root: InitramfsRoot | undefined;
  const dirs: string[] = [];
  test.before(() => {
    root = buildInitramfsRoot();
    use(root);
  });
  test.after.always(() => {
    root?.remove();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
  return dirs;
}

export function buildInitramfsRoot(): InitramfsRoot {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-initramfs-'));
  for (const d of ['bin', 'usr/bin', 'usr/sbin', 'usr/lib/cfsroot', 'etc/ostree', 'proc', 'sys', 'dev', 'run', 'sysroot', 'tmp', 'out']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  }
  // The boot form runs only in an initramfs (src/cli.ts), which this file marks.
  fs.writeFileSync(path.join(dir, 'etc/initrd-release'), 'NAME="cfsroot test initramfs"\n');
  install('/usr/bin/busybox', path.join(dir, 'bin/busybox'));
  for (const a of BUSYBOX_APPLETS) fs.symlinkSync('busybox', path.join(dir, 'bin', a));
  for (const bin of ['/usr/bin/mount', '/usr/bin/umount', '/usr/sbin/losetup']) installWithLibs(bin, dir);

  const sea = path.join(REPO, 'dist/cfsroot');
  let flavour: InitramfsRoot['flavour'];
  if (fs.existsSync(sea) && process.env['CFSROOT_IT_BUNDLE'] !== '1') {
    installWithLibs(sea, dir, '/usr/bin/cfsroot');
    flavour = 'sea';
  } else {
    const bundle = path.join(dir, 'usr/lib/cfsroot/boot.cjs');
    execFileSync(path.join(REPO, 'node_modules/.bin/esbuild'), [
      path.join(REPO, 'test/integration/boot-entry.ts'),
      '--bundle', '--platform=node', '--target=node20', '--format=cjs', '--log-level=warning', `--outfile=${bundle}`,
    ]);
    installWithLibs(process.execPath, dir, '/usr/bin/node');
    fs.writeFileSync(path.join(dir, 'usr/bin/cfsroot'), '#!/bin/sh\nexec /usr/bin/node /usr/lib/cfsroot/boot.cjs "$@"\n', { mode: 0o755 });
    flavour = 'bundle';
  }
  return { dir, flavour, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Hard link (same filesystem, instant) or copy a file into the root. */
function install(src: string, dest: string): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  try {
    fs.linkSync(src, dest);
  } catch {
    fs.copyFileSync(src, dest);
    fs.chmodSync(dest, fs.statSync(src).mode & 0o7777);
  }
}

function installWithLibs(bin: string, root: string, as = bin): void {
  install(fs.realpathSync(bin), path.join(root, as));
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (!m) continue;
    const lib = m[1]!;
    const dest = path.join(root, lib);
    if (!fs.existsSync(dest)) install(fs.realpathSync(lib), dest);
  }
}

export interface BootRun {
  rc: number;
  stdout: string;
  stderr: string;
  before: MountInfo[];
  after: MountInfo[];
  /** "LOOPDEV BACKING-FILE" of the loops whose backing file is on this namespace's /run or in this test's sysroot. */
  loopsBefore: string[];
  loopsAfter: string[];
  runBefore: string[];
  runAfter: string[];
  /** Output of the probe script, run in the chroot after cfsroot. */
  probe: string;
}

export interface BootOptions {
  root: InitramfsRoot;
  sysroot: string;
  cmdline: string;
  /** prepare-root.conf text for /etc/ostree (null: none). */
  prepareRootConf?: string | null;
  /** Public key file content for /etc/ostree/initramfs-root-binding.key (null: none). */
  bindingKey?: string | null;
  /** Shell run in the chroot after cfsroot (stdout captured as `probe`). */
  probe?: string;
  /** Shell run in the chroot after the probe (e.g. change the image on disk), then `probe2`. */
  between?: string;
  probe2?: string;
  /** Extra tmpfs options for the namespace's /run (e.g. "size=4k": a full /run). */
  runOptions?: string;
  /** Extra environment for cfsroot (and the scripts around it). */
  env?: Record<string, string>;
  /** Files written into the initramfs root for this run (path inside it -> content), removed afterwards. */
  initramfsFiles?: Record<string, string>;
  /** Shell words before SYSROOT on cfsroot's command line (e.g. "--target /run/nextroot"). */
  bootArgs?: string;
}

/**
 * The shell that sets an initramfs root up inside a fresh mount namespace
 * and runs `$INNER` chrooted in it: the root made a mount of its own (an
 * initramfs' / is one, rootfs; a plain directory is not), a new tmpfs
 * /run (`runOptions` added to its options), SYSROOT at /sysroot and at each
 * of `binds` (a path inside the root), /proc, /dev, /sys, and `out` at /out.
 */
export function chrootScript(o: { root: string; sysroot: string; out: string; runOptions?: string; binds?: string[] }): string {
  return [
    'set -e',
    `R='${o.root}'`,
    'mount --bind "$R" "$R"',
    `mount -t tmpfs -o mode=0755${o.runOptions ? `,${o.runOptions}` : ''} tmpfs "$R/run"`,
    `mount --bind '${o.sysroot}' "$R/sysroot"`,
    ...(o.binds ?? []).map((at) => `mount --bind '${o.sysroot}' "$R/${at}"`),
    'mount -t proc proc "$R/proc"',
    'mount --rbind /dev "$R/dev"',
    'mount --rbind /sys "$R/sys"',
    `mount --bind '${o.out}' "$R/out"`,
    'exec chroot "$R" /bin/sh -c "$INNER"',
  ].join('\n');
}

export function bootInNamespace(o: BootOptions): BootRun & { probe2: string; between: string } {
  const R = o.root.dir;
  const ostreeEtc = path.join(R, 'etc/ostree');
  for (const f of fs.readdirSync(ostreeEtc)) fs.rmSync(path.join(ostreeEtc, f));
  if (o.prepareRootConf) fs.writeFileSync(path.join(ostreeEtc, 'prepare-root.conf'), o.prepareRootConf);
  if (o.bindingKey) fs.writeFileSync(path.join(ostreeEtc, 'initramfs-root-binding.key'), o.bindingKey);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-out-'));
  fs.writeFileSync(path.join(out, 'probe.sh'), o.probe ?? 'true\n');
  fs.writeFileSync(path.join(out, 'between.sh'), o.between ?? 'true\n');
  fs.writeFileSync(path.join(out, 'probe2.sh'), o.probe2 ?? 'true\n');
  fs.writeFileSync(path.join(out, 'cmdline'), o.cmdline);
  const extra = Object.keys(o.initramfsFiles ?? {}).map((p) => path.join(R, p));
  for (const [p, content] of Object.entries(o.initramfsFiles ?? {})) {
    fs.mkdirSync(path.dirname(path.join(R, p)), { recursive: true });
    fs.writeFileSync(path.join(R, p), content);
  }

  // Inside the chroot: snapshot, boot, snapshot, probe. `losetup` lists
  // every loop device of the machine, and tests run side by side each have
  // an image copy under /run/ostree/.private, so only loops whose backing
  // file is on this namespace's /run (its device number) or in this test's
  // sysroot count.
  const inner = [
    'cd /',
    'cat /proc/self/mountinfo > /out/before',
    '/usr/sbin/losetup --list --noheadings --output NAME,BACK-MAJ:MIN,BACK-FILE > /out/loops-before 2>&1',
    'find /run > /out/run-before',
    `/usr/bin/cfsroot ${o.bootArgs ?? ''} /sysroot "$(cat /out/cmdline)" > /out/stdout 2> /out/stderr; echo $? > /out/rc`,
    'cd /',
    'cat /proc/self/mountinfo > /out/after',
    '/usr/sbin/losetup --list --noheadings --output NAME,BACK-MAJ:MIN,BACK-FILE > /out/loops-after 2>&1',
    'find /run > /out/run-after',
    'sh /out/probe.sh > /out/probe 2>&1',
    'sh /out/between.sh > /out/between 2>&1',
    'sh /out/probe2.sh > /out/probe2 2>&1',
  ].join('\n');
  const outer = chrootScript({ root: R, sysroot: o.sysroot, out, runOptions: o.runOptions });
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', outer], {
    env: { ...o.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin', INNER: inner },
    encoding: 'utf8',
  });
  for (const f of extra) fs.rmSync(f, { force: true });
  if (r.status !== 0) throw new Error(`namespace harness failed (${r.status}): ${r.stderr}`);
  const read = (f: string) => fs.readFileSync(path.join(out, f), 'utf8');
  // Device of the namespace's /run: field 3 of its (last) line in mountinfo.
  const runDev = read('before').split('\n').map((l) => l.split(' ')).filter((f) => f[4] === '/run').map((f) => f[2]).pop() ?? '?';
  // Ours: backed by a file on /run, on the sysroot, or on a filesystem that
  // is mounted nowhere (the image copy: a memfd, or a private tmpfs; native/sys.c cfs_image_copy_file).
  const mountedDevs = new Set(read('before').split('\n').map((l) => l.split(' ')[2]));
  const ours = (text: string) =>
    text
      .split('\n')
      .flatMap((l) => {
        const [name, dev, file] = l.trim().split(/\s+/);
        if (name === undefined || dev === undefined || file === undefined) return [];
        if (dev === runDev || file.includes(o.sysroot)) return [`${name} ${file}`];
        return mountedDevs.has(dev) ? [] : [`${name} (private) ${file}`];
      });
  const run: BootRun & { probe2: string; between: string } = {
    rc: Number(read('rc').trim()),
    stdout: read('stdout'),
    stderr: read('stderr'),
    before: parseMountinfo(read('before')),
    after: parseMountinfo(read('after')),
    loopsBefore: ours(read('loops-before')),
    loopsAfter: ours(read('loops-after')),
    runBefore: read('run-before').trim().split('\n').sort(),
    runAfter: read('run-after').trim().split('\n').sort(),
    probe: read('probe'),
    probe2: read('probe2'),
    between: read('between'),
  };
  fs.rmSync(out, { recursive: true, force: true });
  return run;
}

/** A refused boot left nothing behind: the mount table, the loop devices and /run as they were before it. */
export function assertNothingLeft(t: ExecutionContext, r: BootRun): void {
  t.deepEqual(tableLines(r.after), tableLines(r.before), 'mount table as found');
  t.deepEqual(r.loopsAfter, r.loopsBefore, 'no loop devices left');
  t.deepEqual(r.runAfter, r.runBefore, '/run as found');
}
