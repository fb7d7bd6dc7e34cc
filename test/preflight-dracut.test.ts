/**
 * `cfsroot preflight` through the binary, against REAL initramfs images made
 * by dracut (as qemu/mkinitrd.sh makes them: a private dracutbasedir with the
 * cfsroot module, --no-hostonly, --conf /dev/null, the Debian kernel unpacked
 * by qemu/deps.sh) and deployments made by tools/mksysroot.ts. Three dracut
 * builds per run (each 5-15 s):
 *   full     cfsroot module, prepare-root.conf (enabled = signed) and the key
 *   nokey    cfsroot module and the conf, no key, erofs/overlay/loop omitted
 *   plain    no cfsroot module (the conf and key included)
 *   native   cfsroot module and a setup-root-conf.toml ([etc] mount = "bind"),
 *            for entries with composefs= kargs over composefs-native
 *            repositories (test/helpers/native-repo.ts)
 * This host has no fs-verity, so the `verity` check fails here, honestly, with
 * "does not support fs-verity"; every other check is asserted one by one.
 * Needs root (mksysroot's trusted.* xattrs), dracut (dracut-core, in the
 * Makefile's APT_PACKAGES: `make apt-deps`) and the QEMU build's kernel:
 * before() runs qemu/deps.sh (`make qemu-deps`) when qemu/out/kernel is
 * missing, which unpacks Debian's 6.12 kernel there without installing it.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { makeSysroot, type SysrootInfo } from '../tools/mksysroot.js';
import { BINARY } from './helpers/fixture.js';
import { buildNativeImage, makeNativeRepo, type NativeRepo } from './helpers/native-repo.js';

const REPO = path.resolve(import.meta.dirname, '..');
const KDIR = path.join(REPO, 'qemu/out/kernel');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-preflight-dracut-'));
const boot = path.join(tmp, 'boot');
const CONF = '[composefs]\nenabled = signed\n';
let kver = '';
let good: SysrootInfo;
let other: SysrootInfo;
const NATIVE_CONF = '[etc]\nmount = "bind"\n';
/** Its image carries the initramfs's setup-root-conf.toml; sameConf's carries another. */
let sameConf: NativeRepo;
let otherConf: NativeRepo;

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
  const nativeInc = path.join(tmp, 'inc-native');
  fs.mkdirSync(path.join(nativeInc, 'usr/lib/composefs'), { recursive: true });
  fs.writeFileSync(path.join(nativeInc, 'usr/lib/composefs/setup-root-conf.toml'), NATIVE_CONF);
  dracut(path.join(boot, 'native.img'), `${base} cfsroot`, ['--include', nativeInc, '/']);
  const conf = 'usr/lib/composefs/setup-root-conf.toml';
  sameConf = makeNativeRepo(buildNativeImage('sha512', { [conf]: NATIVE_CONF }), { alg: 'sha512' });
  otherConf = makeNativeRepo(buildNativeImage('sha512', { [conf]: '# another image\n[root]\ntransient = true\n[etc]\nmount = "transient"\n' }), { alg: 'sha512' });
  fs.writeFileSync(path.join(boot, `vmlinuz-${kver}`), 'not a kernel: preflight reads only its name\n');
  // Two entries: the loader boots version 2.
  entry(path.join(boot, 'loader/entries/ostree-1-cfsdemo.conf'), { version: '1', initrd: 'plain.img' });
  entry(path.join(boot, 'loader/entries/ostree-2-cfsdemo.conf'), { version: '2', initrd: 'full.img' });
});

test.after.always(() => {
  sameConf?.cleanup();
  otherConf?.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function entry(file: string, o: { version?: string; initrd: string; linux?: string; ostree?: string; options?: string }): string {
  const linux = o.linux ?? `/vmlinuz-${kver}`;
  const options = o.options ?? `ostree=${o.ostree ?? good.ostreeKarg}`;
  fs.writeFileSync(file, `title cfsdemo\nversion ${o.version ?? '1'}\nlinux ${linux}\ninitrd /${o.initrd}\noptions root=LABEL=sysroot rw ${options}\n`);
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

test('composefs-native: the image the karg names, its config the initramfs\'s, the mode\'s decision; fs-verity is what this host lacks', (t) => {
  const r = preflight(['--sysroot', sameConf.sysroot, '--entry', scenario('native', { initrd: 'native.img', options: `composefs=${sameConf.digest}` })]);
  t.is(r.status, 1, r.stdout + r.stderr);
  t.deepEqual(failed(r.checks), ['verity'], r.stdout);
  t.deepEqual(r.checks.map((c) => c.code), ['entry', 'initramfs', 'cfsroot', 'runs-at-boot', 'image', 'config', 'decision', 'kernel-version', 'kernel-modules', 'verity']);
  t.regex(byCode(r.checks, 'image')!.message, new RegExp(`^composefs=${sameConf.digest} -> composefs/images/${sameConf.digest} `));
  t.regex(byCode(r.checks, 'config')!.message, /\/usr\/lib\/composefs\/setup-root-conf\.toml in the initramfs vs \/usr\/lib\/composefs\/setup-root-conf\.toml of the image: the same settings/);
  t.regex(byCode(r.checks, 'decision')!.message, /\/etc bind, \/var bind/, 'the initramfs\'s [etc] mount = "bind" was used');
  t.regex(byCode(r.checks, 'runs-at-boot')!.message, /triggered by ConditionKernelCommandLine=\|composefs/);
  t.regex(byCode(r.checks, 'verity')!.message, /does not support fs-verity/);
  // The insecure form asks for no fs-verity: every check passes.
  const insecure = preflight(['--sysroot', sameConf.sysroot, '--entry', scenario('native-insecure', { initrd: 'native.img', options: `composefs=?${sameConf.digest}` })]);
  t.is(insecure.status, 0, insecure.stdout);
  t.false(insecure.checks.some((c) => c.code === 'verity'));
  t.regex(byCode(insecure.checks, 'kernel-version')!.message, /data-only overlayfs lowers/);
});

test('composefs-native: fs-verity counted on the image and each object under SYSROOT/composefs/objects (a fake measurer)', async (t) => {
  const { runPreflight } = await import('../src/preflight/checks.js');
  const file = scenario('native-fake', { initrd: 'native.img', options: `composefs=${sameConf.digest}` });
  const objects = path.join(sameConf.sysroot, 'composefs/objects');
  const run = (m: (f: string) => string | null) => runPreflight({ sysroot: sameConf.sysroot, boot, entry: file, measureVerity: m });
  t.deepEqual((await run(() => 'sha512:00')).filter((c) => !c.ok), [], 'with fs-verity everywhere every check passes');
  const v = (await run((f) => (f.startsWith(objects) && !f.startsWith(path.dirname(sameConf.imageFile)) ? null : 'sha512:00'))).find((c) => c.code === 'verity')!;
  t.false(v.ok);
  t.regex(v.message, /^\d+ of \d+ files without fs-verity .*first: /);
  t.true(v.message.includes(objects), v.message);
  const img = (await run((f) => (f === sameConf.imageFile ? null : 'sha512:00'))).find((c) => c.code === 'verity')!;
  t.regex(img.message, /^1 of /);
  t.true(img.message.includes(sameConf.imageFile), img.message);
});

test('composefs-native: the config in the initramfs differs from the image\'s, each setting named', (t) => {
  const r = preflight(['--sysroot', otherConf.sysroot, '--entry', scenario('native-conf', { initrd: 'native.img', options: `composefs=${otherConf.digest}` })]);
  t.is(r.status, 1);
  const c = byCode(r.checks, 'config')!;
  t.false(c.ok, r.stdout);
  t.regex(c.message, /\[root\] transient: initramfs false, image true; \[etc\] mount: initramfs "bind", image "transient"$/);
  t.true(byCode(r.checks, 'decision')!.ok, 'the boot itself would go on, with the initramfs\'s settings');
  // No setup-root-conf.toml in the initramfs: its defaults against the image's.
  const d = preflight(['--sysroot', sameConf.sysroot, '--entry', scenario('native-defaults', { initrd: 'full.img', options: `composefs=${sameConf.digest}` })]);
  t.regex(byCode(d.checks, 'config')!.message, /^no setup-root-conf\.toml \(defaults\) in the initramfs vs .* differ: \[etc\] mount: initramfs "overlay", image "bind"$/);
});

test('composefs-native: an entry whose composefs= names no image', (t) => {
  const missing = 'e'.repeat(128);
  const r = preflight(['--sysroot', sameConf.sysroot, '--entry', scenario('native-gone', { initrd: 'native.img', options: `composefs=${missing}` })]);
  t.is(r.status, 1);
  const i = byCode(r.checks, 'image')!;
  t.false(i.ok);
  t.regex(i.message, new RegExp(`no composefs image in .*/composefs/images .*composefs=${missing}`));
  t.regex(i.fix, /redeploy/);
  t.false(r.checks.some((c) => c.code === 'decision'), 'nothing decided without an image');
});
