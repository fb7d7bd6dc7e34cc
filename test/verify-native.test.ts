/**
 * `cfsroot verify` for the composefs-native mode (SPEC §6), through the
 * built single executable, on repositories made here (test/helpers/native-repo.ts:
 * mkfs.erofs images named by their fs-verity digest, sha256 and sha512).
 * Each refusal asserts exit 1, one line, the error code (--json) and the words
 * that say what is wrong.
 */

import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { BINARY, runBinary, type RunResult } from './helpers/fixture.js';
import { buildNativeImage, makeNativeRepo, type NativeRepo, type NativeRepoOptions } from './helpers/native-repo.js';
import type { VerityAlg } from '../src/image/fsverity.js';

const built: Partial<Record<VerityAlg, ReturnType<typeof buildNativeImage>>> = {};

test.before(() => {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} is missing: run make first`);
  built.sha256 = buildNativeImage('sha256');
  built.sha512 = buildNativeImage('sha512');
});

function repo(opts: NativeRepoOptions): NativeRepo {
  return makeNativeRepo(built[opts.alg]!, opts);
}

function verify(r: NativeRepo, cmdline: string, json = false): RunResult {
  const args = ['verify', '--sysroot', r.sysroot, '--initramfs-root', r.initramfs, '--cmdline', cmdline];
  if (json) args.push('--json');
  return runBinary(args);
}

const karg512 = (r: NativeRepo, q = '') => `composefs.digest=${q}v1-sha512-12:${r.digest}`;

function refused(t: ExecutionContext, r: NativeRepo, cmdline: string, code: string, ...phrases: RegExp[]): string {
  const res = verify(r, cmdline, true);
  t.is(res.status, 1, `expected exit 1; stderr: ${res.stderr}`);
  const line = res.stderr.trim();
  t.is(line.split('\n').length, 1, `one line: ${line}`);
  t.regex(line, /^cfsroot: /);
  t.notRegex(line, /\n\s+at /);
  const json = JSON.parse(res.stdout) as { ok: boolean; error: { code: string; message: string } };
  t.false(json.ok);
  t.is(json.error.code, code, line);
  for (const p of phrases) t.regex(line, p);
  return line;
}

function withRepo(name: string, opts: NativeRepoOptions, body: (t: ExecutionContext, r: NativeRepo) => void): void {
  test(name, (t) => {
    const r = repo(opts);
    try {
      body(t, r);
    } finally {
      r.cleanup();
    }
  });
}

interface Decision {
  mode: string;
  karg: { digest: string; alg: string; insecure: boolean };
  image: { path: string; file: string; link: string | null; measuredDigest: string };
  repository: { algorithm: string | null };
  overlay: { source: string; options: string[]; dataLower: string };
  verity: { require: boolean; kernel: string };
  rootTransient: { value: boolean };
  etc: { mount: string; configured: string; state: { dir: string; upper: { exists: boolean; mode: number } } | null };
  var: { mount: string; configured: string; skippedFor: string | null; state: { dir: string } | null };
  tried: string[];
}

function accepted(t: ExecutionContext, r: NativeRepo, cmdline: string): Decision {
  const res = verify(r, cmdline, true);
  t.is(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { ok: boolean; decision: Decision };
  t.true(out.ok);
  return out.decision;
}

withRepo('sha512, image linked into objects/ as composefs-rs makes it: secure refused on this host (no fs-verity, the kernel says), insecure OK', { alg: 'sha512' }, (t, r) => {
  // The secure form asks the kernel for the image's fs-verity, as the boot does: this host's filesystems have none.
  refused(t, r, `root=LABEL=root rw ${karg512(r)}`, 'EIMAGE', /has no fs-verity, which composefs\.digest=v1-sha512-12:[0-9a-f]{128} requires: enable it \(fsverity enable --hash-alg=sha512 .*tune2fs -O verity\), or boot with the insecure form/);
  const res = verify(r, `root=LABEL=root rw ${karg512(r, '?')}`);
  t.is(res.status, 0, res.stderr);
  t.regex(res.stderr, /warning: .*has no fs-verity: tolerated by the insecure karg/);
  t.regex(res.stdout, new RegExp(`image: +${r.imageName} -> \\.\\./objects/`));
  t.regex(res.stdout, new RegExp(`digest: +sha512:${r.digest} matches its name`));
  t.regex(res.stdout, /^OK: a composefs-native boot would mount image [0-9a-f]{16}… pinned by its digest, fs-verity not required \(insecure\)$/m);
  const d = accepted(t, r, karg512(r, '?'));
  t.is(d.mode, 'composefs-native');
  t.false('bootImplemented' in d);
  t.is(d.karg.alg, 'sha512');
  t.is(d.image.measuredDigest, r.digest);
  t.is(d.image.file, fs.realpathSync(r.imageFile));
  t.is(d.repository.algorithm, 'sha512');
  t.is(d.overlay.source, `composefs:${r.digest}`);
  t.deepEqual(d.overlay.options, ['metacopy=on', 'redirect_dir=on']);
  t.is(d.overlay.dataLower, path.join(r.sysroot, 'composefs/objects'));
  t.false(d.verity.require);
  t.is(d.verity.kernel, 'absent');
  t.is(d.etc.mount, 'overlay');
  t.is(d.etc.state?.dir, path.join(r.sysroot, 'state/deploy', r.digest, 'etc'));
  t.is(d.etc.state?.upper.mode, 0o755);
  t.false(d.etc.state?.upper.exists);
  t.is(d.var.mount, 'bind');
  t.is(d.var.state?.dir, path.join(r.sysroot, 'state/deploy', r.digest, 'var'));
  t.false(d.rootTransient.value);
});

withRepo('sha256 without meta.json (as mkcomposefs --digest-store leaves it), the image a plain file, composefs=?<hex>: OK with a warning', { alg: 'sha256', meta: false, link: false }, (t, r) => {
  const res = verify(r, `composefs=?${r.digest}`);
  t.is(res.status, 0, res.stderr);
  t.regex(res.stdout, new RegExp(`digest: +sha256:${r.digest} matches`));
  t.regex(res.stderr, /warning: .*meta\.json is missing \(a repository made by the composefs C tools.*taking sha256 from the digest's length/);
  t.is(accepted(t, r, `composefs=?${r.digest}`).repository.algorithm, null);
});

withRepo('insecure ?: verity=require not set, still verified by digest', { alg: 'sha512' }, (t, r) => {
  const d = accepted(t, r, `composefs=?${r.digest}`);
  t.true(d.karg.insecure);
  t.false(d.verity.require);
  t.deepEqual(d.overlay.options, ['metacopy=on', 'redirect_dir=on']);
  t.is(d.image.measuredDigest, r.digest);
});

for (const alg of ['sha256', 'sha512'] as const) {
  withRepo(`${alg}: one changed byte in the image is refused (digest mismatch), insecure too`, { alg }, (t, r) => {
    const bytes = fs.readFileSync(r.imageFile);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    fs.writeFileSync(r.imageFile, bytes);
    const k = `composefs.digest=v1-${alg}-12:${r.digest}`;
    refused(t, r, k, 'EDIGEST', new RegExp(`${r.imageName} has fs-verity digest ${alg}:[0-9a-f]+`), /image was changed/);
    refused(t, r, `composefs=?${r.digest}`, 'EDIGEST', /has fs-verity digest/);
  });
}

withRepo('first karg has no image, the second does: OK, booting the second and naming the first', { alg: 'sha512' }, (t, r) => {
  const missing = 'ee'.repeat(64);
  const cmdline = `composefs=${missing} ${karg512(r, '?')}`;
  const res = verify(r, cmdline);
  t.is(res.status, 0, res.stderr);
  t.regex(res.stdout, new RegExp(`not found: +composefs=${missing} \\(images/${missing}: no such file\\)`));
  t.regex(res.stdout, new RegExp(`image: +${r.imageName}`));
  t.regex(res.stderr, new RegExp(`warning: booting ${karg512(r, '\\?')}: 1 earlier karg`));
  const d = accepted(t, r, cmdline);
  t.is(d.karg.digest, r.digest);
  t.is(d.tried.length, 1);
});

withRepo('no karg has an image: refused, listing every one tried', { alg: 'sha512' }, (t, r) => {
  const a = 'ee'.repeat(64);
  const b = 'dd'.repeat(64);
  fs.symlinkSync(`../objects/${b.slice(0, 2)}/${b.slice(2)}`, path.join(r.sysroot, 'composefs/images', b));
  refused(t, r, `composefs=${a} composefs=?${b}`, 'EIMAGE', /no composefs image found/, new RegExp(`tried composefs=${a} \\(images/${a}: no such file\\), composefs=\\?${b} \\(images/${b}: a dangling link`));
});

withRepo('malformed kargs are refused naming them, even after a valid one', { alg: 'sha512' }, (t, r) => {
  refused(t, r, `composefs=${r.digest.slice(1)}`, 'ECMDLINE', /"composefs=[0-9a-f]{127}": a digest of 127 hex digits/);
  refused(t, r, `${karg512(r)} composefs.digest=v2-sha512-12:${r.digest}`, 'ECMDLINE', /"composefs\.digest=v2-sha512-12:/);
  refused(t, r, 'composefs', 'ECMDLINE', /"composefs": no value/);
});

withRepo('composefs= beside ostree= is refused, naming both', { alg: 'sha512' }, (t, r) => {
  refused(t, r, `${karg512(r)} ostree=/ostree/boot.1/os/b/0`, 'ECMDLINE', /and ostree=\/ostree\/boot\.1\/os\/b\/0 both present/, /expected one boot mode/);
});

withRepo('a sha256 karg on a repository whose meta.json says sha512 is fatal, not "not found"', { alg: 'sha512' }, (t, r) => {
  refused(t, r, `composefs=${'ab'.repeat(32)} ${karg512(r)}`, 'EDIGEST', /a sha256 digest .*meta\.json says the repository is sha512/);
});

withRepo('a meta.json of another format version or algorithm is refused', { alg: 'sha512' }, (t, r) => {
  const meta = path.join(r.sysroot, 'composefs/meta.json');
  fs.writeFileSync(meta, '{"version": 2, "algorithm": "fsverity-sha512-12"}');
  refused(t, r, karg512(r), 'EIMAGE', /repository format version 2/);
  fs.writeFileSync(meta, '{"version": 1, "algorithm": "sha512"}');
  refused(t, r, karg512(r), 'EIMAGE', /"algorithm" is "sha512": expected "fsverity-sha256-12" or "fsverity-sha512-12"/);
  fs.writeFileSync(meta, 'not json');
  refused(t, r, karg512(r), 'EIMAGE', /not valid JSON/);
});

withRepo('an image link leading out of composefs/ is refused', { alg: 'sha512' }, (t, r) => {
  const outside = path.join(r.sysroot, 'elsewhere');
  fs.copyFileSync(r.imageFile, outside);
  fs.rmSync(r.imageName);
  fs.symlinkSync('../../elsewhere', r.imageName);
  refused(t, r, karg512(r), 'EIMAGE', /leads to .*elsewhere .*expected a file inside/);
  fs.rmSync(r.imageName);
  fs.symlinkSync(outside, r.imageName);
  refused(t, r, karg512(r), 'EIMAGE', /a link to the absolute path/);
});

withRepo('an image that is a FIFO is refused without hanging', { alg: 'sha512', link: false }, (t, r) => {
  fs.rmSync(r.imageName);
  fs.mkdirSync(path.dirname(r.imageName), { recursive: true });
  execFileSync('mkfifo', [r.imageName]);
  refused(t, r, karg512(r), 'EIMAGE', /not a regular file/);
});

withRepo('state: a missing state directory, a symlinked var, a missing etc for overlay are refused', { alg: 'sha512' }, (t, r) => {
  const state = path.join(r.sysroot, 'state/deploy', r.digest);
  fs.rmSync(path.join(state, 'var'), { recursive: true });
  fs.symlinkSync('/', path.join(state, 'var'));
  refused(t, r, karg512(r, '?'), 'EDEPLOY', /var is a symlink \(to \/\)/);
  fs.rmSync(path.join(state, 'etc'), { recursive: true });
  refused(t, r, karg512(r, '?'), 'EDEPLOY', /etc does not exist: expected the \/etc overlay's state/);
  fs.rmSync(state, { recursive: true });
  refused(t, r, karg512(r, '?'), 'EDEPLOY', new RegExp(`${r.digest} does not exist: expected this image's state directory`));
});

withRepo('setup-root-conf.toml: etc transient, var none, root transient; systemd.volatile=state leaves /var alone', {
  alg: 'sha512',
  conf: '[root]\ntransient = true\n[etc]\nmount = "volatile"\n[var]\nmount = "none"\n',
}, (t, r) => {
  // With etc transient and var none, neither state subdirectory is needed.
  fs.rmSync(path.join(r.sysroot, 'state/deploy', r.digest, 'etc'), { recursive: true });
  const d = accepted(t, r, karg512(r, '?'));
  t.true(d.rootTransient.value);
  t.is(d.etc.mount, 'transient');
  t.is(d.etc.state, null);
  t.is(d.var.mount, 'none');
  const conf = path.join(r.initramfs, 'usr/lib/composefs/setup-root-conf.toml');
  fs.writeFileSync(conf, '[etc]\nmount = "none"\n');
  const v = accepted(t, r, `${karg512(r, '?')} systemd.volatile=state`);
  t.is(v.var.mount, 'none');
  t.is(v.var.configured, 'bind');
  t.is(v.var.skippedFor, 'systemd.volatile=state');
  t.is(accepted(t, r, `${karg512(r, '?')} systemd.volatile=yes`).var.mount, 'bind');
  fs.writeFileSync(conf, '[etc]\nmount = "tmpfs"\n');
  refused(t, r, karg512(r, '?'), 'ECONFIG', new RegExp(`${conf.replace(/[.]/g, '\\.')}: \\[etc\\] mount = "tmpfs": expected one of`));
});

withRepo('plan prints the native plan (text and --json), and --target plans the root at the target', { alg: 'sha512' }, (t, r) => {
  const res = runBinary(['plan', '--sysroot', r.sysroot, '--initramfs-root', r.initramfs, '--cmdline', karg512(r, '?')]);
  t.is(res.status, 0, res.stderr);
  t.regex(res.stdout, new RegExp(`^ *\\d+\\. mount -t overlay -o ro,metacopy=on,redirect_dir=on,lowerdir=/run/cfsroot/\\.private/lower\\.[A-Za-z0-9]{6}::${r.sysroot}/composefs/objects composefs:${r.digest} /sysroot\\.tmp$`, 'm'));
  t.regex(res.stdout, new RegExp(`mount --move /sysroot\\.tmp ${r.sysroot}\n`));
  const json = runBinary(['plan', '--json', '--sysroot', r.sysroot, '--initramfs-root', r.initramfs, '--cmdline', karg512(r, '?')]);
  t.is(json.status, 0, json.stderr);
  const steps = (JSON.parse(json.stdout) as { ok: boolean; steps: Array<{ kind: string; source?: string; target?: string }> }).steps;
  t.is(steps.filter((s) => s.kind === 'mount-overlay')[0]!.source, `composefs:${r.digest}`);
  const targeted = runBinary(['plan', '--target', '/run/nextroot', '--sysroot', r.sysroot, '--initramfs-root', r.initramfs, '--cmdline', karg512(r, '?')]);
  t.is(targeted.status, 0, targeted.stderr);
  t.regex(targeted.stdout, new RegExp(`composefs:${r.digest} /run/nextroot\n`));
  t.notRegex(targeted.stdout, /--move|--make-rprivate|volatile-root|sysroot\.tmp/);
  // The secure form needs fs-verity on the image itself, which this host's filesystems cannot give: the plan
  // refuses as the boot does (src/boot-plan.ts: the same decision, which asks the kernel).
  const secure = runBinary(['plan', '--sysroot', r.sysroot, '--initramfs-root', r.initramfs, '--cmdline', karg512(r)]);
  t.is(secure.status, 1);
  t.regex(secure.stderr, /has no fs-verity, which composefs\.digest=v1-sha512-12:[0-9a-f]{128} requires: enable it/);
});
