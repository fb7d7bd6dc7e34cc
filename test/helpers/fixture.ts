/**
 * A complete test boot: a generated sysroot (tools/mksysroot.ts) plus an
 * "initramfs root" directory holding prepare-root.conf and the binding key,
 * and the kernel command line that boots it. Tests then break one thing and
 * check that cfsroot refuses for the right reason.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { makeSysroot, type SysrootInfo, type SysrootOptions } from '../../tools/mksysroot.js';

export interface Fixture {
  dir: string;
  sysroot: string;
  initramfs: string;
  info: SysrootInfo;
  /** Kernel command line with the ostree= karg. */
  cmdline: string;
  /** Absolute path of the key file inside `initramfs`. */
  keyFile: string;
  privateKey: KeyObject | null;
  /** Path of the commit object (and .commitmeta beside it). */
  commitObject: string;
  cleanup(): void;
}

export interface FixtureOptions {
  /** prepare-root.conf content written to <initramfs>/etc/ostree/prepare-root.conf (null: none). */
  conf?: string | null;
  /** Options passed to makeSysroot (out is chosen here). */
  sysroot?: Omit<SysrootOptions, 'out'>;
  /** Appended to the kernel command line. */
  kargs?: string;
}

export const SIGNED_CONF = '[composefs]\nenabled = signed\n';

/**
 * Every fixture directory this process made, removed when it exits: a test
 * that fails before its own cleanup() (or never calls it) leaves nothing in
 * /tmp. cleanup() stays for tests that make many fixtures in one file.
 */
const made = new Set<string>();
let exitHookInstalled = false;
function removeAtExit(dir: string): void {
  made.add(dir);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const d of made) fs.rmSync(d, { recursive: true, force: true });
  });
}

export function makeFixture(opts: FixtureOptions = {}): Fixture {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-fx-'));
  removeAtExit(dir);
  const sysroot = path.join(dir, 'sysroot');
  const initramfs = path.join(dir, 'initramfs');
  const keyFile = path.join(initramfs, 'etc/ostree/initramfs-root-binding.key');
  fs.mkdirSync(path.dirname(keyFile), { recursive: true });
  const info = makeSysroot({ keyOut: keyFile, ...opts.sysroot, out: sysroot });
  const conf = opts.conf === undefined ? SIGNED_CONF : opts.conf;
  if (conf !== null) fs.writeFileSync(path.join(initramfs, 'etc/ostree/prepare-root.conf'), conf);
  const commitObject = path.join(sysroot, 'ostree/repo/objects', info.commit.slice(0, 2), `${info.commit.slice(2)}.commit`);
  return {
    dir,
    sysroot,
    initramfs,
    info,
    cmdline: `root=LABEL=root rw quiet ${info.cmdline}${opts.kargs ? ` ${opts.kargs}` : ''}`,
    keyFile,
    privateKey: info.privateKeyPem ? createPrivateKey(info.privateKeyPem) : null,
    commitObject,
    cleanup: () => {
      fs.rmSync(dir, { recursive: true, force: true });
      made.delete(dir);
    },
  };
}

export const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const BINARY = path.join(REPO_ROOT, 'dist/cfsroot');

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run the built single executable (dist/cfsroot). */
export function runBinary(args: string[], timeoutMs = 60_000): RunResult {
  const r = spawnSync(BINARY, args, { encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** `cfsroot verify` against a fixture, with optional overrides. */
export function verifyFixture(fx: Fixture, extra: { cmdline?: string; json?: boolean } = {}): RunResult {
  const args = ['verify', '--sysroot', fx.sysroot, '--initramfs-root', fx.initramfs, '--cmdline', extra.cmdline ?? fx.cmdline];
  if (extra.json) args.push('--json');
  return runBinary(args);
}
