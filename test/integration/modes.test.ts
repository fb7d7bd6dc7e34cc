/**
 * Two more modes of the issue-3 matrix, booted for real in a private mount
 * namespace like test/integration/boot.test.ts: `[composefs] enabled=verity`
 * from prepare-root.conf (verity=require without a signature) and
 * `maybe` when the deployment does have an image (composefs, not legacy).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeSysroot, type SysrootInfo } from '../../tools/mksysroot.js';
import { initramfsRootForFile, bootInNamespace, type InitramfsRoot } from '../helpers/initramfs-root.js';
import { superOption, under } from '../helpers/mountinfo.js';

let root: InitramfsRoot;
const dirs = initramfsRootForFile((r) => (root = r));

function unsignedSysroot(): SysrootInfo {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-modes-'));
  dirs.push(out);
  return makeSysroot({ out, sign: false, os: 'modes' });
}

test.serial('verity (prepare-root.conf): composefs overlay with verity=require, no signature needed', (t) => {
  const info = unsignedSysroot();
  const r = bootInNamespace({
    root,
    sysroot: info.sysroot,
    cmdline: info.cmdline,
    prepareRootConf: '[composefs]\nenabled = verity\n',
    bindingKey: null,
    probe: 'cat /sysroot/usr/bin/hello >/dev/null 2>&1; echo "rc=$?"; cat /sysroot/etc/hostname\n',
  });
  t.is(r.rc, 0, r.stderr);
  const ov = under(r.after, '/sysroot')[0]!;
  t.is(ov.fstype, 'overlay');
  t.is(ov.source, 'composefs');
  t.true(ov.readonly);
  t.is(superOption(ov, 'verity'), 'require');
  // This host has no fs-verity: the kernel refuses backing files (EIO), as verity=require must.
  t.regex(r.probe, /^rc=1\nmodes\n$/);
});

test.serial('maybe with an image: composefs (not the legacy bind), without verity', (t) => {
  const info = unsignedSysroot();
  const r = bootInNamespace({
    root,
    sysroot: info.sysroot,
    cmdline: `${info.cmdline} ot-composefs=maybe`,
    prepareRootConf: null,
    bindingKey: null,
    probe: 'cat /sysroot/usr/bin/hello\n',
  });
  t.is(r.rc, 0, r.stderr);
  const ov = under(r.after, '/sysroot')[0]!;
  t.is(ov.fstype, 'overlay');
  t.is(ov.source, 'composefs');
  t.is(superOption(ov, 'verity'), null);
  t.is(r.probe, '#!/bin/sh\necho "hello from a composefs root"\n');
});
