/**
 * The check a backend without descriptors (mount(8), src/sys/spawn.ts) can
 * make of a directory taken from beneath another (src/sys/types.ts
 * Beneath): every component lstat'ed, none a symlink, the last a directory.
 * It is a check by path followed by a mount by path, so a disk that changes
 * between the two still wins the race; the native backend opens each
 * directory once and mounts that descriptor instead (docs/threat-model.md).
 */

import { lstatSync } from 'node:fs';
import type { Beneath, BindConfinement } from './types.js';

export function checkBeneath(ref: Beneath): void {
  let p = ref.root;
  const parts = ref.rel === '' ? [] : ref.rel.split('/');
  for (const [i, name] of parts.entries()) {
    if (name === '' || name === '.' || name === '..') throw beneathByPathError(ref, 'leaves the directory it must lie beneath');
    p = `${p}/${name}`;
    let st;
    try {
      st = lstatSync(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw beneathByPathError(ref, code === 'ENOENT' ? 'does not exist' : `${p}: ${code ?? String(e)}`);
    }
    if (st.isSymbolicLink()) throw beneathByPathError(ref, 'is a symlink or lies under one');
    if (!st.isDirectory()) {
      throw beneathByPathError(ref, i === parts.length - 1 ? 'is not a directory' : 'is not a directory (or lies under something that is not)');
    }
  }
}

export function checkConfinement(confine: BindConfinement | undefined): void {
  if (confine?.source) checkBeneath(confine.source);
  if (confine?.target) checkBeneath(confine.target);
}

function beneathByPathError(ref: Beneath, why: string): Error {
  const root = ref.path.slice(0, ref.path.length - ref.rel.length - 1) || '/';
  return new Error(`${ref.path} ${why}: directories the disk decides must lie beneath ${root}, reached without symlinks`);
}
