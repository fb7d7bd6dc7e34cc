/**
 * cfsroot against a deployment the real ostree made (test/helpers/real-ostree.ts):
 * ostree's object names, .commit bytes, .commitmeta encoding, deployment
 * and stateroot layout, boot.N links, and the kernel command line taken
 * verbatim from the BLS entry `ostree admin deploy` wrote. Everything else
 * in the suite runs on tools/mksysroot.ts, which only imitates that layout.
 *
 * Boots run as root in a private mount namespace (test/helpers/initramfs-root.ts).
 * This kernel has no fs-verity, so the signed boot (verity=require) is
 * checked up to the EIO overlayfs gives for unverified data; the content is
 * read through composefs in the unsigned mode.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BINARY } from '../helpers/fixture.js';
import { assertNothingLeft, buildInitramfsRoot, bootInNamespace, type InitramfsRoot } from '../helpers/initramfs-root.js';
import { superOption, under } from '../helpers/mountinfo.js';
import { commitBytes, makeRealOstreeSysroot, ostree, OS_NAME, writeSignatures, type RealOstreeSysroot } from '../helpers/real-ostree.js';
import { rawPublicKey } from '../../tools/mksysroot.js';
import { IMAGE_CONFIG_KEY, verifySignedCommit } from '../../src/ostree/signature.js';
import type { MountInfo } from '../../src/sys/mountinfo.js';
import { objectPath, parseCommit } from '../../src/ostree/commit.js';

let root: InitramfsRoot;
let real: RealOstreeSysroot;
let initramfsDir: string;

test.before(() => {
  root = buildInitramfsRoot();
  real = makeRealOstreeSysroot();
  // For `cfsroot verify --initramfs-root`: the config and key an initramfs would carry.
  initramfsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-real-initramfs-'));
  fs.mkdirSync(path.join(initramfsDir, 'etc/ostree'), { recursive: true });
  fs.writeFileSync(path.join(initramfsDir, 'etc/ostree/prepare-root.conf'), '[composefs]\nenabled = signed\n');
  fs.writeFileSync(path.join(initramfsDir, 'etc/ostree/initramfs-root-binding.key'), `${real.publicKeyBase64}\n`);
});
test.after.always(() => {
  root?.remove();
  real?.remove();
  if (initramfsDir) fs.rmSync(initramfsDir, { recursive: true, force: true });
});

const line = (m: MountInfo) => `${m.target} ${m.fstype} ${m.readonly ? 'ro' : 'rw'} ${m.root}`;
const stateVar = () => `/ostree/deploy/${OS_NAME}/var`;

function boot(conf: string, probe = 'true\n') {
  return bootInNamespace({
    root,
    sysroot: real.sysroot,
    cmdline: real.bootOptions,
    prepareRootConf: conf,
    bindingKey: `${real.publicKeyBase64}\n`,
    probe,
  });
}

function verify() {
  const r = spawnSync(BINARY, ['verify', '--json', '--sysroot', real.sysroot, '--initramfs-root', initramfsDir, '--cmdline', real.bootOptions], {
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test.serial('the BLS entry ostree wrote is the command line: its ostree= karg names the deployment ostree made', (t) => {
  const m = new RegExp(`(?:^| )ostree=/ostree/boot\\.1/${OS_NAME}/([0-9a-f]{64})/0(?: |$)`).exec(real.bootOptions);
  t.truthy(m, real.bootOptions);
  t.is(fs.realpathSync(path.join(real.sysroot, `ostree/boot.1/${OS_NAME}/${m![1]}/0`)), fs.realpathSync(real.deployDir));
  // Identical data, identical metadata: one object, as ostree deduplicates.
  t.is(real.objects.get('usr/bin/hello'), real.objects.get('usr/share/cfsroot/same-as-hello'));
  t.true(fs.statSync(path.join(real.sysroot, 'ostree/repo/objects', real.objects.get('usr/bin/hello')!)).isFile());
});

test.serial('the .commit ostree wrote parses: root tree and meta as ostree lists them, subject, metadata', (t) => {
  const c = parseCommit(commitBytes(real.sysroot, real.commit), 'ostree .commit');
  t.is(Buffer.from(c.rootTree).toString('hex'), real.rootTree);
  t.is(Buffer.from(c.rootMeta).toString('hex'), real.rootMeta);
  t.is(c.subject, 'cfsroot real-ostree test');
  t.is(c.parent.length, 0);
  t.deepEqual(c.metadata.get('version'), { type: 's', value: '1.0' });
  t.is(Buffer.from(c.metadata.get('ostree.composefs.digest.v0')!.value as Uint8Array).toString('hex'), real.imageDigest);
});

test.serial('bootc fallback on ostree-made objects: a child commit with an image config and no .commitmeta is verified by its signed parent', (t) => {
  const repo = path.join(real.sysroot, 'ostree/repo');
  const child = ostree([
    'commit', `--repo=${repo}`, '--branch=cfsroot/child', `--parent=${real.commit}`, `--tree=ref=${real.commit}`,
    '--subject=imported from a container image', `--add-metadata-string=${IMAGE_CONFIG_KEY}={}`,
  ]);
  t.is(Buffer.from(parseCommit(commitBytes(real.sysroot, child), 'child').parent).toString('hex'), real.commit);
  const key = new Uint8Array(rawPublicKey(real.privateKey));
  const r = verifySignedCommit(repo, child, [key], '/etc/ostree/initramfs-root-binding.key');
  t.deepEqual(r, { commit: real.commit, viaParent: true, keyPath: '/etc/ostree/initramfs-root-binding.key', keyIndex: 0, digest: real.imageDigest });
  // Without the image config it is an ordinary unsigned commit: refused.
  const plain = ostree(['commit', `--repo=${repo}`, '--branch=cfsroot/plain-child', `--parent=${real.commit}`, `--tree=ref=${real.commit}`, '--subject=plain child']);
  const e = t.throws(() => verifySignedCommit(repo, plain, [key], 'k'));
  t.regex(e!.message, /has no detached signature metadata/);
});

test.serial('verify: the signature over the .commit ostree wrote, the .commitmeta libostree encoded, and the digest it pins', (t) => {
  const r = verify();
  t.is(r.status, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { ok: boolean; decision: Record<string, any> };
  t.true(d.ok);
  t.is(d.decision['deployment']['commit'], real.commit);
  t.is(d.decision['deployment']['stateroot'], OS_NAME);
  t.is(d.decision['deployment']['dir'], fs.realpathSync(real.deployDir));
  t.is(d.decision['deployment']['serial'], 0);
  const cfs = d.decision['composefs'];
  t.is(cfs['expectedDigest'], real.imageDigest);
  t.is(cfs['measuredDigest'], real.imageDigest);
  t.is(cfs['signed']['commit'], real.commit);
  t.false(cfs['signed']['viaParent']);
});

test.serial('signed boot on the real deployment: composefs root with verity=require, /etc, /var and /sysroot where ostree puts them', (t) => {
  const r = boot('[composefs]\nenabled = signed\n', 'cat /sysroot/usr/bin/hello; echo "rc=$?"; cat /sysroot/etc/motd; ls /sysroot/sysroot/ostree\n');
  t.is(r.rc, 0, r.stderr);
  const deploy = real.deployDir.slice(real.sysroot.length);
  t.deepEqual(under(r.after, '/sysroot').map(line), [
    '/sysroot overlay ro /',
    `/sysroot/etc ext4 rw ${real.sysroot}${deploy}/etc`,
    `/sysroot/sysroot ext4 ro ${real.sysroot}`,
    `/sysroot/sysroot${stateVar()} ext4 rw ${real.sysroot}${stateVar()}`,
    `/sysroot/var ext4 rw ${real.sysroot}${stateVar()}`,
  ]);
  const ov = under(r.after, '/sysroot')[0]!;
  t.is(superOption(ov, 'verity'), 'require');
  // The objects dir, by the descriptor the boot opened it as (issue 13).
  t.regex(superOption(ov, 'lowerdir') ?? '', /::\/proc\/self\/fd\/\d+$/);
  // No fs-verity on this kernel's filesystems: the object's data is refused, the rest is there.
  t.regex(r.probe, /Input\/output error\nrc=1\nmotd from usr\/etc\nboot\.1\nboot\.1\.1\ndeploy\nrepo\n$/);
  t.regex(r.stdout + r.stderr, new RegExp(real.commit));
});

test.serial('composefs without signature: every file is read from the bare-repo object ostree stored it as', (t) => {
  const probe = [
    'cat /sysroot/usr/bin/hello /sysroot/bin/hello /sysroot/usr/share/cfsroot/same-as-hello',
    'wc -c < /sysroot/usr/share/cfsroot/empty',
    'cat /sysroot/usr/lib/os-release /sysroot/etc/os-release /sysroot/etc/motd',
    'readlink /sysroot/home; readlink /sysroot/ostree',
    'ls /sysroot/ostree/',
    'ls /sysroot/var',
    'stat -c %a /sysroot/usr/bin/hello',
  ].join('\n');
  const r = boot('[composefs]\nenabled = yes\n', `${probe}\n`);
  t.is(r.rc, 0, r.stderr);
  const c = real.content;
  t.is(
    r.probe,
    [
      c['usr/bin/hello']! + c['usr/bin/hello']! + c['usr/share/cfsroot/same-as-hello']! + '0',
      c['usr/lib/os-release']! + c['usr/lib/os-release']! + c['usr/etc/motd']! + 'var/home',
      'sysroot/ostree',
      'boot.1\nboot.1.1\ndeploy\nrepo',
      // The stateroot /var as `ostree admin deploy` made it.
      fs.readdirSync(path.join(real.sysroot, stateVar())).filter((f) => !f.startsWith('.')).sort().join('\n'),
      '755',
      '',
    ].join('\n'),
  );
  const ov = under(r.after, '/sysroot')[0]!;
  t.is(superOption(ov, 'verity'), null);
  t.true(ov.readonly);
});

test.serial('composefs off: the checkout ostree made is bind-mounted, /usr read-only', (t) => {
  const r = boot('[composefs]\nenabled = no\n', 'cat /sysroot/usr/bin/hello; touch /sysroot/usr/x 2>/dev/null || echo usr-ro\n');
  t.is(r.rc, 0, r.stderr);
  t.deepEqual(under(r.after, '/sysroot').map(line).slice(0, 2), [`/sysroot ext4 rw ${real.deployDir}`, `/sysroot/usr ext4 ro ${real.deployDir}/usr`]);
  t.is(r.probe, `${real.content['usr/bin/hello']}usr-ro\n`);
});

test.serial('a .commitmeta signed by another key: refused with ESIGNATURE before anything is mounted; the right one again boots', (t) => {
  const metaPath = objectPath(path.join(real.sysroot, 'ostree/repo'), real.commit, 'commitmeta');
  const good = fs.readFileSync(metaPath);
  const other = generateKeyPairSync('ed25519').privateKey;
  try {
    writeSignatures(real.sysroot, real.commit, [sign(null, commitBytes(real.sysroot, real.commit), other)]);
    const v = verify();
    t.is(v.status, 1);
    t.is(JSON.parse(v.stdout).error.code, 'ESIGNATURE');
    const r = boot('[composefs]\nenabled = signed\n');
    t.is(r.rc, 1);
    t.regex(r.stderr, /ESIGNATURE/);
    t.regex(r.stderr, new RegExp(`no valid signature on commit ${real.commit}`));
    assertNothingLeft(t, r);
  } finally {
    fs.writeFileSync(metaPath, good);
  }
  t.is(verify().status, 0);
});
