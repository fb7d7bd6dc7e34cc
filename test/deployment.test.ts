/**
 * Deployment resolution (src/ostree/deployment.ts, SPEC §1 ostree=): a real
 * ostree-shaped sysroot in a temp dir (relative link chain through
 * boot.1 -> boot.1.1, as ostree writes it), then each refusal: not a
 * symlink, missing, escaping SYSROOT (absolute and via ..), loops, a file
 * target, and deploy dir names that are not <64 hex>.<serial>.
 */
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CfsError, type ErrorCode } from '../src/errors.js';
import { resolveDeployment } from '../src/ostree/deployment.js';

const COMMIT = '0123456789abcdef'.repeat(4);
const BOOTCSUM = 'f'.repeat(64);
const TARGET = `/ostree/boot.1/debian/${BOOTCSUM}/0`;

interface Fixture {
  sysroot: string;
  /** Absolute path of the ostree= link inside the fixture. */
  link: string;
  deployRel: string;
}

function tmpdir(t: ExecutionContext, prefix = 'cfsroot-deploy-'): string {
  // realpath: os.tmpdir() may itself sit behind a symlink.
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * SYSROOT/ostree/deploy/debian/deploy/<deployName>, the boot.1 -> boot.1.1
 * link and the ostree= link pointing (relatively, as ostree writes it) at
 * the deployment, unless `linkTarget` overrides what the ostree= link holds.
 */
function fixture(t: ExecutionContext, opts: { deployName?: string; linkTarget?: string } = {}): Fixture {
  const sysroot = tmpdir(t);
  const deployRel = `ostree/deploy/debian/deploy/${opts.deployName ?? `${COMMIT}.0`}`;
  fs.mkdirSync(path.join(sysroot, deployRel), { recursive: true });
  fs.mkdirSync(path.join(sysroot, 'ostree/deploy/debian/var'), { recursive: true });
  const bootDir = path.join(sysroot, `ostree/boot.1.1/debian/${BOOTCSUM}`);
  fs.mkdirSync(bootDir, { recursive: true });
  fs.symlinkSync('boot.1.1', path.join(sysroot, 'ostree/boot.1'));
  const link = path.join(bootDir, '0');
  fs.symlinkSync(opts.linkTarget ?? `../../../deploy/debian/deploy/${opts.deployName ?? `${COMMIT}.0`}`, link);
  return { sysroot, link, deployRel };
}

function refuses(t: ExecutionContext, fn: () => unknown, code: ErrorCode, parts: string[]): void {
  const e = t.throws(fn);
  t.true(e instanceof CfsError, `expected CfsError, got ${String(e)}`);
  const err = e as CfsError;
  t.is(err.code, code, err.message);
  for (const p of parts) t.true(err.message.includes(p), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(p)}`);
}

test('a good ostree= link resolves to the deployment', (t) => {
  const f = fixture(t);
  const d = resolveDeployment(f.sysroot, TARGET);
  t.is(d.link, path.join(f.sysroot, TARGET));
  t.is(d.dir, path.join(f.sysroot, f.deployRel));
  t.is(d.relDir, f.deployRel);
  t.is(d.stateroot, 'debian');
  t.is(d.commit, COMMIT);
  t.is(d.serial, 0);
  t.is(d.varDir, path.join(f.sysroot, 'ostree/deploy/debian/var'));
  // st_dev/st_ino as coreutils stat(1) reports them (an independent reader).
  const [dev, ino] = execFileSync('stat', ['-c', '%d %i', path.join(f.sysroot, f.deployRel)], { encoding: 'utf8' }).trim().split(' ');
  t.is(d.dev, BigInt(dev!));
  t.is(d.ino, BigInt(ino!));
  t.is(typeof d.dev, 'bigint');
});

test('multi-digit serial and another stateroot', (t) => {
  const sysroot = tmpdir(t);
  const rel = `ostree/deploy/fedora-coreos/deploy/${COMMIT}.17`;
  fs.mkdirSync(path.join(sysroot, rel), { recursive: true });
  fs.mkdirSync(path.join(sysroot, 'ostree'), { recursive: true });
  fs.symlinkSync(`deploy/fedora-coreos/deploy/${COMMIT}.17`, path.join(sysroot, 'ostree/root.b'));
  const d = resolveDeployment(sysroot, '/ostree/root.b');
  t.is(d.serial, 17);
  t.is(d.stateroot, 'fedora-coreos');
  t.is(d.relDir, rel);
});

test('ostree= target without a leading slash works the same', (t) => {
  const f = fixture(t);
  t.is(resolveDeployment(f.sysroot, TARGET.slice(1)).commit, COMMIT);
});

test('SYSROOT given through a symlink or with a trailing slash', (t) => {
  const f = fixture(t);
  const alias = path.join(tmpdir(t, 'cfsroot-alias-'), 'sysroot');
  fs.symlinkSync(f.sysroot, alias);
  const d = resolveDeployment(alias, TARGET);
  t.is(d.dir, path.join(f.sysroot, f.deployRel));
  t.is(resolveDeployment(`${f.sysroot}/`, TARGET).relDir, f.deployRel);
});

test('ostree= pointing at the deployment directory itself (not a symlink) is refused', (t) => {
  const f = fixture(t);
  refuses(t, () => resolveDeployment(f.sysroot, `/${f.deployRel}`), 'EDEPLOY', ['not a symlink', 'a directory', 'expected a symlink']);
});

test('ostree= naming a regular file is refused as not a symlink', (t) => {
  const f = fixture(t);
  fs.writeFileSync(path.join(f.sysroot, 'ostree/file'), 'x');
  refuses(t, () => resolveDeployment(f.sysroot, '/ostree/file'), 'EDEPLOY', ['not a symlink', 'a regular file']);
});

test('missing ostree= path is refused', (t) => {
  const f = fixture(t);
  refuses(t, () => resolveDeployment(f.sysroot, `/ostree/boot.1/debian/${BOOTCSUM}/1`), 'EDEPLOY', ['does not exist', `${BOOTCSUM}/1`]);
  refuses(t, () => resolveDeployment(f.sysroot, '/ostree/boot.0/debian/x/0'), 'EDEPLOY', ['does not exist']);
});

test('a path through a regular file (ENOTDIR) is refused as missing', (t) => {
  const f = fixture(t);
  fs.writeFileSync(path.join(f.sysroot, 'ostree/file'), 'x');
  refuses(t, () => resolveDeployment(f.sysroot, '/ostree/file/0'), 'EDEPLOY', ['does not exist']);
});

test('a link with an absolute target outside SYSROOT is refused', (t) => {
  // A complete, well-formed deployment outside SYSROOT: only the escape check stops it.
  const outside = tmpdir(t, 'cfsroot-outside-');
  const outsideDeploy = path.join(outside, `ostree/deploy/debian/deploy/${COMMIT}.0`);
  fs.mkdirSync(outsideDeploy, { recursive: true });
  const f = fixture(t, { linkTarget: outsideDeploy });
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['escapes SYSROOT', outsideDeploy, f.sysroot]);
});

test('an absolute target written as if SYSROOT were / does not resolve inside SYSROOT', (t) => {
  // /ostree/deploy/... is resolved in the real namespace, where it does not exist.
  const f = fixture(t, { linkTarget: `/ostree/deploy/debian/deploy/${COMMIT}.0` });
  t.false(fs.existsSync('/ostree/deploy'));
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['dangling symlink']);
});

test('a link escaping SYSROOT via .. is refused', (t) => {
  const outside = tmpdir(t, 'cfsroot-outside-');
  const outsideDeploy = path.join(outside, `ostree/deploy/debian/deploy/${COMMIT}.0`);
  fs.mkdirSync(outsideDeploy, { recursive: true });
  const f = fixture(t);
  // From SYSROOT/ostree/boot.1.1/debian/<csum>/ climb out of SYSROOT, then into `outside`.
  const up = path.relative(path.dirname(f.link), outsideDeploy);
  t.true(up.startsWith('../../../../..'));
  fs.unlinkSync(f.link);
  fs.symlinkSync(up, f.link);
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['escapes SYSROOT', outsideDeploy]);
});

test('ostree= containing .. that leaves SYSROOT is refused before any lookup', (t) => {
  const f = fixture(t);
  refuses(t, () => resolveDeployment(f.sysroot, '/../../../etc/passwd'), 'EDEPLOY', ['escapes SYSROOT', 'ostree=/../../../etc/passwd']);
  refuses(t, () => resolveDeployment(f.sysroot, '/'), 'EDEPLOY', ['escapes SYSROOT']);
});

test('a link resolving to SYSROOT itself is refused', (t) => {
  const f = fixture(t, { linkTarget: '../../../..' });
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['escapes SYSROOT']);
});

test('a symlink loop is refused with a clear message', (t) => {
  const f = fixture(t, { linkTarget: 'loop-a' });
  const dir = path.dirname(f.link);
  fs.symlinkSync('loop-b', path.join(dir, 'loop-a'));
  fs.symlinkSync('loop-a', path.join(dir, 'loop-b'));
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['symlink loop', path.join(f.sysroot, TARGET)]);
});

test('a link pointing at itself is refused as a loop', (t) => {
  const f = fixture(t, { linkTarget: '0' });
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['symlink loop']);
});

test('a dangling link is refused', (t) => {
  const f = fixture(t, { linkTarget: `../../../deploy/debian/deploy/${COMMIT}.9` });
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['dangling symlink', path.join(f.sysroot, TARGET)]);
});

test('a link to a regular file is refused as not a directory', (t) => {
  const f = fixture(t, { linkTarget: `../../../deploy/debian/deploy/${COMMIT}.1` });
  fs.writeFileSync(path.join(f.sysroot, `ostree/deploy/debian/deploy/${COMMIT}.1`), 'not a dir');
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['not a directory', `${COMMIT}.1`]);
});

for (const [name, deployName] of [
  ['uppercase hex', `${COMMIT.toUpperCase()}.0`],
  ['63 hex digits', `${COMMIT.slice(1)}.0`],
  ['65 hex digits', `${COMMIT}a.0`],
  ['no serial', COMMIT],
  ['an empty serial', `${COMMIT}.`],
  ['a non-digit serial', `${COMMIT}.a`],
  ['a negative serial', `${COMMIT}.-1`],
  ['two serials', `${COMMIT}.0.1`],
  ['a non-hex commit', `${'g'.repeat(64)}.0`],
  ['an .origin-like suffix', `${COMMIT}.0.origin`],
] as const) {
  test(`deploy dir with ${name} is refused`, (t) => {
    const f = fixture(t, { deployName });
    refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', [
      deployName,
      'SYSROOT/ostree/deploy/<stateroot>/deploy/<64 lowercase hex>.<serial>',
    ]);
  });
}

test('a deployment-shaped dir in the wrong place is refused', (t) => {
  for (const rel of [`ostree/deploy/debian/${COMMIT}.0`, `ostree/debian/deploy/${COMMIT}.0`, `deploy/debian/deploy/${COMMIT}.0`, `ostree/deploy/debian/deploy/x/${COMMIT}.0`]) {
    const sysroot = tmpdir(t);
    fs.mkdirSync(path.join(sysroot, rel), { recursive: true });
    fs.mkdirSync(path.join(sysroot, 'ostree'), { recursive: true });
    fs.symlinkSync(path.relative(path.join(sysroot, 'ostree'), path.join(sysroot, rel)), path.join(sysroot, 'ostree/root.a'));
    refuses(t, () => resolveDeployment(sysroot, '/ostree/root.a'), 'EDEPLOY', ['expected SYSROOT/ostree/deploy/<stateroot>/deploy/']);
  }
});

test('an absurd serial is refused, not rounded', (t) => {
  const f = fixture(t, { deployName: `${COMMIT}.${'9'.repeat(20)}` });
  refuses(t, () => resolveDeployment(f.sysroot, TARGET), 'EDEPLOY', ['out of range']);
});

test('a missing SYSROOT is refused', (t) => {
  const dir = tmpdir(t);
  refuses(t, () => resolveDeployment(path.join(dir, 'nope'), TARGET), 'EDEPLOY', ['SYSROOT', 'nope']);
});
