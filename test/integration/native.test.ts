/**
 * The composefs-native boot (SPEC §6, issue 14), end to end, as root in a
 * private mount namespace: a repository built here (test/helpers/native-repo.ts:
 * a mkfs.erofs image named by its own fs-verity digest, sha256 or sha512,
 * linked from images/ into objects/ as composefs-rs lays it out) is bound at
 * /sysroot of the test initramfs root, and `/usr/bin/cfsroot /sysroot
 * "<cmdline>"` runs under chroot. Each boot asserts the mount table of the
 * new root and reads files through it; each failure asserts that no mount,
 * loop device or /run file is left.
 *
 * This host has no fs-verity, so the secure form (no `?`) is refused here
 * before anything is mounted: the kernel has no fs-verity digest for the
 * image. Its success is a QEMU scenario (native-ok).
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertNothingLeft, bootInNamespace, buildInitramfsRoot, type BootOptions, type BootRun, type InitramfsRoot } from '../helpers/initramfs-root.js';
import { buildNativeImage, makeNativeRepo, type NativeRepo } from '../helpers/native-repo.js';
import { superOption, under } from '../helpers/mountinfo.js';
import type { MountInfo } from '../../src/sys/mountinfo.js';
import type { VerityAlg } from '../../src/image/fsverity.js';
import { kernelFeatures } from '../../src/plan/steps.js';

/** usr/bin/hello of the test image (test/helpers/native-repo.ts). */
const HELLO = '#!/bin/sh\necho "hello from a composefs-native root"\n';
const CONF = 'usr/lib/composefs/setup-root-conf.toml';
let root: InitramfsRoot;
const built: Partial<Record<VerityAlg, ReturnType<typeof buildNativeImage>>> = {};
const repos: NativeRepo[] = [];

test.before(() => {
  root = buildInitramfsRoot();
  built.sha256 = buildNativeImage('sha256');
  built.sha512 = buildNativeImage('sha512');
});
test.after.always(() => {
  root?.remove();
  for (const r of repos) r.cleanup();
});

function repo(alg: VerityAlg): NativeRepo {
  const r = makeNativeRepo(built[alg]!, { alg });
  repos.push(r);
  return r;
}

const karg = (r: NativeRepo, alg: VerityAlg, insecure = true) =>
  alg === 'sha512' ? `composefs.digest=${insecure ? '?' : ''}v1-sha512-12:${r.digest}` : `composefs=${insecure ? '?' : ''}${r.digest}`;

interface NativeBoot {
  conf?: string;
  kargs?: string;
  probe?: string;
  bootArgs?: string;
  env?: Record<string, string>;
}

function boot(r: NativeRepo, cmdline: string, o: NativeBoot = {}): BootRun {
  const opts: BootOptions = {
    root,
    sysroot: r.sysroot,
    cmdline: `root=LABEL=root rw ${cmdline} ${o.kargs ?? ''}`.trim(),
    probe: o.probe ?? 'true\n',
    ...(o.conf !== undefined ? { initramfsFiles: { [CONF]: o.conf } } : {}),
    ...(o.bootArgs !== undefined ? { bootArgs: o.bootArgs } : {}),
    ...(o.env !== undefined ? { env: o.env } : {}),
  };
  return bootInNamespace(opts);
}

const line = (m: MountInfo) => `${m.target} ${m.fstype} ${m.readonly ? 'ro' : 'rw'} ${m.source} ${m.root}`;
/** The fs type and source of the filesystem holding the test sysroot (a host directory). */
function host(r: BootRun): { fstype: string; source: string } {
  const m = r.before.filter((x) => x.target === '/sysroot').pop()!;
  return { fstype: m.fstype, source: m.source };
}
const state = (r: NativeRepo, sub = '') => `${r.sysroot}/state/deploy/${r.digest}${sub}`;

/** Reads through the new root at `at`: the image's files, a write to /etc and /var, /sysroot read-only. */
const probeAt = (at: string) =>
  [
    `cat ${at}/usr/bin/hello ${at}/etc/hostname`,
    `head -c 32 ${at}/usr/share/cfsroot/data.txt; echo`,
    `echo written > ${at}/etc/probe-etc && echo etc-writable`,
    `echo written > ${at}/var/probe-var && echo var-writable`,
    `touch ${at}/sysroot/probe 2>/dev/null && echo sysroot-writable || echo sysroot-ro`,
    `test -d ${at}/sysroot/composefs/objects && echo physical-root`,
    'readlink /run/systemd/volatile-root || echo no-volatile-root',
  ].join('\n') + '\n';

function assertBooted(t: ExecutionContext, r: NativeRepo, b: BootRun, at = '/sysroot'): MountInfo {
  t.is(b.rc, 0, b.stderr);
  const ov = under(b.after, at)[0]!;
  t.is(ov.target, at);
  t.is(ov.fstype, 'overlay');
  t.is(ov.source, `composefs:${r.digest}`);
  t.true(ov.readonly);
  t.true(ov.superOptions.includes('metacopy=on') && ov.superOptions.includes('redirect_dir=on'), ov.superOptions.join(','));
  // The image lower (lazily unmounted, or never attached on Linux >= 6.18: the overlay holds it) and the
  // objects, by descriptor, as a data-only layer.
  t.regex(
    superOption(ov, 'lowerdir') ?? '',
    kernelFeatures(os.release()).detachedLayers ? /^\/proc\/self\/fd\/\d+::\/proc\/self\/fd\/\d+$/ : /^\/run\/cfsroot\/\.private\/lower\.[A-Za-z0-9]{6}::\/proc\/self\/fd\/\d+$/,
  );
  t.false(b.after.some((m) => m.fstype === 'erofs' || m.fstype === 'tmpfs' && m.target.startsWith('/run/cfsroot') || m.target.startsWith('/sysroot.tmp')));
  const loops = b.loopsAfter.filter((l) => !b.loopsBefore.includes(l));
  t.is(loops.length, 1, loops.join('\n'));
  t.regex(b.stderr, new RegExp(`mounted composefs-native root composefs:${r.digest} `));
  return ov;
}

test.serial('secure (sha512 and sha256): refused on this host, whose filesystem has no fs-verity for the image; nothing left behind', (t) => {
  for (const alg of ['sha512', 'sha256'] as const) {
    const r = repo(alg);
    const b = boot(r, karg(r, alg, false));
    t.is(b.rc, 1, alg);
    const msg = b.stderr.trim().split('\n');
    t.is(msg.length, 1, b.stderr);
    t.regex(msg[0]!, new RegExp(`^cfsroot: composefs image /sysroot/composefs/images/${r.digest} has no fs-verity, which .* requires: enable it \\(fsverity enable --hash-alg=${alg} .*\\[EIMAGE\\]$`));
    assertNothingLeft(t, b);
  }
});

test.serial('insecure sha512, default config: composefs root, etc overlay in the state dir, var bound, physical root read-only, files read', (t) => {
  const r = repo('sha512');
  const b = boot(r, karg(r, 'sha512'), { probe: probeAt('/sysroot') });
  assertBooted(t, r, b);
  const { fstype, source } = host(b);
  t.deepEqual(under(b.after, '/sysroot').slice(1).map(line), [
    `/sysroot/sysroot ${fstype} ro ${source} ${r.sysroot}`,
    '/sysroot/etc overlay rw overlay /',
    `/sysroot/var ${fstype} rw ${source} ${state(r, '/var')}`,
  ]);
  t.false(superOption(under(b.after, '/sysroot')[0]!, 'verity') !== null, 'no verity=require in insecure mode');
  t.regex(b.probe, new RegExp(`^${HELLO}native\ncontent from a composefs object\n\netc-writable\nvar-writable\nsysroot-ro\nphysical-root\n/dev/block/\\d+:\\d+\n$`));
  // The writes went to the image's state: the /etc upper (created 0755, work 0700) and var.
  t.is(fs.readFileSync(state(r, '/etc/upper/probe-etc'), 'utf8'), 'written\n');
  t.is(fs.statSync(state(r, '/etc/upper')).mode & 0o7777, 0o755);
  t.is(fs.statSync(state(r, '/etc/work')).mode & 0o7777, 0o700);
  t.is(fs.readFileSync(state(r, '/var/probe-var'), 'utf8'), 'written\n');
  t.regex(b.stderr, /insecure: fs-verity not required, etc overlay, var bind; image: private copy, user-space digest\)/);
  t.true(b.runAfter.includes('/run/systemd/volatile-root'));
});

test.serial('insecure sha256 (composefs=?<64 hex>): boots and reads through the new root', (t) => {
  const r = repo('sha256');
  const b = boot(r, karg(r, 'sha256'), { probe: `cat /sysroot/usr/bin/hello\n` });
  assertBooted(t, r, b);
  t.is(b.probe, HELLO);
});

test.serial('digest mismatch: an image whose bytes are not its name is refused (insecure too), nothing left behind', (t) => {
  const r = repo('sha512');
  fs.appendFileSync(r.imageFile, Buffer.alloc(4096));
  const b = boot(r, karg(r, 'sha512'));
  t.is(b.rc, 1);
  // The warning that fs-verity is absent (tolerated), then the one line of the refusal.
  const lines = b.stderr.trim().split('\n').filter((l) => !l.startsWith('cfsroot: warning: '));
  t.is(lines.length, 1, b.stderr);
  t.regex(lines[0]!, new RegExp(`composefs image /sysroot/composefs/objects/${r.digest.slice(0, 2)}/${r.digest.slice(2)} has fs-verity sha512 digest [0-9a-f]{128}, but the name it has .* requires ${r.digest}.*all earlier steps were undone \\[EDIGEST\\]`));
  assertNothingLeft(t, b);
});

test.serial('first karg\'s image missing, second present: boots the second and says which was skipped', (t) => {
  const r = repo('sha512');
  const missing = 'ab'.repeat(64);
  const b = boot(r, `composefs.digest=?v1-sha512-12:${missing} ${karg(r, 'sha512')}`, { probe: 'cat /sysroot/usr/bin/hello\n' });
  assertBooted(t, r, b);
  t.is(b.probe, HELLO);
  t.regex(b.stderr, new RegExp(`warning: booting ${karg(r, 'sha512').replace(/[?]/g, '\\?')}: 1 earlier karg\\(s\\) had no image: composefs\\.digest=\\?v1-sha512-12:${missing} \\(images/${missing}: no such file\\)`));
});

for (const [name, conf, etc, vr] of [
  ['etc bind, var overlay', '[etc]\nmount = "bind"\n[var]\nmount = "overlay"\n', 'bind', 'overlay'],
  ['etc transient, var transient', '[etc]\ntransient = true\n[var]\nmount = "transient"\n', 'transient', 'transient'],
  ['etc none, var none', '[etc]\nmount = "none"\n[var]\nmount = "none"\n', 'none', 'none'],
] as const) {
  test.serial(`setup-root-conf.toml ${name}: mounted as configured, writes land where the mode says`, (t) => {
    const r = repo('sha256');
    if (vr === 'overlay') fs.mkdirSync(state(r, '/var'), { recursive: true });
    const b = boot(r, karg(r, 'sha256'), {
      conf,
      probe: 'cat /sysroot/etc/hostname 2>/dev/null || echo no-hostname\n(echo written > /sysroot/etc/probe-etc) 2>/dev/null && echo etc-w || echo etc-ro\n(echo written > /sysroot/var/probe-var) 2>/dev/null && echo var-w || echo var-ro\n',
    });
    assertBooted(t, r, b);
    const { fstype, source } = host(b);
    const expect = (sub: 'etc' | 'var', mode: string): string[] => {
      if (mode === 'none') return [];
      if (mode === 'bind') return [`/sysroot/${sub} ${fstype} rw ${source} ${state(r, `/${sub}`)}`];
      return [`/sysroot/${sub} overlay rw ${mode === 'overlay' ? 'overlay' : 'transient'} /`];
    };
    t.deepEqual(under(b.after, '/sysroot').slice(2).map(line), [...expect('etc', etc), ...expect('var', vr)]);
    const writable = (mode: string) => (mode === 'none' ? 'ro' : 'w');
    // A bind shows the state dir (empty here) instead of the image's /etc; the overlays show the image's.
    t.is(b.probe, `${etc === 'bind' ? 'no-hostname' : 'native'}\netc-${writable(etc)}\nvar-${writable(vr)}\n`);
    const onDisk = (sub: 'etc' | 'var', mode: string) =>
      mode === 'bind' ? state(r, `/${sub}/probe-${sub}`) : mode === 'overlay' ? state(r, `/${sub}/upper/probe-${sub}`) : null;
    for (const [sub, mode] of [['etc', etc], ['var', vr]] as const) {
      const f = onDisk(sub, mode);
      if (f) t.is(fs.readFileSync(f, 'utf8'), 'written\n', `${sub} ${mode}`);
      // transient: nothing reached the disk.
      if (mode === 'transient') t.false(fs.existsSync(state(r, `/${sub}/upper`)) || fs.existsSync(state(r, `/${sub}/probe-${sub}`)), sub);
    }
    t.regex(b.stderr, new RegExp(`etc ${etc}, var ${vr}; image: private copy, user-space digest\\)`));
  });
}

test.serial('root transient: a tmpfs upper over the whole root, source transient:composefs=<hex>; writes anywhere, none on disk', (t) => {
  const r = repo('sha512');
  const b = boot(r, karg(r, 'sha512'), {
    conf: '[root]\ntransient = true\n',
    probe: 'echo new > /sysroot/usr/new-file && cat /sysroot/usr/new-file /sysroot/usr/bin/hello\nstat -c %a /sysroot\nls /sysroot/usr\n',
  });
  t.is(b.rc, 0, b.stderr);
  const [ov, ...rest] = under(b.after, '/sysroot');
  t.deepEqual([ov!.target, ov!.fstype, ov!.source, ov!.readonly], ['/sysroot', 'overlay', `transient:composefs=${r.digest}`, false]);
  t.regex(superOption(ov!, 'upperdir') ?? '', /^\/run\/cfsroot\/\.private\/root-transient\.[A-Za-z0-9]{6}\/upper$/);
  t.deepEqual(rest.map((m) => m.target), ['/sysroot/sysroot', '/sysroot/etc', '/sysroot/var']);
  t.is(b.probe, `new\n${HELLO}755\nbin\nlib\nnew-file\nshare\n`);
  t.false(fs.existsSync(path.join(r.sysroot, 'composefs/objects/new-file')));
  t.false(b.after.some((m) => m.fstype === 'tmpfs' && m.target.startsWith('/run/cfsroot')), 'the tmpfs is detached');
  t.regex(b.stderr, /, root transient, etc overlay, var bind; image: private copy, user-space digest\)/);
});

test.serial('systemd.volatile=state: /var is left to systemd (no /var mount), /etc as configured', (t) => {
  const r = repo('sha512');
  const b = boot(r, karg(r, 'sha512'), { kargs: 'systemd.volatile=state' });
  assertBooted(t, r, b);
  t.deepEqual(under(b.after, '/sysroot').map((m) => m.target), ['/sysroot', '/sysroot/sysroot', '/sysroot/etc']);
  t.regex(b.stderr, /var none \(systemd\.volatile=state\); image: private copy, user-space digest\)/);
});

test.serial('--target /run/nextroot: the new root at the target, SYSROOT untouched, no run state written', (t) => {
  const r = repo('sha512');
  const b = boot(r, karg(r, 'sha512'), { bootArgs: '--target /run/nextroot', probe: `${probeAt('/run/nextroot')}cat /sysroot/composefs/meta.json | head -c 1; echo\n` });
  assertBooted(t, r, b, '/run/nextroot');
  // SYSROOT is still the physical root, where it was, with nothing under it.
  t.deepEqual(under(b.after, '/sysroot').map(line), under(b.before, '/sysroot').map(line));
  const { fstype, source } = host(b);
  t.deepEqual(under(b.after, '/run/nextroot').slice(1).map(line), [
    `/run/nextroot/sysroot ${fstype} ro ${source} ${r.sysroot}`,
    '/run/nextroot/etc overlay rw overlay /',
    `/run/nextroot/var ${fstype} rw ${source} ${state(r, '/var')}`,
  ]);
  t.regex(b.probe, new RegExp(`^${HELLO}native\n.*\netc-writable\nvar-writable\nsysroot-ro\nphysical-root\nno-volatile-root\n\\{\n$`, 's'));
  // Only what the assembly needs: the target and cfsroot's private dirs; no volatile-root, no ostree-booted.
  const added = b.runAfter.filter((p) => !b.runBefore.includes(p));
  t.deepEqual(added.filter((p) => !p.startsWith('/run/cfsroot') && !p.startsWith('/run/nextroot')), []);
  t.regex(b.stderr, /at \/run\/nextroot \(--target; \/sysroot left in place\)/);
});

test.serial('--target: a failure (digest mismatch) leaves SYSROOT and /run as they were', (t) => {
  const r = repo('sha256');
  fs.appendFileSync(r.imageFile, Buffer.alloc(4096));
  const b = boot(r, karg(r, 'sha256'), { bootArgs: '--target /run/nextroot' });
  t.is(b.rc, 1);
  t.regex(b.stderr, /\[EDIGEST\]/);
  // The target directory itself is created by the plan and removed by the rollback.
  assertNothingLeft(t, b);
  t.false(fs.existsSync(path.join(r.sysroot, 'state/deploy', r.digest, 'etc/upper')), 'the failure came before the /etc state was made');
});

test.serial('the mount(8) backend (CFSROOT_SYS=spawn): the same root, root transient, and the /etc overlay state made beneath SYSROOT', (t) => {
  const r = repo('sha256');
  const b = boot(r, karg(r, 'sha256'), { conf: '[root]\ntransient = true\n', env: { CFSROOT_SYS: 'spawn' }, probe: 'cat /sysroot/usr/bin/hello\necho x > /sysroot/etc/probe-etc && echo etc-w\n' });
  t.is(b.rc, 0, b.stderr);
  t.deepEqual(under(b.after, '/sysroot').map((m) => `${m.target} ${m.fstype} ${m.source}`).slice(0, 1), [`/sysroot overlay transient:composefs=${r.digest}`]);
  t.deepEqual(under(b.after, '/sysroot').map((m) => m.target), ['/sysroot', '/sysroot/sysroot', '/sysroot/etc', '/sysroot/var']);
  t.is(b.probe, `${HELLO}etc-w\n`);
  t.is(fs.readFileSync(state(r, '/etc/upper/probe-etc'), 'utf8'), 'x\n');
  t.false(b.after.some((m) => m.fstype === 'tmpfs' && m.target.startsWith('/run/cfsroot')));
});
