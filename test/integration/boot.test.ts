/**
 * The boot, end to end, as root in a private mount namespace (issue 3):
 * a generated sysroot (tools/mksysroot.ts: signed commit, real EROFS
 * composefs image) is bound at /sysroot of a minimal initramfs root, and
 * `/usr/bin/cfsroot /sysroot "<cmdline>"` runs under chroot. Each case
 * checks the whole resulting mount table, /run, loop devices, and reads
 * through the new root; each failure case checks that nothing was left.
 *
 * This host kernel has no fs-verity on its filesystems, so with
 * verity=require (signed, digest=) the overlay mounts but every file whose
 * data lives in a backing object fails to open with EIO: the tests assert
 * exactly that refusal; content is read in the non-verity modes.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeSysroot, type SysrootInfo, type SysrootOptions } from '../../tools/mksysroot.js';
import { decodeVardict } from '../../src/ostree/gvariant.js';
import { assertNothingLeft, initramfsRootForFile, bootInNamespace, type BootOptions, type InitramfsRoot } from '../helpers/initramfs-root.js';
import { superOption, under } from '../helpers/mountinfo.js';
import type { MountInfo } from '../../src/sys/mountinfo.js';
import { kernelFeatures } from '../../src/plan/steps.js';

const HELLO = 'hello from a composefs root\n';
let root: InitramfsRoot;
const cleanup = initramfsRootForFile((r) => (root = r));

function sysroot(opts: Partial<SysrootOptions> = {}): SysrootInfo {
  // Our own tree: small, and no top-level symlinks (see the report on mksysroot).
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-tree-'));
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-sysroot-'));
  cleanup.push(tree, out);
  const files: Record<string, string> = {
    'usr/bin/hello': HELLO,
    'usr/etc/motd': 'default motd\n',
    'usr/lib/os-release': 'ID=cfsroot-it\n',
  };
  for (const [rel, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
    fs.writeFileSync(path.join(tree, rel), c);
  }
  return makeSysroot({ out, tree, ...opts });
}

function boot(info: SysrootInfo, kargs: string, extra: Partial<BootOptions> = {}) {
  const r = bootInNamespace({
    root,
    sysroot: info.sysroot,
    cmdline: `${info.cmdline} ${kargs}`.trim(),
    bindingKey: info.publicKeyBase64 ? `${info.publicKeyBase64}\n` : null,
    ...extra,
  });
  return r;
}

const line = (m: MountInfo) => `${m.target} ${m.fstype} ${m.readonly ? 'ro' : 'rw'} ${m.root}`;
const newRoot = (ms: MountInfo[]) => under(ms, '/sysroot').map(line);
const rel = (info: SysrootInfo, p: string) => p.slice(info.sysroot.length) || '/';

function booted(r: { probe: string }): Map<string, unknown> {
  const hex = /BOOTED:([0-9a-f \n]*):END/.exec(r.probe)![1]!.replace(/\s+/g, '');
  return new Map([...decodeVardict(Buffer.from(hex, 'hex'))].map(([k, v]) => [k, v.value]));
}
const PROBE_BOOTED = 'printf BOOTED:; od -An -tx1 -v /run/ostree-booted | tr -d "\\n"; echo :END\n';

test.serial('signed: composefs root with verity=require; backing files without fs-verity are refused (EIO)', (t) => {
  const info = sysroot();
  const r = boot(info, 'ostree.prepare-root.composefs=signed', {
    probe: `${PROBE_BOOTED}cat /sysroot/usr/bin/hello; echo "rc=$?"; cat /sysroot/etc/motd; readlink /run/systemd/volatile-root; ls /sysroot/var/lib; test -e /run/ostree/initramfs-mount-var && echo marker\n`,
  });
  t.is(r.rc, 0, r.stderr);
  const deploy = rel(info, info.deployDir);
  const v = `/ostree/deploy/${info.os}/var`;
  // ext4 roots are host paths: the test sysroot is a directory of the host's root filesystem.
  t.deepEqual(newRoot(r.after), [
    '/sysroot overlay ro /',
    `/sysroot/etc ext4 rw ${info.sysroot}${deploy}/etc`,
    `/sysroot/sysroot ext4 ro ${info.sysroot}`,
    `/sysroot/sysroot${v} ext4 rw ${info.sysroot}${v}`,
    `/sysroot/var ext4 rw ${info.sysroot}${v}`,
  ]);
  const ov = under(r.after, '/sysroot')[0]!;
  t.is(ov.source, 'composefs');
  // The objects dir is opened beneath SYSROOT with no symlink followed and given to the kernel
  // as that descriptor (issue 13), so mountinfo names it by the boot's /proc/self/fd path.
  // The EROFS lower by its mount point, or (detached, Linux >= 6.18) by the descriptor of the mount itself.
  t.regex(superOption(ov, 'lowerdir') ?? '', kernelFeatures(os.release()).detachedLayers ? /^\/proc\/self\/fd\/\d+::\/proc\/self\/fd\/\d+$/ : /^\/run\/ostree\/\.private\/cfsroot-lower\.[A-Za-z0-9]{6}::\/proc\/self\/fd\/\d+$/);
  t.is(superOption(ov, 'verity'), 'require');
  t.true(under(r.after, '/sysroot')[4]!.propagation.some((p) => p.startsWith('shared:')));
  t.false(r.after.some((m) => m.target.startsWith('/sysroot.tmp') || m.fstype === 'erofs'));
  const loops = r.loopsAfter.map((l) => l.replace(/^\/dev\/loop\d+ /, ''));
  t.is(loops.length, 1, loops.join('\n'));
  // The copy in memory (native/verity.c copyImage: a memfd at this size), mounted nowhere: no name under /run.
  t.regex(loops[0] ?? '', /^\(private\) \S/, loops[0]);
  t.regex(r.probe, /Input\/output error\nrc=1\n/);
  t.regex(r.probe, /default motd\n\/dev\/block\/\d+:\d+\ncfsroot-state\nmarker\n/);
  const b = booted(r);
  t.deepEqual([...b.keys()], ['backing-root-device-inode', 'root.transient', 'root.transient-ro', 'composefs.signed', 'composefs', 'composefs.verity', 'sysroot-ro']);
  const st = fs.statSync(info.deployDir, { bigint: true });
  t.deepEqual(b.get('backing-root-device-inode'), [st.dev, st.ino]);
  t.is(b.get('composefs.signed'), '/etc/ostree/initramfs-root-binding.key');
});

test.serial('composefs=yes: content read through the open image, mounted as it is (unpinned, as ostree-prepare-root): no copy, no loop device on 6.12+', (t) => {
  const info = sysroot({ sign: false });
  const r = boot(info, 'ostree.prepare-root.composefs=yes', {
    probe: 'cat /sysroot/usr/bin/hello /sysroot/usr/lib/os-release; cat /run/cfsroot/image-path\n',
  });
  t.is(r.rc, 0, r.stderr);
  t.is(r.probe, `${HELLO}ID=cfsroot-it\nunverified\n`);
  t.deepEqual(r.loopsAfter, [], 'file-backed EROFS: nothing copied, no loop device');
  const ov = under(r.after, '/sysroot')[0]!;
  t.is(superOption(ov, 'verity'), null);
  t.true(ov.readonly);
});

test.serial('ot-composefs=digest=: right digest boots with verity=require; wrong digest is EDIGEST and leaves nothing', (t) => {
  const info = sysroot({ sign: false });
  const ok = boot(info, `ot-composefs=digest=${info.imageDigest}`);
  t.is(ok.rc, 0, ok.stderr);
  t.is(superOption(under(ok.after, '/sysroot')[0]!, 'verity'), 'require');
  const bad = boot(info, `ot-composefs=digest=${'0'.repeat(64)}`);
  t.is(bad.rc, 1);
  t.regex(bad.stderr, /EDIGEST/);
  t.notRegex(bad.stderr, /EMOUNT/);
  assertNothingLeft(t, bad);
});

// Issue 13 items 7 and 8 at boot: each of these booted before (a foreign image, or an
// unverified legacy root) with exit 0.
test.serial('a pin is never dropped and prepare-root.conf reads as GKeyFile does: refused at boot, one line, nothing left', (t) => {
  const unsigned = sysroot({ sign: false });
  const signed = sysroot();
  const other = '5a'.repeat(32);
  for (const [info, kargs, conf, code, phrase] of [
    [unsigned, `ostree.prepare-root.composefs=yes ot-composefs=digest=${other}`, null, 'ECMDLINE', `ostree.prepare-root.composefs=yes and ot-composefs=digest=${other} conflict`],
    [signed, 'ot-composefs=off', '[composefs]\nenabled = signed\n', 'ECMDLINE', 'ot-composefs=off would turn off the signature check'],
    [signed, 'ostree.prepare-root.composefs=maybe', '[composefs]\nenabled = signed\n', 'ECMDLINE', 'ostree.prepare-root.composefs=maybe would turn off'],
    [signed, '', '[composefs]\nenabled = no ; signed\n', 'ECONFIG', 'line 2: [composefs] enabled = "no ; signed"'],
  ] as const) {
    const r = boot(info, kargs, { prepareRootConf: conf });
    const what = `${kargs} / ${JSON.stringify(conf)}`;
    t.is(r.rc, 1, `${what}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    t.is(lines.length, 1, `${what}: one line: ${r.stderr}`);
    t.true(lines[0]!.startsWith('cfsroot: ') && lines[0]!.includes(phrase) && lines[0]!.includes(code), `${what}: ${lines[0]}`);
    assertNothingLeft(t, r);
  }
});

test.serial('signed, image changed on disk after signing: EDIGEST on the copy (no fs-verity here), nothing left behind', (t) => {
  const info = sysroot();
  const fd = fs.openSync(info.image!, 'r+');
  fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 600); // inside the unused first 1024 bytes
  fs.closeSync(fd);
  const r = boot(info, 'ostree.prepare-root.composefs=signed');
  t.is(r.rc, 1);
  t.regex(r.stderr, /the image was changed/);
  t.regex(r.stderr, /EDIGEST/);
  assertNothingLeft(t, r);
});

test.serial('failure after SYSROOT was detached: SYSROOT is moved back, nothing else left', (t) => {
  const info = sysroot({ sign: false });
  fs.rmSync(path.join(info.sysroot, 'ostree/deploy', info.os, 'var'), { recursive: true });
  const r = boot(info, 'ostree.prepare-root.composefs=yes', { probe: 'ls /sysroot/ostree\n' });
  t.is(r.rc, 1);
  t.regex(r.stderr, /mount --bind \/sysroot\.tmp\/sysroot\/ostree\/deploy\/\S+\/var .*all earlier steps were undone/);
  t.regex(r.stderr, /EMOUNT/);
  assertNothingLeft(t, r);
  t.is(r.probe, 'boot.1\nboot.1.1\ndeploy\nrepo\n');
});

test.serial('legacy (composefs off): the deployment bind, /usr read-only, writable sysroot', (t) => {
  const info = sysroot({ sign: false, image: false });
  const r = boot(info, '', { probe: 'cat /sysroot/usr/bin/hello; touch /sysroot/usr/x 2>/dev/null || echo usr-ro\n' });
  t.is(r.rc, 0, r.stderr);
  const d = info.deployDir;
  t.deepEqual(newRoot(r.after), [
    `/sysroot ext4 rw ${d}`,
    `/sysroot/usr ext4 ro ${d}/usr`,
    `/sysroot/sysroot ext4 rw ${info.sysroot}`,
    `/sysroot/var ext4 rw ${info.sysroot}/ostree/deploy/${info.os}/var`,
  ]);
  t.is(r.probe, `${HELLO}usr-ro\n`);
  t.deepEqual(r.loopsAfter, []);
});

test.serial('composefs=maybe without an image falls back to the legacy bind', (t) => {
  const info = sysroot({ sign: false, image: false });
  const r = boot(info, 'ostree.prepare-root.composefs=maybe');
  t.is(r.rc, 0, r.stderr);
  t.is(newRoot(r.after)[0], `/sysroot ext4 rw ${info.deployDir}`);
});

for (const [name, conf, ro] of [
  ['root.transient', '[composefs]\nenabled=yes\n[root]\ntransient=true\n', false],
  ['root.transient-ro', '[composefs]\nenabled=yes\n[root]\ntransient-ro=true\n', true],
] as const) {
  test.serial(`${name}: overlay with upper/work in /run/ostree/.private/root, ${ro ? 'read-only' : 'writable'}`, (t) => {
    const info = sysroot({ sign: false });
    const r = boot(info, '', { prepareRootConf: conf, probe: `${PROBE_BOOTED}echo new > /sysroot/usr/new 2>/dev/null && cat /sysroot/usr/new || echo refused\n` });
    t.is(r.rc, 0, r.stderr);
    const ov = under(r.after, '/sysroot')[0]!;
    t.is(ov.readonly, ro);
    t.is(superOption(ov, 'upperdir'), '/run/ostree/.private/root/upper');
    t.regex(r.probe, ro ? /refused/ : /\nnew\n/);
    const b = booted(r);
    t.is(b.get('root.transient'), true);
    t.is(b.get('root.transient-ro'), ro);
  });
}

test.serial('etc.transient: /etc is an overlay of usr/etc in /run/ostree/transient-etc.*', (t) => {
  const info = sysroot({ sign: false });
  const r = boot(info, 'ostree.prepare-root.composefs=yes', {
    prepareRootConf: '[etc]\ntransient=true\n',
    probe: `${PROBE_BOOTED}cat /sysroot/etc/motd; echo changed > /sysroot/etc/motd; cat /sysroot/etc/motd\n`,
  });
  t.is(r.rc, 0, r.stderr);
  const etc = under(r.after, '/sysroot/etc')[0]!;
  t.is(etc.fstype, 'overlay');
  const te = booted(r).get('transient-etc') as string;
  t.regex(te, /^\/run\/ostree\/transient-etc\.[A-Za-z0-9]{6}$/);
  t.is(superOption(etc, 'upperdir'), `${te}/upper`);
  t.regex(r.probe, /default motd\nchanged\n/);
  // The deployment's own etc was not touched.
  t.is(fs.readFileSync(path.join(info.deployDir, 'etc/motd'), 'utf8'), 'default motd\n');
});

test.serial('sysroot.readonly=false: no stateroot var self-bind, /sysroot stays writable', (t) => {
  const info = sysroot({ sign: false });
  const r = boot(info, 'ostree.prepare-root.composefs=yes', { prepareRootConf: '[composefs]\nenabled=yes\n[sysroot]\nreadonly=false\n' });
  t.is(r.rc, 0, r.stderr);
  t.deepEqual(newRoot(r.after).map((l) => l.split(' ').slice(0, 3).join(' ')), [
    '/sysroot overlay ro',
    '/sysroot/etc ext4 rw',
    '/sysroot/sysroot ext4 rw',
    '/sysroot/var ext4 rw',
  ]);
});

test.serial('hotfix /usr overlay: mounted without signing, ignored (with a warning) under a signed root', (t) => {
  const unsigned = sysroot({ sign: false, usrOverlay: true });
  const a = boot(unsigned, 'ostree.prepare-root.composefs=yes', { probe: 'echo fix > /sysroot/usr/bin/fix && cat /sysroot/usr/bin/fix\n' });
  t.is(a.rc, 0, a.stderr);
  const usr = under(a.after, '/sysroot/usr')[0]!;
  t.is(usr.fstype, 'overlay');
  // The upper dir on the disk is opened beneath SYSROOT with no symlink followed and given
  // to the kernel as that descriptor (issue 13).
  t.regex(superOption(usr, 'upperdir') ?? '', /^\/proc\/self\/fd\/\d+$/);
  t.is(a.probe, 'fix\n');
  const signed = sysroot({ usrOverlay: true });
  const b = boot(signed, 'ostree.prepare-root.composefs=signed');
  t.is(b.rc, 0, b.stderr);
  t.is(under(b.after, '/sysroot/usr').length, 0);
  t.regex(b.stderr, /hotfix/);
});

test.serial('systemd.volatile: /var left to systemd, no marker', (t) => {
  const info = sysroot({ sign: false });
  const r = boot(info, 'ostree.prepare-root.composefs=yes systemd.volatile=overlay');
  t.is(r.rc, 0, r.stderr);
  t.is(under(r.after, '/sysroot/var').length, 0);
  t.false(r.runAfter.includes('/run/ostree/initramfs-mount-var'));
});

test.serial('--target /run/nextroot (ostree): the root assembled there, SYSROOT untouched; only /run/ostree/nextroot-booted is written', (t) => {
  const info = sysroot({ sign: false });
  const r = boot(info, 'ostree.prepare-root.composefs=yes', {
    bootArgs: '--target /run/nextroot',
    probe: 'cat /run/nextroot/usr/bin/hello /run/nextroot/etc/motd\nls /run/nextroot/sysroot/ostree/deploy\n',
  });
  t.is(r.rc, 0, r.stderr);
  // SYSROOT is the physical root still, with nothing mounted under it.
  t.deepEqual(newRoot(r.after), newRoot(r.before));
  const at = under(r.after, '/run/nextroot');
  t.deepEqual([at[0]!.target, at[0]!.fstype, at[0]!.source, at[0]!.readonly], ['/run/nextroot', 'overlay', 'composefs', true]);
  const v = `/ostree/deploy/${info.os}/var`;
  t.deepEqual(at.slice(1).map((m) => `${m.target} ${m.readonly ? 'ro' : 'rw'} ${m.root}`), [
    `/run/nextroot/etc rw ${info.sysroot}${rel(info, info.deployDir)}/etc`,
    `/run/nextroot/sysroot ro ${info.sysroot}`,
    `/run/nextroot/sysroot${v} rw ${info.sysroot}${v}`,
    `/run/nextroot/var rw ${info.sysroot}${v}`,
  ]);
  t.is(r.probe, `${HELLO}default motd\n${info.os}\n`);
  const added = r.runAfter.filter((p) => !r.runBefore.includes(p));
  t.true(added.includes('/run/ostree/nextroot-booted'));
  for (const p of ['/run/ostree-booted', '/run/ostree/initramfs-mount-var', '/run/systemd/volatile-root']) t.false(added.includes(p), p);
  t.false(r.after.some((m) => m.target.startsWith('/sysroot.tmp')));
  t.regex(r.stderr, /at \/run\/nextroot \(--target; \/sysroot left in place\)\n$/);
});
