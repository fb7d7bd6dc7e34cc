/**
 * mkdir of a directory whose parent the disk decides (src/sys/types.ts
 * Sys.mkdirBeneath), without the addon: each component of the parent is
 * opened O_PATH|O_NOFOLLOW|O_DIRECTORY from the descriptor of the one
 * before (through /proc/self/fd/N/NAME, where the kernel follows only the
 * magic link to the directory already held), so a symlink anywhere below
 * the root is refused, not followed, and the directory is made in the one
 * that was opened. mkdir(2) itself never follows a last-component symlink.
 * Needs /proc (as every descriptor mount cfsroot makes does).
 */

import * as fs from 'node:fs';
import type { Beneath } from './types.js';

// Linux x86-64/arm64 open(2) flags; node:fs.constants lacks O_PATH.
const O_PATH = 0o10000000;
const O_DIRECTORY = fs.constants.O_DIRECTORY;
const O_NOFOLLOW = fs.constants.O_NOFOLLOW;

function beneathError(ref: Beneath, why: string, code?: string): Error {
  const err = new Error(`${ref.path} ${why}: directories the disk decides must lie beneath ${ref.path.slice(0, ref.path.length - ref.rel.length - 1) || '/'}, reached without symlinks`) as Error & { code?: string };
  if (code) err.code = code;
  return err;
}

/** Create `ref` (mode exactly `mode`); false if a directory is already there. */
export function mkdirBeneath(ref: Beneath, mode: number): boolean {
  const parts = ref.rel.split('/');
  const name = parts.pop()!;
  if (name === '' || parts.some((p) => p === '' || p === '.' || p === '..') || name === '.' || name === '..') {
    throw beneathError(ref, 'leaves the directory it must lie beneath');
  }
  let fd = fs.openSync(ref.root, O_PATH | O_DIRECTORY);
  try {
    for (const part of parts) {
      let next: number;
      try {
        next = fs.openSync(`/proc/self/fd/${fd}/${part}`, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ELOOP' || code === 'ENOTDIR') throw beneathError(ref, 'lies under a symlink or a non-directory', code);
        throw e;
      }
      fs.closeSync(fd);
      fd = next;
    }
    const made = `/proc/self/fd/${fd}/${name}`;
    try {
      fs.mkdirSync(made, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!fs.lstatSync(made).isDirectory()) throw beneathError(ref, 'exists and is not a directory (a symlink?)', 'EEXIST');
      return false;
    }
    // mkdir(2) applies the umask; the mode is meant exactly. The new directory
    // by descriptor, so a symlink swapped in since is not followed.
    const dfd = fs.openSync(made, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    try {
      fs.chmodSync(`/proc/self/fd/${dfd}`, mode);
    } finally {
      fs.closeSync(dfd);
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}
