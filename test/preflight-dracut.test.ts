/**
 * `cfsroot preflight` through the binary, against REAL initramfs images made
 * by dracut (as qemu/mkinitrd.sh makes them: a private dracutbasedir with the
 * cfsroot module, --no-hostonly, --conf /dev/null, the Debian kernel unpacked
 * by qemu/deps.sh) and deployments made by tools/mksysroot.ts. Three dracut
 * builds per run (each 5-15 s):
 *   full     cfsroot module, prepare-root.conf (enabled = signed) and the key
 *   nokey    cfsroot module and the conf, no key, erofs/overlay/loop omitted
 *   plain    no cfsroot module (the conf and key included)
 * This host has no fs-verity, so the `verity` check fails here, honestly, with
 * "does not support fs-verity"; every other check is asserted one by one.
 * Needs root (mksysroot's trusted.* xattrs) and dracut.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { makeSysroot, type SysrootInfo } from '../tools/mksysroot.js';
import { BINARY } from './helpers/fixture.js';

const REPO = path.resolve(import.meta.dirname, '..');
const KDIR = path.join(REPO, 'qemu/out/kernel');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-preflight-dracut-'));
const boot = path.join(tmp, 'boot');
const CONF = '[composefs]\nenabled = signed\n';
let kver = '';
let good: SysrootInfo;
let other: SysrootInfo;

interface Check { code: string; ok: boolean; message: string; fix: string }

function dracut(out: string, modules: string, extra: string[]): void {
  execFileSync(
    'dracut',
    ['-q', '--force', '--no-hostonly', '--no-hostonly-cmdline', '--conf', '/dev/null', '--confdir', path.join(tmp, 'confdir'),
      '--kver', kver, '--kmoddir', path.join(KDIR, 'lib/modules', kver), '--no-early-microcode', '--compress', 'zstd -3 -q -T0',
      '--modules', modules, ...extra, out],
    { env: { ...process.env, dracutbasedir: path.join(tmp, 'dracut-base'), CFSROOT_BINARY: BINARY }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
}

test.before(() => {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} is missing: run make first`);
  if (!fs.existsSync(path.join(KDIR, 'kver'))) execFileSync('bash', [path.join(REPO, 'qemu/deps.sh')], { stdio: 'inherit' });
  kver = fs.readFileSync(path.join(KDIR, 'kver'), 'utf8').trim();
  execFileSync('cp', ['-a', '/usr/lib/dracut', path.join(tmp, 'dracut-base')]);
  execFileSync('cp', ['-a', path.join(REPO, 'dracut/90cfsroot'), path.join(tmp, 'dracut-base/modules.d/90cfsroot')]);
  fs.mkdirSync(path.join(tmp, 'confdir'));

  good = makeSysroot({ out: path.join(tmp, 'good'), keyOut: path.join(tmp, 'good.key') });
  other = makeSysroot({ out: path.join(tmp, 'other'), keyOut: path.join(tmp, 'other.key') });
  for (const s of [good, other]) {
    fs.mkdirSync(path.join(s.deployDir, 'usr/lib/ostree'), { recursive: true });
    fs.writeFileSync(path.join(s.deployDir, 'usr/lib/ostree/prepare-root.conf'), CONF);
  }
  const withKey = path.join(tmp, 'inc-key');
  const noKey = path.join(tmp, 'inc-nokey');
  for (const d of [withKey, noKey]) {
    fs.mkdirSync(path.join(d, 'usr/lib/ostree'), { recursive: true });
    fs.writeFileSync(path.join(d, 'usr/lib/ostree/prepare-root.conf'), CONF);
  }
  fs.mkdirSync(path.join(withKey, 'etc/ostree'), { recursive: true });
  fs.copyFileSync(path.join(tmp, 'good.key'), path.join(withKey, 'etc/ostree/initramfs-root-binding.key'));

  fs.mkdirSync(path.join(boot, 'loader/entries'), { recursive: true });
  const base = 'systemd systemd-initrd dracut-systemd base rootfs-block kernel-modules fs-lib udev-rules';
  dracut(path.join(boot, 'full.img'), `${base} cfsroot`, ['--include', withKey, '/']);
  dracut(path.join(boot, 'nokey.img'), `${base} cfsroot`, ['--include', noKey, '/', '--omit-drivers', 'erofs overlay loop']);
  dracut(path.join(boot, 'plain.img'), base, ['--include', withKey, '/']);
  fs.writeFileSync(path.join(boot, `vmlinuz-${kver}`), 'not a kernel: preflight reads only its name\n');
  // Two entries: the loader boots version 2.
  entry(path.join(boot, 'loader/entries/ostree-1-cfsdemo.conf'), { version: '1', initrd: 'plain.img' });
  entry(path.join(boot, 'loader/entries/ostree-2-cfsdemo.conf'), { version: '2', initrd: 'full.img' });
});

test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

function entry(file: string, o: { version?: string; initrd: string; linux?: string; ostree?: string }): string {
  const linux = o.linux ?? `/vmlinuz-${kver}`;
  fs.writeFileSync(
    file,
    `title cfsdemo\nversion ${o.version ?? '1'}\nlinux ${linux}\ninitrd /${o.initrd}\noptions root=LABEL=sysroot rw ostree=${o.ostree ?? good.ostreeKarg}\n`,
  );
  return file;
}

function preflight(args: string[]): { status: number | null; checks: Check[]; stdout: string; stderr: string } {
  const r = spawnSync(BINARY, ['preflight', '--boot', boot, '--json', ...args], { encoding: 'utf8' });
  let checks: Check[] = [];
  try {
    checks = (JSON.parse(r.stdout) as { checks: Check[] }).checks;
  } catch {
    /* asserted by the caller */
  }
  return { status: r.status, checks, stdout: r.stdout, stderr: r.stderr };
}

function scenario(name: string, o: Parameters<typeof entry>[1]): string {
  return entry(path.join(tmp, `${name}.conf`), o);
}

const failed = (cs: Check[]) => cs.filter((c) => !c.ok).map((c) => c.code);
const byCode = (cs: Check[], code: string) => cs.find((c) => c.code === code);

test('the next entry (version 2, full initramfs) passes every check but fs-verity, which this host lacks', (t) => {
  const r = preflight(['--sysroot', good.sysroot]);
  t.is(r.status, 1, r.stdout + r.stderr);
  t.deepEqual(failed(r.checks), ['verity'], r.stdout);
  t.regex(byCode(r.checks, 'entry')!.message, /^ostree-2-cfsdemo\.conf/);
  t.regex(byCode(r.checks, 'cfsroot')!.message, /^\/usr\/bin\/cfsroot 0\.1\.0/);
  t.regex(byCode(r.checks, 'runs-at-boot')!.message, /cfsroot\.service, wanted by initrd-root-fs\.target/);
  t.regex(byCode(r.checks, 'initramfs')!.message, /zstd/);
  t.regex(byCode(r.checks, 'key')!.message, new RegExp(`signed commit ${good.commit}`));
  t.regex(byCode(r.checks, 'kernel-modules')!.message, /erofs module, overlay module, loop module/);
  t.regex(byCode(r.checks, 'verity')!.message, /does not support fs-verity/);
  // The text form: one line per check.
  const text = spawnSync(BINARY, ['preflight', '--boot', boot, '--sysroot', good.sysroot], { encoding: 'utf8' });
  t.is(text.status, 1);
  const lines = text.stdout.trim().split('\n');
  t.is(lines.length, r.checks.length);
  t.true(lines.every((l) => /^(OK|FAIL) [a-z-]+: /.test(l)), text.stdout);
  t.regex(text.stdout, /^FAIL verity: .* ; fix: /m);
});

test('unit not in the initramfs (built without the cfsroot module)', (t) => {
  const r = preflight(['--sysroot', good.sysroot, '--entry', scenario('plain', { initrd: 'plain.img' })]);
  t.is(r.status, 1);
  t.true(failed(r.checks).includes('runs-at-boot'), r.stdout);
  t.true(failed(r.checks).includes('cfsroot'), r.stdout);
});

test('key missing from the initramfs', (t) => {
  const r = preflight(['--sysroot', good.sysroot, '--entry', scenario('nokey', { initrd: 'nokey.img' })]);
  t.is(r.status, 1);
  t.regex(byCode(r.checks, 'key')!.message, /keypath \/etc\/ostree\/initramfs-root-binding\.key is not in the initramfs/);
  t.false(byCode(r.checks, 'key')!.ok);
});

test('kernel modules missing (erofs, overlay, loop omitted)', (t) => {
  const r = preflight(['--sysroot', good.sysroot, '--entry', scenario('nomods', { initrd: 'nokey.img' })]);
  const m = byCode(r.checks, 'kernel-modules')!;
  t.false(m.ok);
  t.regex(m.message, /erofs MISSING, overlay MISSING, loop MISSING/);
});

test('the key of another commit', (t) => {
  const r = preflight(['--sysroot', other.sysroot, '--entry', scenario('other', { initrd: 'full.img', ostree: other.ostreeKarg })]);
  t.is(r.status, 1);
  const k = byCode(r.checks, 'key')!;
  t.false(k.ok, r.stdout);
  t.true(failed(r.checks).includes('decision'), r.stdout);
});

test('the config in the initramfs differs from the image’s', (t) => {
  const conf = path.join(other.deployDir, 'usr/lib/ostree/prepare-root.conf');
  fs.writeFileSync(conf, '[composefs]\nenabled = verity\n');
  try {
    const r = preflight(['--sysroot', other.sysroot, '--entry', scenario('conf', { initrd: 'full.img', ostree: other.ostreeKarg })]);
    const c = byCode(r.checks, 'config')!;
    t.false(c.ok);
    t.regex(c.message, /\[composefs\] enabled: initramfs "signed", image "verity"/);
  } finally {
    fs.writeFileSync(conf, CONF);
  }
});

test('a kernel too old for what the mode asks (a fake version in the entry)', (t) => {
  const r = preflight(['--sysroot', good.sysroot, '--entry', scenario('old', { initrd: 'full.img', linux: '/vmlinuz-6.1.0-13-amd64' })]);
  const k = byCode(r.checks, 'kernel-version')!;
  t.false(k.ok);
  t.regex(k.message, /kernel 6\.1\.0-13-amd64 is older than 6\.6, needed for verity=require/);
});

test('an entry whose ostree= names nothing', (t) => {
  const r = preflight(['--sysroot', good.sysroot, '--entry', scenario('gone', { initrd: 'full.img', ostree: '/ostree/boot.1/cfsdemo/' + 'c'.repeat(64) + '/0' })]);
  t.is(r.status, 1);
  const d = byCode(r.checks, 'deployment')!;
  t.false(d.ok);
  t.regex(d.fix, /redeploy/);
});

test('the backing objects are the image’s redirects; fs-verity counted on each (a fake measurer: the ioctl needs a filesystem with fs-verity)', async (t) => {
  const { imageRedirects } = await import('../src/preflight/erofs-redirects.js');
  const { runPreflight } = await import('../src/preflight/checks.js');
  const redirects = imageRedirects(fs.readFileSync(good.image!), 'image');
  const objectsDir = path.join(good.sysroot, 'ostree/repo/objects');
  const nonEmpty = fs.readdirSync(objectsDir).flatMap((d) => fs.readdirSync(path.join(objectsDir, d))
    .filter((f) => f.endsWith('.file') && fs.statSync(path.join(objectsDir, d, f)).size > 0).map((f) => `/${d}/${f}`));
  t.deepEqual([...redirects].sort(), nonEmpty.sort(), 'every non-empty object, nothing else (empty files have no backing object)');
  const without = new Set(redirects.slice(0, 2).map((r) => path.join(objectsDir, r)));
  const run = (m: (f: string) => string | null) =>
    runPreflight({ sysroot: good.sysroot, boot, entry: path.join(boot, 'loader/entries/ostree-2-cfsdemo.conf'), measureVerity: m });
  const some = (await run((f) => (without.has(f) ? null : 'sha256:00'))).find((c) => c.code === 'verity')!;
  t.false(some.ok);
  t.regex(some.message, new RegExp(`^2 of ${redirects.length + 1} files without fs-verity`));
  t.true(some.message.includes([...without][0]!));
  const all = (await run(() => 'sha256:00')).filter((c) => !c.ok);
  t.deepEqual(all, [], 'with fs-verity everywhere every check passes');
  const none = (await run(() => 'unsupported')).find((c) => c.code === 'verity')!;
  t.regex(none.message, /the filesystem does not support fs-verity/);
});
