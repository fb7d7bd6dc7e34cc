/**
 * The snapshot holds the boot's code (src/startup/warmup.ts): a real boot,
 * in a private mount namespace, compiles none of cfsroot's functions that
 * `--version` does not compile too. A function only the boot calls and the
 * warm-up never runs is compiled by every boot; V8 logs it, and this test
 * names it. It runs the build of mk/bench.mk compiles-build (the shipped
 * code, not minified, with `--log-function-events` writing /out/v8.log),
 * which `make check` builds first. The modes: signed (private copy: this
 * kernel has no fs-verity), `yes` (the image as it is), `no` (the binds),
 * and a composefs-native boot (§6) with an unpinned digest.
 * What --version compiles (the entry, which the warm-up cannot call) is
 * the floor every run pays; `make bench-compiles` prints both lists.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeSysroot } from '../../tools/mksysroot.js';
import { bootInNamespace, initramfsRootForFile, type BootRun, type InitramfsRoot } from '../helpers/initramfs-root.js';
import { buildNativeImage, makeNativeRepo } from '../helpers/native-repo.js';
import { functionsCompiled } from '../helpers/v8-function-events.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EVENTS_BUILD = path.join(REPO, 'build/compiles/cfsroot');

let root: InitramfsRoot;
const dirs = initramfsRootForFile((r) => {
  root = r;
  if (!fs.existsSync(EVENTS_BUILD)) throw new Error(`${EVENTS_BUILD} is missing: run make compiles-build (make check does)`);
  // The events build in place of dist/cfsroot: the same Node, so the same
  // libraries. Unlinked first: the root's copy may be a hard link to dist/cfsroot.
  const installed = path.join(r.dir, 'usr/bin/cfsroot');
  fs.rmSync(installed, { force: true });
  fs.copyFileSync(EVENTS_BUILD, installed);
  fs.chmodSync(installed, 0o755);
});

const SEP = '=== --version ===';
/** The boot's log, then --version's (run after it in the same root): the probe prints both. */
const PROBE = `cat /out/v8.log; echo '${SEP}'; /usr/bin/cfsroot --version >/dev/null && cat /out/v8.log\n`;

function assertNothingCompiledForTheBoot(t: ExecutionContext, r: BootRun): void {
  t.is(r.rc, 0, r.stderr);
  const [bootLog, versionLog] = r.probe.split(`${SEP}\n`);
  const boot = functionsCompiled(bootLog!, 'cfsroot.cjs');
  const version = functionsCompiled(versionLog!, 'cfsroot.cjs');
  t.true(version.size > 0, 'the log is read: --version compiles its entry');
  const bundle = fs.readFileSync(path.join(REPO, 'build/compiles/cfsroot.cjs'), 'utf8');
  const bootOnly = [...boot].filter(([k]) => !version.has(k)).map(([, f]) => `${f.name}: ${bundle.slice(f.start, Math.min(f.end, f.start + 80))}`);
  t.deepEqual(bootOnly, [], 'compiled by the boot, not run by the warm-up');
}

for (const enabled of ['signed', 'yes', 'no'] as const) {
  test.serial(`ostree, enabled = ${enabled}: the boot compiles no function of cfsroot's that --version does not`, (t) => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-warm-'));
    dirs.push(out);
    const info = makeSysroot({ out, sign: enabled === 'signed', os: 'warm' });
    const r = bootInNamespace({
      root,
      sysroot: info.sysroot,
      cmdline: info.cmdline,
      prepareRootConf: `[composefs]\nenabled = ${enabled}\n`,
      bindingKey: enabled === 'signed' ? `${info.publicKeyBase64}\n` : null,
      probe: PROBE,
    });
    assertNothingCompiledForTheBoot(t, r);
  });
}

test.serial("composefs-native (composefs=?<digest>): the boot compiles no function of cfsroot's that --version does not", (t) => {
  const repo = makeNativeRepo(buildNativeImage('sha256'), { alg: 'sha256' });
  t.teardown(() => repo.cleanup());
  const r = bootInNamespace({ root, sysroot: repo.sysroot, cmdline: `root=LABEL=root rw composefs=?${repo.digest}`, probe: PROBE });
  assertNothingCompiledForTheBoot(t, r);
});
