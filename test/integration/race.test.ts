/**
 * Issue 13 item 3: check-then-mount races. While the real binary boots a
 * signed deployment again and again in a private mount namespace (chrooted
 * into the test initramfs, as test/helpers/initramfs-root.ts does), a
 * process outside swaps a directory the boot mounts with a symlink, as fast
 * as it can, with renameat2(RENAME_EXCHANGE): the exchange is atomic, so at
 * every instant the name is either the real directory or the symlink.
 * Whoever can write to the disk can do this (a second host on shared
 * storage, a device that answers a second read differently).
 *
 * Each boot may refuse (it saw the symlink) or succeed; what it must never
 * do is succeed with the symlink's target mounted. After each boot the
 * script checks the mount table is back to where it started (a refusal
 * undoes everything; a success is unmounted by the script and SYSROOT
 * bound again). Before the fix (an lstat, then a bind by path, which
 * follows symlinks), the etc case booted the initramfs' / as /etc within a
 * few attempts.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeSysroot, type SysrootInfo } from '../../tools/mksysroot.js';
import { chrootScript, initramfsRootForFile, type InitramfsRoot } from '../helpers/initramfs-root.js';

/** Boots per case (the issue asks for at least 200). */
const ATTEMPTS = 200;
const SIGNED_CONF = '[composefs]\nenabled = signed\n';

let root: InitramfsRoot;
const dirs = initramfsRootForFile((r) => (root = r));
test.before(() => {
  fs.mkdirSync(path.join(root.dir, 'disk'));
});

function signedSysroot(): SysrootInfo {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-race-'));
  dirs.push(work);
  const tree = path.join(work, 'tree');
  fs.mkdirSync(path.join(tree, 'usr/bin'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'usr/etc'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'usr/bin/hello'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
  fs.writeFileSync(path.join(tree, 'usr/etc/motd'), 'motd\n');
  const info = makeSysroot({ out: path.join(work, 'sysroot'), tree, os: 'race' });
  fs.writeFileSync(path.join(info.deployDir, 'etc/CFSROOT-REAL-ETC'), 'the deployment etc\n');
  return info;
}

/** A process that exchanges `a` and `b` (renameat2 RENAME_EXCHANGE) until `stop` exists; prints the count. */
const RACER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b, stop = (p.encode() for p in sys.argv[1:4])
n = 0
while not os.path.exists(stop):
    for _ in range(200):
        if libc.renameat2(-100, a, -100, b, 2) != 0:
            sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
        n += 1
print(n)
`;

interface RaceResult {
  attempts: number;
  boots: number;
  refusals: number;
  /** Refusals at a mount step (the descriptor saw the symlink), not at the deployment check. */
  atMount: number;
  bad: string[];
  swaps: number;
  stderrSample: string;
}

/**
 * Boot ATTEMPTS times in one namespace while `a` <-> `b` are exchanged;
 * after a successful boot, `check` (shell, in the chroot) must succeed.
 */
async function race(info: SysrootInfo, a: string, b: string, check: string): Promise<RaceResult> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-race-out-'));
  dirs.push(out);
  const R = root.dir;
  fs.writeFileSync(path.join(R, 'etc/ostree/prepare-root.conf'), SIGNED_CONF);
  fs.writeFileSync(path.join(R, 'etc/ostree/initramfs-root-binding.key'), `${info.publicKeyBase64}\n`);
  fs.writeFileSync(path.join(out, 'cmdline'), info.cmdline);
  fs.writeFileSync(path.join(out, 'check.sh'), check);
  const inner = `
cd /
base=$(wc -l < /proc/self/mountinfo)
i=0; boots=0; refusals=0; atmount=0
: > /out/bad
while [ $i -lt ${ATTEMPTS} ]; do
  i=$((i+1))
  /usr/bin/cfsroot /sysroot "$(cat /out/cmdline)" >/dev/null 2>/out/err; rc=$?
  if [ $rc -eq 0 ]; then
    boots=$((boots+1))
    sh /out/check.sh || echo "attempt $i: booted the swapped content: $(ls -a /sysroot/etc /sysroot/var 2>&1 | tr '\\n' ' ')" >> /out/bad
    umount -l /sysroot 2>>/out/bad || { echo "attempt $i: umount -l /sysroot failed" >> /out/bad; break; }
    mount --bind /disk /sysroot
  elif [ $rc -eq 1 ]; then
    refusals=$((refusals+1)); cp /out/err /out/last-refusal
    [ "$(wc -l < /out/err)" = 1 ] || echo "attempt $i: a refusal of more than one line: $(cat /out/err)" >> /out/bad
    grep -q 'EMOUNT' /out/err && { atmount=$((atmount+1)); cp /out/err /out/mount-refusal; }
  else
    echo "attempt $i: exit $rc: $(cat /out/err)" >> /out/bad
  fi
  rm -rf /run/ostree /run/ostree-booted /run/systemd
  now=$(wc -l < /proc/self/mountinfo)
  [ "$now" = "$base" ] || { echo "attempt $i: mount table has $now lines, $base before" >> /out/bad; break; }
done
echo "$i $boots $refusals $atmount" > /out/result
`;
  const outer = chrootScript({ root: R, sysroot: info.sysroot, out, binds: ['disk'] });
  const stop = path.join(out, 'stop');
  const racer = spawn('python3', ['-c', RACER, a, b, stop], { stdio: ['ignore', 'pipe', 'pipe'] });
  let racerOut = '';
  racer.stdout.on('data', (d) => (racerOut += d));
  racer.stderr.on('data', (d) => (racerOut += d));
  const racerDone = new Promise<void>((resolve) => racer.on('close', () => resolve()));
  let r;
  try {
    r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', outer], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', INNER: inner },
      encoding: 'utf8',
    });
  } finally {
    fs.writeFileSync(stop, '');
    await racerDone;
  }
  if (r.status !== 0) throw new Error(`namespace harness failed (${r.status}): ${r.stderr}`);
  // Leave the names as they were: the real directory at `a`.
  if (fs.lstatSync(a).isSymbolicLink()) fs.renameSync(a, `${a}.tmp`), fs.renameSync(b, a), fs.renameSync(`${a}.tmp`, b);
  const [attempts, boots, refusals, atMount] = fs.readFileSync(path.join(out, 'result'), 'utf8').trim().split(' ').map(Number) as [number, number, number, number];
  const last = ['mount-refusal', 'last-refusal'].map((f) => path.join(out, f)).find((f) => fs.existsSync(f));
  return {
    attempts,
    boots,
    refusals,
    atMount,
    bad: fs.readFileSync(path.join(out, 'bad'), 'utf8').split('\n').filter(Boolean),
    swaps: Number(racerOut.trim()) || 0,
    stderrSample: last ? fs.readFileSync(last, 'utf8') : '',
  };
}

/** Every attempt ran, the racer really raced, and not one boot mounted the swapped content. */
function assertRaceHeld(t: ExecutionContext, r: RaceResult): void {
  t.log(`${r.attempts} boots: ${r.boots} booted, ${r.refusals} refused (${r.atMount} of them at a mount step); ${r.swaps} exchanges; a refusal: ${r.stderrSample.trim().split('\n').pop()}`);
  for (const b of r.bad.slice(0, 5)) t.log(b);
  t.is(r.attempts, ATTEMPTS);
  t.deepEqual(r.bad, []);
  t.is(r.boots + r.refusals, ATTEMPTS);
  t.true(r.swaps > ATTEMPTS, `the racer ran (${r.swaps} exchanges)`);
}

test.serial(`<deploy>/etc exchanged with a symlink to / during ${ATTEMPTS} signed boots: never mounted as /etc`, async (t) => {
  const info = signedSysroot();
  const etc = path.join(info.deployDir, 'etc');
  const evil = path.join(info.deployDir, 'etc.swap');
  fs.symlinkSync('/', evil);
  const r = await race(info, etc, evil, 'test -e /sysroot/etc/CFSROOT-REAL-ETC && ! test -e /sysroot/etc/usr/bin/cfsroot\n');
  assertRaceHeld(t, r);
});

test.serial(`stateroot var exchanged with a symlink to /run during ${ATTEMPTS} signed boots: never mounted as /var`, async (t) => {
  const info = signedSysroot();
  const v = path.join(info.sysroot, 'ostree/deploy/race/var');
  const evil = path.join(info.sysroot, 'ostree/deploy/race/var.swap');
  fs.symlinkSync('/run', evil);
  const r = await race(info, v, evil, 'test -e /sysroot/var/lib/cfsroot-state && ! test -e /sysroot/var/ostree-booted\n');
  assertRaceHeld(t, r);
});
