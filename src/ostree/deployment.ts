/**
 * Deployment resolution: from the `ostree=` kernel argument to the
 * deployment directory (SPEC §1 "ostree=PATH").
 *
 * `SYSROOT/<ostree=>` must be a symlink (e.g. /ostree/boot.1/debian/<bootcsum>/0,
 * where /ostree/boot.1 is itself usually a link to boot.1.1); its real path is
 * the deployment `SYSROOT/ostree/deploy/<stateroot>/deploy/<commit>.<serial>`.
 *
 * How the link is resolved, and why: ostree-prepare-root calls realpath() on
 * SYSROOT/<ostree=> in the initramfs, where SYSROOT is mounted at /sysroot and
 * ostree writes every link in the chain *relative*
 * (`../../../deploy/debian/deploy/<c>.0`). We do the same (realpath(3) itself,
 * through fs.realpathSync.native: one libc call where Node's own realpathSync
 * lstats every component, 0.07 against 0.36 ms at boot), in the real
 * namespace, not a chroot-style resolution with SYSROOT as `/`:
 * the mount code later opens and binds the resolved path in this same
 * namespace, so resolving the way the kernel will is what keeps "the
 * directory we checked" and "the directory we mount" the same. An absolute
 * link target therefore points into the initramfs, not the sysroot; instead
 * of following it there, cfsroot refuses any result that is not strictly
 * inside SYSROOT ("escapes SYSROOT"), which ostree does not check.
 */

import { lstatSync, realpathSync, statSync, type BigIntStats, type Stats } from 'node:fs';
import { join } from 'node:path';
import { describeSystemError, fail } from '../errors.js';
import type { Deployment } from './model.js';
import { isDigits, isLowerHex } from '../text.js';

/**
 * ostree/deploy/<stateroot>/deploy/<64 lowercase hex>.<serial>, relative to
 * SYSROOT (/^ostree\/deploy\/([^/]+)\/deploy\/([0-9a-f]{64})\.([0-9]+)$/,
 * as a split: src/text.ts says why): [stateroot, commit, serial] or null.
 */
function deployDirParts(relDir: string): [string, string, string] | null {
  const parts = relDir.split('/');
  if (parts.length !== 5 || parts[0] !== 'ostree' || parts[1] !== 'deploy' || parts[2] === '' || parts[3] !== 'deploy') return null;
  const last = parts[4]!;
  const commit = last.slice(0, 64);
  const serial = last.slice(65);
  if (last[64] !== '.' || !isLowerHex(commit, 64) || !isDigits(serial)) return null;
  return [parts[2]!, commit, serial];
}
const DEPLOY_DIR_SHAPE = 'SYSROOT/ostree/deploy/<stateroot>/deploy/<64 lowercase hex>.<serial>';

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * `child` relative to `parent` when it lies strictly below it, else null.
 * Both are absolute and normalised (realpath(3), path.join), so a prefix
 * test is exact, and runs far less code at boot than path.relative, which
 * resolves both against the working directory first.
 */
function pathBelow(parent: string, child: string): string | null {
  const prefix = parent === '/' ? '/' : `${parent}/`;
  if (!child.startsWith(prefix) || child.length === prefix.length) return null;
  return child.slice(prefix.length);
}

function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device node';
  return 'of an unknown type';
}

/**
 * Resolve the `ostree=` target (a path relative to SYSROOT, usually with a
 * leading `/`) to the deployment. Throws EDEPLOY naming the path and what was
 * expected; EIO for unexpected system errors (permissions and the like).
 */
export function resolveDeployment(sysroot: string, ostreeTarget: string): Deployment {
  let root: string;
  try {
    root = realpathSync.native(sysroot);
  } catch (e) {
    fail('EDEPLOY', `SYSROOT ${sysroot}: ${describeSystemError(e)}: expected the mounted physical root`);
  }

  // path.join normalises `..`, so `ostree=/../../etc` would already point
  // outside SYSROOT before any link is read.
  const link = join(root, ostreeTarget);
  if (pathBelow(root, link) === null) {
    fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} escapes SYSROOT ${root}: expected a path inside it`);
  }

  let lst: Stats;
  try {
    lst = lstatSync(link);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} does not exist: expected a symlink to the deployment (is the boot entry stale?)`);
    }
    if (code === 'ELOOP') {
      fail('EDEPLOY', `ostree=${ostreeTarget}: ${link}: symlink loop (or chain too deep) in its parent directories`);
    }
    if (code === 'ENAMETOOLONG') {
      fail('EDEPLOY', `ostree=${ostreeTarget}: ${link}: path too long: expected a symlink to the deployment`);
    }
    fail('EIO', `ostree=${ostreeTarget}: lstat ${link}: ${describeSystemError(e)}`);
  }
  if (!lst.isSymbolicLink()) {
    fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} is not a symlink (it is ${kindOf(lst)}): expected a symlink to the deployment directory`);
  }

  let dir: string;
  try {
    dir = realpathSync.native(link);
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ELOOP') {
      fail('EDEPLOY', `ostree=${ostreeTarget}: ${link}: symlink loop or chain too deep: expected it to resolve to ${DEPLOY_DIR_SHAPE}`);
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} is a dangling symlink: expected it to resolve to ${DEPLOY_DIR_SHAPE}`);
    }
    // A link (or a link it leads to) with a name component over NAME_MAX, or a
    // result over PATH_MAX: written on the disk, so a bad deployment, not an I/O error.
    if (code === 'ENAMETOOLONG') {
      fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} resolves to a path that is too long: expected it to resolve to ${DEPLOY_DIR_SHAPE}`);
    }
    fail('EIO', `ostree=${ostreeTarget}: resolving ${link}: ${describeSystemError(e)}`);
  }

  const relDir = pathBelow(root, dir);
  if (relDir === null) {
    fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} resolves to ${dir}, which escapes SYSROOT ${root}: expected ${DEPLOY_DIR_SHAPE}`);
  }

  let st: BigIntStats;
  try {
    st = statSync(dir, { bigint: true });
  } catch (e) {
    fail('EIO', `ostree=${ostreeTarget}: stat ${dir}: ${describeSystemError(e)}`);
  }
  if (!st.isDirectory()) {
    fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} resolves to ${dir}, which is not a directory: expected ${DEPLOY_DIR_SHAPE}`);
  }

  const m = deployDirParts(relDir);
  if (!m) {
    fail('EDEPLOY', `ostree=${ostreeTarget}: ${link} resolves to ${dir}: expected ${DEPLOY_DIR_SHAPE}`);
  }
  const [stateroot, commit, serialText] = m;
  const serial = Number(serialText);
  if (!Number.isSafeInteger(serial)) {
    fail('EDEPLOY', `ostree=${ostreeTarget}: ${dir}: deployment serial ${serialText} is out of range: expected a small integer`);
  }

  return {
    link,
    dir,
    relDir,
    stateroot,
    commit,
    serial,
    varDir: join(root, 'ostree', 'deploy', stateroot, 'var'),
    dev: st.dev,
    ino: st.ino,
  };
}
