/**
 * The boot form is not a catch-all (issue 14): parseBootForm's rules, and the
 * built executable refusing a boot outside an initramfs (this host has no
 * /etc/initrd-release) with one usage line, exit 2, before anything is read.
 */

import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseBootForm, INITRD_RELEASE } from '../src/cli.js';
import { isCfsError } from '../src/errors.js';
import { runBinary } from './helpers/fixture.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-bootform-'));
const inInitrd = path.join(dir, 'initrd-release');
fs.writeFileSync(inInitrd, 'NAME=test\n');
const outside = path.join(dir, 'missing');
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

function usage(t: import('ava').ExecutionContext, argv: string[], re: RegExp, release = inInitrd): void {
  const e = t.throws(() => parseBootForm(argv, release));
  t.true(isCfsError(e) && e.code === 'EUSAGE', argv.join(' '));
  t.regex(e!.message, re);
}

test('the boot form in an initramfs: SYSROOT [KERNEL_CMDLINE]', (t) => {
  t.deepEqual(parseBootForm(['/sysroot'], inInitrd), { sysroot: '/sysroot', cmdline: null, target: null });
  t.deepEqual(parseBootForm(['/sysroot', 'ostree=/x quiet'], inInitrd), { sysroot: '/sysroot', cmdline: 'ostree=/x quiet', target: null });
});

test('outside an initramfs the boot form is refused and says what to use instead; --target is allowed there', (t) => {
  usage(t, ['/sysroot'], /runs only in an initramfs \(.*missing is missing here\): use cfsroot verify or plan .* or --target DIR/, outside);
  t.deepEqual(parseBootForm(['--target', '/run/nextroot'], outside), { sysroot: '/sysroot', cmdline: null, target: '/run/nextroot' });
  t.deepEqual(parseBootForm(['--target=/run/nextroot/', '/sysroot', 'composefs=?ab'], outside), { sysroot: '/sysroot', cmdline: 'composefs=?ab', target: '/run/nextroot' });
  t.deepEqual(parseBootForm(['/mnt/root', '--target', '/run/nextroot'], outside), { sysroot: '/mnt/root', cmdline: null, target: '/run/nextroot' });
});

test('usage errors: unknown words and options, a relative or missing --target, one that overlaps SYSROOT, too many arguments', (t) => {
  usage(t, ['verfy'], /^unknown command "verfy": expected verify, plan, preflight, digest, or the boot form/);
  usage(t, ['--frob'], /^unknown option "--frob"/);
  usage(t, ['--target'], /--target needs an absolute directory .* got nothing/);
  usage(t, ['--target', 'nextroot'], /got "nextroot"/);
  usage(t, ['--target', '/sysroot/new', '/sysroot'], /overlap/);
  usage(t, ['--target', '/', '/sysroot'], /overlap/);
  usage(t, ['/sysroot', 'a', 'b'], /too many arguments/);
});

test('the executable: a boot outside an initramfs, a typo and a bare --target are usage errors (exit 2, one line)', (t) => {
  t.false(fs.existsSync(INITRD_RELEASE), 'this test needs a host without /etc/initrd-release');
  for (const [argv, re] of [
    [['/sysroot', 'ostree=/x'], /^cfsroot: cfsroot \/sysroot: the boot form replaces \/sysroot and runs only in an initramfs \(\/etc\/initrd-release is missing here\)/],
    [['preflgiht', '--json'], /^cfsroot: unknown command "preflgiht"/],
    [['--target'], /^cfsroot: --target needs an absolute directory/],
  ] as const) {
    const r = runBinary([...argv]);
    t.is(r.status, 2, `${argv.join(' ')}: ${r.stderr}`);
    t.is(r.stderr.trim().split('\n').length, 1);
    t.regex(r.stderr, re);
  }
  t.regex(runBinary(['--help']).stdout, /cfsroot --target DIR \[SYSROOT\] \[KERNEL_CMDLINE\]/);
});
