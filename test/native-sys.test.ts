/**
 * The native mount backend (src/sys/native.ts + native/sys.c, the mount
 * part of the addon; its verity part is test/native-verity.test.ts):
 *  - the mapping of each `Sys` call to mount(2)/umount2(2) flags, against a
 *    recording fake addon (what a reader of mount(2) expects, written out);
 *  - the real addon doing those calls in a private mount namespace, checked
 *    through /proc/self/mountinfo and by writing through the mounts;
 *  - loading: from the bytes the single executable embeds (written to a
 *    directory, dlopen'ed, unlinked), and bootSys' choice and fallback.
 *  - the boot's deadline: the watcher thread's one line, and its disarming.
 * The real-addon cases need root and gcc (or a built build/native addon).
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { armBootDeadline, bootSys, loadNativeAddon, nativeSysFrom, type NativeAddon } from '../src/sys/native.js';
import { noteActivity, notePlanSteps, noteStep } from '../src/activity.js';
import type { MountCall, Sys } from '../src/sys/types.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let addonPath = '';
const tmpDirs: string[] = [];

test.before(() => {
  // A private build, so the test does not depend on (or race) `make`.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-'));
  tmpDirs.push(dir);
  addonPath = path.join(dir, 'cfsroot_sys.node');
  execFileSync('cc', [
    '-O2', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=cfsroot_sys',
    `-I${path.resolve(process.execPath, '../../include/node')}`, '-o', addonPath,
    ...fs.readdirSync(path.join(REPO, 'native')).filter((f) => f.endsWith('.c')).map((f) => path.join(REPO, 'native', f)),
    '-lpthread',
  ]);
});
test.after.always(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

type Call = [string, ...unknown[]];

function recorder(fail?: (call: Call) => Error | null): { addon: NativeAddon; calls: Call[] } {
  const calls: Call[] = [];
  const rec = (call: Call) => {
    calls.push(call);
    const e = fail?.(call);
    if (e) throw e;
  };
  return {
    calls,
    addon: {
      mount: (...a) => rec(['mount', ...a]),
      umount: (...a) => rec(['umount', ...a]),
      mountLoop: (...a) => {
        rec(['mountLoop', ...a]);
        return '/dev/loop7';
      },
      setReadonly: (...a) => rec(['setReadonly', ...a]),
    },
  };
}

function fallbackRecorder(): { sys: Sys; mounts: MountCall[] } {
  const mounts: MountCall[] = [];
  const no = () => {
    throw new Error('unexpected fallback call');
  };
  const sys: Sys = {
    mount: (m) => void mounts.push(m),
    bind: no, remount: no, move: no, umount: no, propagation: no,
    mountReadonly: () => true,
    mkdir: () => true, rmdir: no, symlink: no, readFileOrNull: () => null, writeFile: no, unlink: no,
    openImage: no, closeFile: no, copyImage: no, readHead: no,
  };
  return { sys, mounts };
}

test('each Sys call becomes the mount(2)/umount2(2) call mount(8) would make', (t) => {
  const { addon, calls } = recorder();
  const { sys: fb, mounts } = fallbackRecorder();
  const sys = nativeSysFrom(addon, fb);
  sys.mount({ fstype: 'erofs', source: '/run/i.cfs', target: '/l', options: ['noacl'], readonly: true });
  sys.mount({ fstype: 'overlay', source: 'composefs', target: '/t', options: ['metacopy=on', 'lowerdir=/l::/o'], readonly: false });
  sys.mount({ fstype: 'overlay', source: 'overlay', target: '/e', options: [], readonly: true });
  sys.bind('/a', '/b', false);
  sys.bind('/a', '/c', true);
  sys.remount('/b', true);
  sys.move('/c', '/d');
  sys.umount('/d', true);
  sys.umount('/b', false);
  sys.propagation('/', 'rprivate');
  sys.propagation('/v', 'private');
  sys.propagation('/v', 'slave');
  sys.propagation('/v', 'shared');
  t.deepEqual(calls, [
    ['mount', '/run/i.cfs', '/l', 'erofs', 0x1, 'noacl'], // MS_RDONLY
    ['mount', 'composefs', '/t', 'overlay', 0, 'metacopy=on,lowerdir=/l::/o'],
    ['mount', 'overlay', '/e', 'overlay', 0x1, null],
    ['mount', '/a', '/b', null, 0x1000, null], // MS_BIND
    ['mount', '/a', '/c', null, 0x1000 | 0x4000, null], // MS_BIND|MS_REC
    ['setReadonly', '/b', true],
    ['mount', '/c', '/d', null, 0x2000, null], // MS_MOVE
    ['umount', '/d', 2], // MNT_DETACH
    ['umount', '/b', 0],
    ['mount', null, '/', null, 0x4000 | 0x40000, null], // MS_REC|MS_PRIVATE
    ['mount', null, '/v', null, 0x40000, null],
    ['mount', null, '/v', null, 0x80000, null], // MS_SLAVE
    ['mount', null, '/v', null, 0x100000, null], // MS_SHARED
  ]);
  t.deepEqual(mounts, []);
  // Non-mount operations are the fallback's.
  t.is(sys.mountReadonly('/x'), true);
});

test('mkdir and writeFile: one addon call each when the addon has them, else the fallback', (t) => {
  const { addon, calls } = recorder();
  const { sys: fb } = fallbackRecorder();
  // The recording fake has neither: node:fs (the fallback) does both.
  t.is(nativeSysFrom(addon, fb).mkdir, fb.mkdir);
  t.is(nativeSysFrom(addon, fb).writeFile, fb.writeFile);
  const withFiles: NativeAddon = {
    ...addon,
    makeDir: (p, mode) => {
      calls.push(['makeDir', p, mode]);
      return false;
    },
    writeFile: (p, data, mode) => void calls.push(['writeFile', p, [...data], mode]),
  };
  const sys = nativeSysFrom(withFiles, fb);
  t.is(sys.mkdir('/run/ostree', 0o755), false);
  sys.writeFile('/run/ostree-booted', Uint8Array.of(1, 2), 0o644);
  t.deepEqual(calls, [
    ['makeDir', '/run/ostree', 0o755],
    ['writeFile', '/run/ostree-booted', [1, 2], 0o644],
  ]);
});

test('loop mounts go through a loop device; an open file is named by its descriptor; errors propagate, ENOTBLK included (no retry)', (t) => {
  const enotblk = Object.assign(new Error('mount(2) /l: Block device required (ENOTBLK)'), { code: 'ENOTBLK' });
  const ebusy = Object.assign(new Error('mount(2) /t: Device or resource busy (EBUSY)'), { code: 'EBUSY' });
  const { addon, calls } = recorder((c) => (c[0] === 'mount' && c[2] === '/l' ? enotblk : c[2] === '/t' ? ebusy : null));
  const { sys: fb, mounts } = fallbackRecorder();
  const sys = nativeSysFrom(addon, fb);
  sys.mount({ fstype: 'erofs', source: '/i', target: '/k', options: [], readonly: true, loop: true });
  sys.mount({ fstype: 'erofs', source: 'the image', sourceFd: 7, target: '/k', options: [], readonly: true, loop: true });
  // The plan asks for a loop device where one is needed; a refusal is the step's error.
  t.throws(() => sys.mount({ fstype: 'erofs', source: '/i', target: '/l', options: ['noacl'], readonly: true }), { message: /ENOTBLK/ });
  t.throws(() => sys.mount({ fstype: 'overlay', source: 'o', target: '/t', options: [], readonly: true }), { message: /EBUSY/ });
  t.deepEqual(calls, [
    ['mountLoop', '/i', '/k', 'erofs', 0x1, null],
    ['mountLoop', '/proc/self/fd/7', '/k', 'erofs', 0x1, null],
    ['mount', '/i', '/l', 'erofs', 0x1, 'noacl'],
    ['mount', 'o', '/t', 'overlay', 0x1, null],
  ]);
  t.deepEqual(mounts, [], 'no mount(8) child');
});

/** Run a CommonJS snippet as root in a private mount namespace; `addon` is in scope. */
function inNamespace(body: string): { out: unknown; stderr: string; status: number | null } {
  const script = `
    const fs = require('node:fs');
    const m = { exports: {} };
    process.dlopen(m, process.env.ADDON);
    const addon = m.exports;
    const out = {};
    const err = (f) => { try { f(); return null; } catch (e) { return { code: e.code, message: e.message }; } };
    const info = (p) => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').filter((l) => l.split(' ')[4] === p);
    ${body}
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, '-e', script], {
    env: { ...process.env, ADDON: addonPath, NODE_OPTIONS: '' },
    encoding: 'utf8',
  });
  return { out: r.status === 0 ? JSON.parse(r.stdout) : null, stderr: r.stderr, status: r.status };
}

test('the real addon: mount, bind, read-only flip that keeps nosuid/nodev, move, propagation, unmount', (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-mnt-'));
  tmpDirs.push(dir);
  for (const d of ['a', 'b', 'c']) fs.mkdirSync(path.join(dir, d));
  const r = inNamespace(`
    const [a, b, c] = ['a', 'b', 'c'].map((x) => ${JSON.stringify(dir)} + '/' + x);
    addon.mount('tmpfs', a, 'tmpfs', 2 | 4, 'mode=0755,size=1m'); // MS_NOSUID|MS_NODEV
    fs.writeFileSync(a + '/f', 'x');
    addon.mount(a, b, null, 0x1000, null);
    out.isRoBefore = [addon.isReadonly(a), addon.isReadonly(b)];
    addon.setReadonly(b, true);
    out.bRo = info(b)[0];
    out.isRoAfter = [addon.isReadonly(a), addon.isReadonly(b)];
    out.writeB = err(() => fs.writeFileSync(b + '/g', 'y'));
    out.writeA = err(() => fs.writeFileSync(a + '/g', 'y'));
    addon.setReadonly(b, false);
    out.bRw = info(b)[0];
    addon.mount(b, c, null, 0x2000, null); // MS_MOVE
    out.afterMove = [info(b).length, info(c).length, fs.readFileSync(c + '/f', 'utf8')];
    addon.mount(null, c, null, 0x100000, null); // MS_SHARED
    out.shared = info(c)[0];
    addon.umount(c, 2);
    addon.umount(a, 0);
    out.left = [info(a).length, info(c).length];
    out.enoent = err(() => addon.mount('/nonexistent-src', a, null, 0x1000, null));
    out.notMounted = err(() => addon.umount(a, 0));
    out.nul = err(() => addon.umount('/x\\u0000y', 0));
    out.type = err(() => addon.mount(null, 5, null, 0, null));
  `);
  t.is(r.status, 0, r.stderr);
  const o = r.out as Record<string, unknown>;
  const opts = (line: unknown) => String(line).split(' ')[5]!.split(',');
  t.deepEqual(opts(o['bRo']).sort(), ['nodev', 'nosuid', 'relatime', 'ro'].sort());
  t.deepEqual(opts(o['bRw']).sort(), ['nodev', 'nosuid', 'relatime', 'rw'].sort());
  // isReadonly (statvfs) sees the per-mount flag: only the bind went read-only.
  t.deepEqual(o['isRoBefore'], [false, false]);
  t.deepEqual(o['isRoAfter'], [false, true]);
  t.is((o['writeB'] as { code: string }).code, 'EROFS');
  t.is(o['writeA'], null);
  t.deepEqual(o['afterMove'], [0, 1, 'x']);
  t.regex(String(o['shared']), / shared:\d+/);
  t.deepEqual(o['left'], [0, 0]);
  t.deepEqual(o['enoent'], { code: 'ENOENT', message: `mount(2) ${dir}/a: No such file or directory (ENOENT)` });
  t.deepEqual(o['notMounted'], { code: 'EINVAL', message: `umount2(2) ${dir}/a: Invalid argument (EINVAL)` });
  t.regex((o['nul'] as { message: string }).message, /must not contain a NUL/);
  t.regex((o['type'] as { message: string }).message, /target must be a string/);
});

test('the real addon: makeDir and writeFile give the modes asked for under any umask, report an existing directory, and fail with the errno', (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-files-'));
  tmpDirs.push(dir);
  const r = inNamespace(`
    const d = ${JSON.stringify(dir)};
    const mode = (p) => fs.lstatSync(p).mode & 0o7777;
    process.umask(0o077);
    out.made = [addon.makeDir(d + '/private', 0o000), addon.makeDir(d + '/pub', 0o755), addon.makeDir(d + '/sticky', 0o1777)];
    out.modes = [mode(d + '/private'), mode(d + '/pub'), mode(d + '/sticky')];
    fs.chmodSync(d + '/pub', 0o700);
    out.again = addon.makeDir(d + '/pub', 0o755);
    out.keptMode = mode(d + '/pub');
    out.noParent = err(() => addon.makeDir(d + '/missing/x', 0o755));
    out.badMode = err(() => addon.makeDir(d + '/y', 0o10000));
    addon.writeFile(d + '/f', new Uint8Array([104, 105, 10]), 0o644);
    out.file = [fs.readFileSync(d + '/f', 'utf8'), mode(d + '/f')];
    // Written again: truncated first, and the mode set even though the file existed.
    addon.writeFile(d + '/f', Buffer.from('x'), 0o600);
    out.rewritten = [fs.readFileSync(d + '/f', 'utf8'), mode(d + '/f')];
    // A symlink there is followed, as node:fs writeFileSync follows it (the spawn backend).
    fs.symlinkSync('f', d + '/link');
    addon.writeFile(d + '/link', Buffer.from('via link'), 0o640);
    out.viaLink = [fs.readFileSync(d + '/f', 'utf8'), mode(d + '/f'), fs.lstatSync(d + '/link').isSymbolicLink()];
    out.writeNoDir = err(() => addon.writeFile(d + '/missing/f', Buffer.from('x'), 0o644));
    out.notBytes = err(() => addon.writeFile(d + '/g', 'text', 0o644));
    out.gAbsent = fs.existsSync(d + '/g');
  `);
  t.is(r.status, 0, r.stderr);
  const o = r.out as Record<string, unknown>;
  t.deepEqual(o['made'], [true, true, true]);
  t.deepEqual(o['modes'], [0o000, 0o755, 0o1777]);
  t.is(o['again'], false);
  t.is(o['keptMode'], 0o700);
  t.deepEqual(o['noParent'], { code: 'ENOENT', message: `mkdir(2) ${dir}/missing/x: No such file or directory (ENOENT)` });
  t.regex((o['badMode'] as { message: string }).message, /mode must be at most 07777/);
  t.deepEqual(o['file'], ['hi\n', 0o644]);
  t.deepEqual(o['rewritten'], ['x', 0o600]);
  t.deepEqual(o['viaLink'], ['via link', 0o640, true]);
  t.deepEqual(o['writeNoDir'], { code: 'ENOENT', message: `open(2) ${dir}/missing/f: No such file or directory (ENOENT)` });
  t.regex((o['notBytes'] as { message: string }).message, /data must be a Uint8Array/);
  t.is(o['gAbsent'], false);
});

test('the real addon: an EROFS image on tmpfs is refused as a file (ENOTBLK) and mounts through an autoclear loop device', (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-loop-'));
  tmpDirs.push(dir);
  fs.mkdirSync(path.join(dir, 'tree/sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'tree/sub/hello'), 'hello from erofs\n');
  for (const d of ['tmp', 'mnt']) fs.mkdirSync(path.join(dir, d));
  execFileSync('mkfs.erofs', ['--quiet', path.join(dir, 'image.erofs'), path.join(dir, 'tree')]);
  const r = inNamespace(`
    const d = ${JSON.stringify(dir)};
    addon.mount('tmpfs', d + '/tmp', 'tmpfs', 0, null);
    fs.copyFileSync(d + '/image.erofs', d + '/tmp/image.erofs');
    out.asFile = err(() => addon.mount(d + '/tmp/image.erofs', d + '/mnt', 'erofs', 1, null));
    out.dev = addon.mountLoop(d + '/tmp/image.erofs', d + '/mnt', 'erofs', 1, 'noacl');
    out.content = fs.readFileSync(d + '/mnt/sub/hello', 'utf8');
    out.mounted = info(d + '/mnt').map((l) => l.split(' - ')[1]);
    const sysfs = '/sys/block/' + out.dev.slice(5) + '/';
    out.loop = ['loop/backing_file', 'ro', 'loop/autoclear'].map((f) => fs.readFileSync(sysfs + f, 'utf8').trim());
    addon.umount(d + '/mnt', 0);
    out.freed = fs.existsSync(sysfs + 'loop/backing_file');
    out.badTarget = err(() => addon.mountLoop(d + '/tmp/image.erofs', d + '/missing', 'erofs', 1, null));
    out.badFile = err(() => addon.mountLoop(d + '/tmp/none', d + '/mnt', 'erofs', 1, null));
    // A private image copy is passed as /proc/self/fd/N: the descriptor is
    // used itself, so it works with no /proc mounted at all.
    const fd = fs.openSync(d + '/tmp/image.erofs', 'r');
    addon.umount('/proc', 2);
    out.procGone = !fs.existsSync('/proc/self');
    out.devFd = addon.mountLoop('/proc/self/fd/' + fd, d + '/mnt', 'erofs', 1, 'noacl');
    out.contentFd = fs.readFileSync(d + '/mnt/sub/hello', 'utf8');
    addon.umount(d + '/mnt', 0);
    out.badFd = err(() => addon.mountLoop('/proc/self/fd/99999', d + '/mnt', 'erofs', 1, null));
    out.notFd = err(() => addon.mountLoop('/proc/self/fd/1x', d + '/mnt', 'erofs', 1, null));
    fs.closeSync(fd);
    addon.umount(d + '/tmp', 0);
  `);
  t.is(r.status, 0, r.stderr);
  const o = r.out as Record<string, any>;
  t.is(o['asFile'].code, 'ENOTBLK');
  t.regex(o['dev'], /^\/dev\/loop\d+$/);
  t.is(o['content'], 'hello from erofs\n');
  t.regex(o['mounted'][0], new RegExp(`^erofs ${o['dev']} ro`));
  t.deepEqual(o['loop'], [path.join(dir, 'tmp/image.erofs'), '1', '1']);
  t.false(o['freed'], 'unmounting freed the loop device');
  t.is(o['badTarget'].code, 'ENOENT');
  t.regex(o['badTarget'].message, /^mount\(2\) .*\/missing: /);
  t.is(o['badFile'].code, 'ENOENT');
  t.regex(o['badFile'].message, /^loop device for .*\/tmp\/none: /);
  t.true(o['procGone'], '/proc was unmounted for the descriptor case');
  t.regex(o['devFd'], /^\/dev\/loop\d+$/);
  t.is(o['contentFd'], 'hello from erofs\n');
  t.is(o['badFd'].code, 'EBADF');
  t.is(o['notFd'].code, 'ENOENT');
});

test('the real addon: randomBytes gives n bytes from getrandom(2), 1 to 256, and refuses any other n; the native Sys passes it on', (t) => {
  const addon = loadNativeAddon({ addonPath })!;
  const one = addon.randomBytes!(6);
  t.true(Buffer.isBuffer(one));
  t.is(one.length, 6);
  t.is(addon.randomBytes!(256).length, 256);
  // 32 draws of 16 bytes: a generator that repeats itself (or a buffer never filled) shows here.
  const draws = new Set(Array.from({ length: 32 }, () => addon.randomBytes!(16).toString('hex')));
  t.is(draws.size, 32);
  for (const bad of [0, 257, -1, 1.5, '6', null]) {
    t.throws(() => addon.randomBytes!(bad as number), { instanceOf: TypeError }, String(bad));
  }
  t.is(nativeSysFrom(addon).randomBytes?.(6).length, 6);
});

test('loading from embedded bytes: written to the first usable directory, loaded, and removed', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-x-'));
  tmpDirs.push(dir);
  const bytes = fs.readFileSync(addonPath);
  const asset = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const addon = loadNativeAddon({ asset, extractDirs: [path.join(dir, 'missing'), dir] });
  t.is(typeof addon?.mount, 'function');
  t.deepEqual(fs.readdirSync(dir), []);
  // Garbage is refused with the reason for every directory tried.
  t.throws(() => loadNativeAddon({ asset: new ArrayBuffer(64), extractDirs: [dir] }), { message: /cannot load the embedded mount addon \(.*\.node: / });
  t.deepEqual(fs.readdirSync(dir), []);
});

test('bootSys: native when an addon loads, mount(8) otherwise; CFSROOT_SYS forces either', (t) => {
  const { sys: fb } = fallbackRecorder();
  const warnings: string[] = [];
  const warn = (m: string) => void warnings.push(m);
  const saved = process.env['CFSROOT_SYS'];
  try {
    delete process.env['CFSROOT_SYS'];
    // No addon configured (not a single executable): mount(8), silently.
    t.is(bootSys({ fallback: fb, warn, addonPath: '' }), fb);
    t.deepEqual(warnings, []);
    // An addon that cannot load: mount(8), with a warning.
    t.is(bootSys({ fallback: fb, warn, addonPath: '/nonexistent/cfsroot_sys.node' }), fb);
    t.is(warnings.length, 1);
    t.regex(warnings[0]!, /warning: .*nonexistent.*; using mount\(8\) instead/);
    const native = bootSys({ fallback: fb, warn, addonPath });
    t.not(native, fb);
    t.not(native.bind, fb.bind);
    process.env['CFSROOT_SYS'] = 'spawn';
    t.is(bootSys({ fallback: fb, warn, addonPath }), fb);
    process.env['CFSROOT_SYS'] = 'native';
    t.throws(() => bootSys({ fallback: fb, warn, addonPath: '/nonexistent/cfsroot_sys.node' }));
  } finally {
    if (saved === undefined) delete process.env['CFSROOT_SYS'];
    else process.env['CFSROOT_SYS'] = saved;
  }
});

test('the real addon, by descriptor: openDir refuses symlinks, non-directories and escapes; bindAt/mountAt return handles that unmount the mount itself', (t) => {
  if (process.getuid?.() !== 0) return t.pass('needs root');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-native-fd-'));
  tmpDirs.push(dir);
  fs.mkdirSync(path.join(dir, 'tree/sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'tree/sub/hello'), 'hello from erofs\n');
  for (const d of ['src/inner', 'dst/a', 'mnt', 'tmp', 'dev']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'src/file'), 'x');
  fs.writeFileSync(path.join(dir, 'src/inner/marker'), 'bound\n');
  fs.symlinkSync('/', path.join(dir, 'src/link'));
  fs.symlinkSync('inner', path.join(dir, 'src/rel-link'));
  execFileSync('mkfs.erofs', ['--quiet', path.join(dir, 'image.erofs'), path.join(dir, 'tree')]);
  fs.symlinkSync('image.erofs', path.join(dir, 'image-link'));
  const r = inNamespace(`
    const d = ${JSON.stringify(dir)};
    const { execFileSync } = require('node:child_process');
    // The image (a disk file) is opened with no symlink followed, by both readers.
    out.digestLink = err(() => addon.digestFile(d + '/image-link', 'sha256', 1));
    out.openLink = err(() => addon.openImage(d, 'image-link'));
    out.openDirAsImage = err(() => addon.openImage(d, 'src'));
    out.openEscape = err(() => addon.openImage(d + '/src', '../image.erofs'));
    fs.mkdirSync(d + '/fifo-dir');
    execFileSync('mkfifo', [d + '/fifo-dir/image']);
    out.openFifo = err(() => addon.openImage(d + '/fifo-dir', 'image'));
    const img = addon.openImage(d, 'image.erofs');
    out.imageFlags = fs.readFileSync('/proc/self/fdinfo/' + img, 'utf8').match(/flags:\\s*(\\d+)/)[1];
    // This host has no fs-verity (or the file has none): never a digest.
    const measured = addon.measureVerityFd(img);
    out.measured = measured === null ? 'null' : measured;
    // The open image mounted as file-backed EROFS (the kernel opens the same open file through the magic link).
    const mnt0 = addon.openDir(d, 'mnt');
    const fb = addon.mountAt('erofs', '/proc/self/fd/' + img, [], true, mnt0, false);
    out.fileBacked = fs.readFileSync(d + '/mnt/sub/hello', 'utf8');
    out.fileBackedSource = info(d + '/mnt').map((l) => l.split(' - ')[1].split(' ')[1])[0];
    addon.umount('/proc/self/fd/' + fb, 2);
    addon.closeFd(fb);
    addon.closeFd(mnt0);
    addon.closeFd(img);
    out.digestReal = addon.digestFile(d + '/image.erofs', 'sha256', 1).length;
    out.link = err(() => addon.openDir(d + '/src', 'link'));
    out.relLink = err(() => addon.openDir(d + '/src', 'rel-link'));
    out.through = err(() => addon.openDir(d + '/src', 'rel-link/..'));
    out.file = err(() => addon.openDir(d + '/src', 'file'));
    out.escape = err(() => addon.openDir(d + '/src', '../dst'));
    out.absolute = err(() => addon.openDir(d + '/src', '/etc'));
    const s = addon.openDir(d + '/src', 'inner');
    const t = addon.openDir(d, 'dst/a');
    const h = addon.bindAt(s, t, false);
    addon.closeFd(s); addon.closeFd(t);
    out.bound = fs.readFileSync(d + '/dst/a/marker', 'utf8');
    // The path changes meaning (its parent renamed, a symlink to / in its place);
    // the handle still names the mount.
    fs.renameSync(d + '/dst', d + '/moved');
    fs.mkdirSync(d + '/dst');
    fs.symlinkSync('/', d + '/dst/a');
    out.rootMountsBefore = info('/').length;
    addon.umount('/proc/self/fd/' + h, 2);
    addon.closeFd(h);
    out.unbound = info(d + '/moved/a').length;
    out.rootMountsAfter = info('/').length;
    addon.mount('tmpfs', d + '/tmp', 'tmpfs', 0, null);
    fs.copyFileSync(d + '/image.erofs', d + '/tmp/image.erofs');
    const mnt = addon.openDir(d, 'mnt');
    const e = addon.mountAt('erofs', d + '/tmp/image.erofs', ['noacl'], true, mnt, true);
    out.content = fs.readFileSync(d + '/mnt/sub/hello', 'utf8');
    out.dev = info(d + '/mnt').map((l) => l.split(' - ')[1].split(' ')[1])[0];
    addon.umount('/proc/self/fd/' + e, 2);
    addon.closeFd(e);
    out.freed = fs.existsSync('/sys/block/' + out.dev.slice(5) + '/loop/backing_file');
    out.badOption = err(() => addon.mountAt('erofs', d + '/tmp/image.erofs', ['no-such-option'], true, mnt, true));
    // No /dev/loop-control (an initramfs without the loop module's node): say that.
    addon.mount('tmpfs', '/dev', 'tmpfs', 0, null);
    out.noLoopControl = err(() => addon.mountAt('erofs', d + '/tmp/image.erofs', [], true, mnt, true));
    addon.closeFd(mnt);
  `);
  t.is(r.status, 0, r.stderr);
  const o = r.out as Record<string, any>;
  t.regex(o['digestLink'].message, /ELOOP/);
  t.is(o['openLink'].code, 'ELOOP');
  t.is(o['openDirAsImage'].code, 'EINVAL');
  t.is(o['openEscape'].code, 'EXDEV');
  t.is(o['openFifo'].code, 'EINVAL', 'a FIFO is refused, without blocking the open');
  // O_RDONLY, close-on-exec (02000000 octal), O_NONBLOCK (04000) cleared after the open.
  t.is(Number.parseInt(o['imageFlags'], 8) & 0o4003, 0);
  t.true((Number.parseInt(o['imageFlags'], 8) & 0o2000000) !== 0);
  t.true(o['measured'] === 'null' || o['measured'] === 'unsupported', o['measured']);
  t.is(o['fileBacked'], 'hello from erofs\n');
  t.notRegex(o['fileBackedSource'], /^\/dev\/loop/, 'file-backed: no loop device');
  t.is(o['digestReal'], 32);
  t.is(o['link'].code, 'ELOOP');
  t.is(o['relLink'].code, 'ELOOP', 'a relative symlink inside is refused too');
  t.is(o['through'].code, 'ELOOP');
  t.is(o['file'].code, 'ENOTDIR');
  t.is(o['escape'].code, 'EXDEV');
  t.is(o['absolute'].code, 'EXDEV');
  t.is(o['bound'], 'bound\n');
  t.is(o['unbound'], 0, 'the handle unmounted the bind where it went, not what the path now names');
  t.is(o['rootMountsAfter'], o['rootMountsBefore'], 'nothing at / was touched');
  t.is(o['content'], 'hello from erofs\n');
  t.regex(o['dev'], /^\/dev\/loop\d+$/);
  t.false(o['freed'], 'detaching and closing the handle freed the loop device');
  t.regex(o['badOption'].message, /fsconfig\(2\) erofs option no-such-option/);
  t.is(o['noLoopControl'].code, 'ENOENT');
  t.regex(o['noLoopControl'].message, /\/dev\/loop-control/);
});

/**
 * The boot's deadline (native/sys.c watchdog), on the addon alone: a child
 * process arms it with a short deadline, says what it is doing, then blocks
 * for good (testStall); the watcher thread must print one line naming the
 * last note and exit 1. Control characters in a note (a name from the disk)
 * print as '?', so a note cannot start a line of its own.
 */
/** `script` run in a child process with the addon loaded as `a`. */
function withAddon(script: string): { status: number | null; stdout: string; stderr: string } {
  const js = `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(addonPath)}); const a = m.exports; ${script}`;
  const r = spawnSync(process.execPath, ['-e', js], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const stalled = (script: string) => withAddon(`a.watchdogStart(300); ${script}; a.testStall();`);
const blockedWhile = (stderr: string) => /blocked while (.*) \(a disk or file server/.exec(stderr)?.[1];

test('the deadline: one line naming the last note, control characters as ?, exit 1; "starting" before any note', (t) => {
  const r = stalled(`a.watchdogNote('checking the image'); a.watchdogNote('at step 2/3: bind /b\\x1b[31m\\nnext\\x7f')`);
  t.is(r.status, 1, r.stderr);
  t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.regex(r.stderr, /^cfsroot: the boot did not finish within 0\.300 s, /);
  t.is(blockedWhile(r.stderr), 'at step 2/3: bind /b?[31m?next?');
  t.regex(r.stderr, /\[ETIMEOUT\]\n$/);
  t.is(blockedWhile(stalled('').stderr), 'starting');
  // A second start moves the deadline (here: later), it does not add a second watcher.
  const moved = stalled(`a.watchdogStart(900); a.watchdogNote('late')`);
  t.is(moved.status, 1, moved.stderr);
  t.regex(moved.stderr, /^cfsroot: the boot did not finish within 0\.900 s, blocked while late /);
  t.is(moved.stderr.trim().split('\n').length, 1, moved.stderr);
});

test('the deadline during the plan: the step table is told once, then a number per step; the line names that step, control characters as ?', (t) => {
  const r = stalled(`a.watchdogNote('checking the image'); a.watchdogSteps('mkdir /x\\nbind /b\\x1b[31m\\x7f\\nmove /c'); a.watchdogStep(0); a.watchdogStep(1)`);
  t.is(r.status, 1, r.stderr);
  t.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  t.is(blockedWhile(r.stderr), 'at step 2/3: bind /b?[31m?');
  t.is(blockedWhile(stalled(`a.watchdogSteps('mkdir /x\\nbind /b\\nmove /c'); a.watchdogStep(2)`).stderr), 'at step 3/3: move /c');
  // A note after the steps (or before any step) is what the line names.
  t.is(blockedWhile(stalled(`a.watchdogSteps('mkdir /x'); a.watchdogStep(0); a.watchdogNote('after')`).stderr), 'after');
  t.is(blockedWhile(stalled(`a.watchdogNote('before'); a.watchdogSteps('mkdir /x')`).stderr), 'before');
  // A step the table does not have, or no table: refused, and the note stays.
  const bad = withAddon(`a.watchdogSteps('a\\nb'); for (const i of [2, -1, 0.5]) { try { a.watchdogStep(i); console.log('taken', i); } catch (e) { console.log(e.name); } }`);
  t.is(bad.stdout.trim(), 'TypeError\nTypeError\nTypeError', bad.stderr);
  t.is(withAddon(`try { a.watchdogStep(0); console.log('taken'); } catch (e) { console.log(e.name); }`).stdout.trim(), 'TypeError');
});

test('armBootDeadline: the executor\'s steps reach the addon as one table and a number each; a line with a newline, or an addon without the table, gets the whole line per step', (t) => {
  const told: unknown[][] = [];
  const fake = (table: boolean): NativeAddon =>
    ({
      watchdogStart: (ms: number) => told.push(['start', ms]),
      watchdogNote: (text: string) => told.push(['note', text]),
      watchdogStop: () => told.push(['stop']),
      ...(table ? { watchdogSteps: (text: string) => told.push(['steps', text]), watchdogStep: (i: number) => told.push(['step', i]) } : {}),
    }) as unknown as NativeAddon;
  const run = (addon: NativeAddon, lines: string[]) => {
    told.length = 0;
    const disarm = armBootDeadline(addon);
    noteActivity(() => 'checking');
    notePlanSteps(() => lines);
    noteStep(0);
    noteStep(1);
    disarm();
    noteStep(1); // after disarm: nobody listens
    return told.slice(1); // without the start (its deadline is the environment's)
  };
  t.deepEqual(run(fake(true), ['mkdir /a', 'bind /b']), [['note', 'checking'], ['steps', 'mkdir /a\nbind /b'], ['step', 0], ['step', 1], ['stop']]);
  t.deepEqual(run(fake(true), ['mkdir /a\nx', 'bind /b']), [
    ['note', 'checking'],
    ['note', 'at step 1/2: mkdir /a\nx'],
    ['note', 'at step 2/2: bind /b'],
    ['stop'],
  ]);
  t.deepEqual(run(fake(false), ['mkdir /a', 'bind /b']), [['note', 'checking'], ['note', 'at step 1/2: mkdir /a'], ['note', 'at step 2/2: bind /b'], ['stop']]);
});

test('the deadline, disarmed: the process goes on past it and exits as it chooses', (t) => {
  const r = withAddon(`a.watchdogStart(200); a.watchdogNote('x'); a.watchdogStop(); setTimeout(() => { process.stdout.write('done'); }, 600);`);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'done');
  t.is(r.stderr, '');
});
