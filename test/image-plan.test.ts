/**
 * src/image/plan.ts and the executor's image steps (issue 15): which path
 * each mode and probe gives, what the plan prints, and the refusals that
 * must come before anything is mounted: a measured digest that is not the
 * pin, an image whose fs-verity went away after the probe, an image
 * replaced on the disk after it was opened (the open descriptor is what is
 * measured, copied and mounted). Against the in-memory FakeSys.
 */
import test from 'ava';
import { isCfsError } from '../src/errors.js';
import { describeImagePath, imagePathOf, planImageSteps, probeImage, type ImageEnv, type ImagePath, type ImageToMount } from '../src/image/plan.js';
import { formatPlan, type MountStep, type PlanEnv } from '../src/plan/steps.js';
import { planMounts } from '../src/ostree/plan.js';
import { executePlan } from '../src/plan/execute.js';
import { COMMIT, DIGEST, makeDecision, type DecisionOptions } from './integration/fixtures.js';
import { FakeSys } from './integration/fake-sys.js';

const ENV: PlanEnv = { kernel: '6.18.4-test', rootDevice: { major: 254, minor: 3 }, randomSuffix: 'Ab12Cd' };
const D = `/sysroot/ostree/deploy/debian/deploy/${COMMIT}.0`;
const IMAGE = `${D}/.ostree.cfs`;
const LOWER = '/run/ostree/.private/cfsroot-lower.Ab12Cd';
const kinds = (s: readonly MountStep[]) => s.map((x) => x.kind);
const imageSteps = (s: readonly MountStep[]) => s.filter((x) => ['open-image', 'measure-image', 'copy-image', 'mount-erofs'].includes(x.kind));

const image = (o: Partial<ImageToMount> = {}): ImageToMount => ({
  path: '/repo/images/abc',
  beneath: '/repo',
  alg: 'sha512',
  expectedDigest: 'ab'.repeat(64),
  expectedDigestSource: 'karg composefs=',
  requireVerity: false,
  hasAcl: false,
  ...o,
});
const env = (o: Partial<ImageEnv> = {}): ImageEnv => ({
  fileBackedErofs: true,
  imageVerity: null,
  privateCopies: true,
  namedCopy: '/run/x.cfs',
  ...o,
});

test('planImageSteps: the three paths, by the pin and the probe', (t) => {
  // fs-verity in the pin's hash: measured, then the descriptor mounted file-backed.
  const v = planImageSteps(image(), env({ imageVerity: 'sha512' }), '/lower');
  t.deepEqual(kinds(v), ['open-image', 'measure-image', 'mount-erofs']);
  t.like(v[2], { from: 'image', loop: false, target: '/lower', options: ['noacl'] });
  t.is(imagePathOf(v), 'fs-verity');
  // Before 6.12: a loop device on the descriptor.
  t.like(planImageSteps(image(), env({ imageVerity: 'sha512', fileBackedErofs: false }), '/lower')[2], { loop: true });
  // fs-verity in another hash than the pin's cannot be compared: the copy path.
  const other = planImageSteps(image(), env({ imageVerity: 'sha256' }), '/lower');
  t.deepEqual(kinds(other), ['open-image', 'copy-image', 'mount-erofs']);
  // No fs-verity: a private copy, or a named one; always through a loop device.
  const c = planImageSteps(image(), env(), '/lower');
  t.like(c[1], { kind: 'copy-image', to: 'private', alg: 'sha512', expectedDigest: 'ab'.repeat(64) });
  t.like(c[2], { from: 'copy', loop: true });
  t.is(imagePathOf(c), 'private-copy');
  const n = planImageSteps(image(), env({ privateCopies: false }), '/lower');
  t.like(n[1], { kind: 'copy-image', to: '/run/x.cfs' });
  t.is(imagePathOf(n), 'named-copy');
  // Unpinned: the descriptor, whatever the probe said.
  for (const imageVerity of [null, 'sha512'] as const) {
    const u = planImageSteps(image({ expectedDigest: null, expectedDigestSource: null }), env({ imageVerity }), '/lower');
    t.deepEqual(kinds(u), ['open-image', 'mount-erofs']);
    t.is(imagePathOf(u), 'unverified');
  }
  t.deepEqual(planImageSteps(image({ hasAcl: true, expectedDigest: null }), env(), '/l')[1], {
    kind: 'mount-erofs',
    image: '/repo/images/abc',
    from: 'image',
    target: '/l',
    options: [],
    loop: false,
  });
  t.is(imagePathOf([]), null);
});

test('planImageSteps: requireVerity (composefs-native secure mode) never copies', (t) => {
  const ok = planImageSteps(image({ requireVerity: true }), env({ imageVerity: 'sha512' }), '/lower');
  t.deepEqual(kinds(ok), ['open-image', 'measure-image', 'mount-erofs']);
  // Unpinned but required: still measured (fs-verity must be on).
  const unpinned = planImageSteps(image({ requireVerity: true, expectedDigest: null }), env({ imageVerity: 'sha512' }), '/lower');
  t.like(unpinned[1], { kind: 'measure-image', expectedDigest: null });
  for (const imageVerity of [null, 'sha256'] as const) {
    const e = t.throws(() => planImageSteps(image({ requireVerity: true }), env({ imageVerity }), '/lower'));
    t.true(isCfsError(e) && e.code === 'EIMAGE');
    t.regex(e!.message, /requires sha512 fs-verity on the image itself/);
  }
});

test('probeImage: only a digest in a known hash counts; errors and "unsupported" mean the copy path', (t) => {
  t.deepEqual(probeImage({ measurePath: () => `sha256:${DIGEST}`, privateCopies: true, detachedMounts: true }, '/i'), { imageVerity: 'sha256', privateCopies: true, detachedMounts: true });
  t.deepEqual(probeImage({ measurePath: () => 'sha512:00' }, '/i'), { imageVerity: 'sha512', privateCopies: false, detachedMounts: false });
  t.deepEqual(probeImage({ measurePath: () => null }, '/i').imageVerity, null);
  t.deepEqual(probeImage({ measurePath: () => 'unsupported' }, '/i').imageVerity, null);
  t.deepEqual(probeImage({ measurePath: () => { throw new Error('EACCES'); } }, '/i').imageVerity, null);
  t.deepEqual(probeImage({}, '/i'), { imageVerity: null, privateCopies: false, detachedMounts: false });
});

test('planMounts: the image path is in the plan, its text and the run-state file, per mode and probe', (t) => {
  const cases: Array<[DecisionOptions, Partial<PlanEnv>, ImagePath, string]> = [
    [{ mode: 'signed' }, { imageVerity: 'sha256', privateCopies: true }, 'fs-verity', `measure ${IMAGE}: the kernel's fs-verity sha256 digest must be ${DIGEST} (signed commit ${COMMIT})`],
    [{ mode: 'digest' }, { imageVerity: 'sha256' }, 'fs-verity', `measure ${IMAGE}: the kernel's fs-verity sha256 digest must be ${DIGEST} (karg ot-composefs=digest=)`],
    [{ mode: 'signed' }, { privateCopies: true }, 'private-copy', `copy ${IMAGE} -> a private in-memory file (no name), then fs-verity sha256 of the copy must be ${DIGEST} (signed commit ${COMMIT})`],
    [{ mode: 'signed' }, {}, 'named-copy', `copy ${IMAGE} -> /run/ostree/.private/cfsroot.cfs.Ab12Cd, then fs-verity sha256 of the copy must be ${DIGEST} (signed commit ${COMMIT})`],
    [{ mode: 'yes' }, { imageVerity: 'sha256', privateCopies: true }, 'unverified', `mount -t erofs -o ro,noacl <the open ${IMAGE}> ${LOWER}`],
    [{ mode: 'verity' }, {}, 'unverified', `mount -t erofs -o ro,noacl <the open ${IMAGE}> ${LOWER}`],
  ];
  for (const [o, probe, path, line] of cases) {
    const steps = planMounts(makeDecision(o), { ...ENV, ...probe });
    t.is(imagePathOf(steps), path, JSON.stringify(o));
    t.true(formatPlan(steps).includes(line), `${JSON.stringify(o)}: ${formatPlan(steps)}`);
    const state = steps.find((s) => s.kind === 'write-file' && s.path === '/run/cfsroot/image-path');
    t.is(state?.kind === 'write-file' ? Buffer.from(state.contentBase64, 'base64').toString() : null, `${path}\n`);
    t.is(steps[0]!.kind, 'mkdir');
    t.deepEqual(imageSteps(steps)[0], { kind: 'open-image', image: IMAGE, beneath: '/sysroot' });
  }
  // Legacy: no image, no run-state file.
  const legacy = planMounts(makeDecision({ mode: 'off' }), ENV);
  t.is(imagePathOf(legacy), null);
  t.false(legacy.some((s) => s.kind === 'write-file' && s.path.includes('/cfsroot/')));
  t.is(describeImagePath('fs-verity'), 'fs-verity (kernel-measured)');
  t.is(describeImagePath('unverified'), 'mounted unverified (not pinned)');
});

function sysFor(d: ReturnType<typeof makeDecision>, content = 'IMAGE'): FakeSys {
  return new FakeSys({
    mounts: ['/', '/run', '/sysroot'],
    dirs: ['/', '/run', '/sysroot', d.deployment.dir],
    files: { [`${d.deployment.dir}/.ostree.cfs`]: content },
  });
}

test('executePlan, fs-verity path: the measured descriptor is mounted; no copy, nothing hashed in user space', async (t) => {
  const d = makeDecision({ mode: 'signed' });
  const sys = sysFor(d);
  sys.verity.set('IMAGE', `sha256:${DIGEST}`);
  sys.copyDigest = () => t.fail('no user-space digest on the fs-verity path') as never;
  const steps = planMounts(d, { ...ENV, imageVerity: 'sha256', privateCopies: true });
  const r = await executePlan(steps, sys);
  t.is(r.imageDigest, DIGEST);
  t.false(sys.calls.some((c) => c.startsWith('copy ')));
  t.true(sys.snapshot().mounts.includes('/sysroot overlay:composefs ro'));
  t.is(sys.files.get('/run/cfsroot/image-path'), 'fs-verity\n');
  t.is(sys.open.size, 0);
  // The EROFS lower was the open image itself, file-backed (no loop on 6.18).
  const erofs = sys.calls.filter((c) => c.startsWith('mount erofs'));
  t.deepEqual(erofs, [`mount erofs ${LOWER}`]);
});

test('executePlan, fs-verity path: a measured digest that is not the pin is EDIGEST before any mount, and nothing is left', async (t) => {
  const d = makeDecision({ mode: 'signed' });
  const sys = sysFor(d);
  sys.verity.set('IMAGE', `sha256:${'ee'.repeat(32)}`);
  const before = sys.snapshot();
  const err = await t.throwsAsync(executePlan(planMounts(d, { ...ENV, imageVerity: 'sha256' }), sys));
  t.true(isCfsError(err) && err.code === 'EDIGEST');
  t.true(err!.message.includes('ee'.repeat(32)) && err!.message.includes(DIGEST) && err!.message.includes(`signed commit ${COMMIT}`));
  t.regex(err!.message, /^measure .*all earlier steps were undone$/);
  t.false(sys.calls.some((c) => c.startsWith('mount ')));
  t.deepEqual(sys.snapshot(), before);
  t.is(sys.open.size, 0, 'the image descriptor is closed');
  // fs-verity in another hash than the plan's is refused the same way.
  sys.verity.set('IMAGE', `sha512:${DIGEST}${DIGEST}`);
  const e2 = await t.throwsAsync(executePlan(planMounts(d, { ...ENV, imageVerity: 'sha256' }), sys));
  t.true(isCfsError(e2) && e2.code === 'EDIGEST');
});

test('executePlan: fs-verity gone between the probe and the open is refused (EIMAGE), never copied instead', async (t) => {
  const d = makeDecision({ mode: 'signed' });
  // The plan was made when the probe saw fs-verity; the file has none now.
  const steps = planMounts(d, { ...ENV, imageVerity: 'sha256', privateCopies: true });
  for (const now of [null, 'unsupported'] as const) {
    const sys = sysFor(d);
    if (now) sys.verity.set('IMAGE', now);
    const before = sys.snapshot();
    const err = await t.throwsAsync(executePlan(steps, sys));
    t.true(isCfsError(err) && err.code === 'EIMAGE', String(err));
    t.regex(err!.message, /has no fs-verity now.*but it had when the boot was planned/);
    t.false(sys.calls.some((c) => c.startsWith('copy ') || c.startsWith('mount ')));
    t.deepEqual(sys.snapshot(), before);
  }
});

test('executePlan: the image replaced on the disk after it was opened changes nothing mounted', async (t) => {
  // The FakeSys descriptor keeps the content it was opened on, as an open file keeps its inode.
  for (const [probe, path] of [
    [{ imageVerity: 'sha256' as const, privateCopies: true }, 'fs-verity'],
    [{ privateCopies: true }, 'private-copy'],
    [{}, 'named-copy'],
    [{ imageVerity: 'sha256' as const }, 'unverified'],
  ] as const) {
    const d = makeDecision({ mode: path === 'unverified' ? 'yes' : 'signed' });
    const sys = sysFor(d, 'GOOD');
    sys.verity.set('GOOD', `sha256:${DIGEST}`);
    sys.copyDigest = (c) => Buffer.from(c === 'GOOD' ? DIGEST : 'ee'.repeat(32), 'hex');
    const file = `${d.deployment.dir}/.ostree.cfs`;
    // Swap the file as soon as the image is open.
    const open = sys.openImage.bind(sys);
    sys.openImage = (ref) => {
      const fd = open(ref);
      sys.files.set(file, 'EVIL');
      return fd;
    };
    await executePlan(planMounts(d, { ...ENV, ...probe }), sys);
    const lower = sys.mounts.filter((m) => m.what.startsWith('erofs:'));
    // The lower is detached once the overlay holds it: look at what the mount call got.
    t.deepEqual(lower, [], `${path}: the lower mount point is detached`);
    t.true(sys.erofsContents.every((c) => c === 'GOOD'), `${path}: mounted ${sys.erofsContents.join(',')}`);
    t.is(sys.erofsContents.length, 1);
    t.is(sys.files.get('/run/cfsroot/image-path'), `${path}\n`);
  }
});

test('executePlan: open-image refuses a symlink where the image was (ELOOP), before any mount', async (t) => {
  const d = makeDecision({ mode: 'signed' });
  const sys = new FakeSys({ mounts: ['/', '/run', '/sysroot'], dirs: ['/', '/run', '/sysroot', d.deployment.dir], files: {} });
  sys.links.set(`${d.deployment.dir}/.ostree.cfs`, '/elsewhere');
  const before = sys.snapshot();
  const err = await t.throwsAsync(executePlan(planMounts(d, ENV), sys));
  t.true(isCfsError(err) && err.code === 'EMOUNT');
  t.regex(err!.message, /^open .*\.ostree\.cfs .*ELOOP; all earlier steps were undone$/);
  t.deepEqual(sys.snapshot(), before);
});

test('detached EROFS lower (Linux 6.16 and later, a backend that can): no mount point, no lazy unmount; the overlay still names it', (t) => {
  for (const [mode, probe] of [['yes', {}], ['signed', { imageVerity: 'sha256' }], ['signed', { privateCopies: true }]] as const) {
    const steps = planMounts(makeDecision({ mode }), { ...ENV, ...probe, detachedMounts: true });
    const erofs = steps.filter((s) => s.kind === 'mount-erofs');
    t.is(erofs.length, 1);
    t.true(erofs[0]!.kind === 'mount-erofs' && erofs[0]!.detached === true && erofs[0]!.target === LOWER, mode);
    t.false(steps.some((s) => (s.kind === 'mkdir' || s.kind === 'umount-lazy') && ('path' in s ? s.path : s.target) === LOWER), mode);
    const ov = steps.find((s) => s.kind === 'mount-overlay');
    t.true(ov?.kind === 'mount-overlay' && ov.options.includes(`lowerdir=${LOWER}::/sysroot/ostree/repo/objects`));
    t.regex(formatPlan(steps), new RegExp(`mount -t erofs -o ro,noacl(,loop)? <[^>]+> \\(detached, named ${LOWER.replace(/\./g, '\\.')}: the overlay's lower, no mount point\\)`));
  }
  // 6.15, or a backend without detached mounts (mount(8)): the attached form.
  for (const env of [{ ...ENV, kernel: '6.15.2', detachedMounts: true }, { ...ENV, detachedMounts: false }]) {
    const steps = planMounts(makeDecision({ mode: 'yes' }), env);
    t.true(steps.some((s) => s.kind === 'mkdir' && s.path === LOWER));
    t.true(steps.some((s) => s.kind === 'umount-lazy' && s.target === LOWER));
    t.false(steps.some((s) => s.kind === 'mount-erofs' && s.detached === true));
  }
});
