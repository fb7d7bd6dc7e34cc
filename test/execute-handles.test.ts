/**
 * Issue 13 item 4, the executor's half: once a mount is made, every later
 * operation on it and every undo goes through the handle the backend
 * returned (the native backend's /proc/self/fd/N of that mount), never
 * through its path in the new root again; each handle is released exactly
 * once, whether the plan succeeds or fails at any call. Also: the plan tells
 * the backend what each disk-decided path must be resolved beneath.
 */
import test from 'ava';
import { type PlanEnv } from '../src/plan/steps.js';
import { planMounts } from '../src/ostree/plan.js';
import { executePlan } from '../src/plan/execute.js';
import type { BindConfinement, MountCall } from '../src/sys/types.js';
import { DIGEST, makeDecision, type DecisionOptions } from './integration/fixtures.js';
import { FakeSys, imagePrefix } from './integration/fake-sys.js';

const ENV: PlanEnv = { kernel: '6.18.4-test', rootDevice: { major: 254, minor: 3 }, randomSuffix: 'Ab12Cd' };

/** FakeSys whose mounts return handles "mnt#N" that keep naming the same mount wherever it moves. */
class HandleSys extends FakeSys {
  private byHandle = new Map<string, { target: string }>();
  released: string[] = [];
  /** umount/remount/propagation calls with the argument the executor passed (a handle or a path). */
  raw: string[] = [];
  confinements: string[] = [];
  private next = 0;
  private handleFor(target: string): string {
    const m = this.mounts[this.mounts.length - 1]!;
    if (m.target !== target) throw new Error('fake: the new mount is not last');
    const h = `mnt#${++this.next}`;
    this.byHandle.set(h, m);
    return h;
  }
  private path(p: string): string {
    const m = this.byHandle.get(p);
    if (p.startsWith('mnt#') && !m) throw new Error(`fake: unknown handle ${p}`);
    return m ? m.target : p;
  }
  override mount(m: MountCall): string {
    if (m.targetBeneath) this.confinements.push(`${m.targetBeneath.path} beneath ${m.targetBeneath.root}`);
    super.mount(m);
    return this.handleFor(m.target);
  }
  override bind(source: string, target: string, recursive: boolean, confine?: BindConfinement): string {
    for (const c of [confine?.source, confine?.target]) if (c) this.confinements.push(`${c.path} beneath ${c.root}`);
    super.bind(this.path(source), target, recursive);
    return this.handleFor(target);
  }
  override umount(target: string, lazy: boolean) {
    this.raw.push(`umount ${target}`);
    // The fake's umount takes a path: the handle's mount wherever it is now.
    if (target.startsWith('mnt#')) {
      const m = this.byHandle.get(target);
      if (!m || !this.mounts.includes(m as never)) throw new Error(`fake: ${target} is not mounted`);
    }
    super.umount(this.path(target), lazy);
  }
  override remount(target: string, readonly: boolean) {
    this.raw.push(`remount ${target}`);
    super.remount(this.path(target), readonly);
  }
  override propagation(target: string, kind: Parameters<FakeSys['propagation']>[1]) {
    this.raw.push(`propagation ${target}`);
    super.propagation(this.path(target), kind);
  }
  override move(source: string, target: string) {
    super.move(this.path(source), target);
  }
  override mountReadonly(target: string) {
    return super.mountReadonly(this.path(target));
  }
  release(h: string) {
    this.released.push(h);
  }
  handles(): string[] {
    return [...this.byHandle.keys()];
  }
}

function sysFor(o: DecisionOptions) {
  const d = makeDecision(o);
  return new HandleSys({
    mounts: ['/', '/run', '/sysroot'],
    dirs: ['/', '/run', '/sysroot', d.deployment.dir],
    files: { [`${d.deployment.dir}/.ostree.cfs`]: 'IMAGE' },
  });
}

const VARIANTS: DecisionOptions[] = [
  { mode: 'signed' },
  { mode: 'yes', etcTransient: true, rootTransient: true },
  { mode: 'off', sysrootReadonly: true },
  { mode: 'off', sysrootReadonly: false, usrOverlay: true },
];

test('every mount call in the new root is confined beneath the staging dir, SYSROOT or the new /sysroot', async (t) => {
  const sys = sysFor({ mode: 'off', sysrootReadonly: true });
  await executePlan(planMounts(makeDecision({ mode: 'off', sysrootReadonly: true }), ENV), sys);
  const D = `/sysroot/ostree/deploy/debian/deploy/${'c0'.repeat(32)}.0`;
  // Once the staging dir and the new /sysroot are mounts, they are named by their handles
  // (mnt#1: the deployment bind at /sysroot.tmp; mnt#4: the /sysroot bind).
  t.deepEqual(sys.confinements, [
    `${D} beneath /sysroot`,
    `${D}/etc beneath /sysroot`,
    '/sysroot.tmp/etc beneath mnt#1',
    '/sysroot.tmp/usr beneath mnt#1',
    '/sysroot.tmp/usr beneath mnt#1',
    '/sysroot.tmp/sysroot beneath mnt#1',
    '/sysroot.tmp/sysroot/ostree/deploy/debian/var beneath mnt#4',
    '/sysroot.tmp/sysroot/ostree/deploy/debian/var beneath mnt#4',
    '/sysroot.tmp/sysroot/ostree/deploy/debian/var beneath mnt#4',
    '/sysroot.tmp/var beneath mnt#1',
  ]);
});

test('success: each handle released once; the final /sysroot remount goes through the handle, not the path', async (t) => {
  for (const o of VARIANTS) {
    const sys = sysFor(o);
    await executePlan(planMounts(makeDecision(o), ENV), sys);
    t.deepEqual([...sys.released].sort(), sys.handles().sort(), JSON.stringify(o));
    t.false(sys.raw.some((c) => /^(remount|umount|propagation) \/sysroot(\.tmp)?\//.test(c)), sys.raw.join('\n'));
  }
});

test('failure at any call: every undo of a mount goes through its handle, all complete, each handle released once', async (t) => {
  for (const o of VARIANTS) {
    const steps = planMounts(makeDecision(o), ENV);
    const probe = sysFor(o);
    await executePlan(steps, probe);
    for (let n = 0; n < probe.calls.length; n++) {
      const sys = sysFor(o);
      const before = sys.snapshot();
      sys.failAt = n;
      const err = await t.throwsAsync(executePlan(steps, sys));
      t.regex(err!.message, /all earlier steps were undone$/, `${JSON.stringify(o)} call ${n}`);
      t.deepEqual(sys.snapshot(), before, `${JSON.stringify(o)} failing call ${n}`);
      t.deepEqual([...sys.released].sort(), sys.handles().sort(), 'each handle released exactly once');
      // No undo names a mount in the new root by its path.
      t.false(sys.raw.some((c) => /^(umount|remount|propagation) \/sysroot(\.tmp)?\//.test(c)), sys.raw.join('\n'));
    }
  }
});

class CopyHeadSys extends FakeSys {
  erofsOptions: string[][] = [];
  constructor(
    init: ConstructorParameters<typeof FakeSys>[0],
    head: Buffer,
  ) {
    super(init);
    this.head = head;
  }
  override mount(m: MountCall) {
    if (m.fstype === 'erofs') this.erofsOptions.push([...m.options]);
    super.mount(m);
  }
}

test('item 5: noacl comes from what is mounted (the copy, or the open image), not from the header the plan read from the disk', async (t) => {
  for (const [diskSaid, copySays, want] of [
    [false, true, []],
    [true, false, ['noacl']],
    [false, false, ['noacl']],
    [true, true, []],
  ] as const) {
    const d = makeDecision({ mode: 'signed', hasAcl: diskSaid });
    const sys = new CopyHeadSys(
      { mounts: ['/', '/run', '/sysroot'], dirs: ['/', '/run', '/sysroot', d.deployment.dir], files: { [`${d.deployment.dir}/.ostree.cfs`]: 'IMAGE' } },
      imagePrefix(copySays),
    );
    await executePlan(planMounts(d, ENV), sys);
    t.deepEqual(sys.erofsOptions, [want], `disk header hasAcl=${diskSaid}, copy hasAcl=${copySays}`);
  }
  // A copy that is not a composefs image at all (the disk changed between the header read and the copy, unpinned): refused.
  const d = makeDecision({ mode: 'yes' });
  const sys = new CopyHeadSys(
    { mounts: ['/', '/run', '/sysroot'], dirs: ['/', '/run', '/sysroot', d.deployment.dir], files: { [`${d.deployment.dir}/.ostree.cfs`]: 'IMAGE' } },
    Buffer.alloc(1028),
  );
  const before = sys.snapshot();
  await t.throwsAsync(executePlan(planMounts(d, ENV), sys), {
    message: /the image .*\.ostree\.cfs as mounted: not a composefs image: magic 0x00000000.*; all earlier steps were undone$/,
  });
  t.deepEqual(sys.snapshot(), before);
});
