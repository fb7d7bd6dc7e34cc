/**
 * Issue 12: the built executable starts, and does the same, on every CPU it
 * may be installed on and in whatever environment the initramfs gives it.
 *
 * - CPU models: `--version`, `verify` and `digest` under qemu-user
 *   (qemu-x86_64-static, Debian's qemu-user-static) emulating CPUs older and
 *   newer than the build machine's, each compared byte for byte with the
 *   same command run natively. The startup snapshot is the part at risk: Node
 *   20 refused a snapshot built on a CPU with other features (exit 14).
 * - Environment: Node's own variables (NODE_OPTIONS and the rest) change
 *   neither the output nor the exit status: the executable's V8 flags are
 *   baked in (sea-config execArgv, execArgvExtension "none").
 */

import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BINARY, makeFixture, type Fixture } from './helpers/fixture.js';

const QEMU_USER = '/usr/bin/qemu-x86_64-static';
/** Older than any machine in use (qemu64: SSE2 only), a 2008 and a 2013 CPU, and everything TCG emulates. */
const CPU_MODELS = ['qemu64', 'Nehalem', 'Haswell', 'max'] as const;

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Only PATH, as systemd's initrd and a busybox init start the boot. */
const CLEAN_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function runWith(argv: string[], env: Record<string, string> = CLEAN_ENV, timeoutMs = 120_000): Outcome {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd!, args, { encoding: 'utf8', env, timeout: timeoutMs });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** qemu-user's own warnings about CPU features TCG lacks (Haswell asks for some): qemu's lines, not cfsroot's. */
function withoutQemuWarnings(o: Outcome): Outcome {
  return { ...o, stderr: o.stderr.replace(/^qemu-x86_64-static: warning: .*\n/gm, '') };
}

/** Regular files (not directories) anywhere under dir; [] when dir does not exist. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => !e.isDirectory()).map((e) => e.name);
}

let fx: Fixture;
let digestFile: string;
let commands: Record<string, string[]>;

test.before(() => {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} is missing: run make first`);
  fx = makeFixture();
  // A file over one Merkle level (so the tree has two levels) for `digest`.
  digestFile = path.join(fx.dir, 'payload');
  fs.writeFileSync(digestFile, Buffer.alloc(3 * 4096 * 128 + 17, 0x5a));
  commands = {
    '--version': ['--version'],
    verify: ['verify', '--sysroot', fx.sysroot, '--initramfs-root', fx.initramfs, '--cmdline', fx.cmdline],
    'verify --json': ['verify', '--sysroot', fx.sysroot, '--initramfs-root', fx.initramfs, '--cmdline', fx.cmdline, '--json'],
    digest: ['digest', digestFile, fx.info.image ?? path.join(fx.sysroot, 'missing')],
  };
});

test.after.always(() => fx?.cleanup());

test('the native runs succeed (the baseline the emulated CPUs are compared with)', (t) => {
  const version = runWith([BINARY, '--version']);
  t.is(version.status, 0, version.stderr);
  t.regex(version.stdout, /^cfsroot \d+\.\d+\.\d+\n$/);
  const verify = runWith([BINARY, ...commands['verify']!]);
  t.is(verify.status, 0, verify.stderr);
  t.regex(verify.stdout, /^OK: /m);
  const digest = runWith([BINARY, ...commands['digest']!]);
  t.is(digest.status, 0, digest.stderr);
  t.is(digest.stdout.trim().split('\n').length, 2);
});

for (const model of CPU_MODELS) {
  test(`-cpu ${model}: --version, verify and digest print exactly what they print natively`, (t) => {
    for (const [name, args] of Object.entries(commands)) {
      const native = runWith([BINARY, ...args]);
      const emulated = withoutQemuWarnings(runWith([QEMU_USER, '-cpu', model, BINARY, ...args]));
      t.deepEqual(emulated, native, `${name} under -cpu ${model}`);
    }
  });
}

test('Node environment variables change neither output nor exit status', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-env-'));
  try {
    const marker = path.join(dir, 'required-ran');
    const required = path.join(dir, 'inject.cjs');
    fs.writeFileSync(required, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x'); console.log('INJECTED');\n`);
    const coverage = path.join(dir, 'coverage');
    fs.mkdirSync(coverage);
    const knobs: Record<string, Record<string, string>> = {
      'NODE_OPTIONS=--require': { NODE_OPTIONS: `--require=${required}` },
      'NODE_OPTIONS=--max-old-space-size=1': { NODE_OPTIONS: '--max-old-space-size=1' },
      'NODE_OPTIONS=--stack-trace-limit=0 --trace-warnings': { NODE_OPTIONS: '--stack-trace-limit=0 --trace-warnings' },
      'NODE_EXTRA_CA_CERTS=/nonexistent': { NODE_EXTRA_CA_CERTS: '/nonexistent' },
      'NODE_DEBUG=*': { NODE_DEBUG: '*' },
      'NODE_V8_COVERAGE': { NODE_V8_COVERAGE: coverage },
      'UV_THREADPOOL_SIZE=1': { UV_THREADPOOL_SIZE: '1' },
      'NODE_PENDING_DEPRECATION=1': { NODE_PENDING_DEPRECATION: '1' },
      'NODE_ICU_DATA=/nonexistent': { NODE_ICU_DATA: '/nonexistent' },
      'NODE_COMPILE_CACHE': { NODE_COMPILE_CACHE: path.join(dir, 'compile-cache') },
    };
    for (const [name, args] of Object.entries(commands)) {
      const clean = runWith([BINARY, ...args]);
      for (const [knob, extra] of Object.entries(knobs)) {
        const r = runWith([BINARY, ...args], { ...CLEAN_ENV, ...extra });
        t.deepEqual(r, clean, `${name} with ${knob}`);
      }
    }
    t.false(fs.existsSync(marker), 'the --require file never ran');
    t.deepEqual(fs.readdirSync(coverage), [], 'no coverage written');
    // Node itself makes NODE_COMPILE_CACHE's directory (and a per-version
    // one in it) before any of cfsroot's code runs; nothing is written there.
    t.deepEqual(filesUnder(path.join(dir, 'compile-cache')), [], 'no compile cache written');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Node 24 in a single executable aborts (exit 134) when a worker thread loads
// node:crypto; the JavaScript digest used workers for files of 48 MiB and more
// (the abort was seen from 128 MiB, where the workers are given chunks)
// (src/image/fsverity.ts defaultWorkers). Through the executable that path now hashes
// on one thread, and gives the addon's digest.
test('digest of a 128 MiB file without the addon (CFSROOT_SYS=spawn) matches the addon, no crash', (t) => {
  const file = path.join(fx.dir, 'sparse-128m');
  fs.writeFileSync(file, 'cfsroot');
  fs.truncateSync(file, 128 << 20);
  const js = runWith([BINARY, 'digest', file], { ...CLEAN_ENV, CFSROOT_SYS: 'spawn' });
  const addon = runWith([BINARY, 'digest', file], { ...CLEAN_ENV, CFSROOT_SYS: 'native' });
  t.is(js.status, 0, js.stderr);
  t.is(addon.status, 0, addon.stderr);
  t.regex(js.stdout, /^sha256:[0-9a-f]{64} /);
  t.is(js.stdout, addon.stdout);
  fs.rmSync(file);
});
