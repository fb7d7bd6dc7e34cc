/**
 * planMounts (SPEC §4) on hand-made decisions, and executePlan's rollback
 * against an in-memory Sys: for every plan variant and every step that can
 * fail, a failure leaves mounts, dirs, files and links exactly as found.
 */
import test from 'ava';
import * as fs from 'node:fs';
import { isCfsError, type CfsError } from '../src/errors.js';
import { decodeVardict } from '../src/ostree/gvariant.js';
import { describeStep, detectPlanEnv, escapeOverlayPath, randomSuffix, formatPlan, kernelFeatures, replaceOverlayPaths, runningKernelRelease, type MountStep, type PlanEnv } from '../src/plan/steps.js';
import { planMounts, planPaths } from '../src/ostree/plan.js';
import { executePlan } from '../src/plan/execute.js';
import { DIGEST, makeDecision, type DecisionOptions } from './integration/fixtures.js';
import { FakeSys } from './integration/fake-sys.js';

const ENV: PlanEnv = { kernel: '6.18.4-test', rootDevice: { major: 254, minor: 3 }, randomSuffix: 'Ab12Cd' };
const kinds = (s: MountStep[]) => s.map((x) => x.kind);
const find = <K extends MountStep['kind']>(s: MountStep[], kind: K, pred: (x: Extract<MountStep, { kind: K }>) => boolean = () => true) =>
  s.filter((x): x is Extract<MountStep, { kind: K }> => x.kind === kind).filter(pred);
const D = '/sysroot/ostree/deploy/debian/deploy/' + 'c0'.repeat(32) + '.0';

test('signed composefs: the SPEC §4 sequence, step by step', (t) => {
  const steps = planMounts(makeDecision({ mode: 'signed' }), ENV);
  t.deepEqual(formatPlan(steps).trimEnd().split('\n').map((l) => l.replace(/^\s*\d+\. /, '')), [
    'mkdir -m 0755 /run/ostree',
    'mkdir -m 0000 /run/ostree/.private',
    'mount --make-rprivate /',
    'mkdir -m 0755 /sysroot.tmp',
    'mkdir -m 0755 /run/ostree/.private/cfsroot-lower.Ab12Cd',
    `open ${D}/.ostree.cfs (read-only, beneath /sysroot, no symlink followed)`,
    `copy ${D}/.ostree.cfs -> /run/ostree/.private/cfsroot.cfs.Ab12Cd, then fs-verity sha256 of the copy must be ${DIGEST} (signed commit ${'c0'.repeat(32)})`,
    `mount -t erofs -o ro,noacl,loop <the copy of ${D}/.ostree.cfs> /run/ostree/.private/cfsroot-lower.Ab12Cd`,
    'mount -t overlay -o ro,metacopy=on,redirect_dir=on,lowerdir=/run/ostree/.private/cfsroot-lower.Ab12Cd::/sysroot/ostree/repo/objects,verity=require composefs /sysroot.tmp',
    'umount --lazy /run/ostree/.private/cfsroot-lower.Ab12Cd',
    'mkdir -m 0755 /run/systemd',
    'ln -s /dev/block/254:3 /run/systemd/volatile-root',
    `mount --bind ${D}/etc /sysroot.tmp/etc`,
    'mount -o remount,bind,rw /sysroot.tmp/etc',
    'mount --rbind /sysroot /sysroot.tmp/sysroot',
    'umount --lazy /sysroot',
    'mount --bind /sysroot.tmp/sysroot/ostree/deploy/debian/var /sysroot.tmp/sysroot/ostree/deploy/debian/var',
    'mount -o remount,bind,rw /sysroot.tmp/sysroot/ostree/deploy/debian/var',
    'mount --bind /sysroot.tmp/sysroot/ostree/deploy/debian/var /sysroot.tmp/var',
    'mount --make-slave /sysroot.tmp/var',
    'mount --make-shared /sysroot.tmp/var',
    'write the /var marker to /run/ostree/initramfs-mount-var (0 bytes, mode 0644)',
    'mkdir -m 0755 /run/cfsroot',
    'write the image path taken to /run/cfsroot/image-path (11 bytes, mode 0644)',
    `write /run/ostree-booted to /run/ostree-booted (${Buffer.from(find(steps, 'write-file', (w) => w.path === '/run/ostree-booted')[0]!.contentBase64, 'base64').length} bytes, mode 0644)`,
    'mount --move /sysroot.tmp /sysroot',
    'rmdir /sysroot.tmp',
    'mount -o remount,bind,ro /sysroot/sysroot',
  ]);
  // The digest is checked before anything is mounted from the copy.
  const k = kinds(steps);
  t.true(k.indexOf('open-image') < k.indexOf('copy-image') && k.indexOf('copy-image') < k.indexOf('mount-erofs'));
  const erofs = find(steps, 'mount-erofs')[0]!;
  t.is(erofs.from, 'copy');
  t.is(erofs.image, find(steps, 'open-image')[0]!.image);
  t.is(Buffer.from(find(steps, 'write-file', (w) => w.path === '/run/cfsroot/image-path')[0]!.contentBase64, 'base64').toString(), 'named-copy\n');
});

test('ostree-booted in the plan decodes to the decision', (t) => {
  const d = makeDecision({ mode: 'signed', dev: 0x10302n, ino: 99n });
  const w = find(planMounts(d, ENV), 'write-file', (s) => s.path === '/run/ostree-booted')[0]!;
  const m = decodeVardict(Buffer.from(w.contentBase64, 'base64'));
  t.deepEqual([...m.keys()], ['backing-root-device-inode', 'root.transient', 'root.transient-ro', 'composefs.signed', 'composefs', 'composefs.verity', 'sysroot-ro']);
  t.deepEqual(m.get('backing-root-device-inode')!.value, [0x10302n, 99n]);
  t.is(m.get('composefs.signed')!.value, '/etc/ostree/initramfs-root-binding.key');
});

test('kernel fallbacks: data-only lowers 6.5, verity 6.6, file-backed EROFS 6.12, detached layers 6.16', (t) => {
  t.deepEqual(kernelFeatures('6.4.0'), { release: '6.4.0', dataOnlyLowers: false, overlayVerity: false, fileBackedErofs: false, detachedLayers: false });
  t.deepEqual(kernelFeatures('6.5.0'), { release: '6.5.0', dataOnlyLowers: true, overlayVerity: false, fileBackedErofs: false, detachedLayers: false });
  t.deepEqual(kernelFeatures('6.11.9'), { release: '6.11.9', dataOnlyLowers: true, overlayVerity: true, fileBackedErofs: false, detachedLayers: false });
  t.deepEqual(kernelFeatures('6.15.9'), { release: '6.15.9', dataOnlyLowers: true, overlayVerity: true, fileBackedErofs: true, detachedLayers: false });
  t.true(kernelFeatures('6.16.0').detachedLayers);
  t.true(kernelFeatures('6.18.0').detachedLayers);
  t.true(kernelFeatures('6.12.0-rc1').fileBackedErofs);
  t.true(kernelFeatures({ major: 7, minor: 0 }).fileBackedErofs);
  const err = t.throws(() => kernelFeatures('garbage'));
  t.true(isCfsError(err));

  const old = planMounts(makeDecision({ mode: 'yes' }), { ...ENV, kernel: '6.1.0' });
  t.true(find(old, 'mount-erofs')[0]!.loop);
  const ov = find(old, 'mount-overlay')[0]!;
  t.true(ov.options.includes('lowerdir=/run/ostree/.private/cfsroot-lower.Ab12Cd:/sysroot/ostree/repo/objects'));
  t.false(ov.options.includes('verity=require'));
  // Unpinned: the descriptor itself, file-backed from 6.12 on.
  t.true(kernelFeatures(ENV.kernel as string).fileBackedErofs);
  t.false(find(planMounts(makeDecision({ mode: 'yes' }), ENV), 'mount-erofs')[0]!.loop);
  // A copy is on tmpfs, which cannot back a file-backed EROFS mount (ENOTBLK) even on 6.12+.
  t.true(find(planMounts(makeDecision({ mode: 'signed' }), ENV), 'mount-erofs')[0]!.loop);

  for (const mode of ['signed', 'verity', 'digest'] as const) {
    const e = t.throws(() => planMounts(makeDecision({ mode }), { ...ENV, kernel: '6.5.13' }));
    t.true(isCfsError(e) && e.code === 'EMOUNT' && /6\.6/.test(e.message), mode);
    t.notThrows(() => planMounts(makeDecision({ mode }), { ...ENV, kernel: '6.6.0' }));
  }
});

test('EROFS gets noacl unless the header says the image has ACLs', (t) => {
  t.deepEqual(find(planMounts(makeDecision({ hasAcl: false }), ENV), 'mount-erofs')[0]!.options, ['noacl']);
  t.deepEqual(find(planMounts(makeDecision({ hasAcl: true }), ENV), 'mount-erofs')[0]!.options, []);
});

test('legacy boot, writable sysroot: deployment bind, read-only /usr, no /etc bind, /var bound', (t) => {
  const s = planMounts(makeDecision({ mode: 'off', sysrootReadonly: false }), ENV);
  t.deepEqual(find(s, 'bind').map((b) => `${b.source} -> ${b.target}`), [
    `${D} -> /sysroot.tmp`,
    '/sysroot.tmp/usr -> /sysroot.tmp/usr',
    '/sysroot -> /sysroot.tmp/sysroot',
    '/sysroot.tmp/sysroot/ostree/deploy/debian/var -> /sysroot.tmp/var',
  ]);
  t.deepEqual(find(s, 'remount').map((r) => `${r.target} ${r.readonly}`), ['/sysroot.tmp/usr true']);
  t.is(find(s, 'open-image').length + find(s, 'mount-overlay').length + find(s, 'symlink').length, 0);
});

test('legacy boot, read-only sysroot: /etc bound rw, stateroot var self-bound rw, /sysroot remounted ro last', (t) => {
  const s = planMounts(makeDecision({ mode: 'off', sysrootReadonly: true }), ENV);
  t.is(find(s, 'bind', (b) => b.target === '/sysroot.tmp/etc').length, 1);
  t.is(find(s, 'remount', (r) => r.target === '/sysroot.tmp/etc' && !r.readonly).length, 1);
  const v = '/sysroot.tmp/sysroot/ostree/deploy/debian/var';
  t.is(find(s, 'bind', (b) => b.source === v && b.target === v).length, 1);
  t.deepEqual(s[s.length - 1], { kind: 'remount', target: '/sysroot/sysroot', readonly: true });
});

test('root.transient and root.transient-ro: upper/work in .private, 0755, rw vs ro', (t) => {
  for (const [opts, ro] of [[{ rootTransient: true }, false], [{ rootTransientRo: true }, true]] as const) {
    const s = planMounts(makeDecision({ mode: 'yes', ...opts }), ENV);
    const ov = find(s, 'mount-overlay', (o) => o.target === '/sysroot.tmp')[0]!;
    t.is(ov.readonly, ro);
    t.true(ov.options.includes('upperdir=/run/ostree/.private/root/upper'));
    t.true(ov.options.includes('workdir=/run/ostree/.private/root/work'));
    t.deepEqual(find(s, 'mkdir', (m) => m.path.startsWith('/run/ostree/.private/root')).map((m) => m.mode), [0o755, 0o755, 0o755]);
  }
  const legacy = t.throws(() => planMounts(makeDecision({ mode: 'off', rootTransient: true }), ENV));
  t.true(isCfsError(legacy) && legacy.code === 'ECONFIG');
});

test('etc.transient: overlay over usr/etc in /run/ostree/transient-etc.<suffix>, recorded in ostree-booted', (t) => {
  const d = makeDecision({ mode: 'yes', etcTransient: true });
  const s = planMounts(d, ENV);
  const etc = find(s, 'mount-overlay', (o) => o.target === '/sysroot.tmp/etc')[0]!;
  t.deepEqual(etc.options, [
    'lowerdir=/sysroot.tmp/usr/etc',
    'upperdir=/run/ostree/transient-etc.Ab12Cd/upper',
    'workdir=/run/ostree/transient-etc.Ab12Cd/work',
  ]);
  t.is(find(s, 'bind', (b) => b.target === '/sysroot.tmp/etc').length, 0);
  const booted = decodeVardict(Buffer.from(find(s, 'write-file', (w) => w.path === '/run/ostree-booted')[0]!.contentBase64, 'base64'));
  t.is(booted.get('transient-etc')?.value, '/run/ostree/transient-etc.Ab12Cd');
  t.throws(() => planMounts(d, { ...ENV, randomSuffix: '../x' }));
});

test('hotfix /usr overlay: used without signing, never under a signed root', (t) => {
  const unsigned = planMounts(makeDecision({ mode: 'yes', usrOverlay: true }), ENV);
  const usr = find(unsigned, 'mount-overlay', (o) => o.target === '/sysroot.tmp/usr')[0]!;
  t.deepEqual(usr.options, ['lowerdir=/sysroot.tmp/usr', `upperdir=${D}/.usr-ovl-upper`, `workdir=${D}/.usr-ovl-work`]);
  t.false(usr.readonly);
  const signed = planMounts(makeDecision({ mode: 'signed', usrOverlay: true }), ENV);
  t.is(find(signed, 'mount-overlay', (o) => o.target === '/sysroot.tmp/usr').length, 0);
  const legacy = planMounts(makeDecision({ mode: 'off', usrOverlay: true }), ENV);
  t.is(find(legacy, 'mount-overlay', (o) => o.target === '/sysroot.tmp/usr').length, 1);
  t.is(find(legacy, 'bind', (b) => b.target === '/sysroot.tmp/usr').length, 0);
});

test('systemd.volatile: /var is left to systemd, no marker', (t) => {
  const s = planMounts(makeDecision({ mode: 'yes', systemdVolatile: true }), ENV);
  t.is(find(s, 'bind', (b) => b.target === '/sysroot.tmp/var').length, 0);
  t.is(find(s, 'write-file', (w) => w.path.endsWith('initramfs-mount-var')).length, 0);
  t.is(find(planMounts(makeDecision({ mode: 'yes' }), ENV), 'write-file', (w) => w.path.endsWith('initramfs-mount-var')).length, 1);
});

test('no root device: no volatile-root link; custom run and staging dirs are honoured', (t) => {
  const s = planMounts(makeDecision({ mode: 'yes' }), { ...ENV, rootDevice: null, runDir: '/x/run', stagingDir: '/x/new' });
  t.is(find(s, 'symlink').length, 0);
  for (const step of s) {
    const paths = Object.entries(step).filter(([k]) => ['path', 'target', 'dest'].includes(k)).map(([, v]) => String(v));
    for (const p of paths) t.true(p === '/' || p.startsWith('/x/') || p.startsWith('/sysroot'), p);
  }
});

test('overlay option escaping: commas, colons and backslashes in paths', (t) => {
  t.is(escapeOverlayPath('/a,b:c\\d'), '/a\\,b\\:c\\\\d');
  const s = planMounts(makeDecision({ mode: 'yes', sysroot: '/sys,root:1' }), ENV);
  const ov = find(s, 'mount-overlay')[0]!;
  t.true(ov.options.includes('lowerdir=/run/ostree/.private/cfsroot-lower.Ab12Cd::/sys\\,root\\:1/ostree/repo/objects'));
});

test('plan is JSON-serialisable and formatPlan is stable, one line per step', (t) => {
  for (const o of variants()) {
    const s = planMounts(makeDecision(o), ENV);
    t.deepEqual(JSON.parse(JSON.stringify(s)), s);
    const text = formatPlan(s);
    t.is(text, formatPlan(planMounts(makeDecision(o), ENV)));
    const lines = text.trimEnd().split('\n');
    t.is(lines.length, s.length);
    lines.forEach((l, i) => t.true(l.endsWith(describeStep(s[i]!)) && l.trimStart().startsWith(`${i + 1}. `)));
  }
});

function variants(): DecisionOptions[] {
  return [
    { mode: 'signed' },
    { mode: 'digest', etcTransient: true },
    { mode: 'yes', rootTransient: true, usrOverlay: true },
    { mode: 'verity', rootTransientRo: true, systemdVolatile: true },
    { mode: 'yes', sysrootReadonly: false },
    { mode: 'off', sysrootReadonly: false },
    { mode: 'off', sysrootReadonly: true, usrOverlay: true },
  ];
}

function fakeFor(o: DecisionOptions) {
  const d = makeDecision(o);
  return new FakeSys({
    mounts: ['/', '/run', '/sysroot'],
    dirs: ['/', '/run', '/sysroot', d.deployment.dir],
    files: { [`${d.deployment.dir}/.ostree.cfs`]: 'IMAGE', '/run/ostree-booted': 'stale from a soft reboot' },
  });
}

test('executePlan: success moves the new root onto SYSROOT with the physical root inside', async (t) => {
  const sys = fakeFor({ mode: 'signed' });
  const r = await executePlan(planMounts(makeDecision({ mode: 'signed' }), ENV), sys);
  t.is(r.imageDigest, DIGEST);
  const snap = sys.snapshot();
  t.true(snap.mounts.includes('/sysroot overlay:composefs ro'));
  t.true(snap.mounts.includes('/sysroot/sysroot initial:/sysroot ro'));
  t.false(snap.mounts.some((m) => m.startsWith('/sysroot.tmp') || m.includes('cfsroot-lower')));
  t.false(snap.dirs.includes('/sysroot.tmp'));
});

test('executePlan: a failure at any step undoes everything before it', async (t) => {
  for (const o of variants()) {
    const steps = planMounts(makeDecision(o), ENV);
    // Count the mutating calls of a successful run, then fail each one in turn.
    const probe = fakeFor(o);
    await executePlan(steps, probe);
    const total = probe.calls.length;
    t.true(total >= steps.length - 1);
    for (let n = 0; n < total; n++) {
      const sys = fakeFor(o);
      const before = sys.snapshot();
      sys.failAt = n;
      const err = await t.throwsAsync(executePlan(steps, sys));
      t.true(isCfsError(err) && err.code === 'EMOUNT', `${JSON.stringify(o)} call ${n}`);
      t.regex(err!.message, /all earlier steps were undone$/);
      t.regex(err!.message, new RegExp(`injected failure in ${escapeRe(probe.calls[n]!)}`));
      t.deepEqual(sys.snapshot(), before, `${JSON.stringify(o)} failing call ${n} (${probe.calls[n]})`);
    }
  }
});

test('executePlan: digest mismatch of the copy is EDIGEST, checked before any mount, and rolled back', async (t) => {
  const sys = fakeFor({ mode: 'digest' });
  const before = sys.snapshot();
  // The digest is of what was copied: the content of the open image.
  const digested: string[] = [];
  sys.copyDigest = (content) => (digested.push(content), Buffer.alloc(32, 0xee));
  const err = await t.throwsAsync(executePlan(planMounts(makeDecision({ mode: 'digest' }), ENV), sys));
  t.true(isCfsError(err) && err.code === 'EDIGEST');
  t.true(err!.message.includes('ee'.repeat(32)) && err!.message.includes(DIGEST));
  t.deepEqual(digested, ['IMAGE']);
  t.false(sys.calls.some((c) => c.startsWith('mount ')));
  t.deepEqual(sys.snapshot(), before);
  t.is(sys.open.size, 0, 'every descriptor closed');
});

function escapeRe(s: string) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('image copy and lower mount point carry the per-run suffix, so an earlier run cannot collide', (t) => {
  const a = planPaths({ ...ENV, randomSuffix: 'aaaaaa' });
  const b = planPaths({ ...ENV, randomSuffix: 'bbbbbb' });
  t.not(a.imageCopy, b.imageCopy);
  t.not(a.lower, b.lower);
  const steps = planMounts(makeDecision({ mode: 'signed' }), { ...ENV, randomSuffix: 'Zz9Zz9' });
  t.is(find(steps, 'copy-image')[0]!.to, '/run/ostree/.private/cfsroot.cfs.Zz9Zz9');
  t.is(find(steps, 'mount-erofs')[0]!.target, '/run/ostree/.private/cfsroot-lower.Zz9Zz9');
});

test('executePlan: a file already at the copy path is named as stale state, not a bare EEXIST, and nothing changes', async (t) => {
  const d = makeDecision({ mode: 'signed' });
  const steps = planMounts(d, ENV);
  const dest = find(steps, 'copy-image')[0]!.to;
  const sys = new FakeSys({
    mounts: ['/', '/run', '/sysroot'],
    dirs: ['/', '/run', '/sysroot', d.deployment.dir],
    files: { [`${d.deployment.dir}/.ostree.cfs`]: 'IMAGE', [dest]: 'left by an earlier run' },
  });
  const before = sys.snapshot();
  const err = await t.throwsAsync(executePlan(steps, sys));
  t.true(isCfsError(err) && err.code === 'EMOUNT');
  t.true(err!.message.includes(`${dest} already exists, left by an earlier cfsroot run`), err!.message);
  t.notRegex(err!.message, /: EEXIST/);
  t.deepEqual(sys.snapshot(), before);
});

test('executePlan: a private image copy (privateCopies) is what EROFS mounts, through a loop device, and has no name to remove', async (t) => {
  const d = makeDecision({ mode: 'signed' });
  const init = {
    mounts: ['/', '/run', '/sysroot'],
    dirs: ['/', '/run', '/sysroot', d.deployment.dir],
    files: { [`${d.deployment.dir}/.ostree.cfs`]: 'IMAGE' },
  };
  const steps = planMounts(d, { ...ENV, privateCopies: true });
  t.deepEqual(find(steps, 'copy-image')[0]!.to, 'private');
  const ok = new FakeSys(init);
  const r = await executePlan(steps, ok);
  t.is(r.imageDigest, DIGEST);
  t.true(ok.calls.includes('copy private'));
  t.false([...ok.files.keys()].some((f) => f.includes('cfsroot.cfs')), 'nothing named');
  // The overlay holds the EROFS lower, whose source was the private copy (the fake records the content it mounted).
  t.is(ok.open.size, 0, 'the image and the copy descriptors are closed once mounted');
  const failing = new FakeSys(init);
  failing.failAt = ok.calls.indexOf('mount overlay /sysroot.tmp');
  await t.throwsAsync(executePlan(steps, failing), { message: /all earlier steps were undone$/ });
  t.false(failing.calls.some((c) => c.startsWith('unlink')), 'no unlink of a copy that has no name');
  t.false(failing.mounts.some((m) => m.what.startsWith('erofs:')), 'the EROFS mount was undone');
  t.is(failing.open.size, 0);
});

test('replaceOverlayPaths: whole lowerdir entries and upper/work values only, escapes respected', (t) => {
  const objects = escapeOverlayPath('/sys,root/ostree/repo/objects');
  const opts = [`lowerdir=/run/lower::${objects}`, `upperdir=${objects}`, 'workdir=/w', `lowerdir=${objects}2:${objects}`, 'metacopy=on'];
  t.deepEqual(replaceOverlayPaths(opts, new Map([[objects, '/proc/self/fd/9']])), [
    'lowerdir=/run/lower::/proc/self/fd/9',
    'upperdir=/proc/self/fd/9',
    'workdir=/w',
    `lowerdir=${objects}2:/proc/self/fd/9`,
    'metacopy=on',
  ]);
  // An escaped colon inside a path is not a separator.
  t.deepEqual(replaceOverlayPaths([`lowerdir=${escapeOverlayPath('/a:b')}:/c`], new Map([['/c', '/proc/self/fd/3']])), ['lowerdir=/a\\:b:/proc/self/fd/3']);
});

test('--target (ostree): the root assembled at the target; SYSROOT stays, / keeps its propagation, run state only as ostree soft-reboot writes it', (t) => {
  const d = makeDecision({ mode: 'signed' });
  const boot = planMounts(d, ENV);
  for (const target of ['/run/nextroot', '/mnt/next']) {
    const steps = planMounts(d, { ...ENV, target });
    const text = steps.map(describeStep);
    t.false(text.some((l) => l.includes('/sysroot.tmp')), target);
    t.false(steps.some((s) => s.kind === 'make-rprivate' || s.kind === 'move' || s.kind === 'rmdir' || s.kind === 'symlink'), target);
    t.false(steps.some((s) => s.kind === 'umount-lazy' && s.target === d.sysroot), target);
    t.like(find(steps, 'mount-overlay')[0], { source: 'composefs', target });
    t.like(find(steps, 'bind', (b) => b.source === d.sysroot)[0], { target: `${target}/sysroot`, recursive: true });
    t.deepEqual(steps.at(-1), { kind: 'remount', target: `${target}/sysroot`, readonly: true });
    const writes = find(steps, 'write-file').map((w) => w.path);
    // ostree's prepare-soft-reboot record for /run/nextroot, with the boot's own content; nothing for any other target.
    t.deepEqual(writes, target === '/run/nextroot' ? ['/run/ostree/nextroot-booted'] : [], target);
    if (target === '/run/nextroot') {
      t.is(find(steps, 'write-file')[0]!.contentBase64, find(boot, 'write-file', (w) => w.path === '/run/ostree-booted')[0]!.contentBase64);
    }
  }
});

test('the kernel release the plan uses is the running kernel\'s, read from /proc (os.release() is frozen in the startup snapshot)', (t) => {
  t.is(runningKernelRelease(), fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  const err = t.throws(() => runningKernelRelease('/nonexistent/osrelease'));
  t.true(isCfsError(err) && err.code === 'EIO' && /expected \/proc to be mounted/.test(err.message));
});

test('randomSuffix: six characters of [A-Za-z0-9] from the bytes of the source it is given (the boot gives the addon\'s getrandom)', (t) => {
  t.is(randomSuffix(() => Uint8Array.from([0, 1, 61, 62, 255, 26])), 'AB9AHa');
  t.regex(randomSuffix(), /^[A-Za-z0-9]{6}$/);
  const e = t.throws(() => randomSuffix(() => new Uint8Array(5)));
  t.is((e as CfsError).code, 'EINTERNAL');
  const env = detectPlanEnv({ sysroot: '/' }, '/run', () => Uint8Array.from([10, 11, 12, 13, 14, 15]));
  t.is(env.randomSuffix, 'KLMNOP');
});
