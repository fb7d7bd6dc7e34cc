/**
 * The composefs-native plan (src/composefs-native/plan.ts): the steps for
 * decisions made by decideNative on repositories built here, the --target
 * form, the kernel floors, and the executor running them against the
 * in-memory FakeSys (success, and a failure at every call undone).
 */

import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decideNative } from '../src/composefs-native/decide.js';
import { detectNativeEnv, nativePaths, planNative } from '../src/composefs-native/plan.js';
import type { NativeDecision } from '../src/composefs-native/model.js';
import { describeStep, formatPlan, type MountStep, type PlanEnv } from '../src/plan/steps.js';
import { executePlan } from '../src/plan/execute.js';
import { isCfsError } from '../src/errors.js';
import { FakeSys } from './integration/fake-sys.js';
import { buildNativeImage, makeNativeRepo, type NativeRepo } from './helpers/native-repo.js';
import type { VerityAlg } from '../src/image/fsverity.js';

const built: Partial<Record<VerityAlg, ReturnType<typeof buildNativeImage>>> = {};
const repos: NativeRepo[] = [];

test.before(() => {
  built.sha256 = buildNativeImage('sha256');
  built.sha512 = buildNativeImage('sha512');
});
test.after.always(() => {
  for (const r of repos) r.cleanup();
});

// The image probed with fs-verity in both hashes' place is set per test: secure mode needs it in the image's own hash.
const ENV: PlanEnv = { kernel: '6.12.0', rootDevice: { major: 8, minor: 3 }, runDir: '/run', randomSuffix: 'Ab12Cd', privateCopies: true };
const withVerity = (alg: VerityAlg, env: PlanEnv = ENV): PlanEnv => ({ ...env, imageVerity: alg });

async function decision(alg: VerityAlg, opts: { conf?: string; kargs?: string; insecure?: boolean } = {}): Promise<{ d: NativeDecision; r: NativeRepo }> {
  const r = makeNativeRepo(built[alg]!, { alg, ...(opts.conf !== undefined ? { conf: opts.conf } : {}) });
  repos.push(r);
  const karg = alg === 'sha512' ? `composefs.digest=${opts.insecure ? '?' : ''}v1-sha512-12:${r.digest}` : `composefs=${opts.insecure ? '?' : ''}${r.digest}`;
  const d = await decideNative({
    sysroot: r.sysroot,
    cmdline: `${karg} ${opts.kargs ?? ''}`,
    initramfsRoot: r.initramfs,
    measure: false,
    digestImage: () => Promise.reject(new Error('not measured')),
  });
  return { d, r };
}

const kinds = (steps: MountStep[]) => steps.map((s) => s.kind);
const of = <K extends MountStep['kind']>(steps: MountStep[], kind: K) => steps.filter((s): s is Extract<MountStep, { kind: K }> => s.kind === kind);
const mountAt = (steps: MountStep[], target: string) => steps.filter((s) => (s.kind === 'mount-overlay' || s.kind === 'bind' || s.kind === 'mount-tmpfs') && s.target === target);

test('default config (sha512, secure): composefs-setup-root order, overlay source composefs:<hex>, etc overlay in the state dir, var bound', async (t) => {
  const { d, r } = await decision('sha512');
  const steps = planNative(d, withVerity('sha512'));
  const S = r.sysroot;
  const state = `${S}/state/deploy/${r.digest}`;
  t.deepEqual(steps.map(describeStep), [
    'mkdir -m 0755 /run/cfsroot',
    'mkdir -m 0000 /run/cfsroot/.private',
    'mount --make-rprivate /',
    'mkdir -m 0755 /sysroot.tmp',
    'mkdir -m 0755 /run/cfsroot/.private/lower.Ab12Cd',
    `open ${r.imageFile} (read-only, beneath ${S}/composefs, no symlink followed)`,
    `measure ${r.imageFile}: the kernel's fs-verity sha512 digest must be ${r.digest} (name it has in ${S}/composefs/images and karg composefs.digest=v1-sha512-12:${r.digest})`,
    `mount -t erofs -o ro,noacl <the open ${r.imageFile}> /run/cfsroot/.private/lower.Ab12Cd`,
    `mount -t overlay -o ro,metacopy=on,redirect_dir=on,lowerdir=/run/cfsroot/.private/lower.Ab12Cd::${S}/composefs/objects,verity=require composefs:${r.digest} /sysroot.tmp`,
    'umount --lazy /run/cfsroot/.private/lower.Ab12Cd',
    `mount --rbind ${S} /sysroot.tmp/sysroot`,
    `mkdir -m 0755 ${state}/etc/upper (if missing; no symlink followed beneath ${S}; kept)`,
    `mkdir -m 0700 ${state}/etc/work (if missing; no symlink followed beneath ${S}; kept)`,
    `mount -t overlay -o rw,lowerdir=/sysroot.tmp/etc,upperdir=${state}/etc/upper,workdir=${state}/etc/work overlay /sysroot.tmp/etc`,
    `mount --bind ${state}/var /sysroot.tmp/var`,
    'mkdir -m 0755 /run/systemd',
    'ln -s /dev/block/8:3 /run/systemd/volatile-root (an existing /run/systemd/volatile-root is kept)',
    'mkdir -m 0755 /run/cfsroot',
    'write the image path taken to /run/cfsroot/image-path (10 bytes, mode 0644)',
    `umount --lazy ${S}`,
    `mount --move /sysroot.tmp ${S}`,
    'rmdir /sysroot.tmp',
    `mount -o remount,bind,ro ${S}/sysroot`,
  ]);
  // Every directory whose meaning the disk decides is taken beneath SYSROOT or the new root.
  const [composefs, etc] = of(steps, 'mount-overlay');
  t.deepEqual(composefs!.dirsBeneath, [{ path: `${S}/composefs/objects`, beneath: S }]);
  t.deepEqual(etc!.dirsBeneath.map((x) => x.beneath), ['/sysroot.tmp', S, S]);
  t.is(etc!.targetBeneath, '/sysroot.tmp');
  const [physical, vr] = of(steps, 'bind');
  t.like(physical, { recursive: true, targetBeneath: '/sysroot.tmp', sourceBeneath: null });
  t.like(vr, { recursive: false, sourceBeneath: S, targetBeneath: '/sysroot.tmp' });
  t.like(of(steps, 'umount-lazy')[1], { target: S, restoreFrom: '/sysroot.tmp/sysroot' });
  t.notThrows(() => JSON.stringify(steps));
  t.regex(formatPlan(steps), /^ 1\. mkdir -m 0755 \/run\/cfsroot\n/);
});

test('sha256 insecure: no verity=require, the copy digested with sha256, and still pinned by its name', async (t) => {
  const { d, r } = await decision('sha256', { insecure: true });
  const steps = planNative(d, ENV);
  const ov = of(steps, 'mount-overlay')[0]!;
  t.is(ov.source, `composefs:${r.digest}`);
  t.false(ov.options.includes('verity=require'));
  t.deepEqual(ov.options.slice(0, 2), ['metacopy=on', 'redirect_dir=on']);
  t.like(of(steps, 'copy-image')[0], { alg: 'sha256', expectedDigest: r.digest, to: 'private' });
  // Insecure with fs-verity in the name's hash: the kernel measures it instead, and still against the name.
  t.like(of(planNative(d, withVerity('sha256')), 'measure-image')[0], { alg: 'sha256', expectedDigest: r.digest });
});

test('secure mode without fs-verity on the image (or in the other hash) is refused by the plan, naming how to enable it', async (t) => {
  const { d } = await decision('sha512');
  for (const env of [ENV, withVerity('sha256')]) {
    const e = t.throws(() => planNative(d, env));
    t.true(isCfsError(e) && e.code === 'EIMAGE');
    t.regex(e!.message, /requires sha512 fs-verity on the image itself: enable fs-verity/);
  }
});

test('secure mode needs overlayfs verity=require (6.6); before 6.5 the objects are an ordinary lower', async (t) => {
  const { d } = await decision('sha512');
  const e = t.throws(() => planNative(d, { ...withVerity('sha512'), kernel: '6.5.3' }));
  t.true(isCfsError(e) && e.code === 'EMOUNT');
  t.regex(e!.message, /verity=require.*Linux 6\.6 \(running 6\.5\.3\).*\?<digest>/);
  const { d: insecure } = await decision('sha512', { insecure: true });
  t.regex(of(planNative(insecure, { ...ENV, kernel: '6.4.0' }), 'mount-overlay')[0]!.options.join(','), /lowerdir=[^,]*lower\.Ab12Cd:\/[^:]/);
});

test('root transient: the composefs overlay gets an upper and work on a tmpfs (detached after), source transient:composefs=<hex>', async (t) => {
  const { d, r } = await decision('sha512', { conf: '[root]\ntransient = true\n' });
  const steps = planNative(d, withVerity(d.image.alg));
  const tmp = '/run/cfsroot/.private/root-transient.Ab12Cd';
  const at = mountAt(steps, '/sysroot.tmp') as Array<Extract<MountStep, { kind: 'mount-overlay' }>>;
  // One overlay, not two stacked: an /etc overlay over two would exceed the kernel's stacking depth of 2.
  t.is(at.length, 1);
  const ov = at[0]!;
  t.is(ov.source, `transient:composefs=${r.digest}`);
  t.deepEqual(ov.options, [
    'metacopy=on',
    'redirect_dir=on',
    `lowerdir=/run/cfsroot/.private/lower.Ab12Cd::${r.sysroot}/composefs/objects`,
    `upperdir=${tmp}/upper`,
    `workdir=${tmp}/work`,
    'verity=require',
  ]);
  t.false(ov.readonly);
  const i = steps.indexOf(ov);
  t.deepEqual(steps.slice(i - 4, i + 3).map(describeStep), [
    `mkdir -m 0700 ${tmp}`,
    `mount -t tmpfs -o rw,mode=0700 tmpfs ${tmp}`,
    `mkdir -m 0755 ${tmp}/upper`,
    `mkdir -m 0700 ${tmp}/work`,
    describeStep(ov),
    'umount --lazy /run/cfsroot/.private/lower.Ab12Cd',
    `umount --lazy ${tmp}`,
  ]);
  // The /etc overlay (the default) still comes after, over the one transient root overlay.
  t.is(of(steps, 'mount-overlay')[1]!.target, '/sysroot.tmp/etc');
});

for (const [conf, etc, vr] of [
  ['[etc]\nmount = "bind"\n[var]\nmount = "none"\n', ['bind'], []],
  ['[etc]\ntransient = true\n[var]\nmount = "overlay"\n', ['mount-tmpfs', 'mount-overlay'], ['mount-overlay']],
  ['[etc]\nmount = "none"\n[var]\nmount = "transient"\n', [], ['mount-tmpfs', 'mount-overlay']],
] as const) {
  test(`etc and var per setup-root-conf.toml: ${conf.replace(/\n/g, ' ')}`, async (t) => {
    const { d, r } = await decision('sha256', { conf });
    // var overlay needs var/ in the state dir as a directory (it is): the decision checked it.
    const steps = planNative(d, withVerity(d.image.alg));
    for (const [name, want] of [['etc', etc], ['var', vr]] as const) {
      const here = steps.filter((s) => ('target' in s && (s.target === `/sysroot.tmp/${name}` || s.target.includes(`/${name}-transient.`))) && s.kind !== 'umount-lazy');
      t.deepEqual(kinds(here), [...want], name);
      const ov = here.find((s) => s.kind === 'mount-overlay') as Extract<MountStep, { kind: 'mount-overlay' }> | undefined;
      if (want.length === 2) t.is(ov!.source, 'transient', name);
      if (want.length === 1 && want[0] === 'mount-overlay') {
        t.is(ov!.source, 'overlay');
        t.true(ov!.options.includes(`upperdir=${r.sysroot}/state/deploy/${r.digest}/${name}/upper`));
      }
      if (want[0] === 'bind') t.like(here[0], { source: `${r.sysroot}/state/deploy/${r.digest}/${name}` });
    }
  });
}

test('systemd.volatile=state leaves /var to systemd: no /var mount', async (t) => {
  const { d } = await decision('sha512', { kargs: 'systemd.volatile=state' });
  const steps = planNative(d, withVerity(d.image.alg));
  t.deepEqual(mountAt(steps, '/sysroot.tmp/var'), []);
  t.is(mountAt(steps, '/sysroot.tmp/etc').length, 1);
});

test('--target: assembled at the target, SYSROOT neither unmounted nor replaced, no propagation change, no run state', async (t) => {
  const { d, r } = await decision('sha512');
  const steps = planNative(d, { ...withVerity(d.image.alg), target: '/run/nextroot' });
  const text = steps.map(describeStep);
  t.false(steps.some((s) => s.kind === 'make-rprivate' || s.kind === 'move' || s.kind === 'rmdir' || s.kind === 'symlink-if-absent' || s.kind === 'write-file'));
  t.false(steps.some((s) => s.kind === 'umount-lazy' && s.target === r.sysroot));
  t.false(text.some((l) => l.includes('/sysroot.tmp')));
  t.is(of(steps, 'mount-overlay')[0]!.target, '/run/nextroot');
  t.like(of(steps, 'bind')[0], { source: r.sysroot, target: '/run/nextroot/sysroot' });
  t.deepEqual(steps.at(-1), { kind: 'remount', target: '/run/nextroot/sysroot', readonly: true });
  t.is(nativePaths({ ...ENV, target: '/x' }).staging, '/x');
});

test('detectNativeEnv: volatile-root names /dev/gpt-auto-root when it is a block device, else the device of SYSROOT', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-gpt-'));
  try {
    const st = fs.statSync(dir, { bigint: true });
    const plain = detectNativeEnv({ sysroot: dir }, '/run', { gptAutoRoot: path.join(dir, 'no-such-device') });
    t.deepEqual(plain.rootDevice, { major: Number((st.dev >> 8n) & 0xfffn), minor: Number((st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn)) });
    // /dev/loop0 (7:0) stands in for systemd's link.
    if (fs.existsSync('/dev/loop0')) t.deepEqual(detectNativeEnv({ sysroot: dir }, '/run', { gptAutoRoot: '/dev/loop0' }).rootDevice, { major: 7, minor: 0 });
    // Not a block device: ignored.
    t.deepEqual(detectNativeEnv({ sysroot: dir }, '/run', { gptAutoRoot: dir }).rootDevice, plain.rootDevice);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function fakeFor(d: NativeDecision, extra: { links?: Record<string, string> } = {}): FakeSys {
  const S = d.sysroot;
  const sys = new FakeSys({
    mounts: ['/', '/run', S],
    dirs: ['/', '/run', S, d.stateDir, `${d.stateDir}/etc`, `${d.stateDir}/var`],
    files: { [d.image.file]: 'IMAGE' },
  });
  for (const [p, l] of Object.entries(extra.links ?? {})) sys.links.set(p, l);
  sys.copyDigest = () => Buffer.from(d.image.digest, 'hex');
  sys.verity.set('IMAGE', `${d.image.alg}:${d.image.digest}`);
  return sys;
}

async function runAll(t: ExecutionContext, d: NativeDecision, env: PlanEnv = withVerity(d.image.alg)) {
  const steps = planNative(d, env);
  const probe = fakeFor(d);
  await executePlan(steps, probe);
  const total = probe.calls.length;
  for (let n = 0; n < total; n++) {
    const sys = fakeFor(d);
    // The state dirs an overlay creates are kept by design; the rest must be as before.
    const before = sys.snapshot();
    sys.failAt = n;
    const err = await t.throwsAsync(executePlan(steps, sys));
    t.regex(err!.message, /all earlier steps were undone$/, `call ${n} (${probe.calls[n]})`);
    const after = sys.snapshot();
    after.dirs = after.dirs.filter((x) => !/\/etc\/(upper|work)$/.test(x));
    t.deepEqual(after, before, `failing call ${n} (${probe.calls[n]})`);
  }
  return probe;
}

test('executePlan: the native plan succeeds on the fake, and a failure at any call undoes everything before it', async (t) => {
  const { d } = await decision('sha512', { conf: '[root]\ntransient = true\n[etc]\nmount = "transient"\n' });
  const ok = await runAll(t, d);
  const snap = ok.snapshot();
  t.true(snap.mounts.includes(`${d.sysroot} overlay:transient:composefs=${d.image.digest} rw`), snap.mounts.join('\n'));
  t.true(snap.mounts.includes(`${d.sysroot}/sysroot initial:${d.sysroot} ro`));
  t.false(snap.mounts.some((m) => m.includes('tmpfs') || m.includes('erofs') || m.startsWith('/sysroot.tmp')));
  t.false(snap.dirs.some((x) => x.includes('-transient.') && x !== '/run/cfsroot/.private/root-transient.Ab12Cd' && x !== '/run/cfsroot/.private/etc-transient.Ab12Cd'));
  t.deepEqual(snap.links, [['/run/systemd/volatile-root', '/dev/block/8:3']]);
  const { d: plain } = await decision('sha256', { insecure: true });
  await runAll(t, plain);
});

test('executePlan: an existing /run/systemd/volatile-root is kept, not an error, and not removed by a rollback', async (t) => {
  const { d } = await decision('sha512');
  const steps = planNative(d, withVerity('sha512'));
  const sys = fakeFor(d, { links: { '/run/systemd/volatile-root': '/dev/block/9:9' } });
  sys.dirs.add('/run/systemd');
  await executePlan(steps, sys);
  t.deepEqual(sys.snapshot().links, [['/run/systemd/volatile-root', '/dev/block/9:9']]);
  const failing = fakeFor(d, { links: { '/run/systemd/volatile-root': '/dev/block/9:9' } });
  failing.dirs.add('/run/systemd');
  failing.failAt = sys.calls.indexOf(`umount ${d.sysroot}`);
  await t.throwsAsync(executePlan(steps, failing));
  t.deepEqual(failing.snapshot().links, [['/run/systemd/volatile-root', '/dev/block/9:9']]);
});

test('executePlan: an image whose copy has another digest than its name is EDIGEST before any mount', async (t) => {
  const { d } = await decision('sha512', { insecure: true });
  const sys = fakeFor(d);
  sys.copyDigest = () => Buffer.alloc(64, 0xee);
  const before = sys.snapshot();
  const err = await t.throwsAsync(executePlan(planNative(d, ENV), sys));
  t.true(isCfsError(err) && err.code === 'EDIGEST');
  t.true(err!.message.includes('ee'.repeat(64)) && err!.message.includes(d.image.digest));
  t.false(sys.calls.some((c) => c.startsWith('mount ')));
  t.deepEqual(sys.snapshot(), before);
});
