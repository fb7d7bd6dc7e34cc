/**
 * /proc/self/mountinfo parsing (proc(5)): used by the sys backend to read a
 * mount's read-only flag before changing it, and by the tests to compare
 * whole mount tables. Fields are space-separated with octal escapes
 * (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
 */

import * as fs from 'node:fs';

export interface MountInfo {
  id: number;
  parent: number;
  /** "MAJ:MIN" of the filesystem. */
  dev: string;
  /** Path inside the filesystem that is mounted (bind mounts: not "/"). */
  root: string;
  target: string;
  /** Per-mount options (ro/rw, nosuid, relatime, ...). */
  mountOptions: string[];
  /** Optional fields: shared:N, master:N, propagate_from:N, unbindable. */
  propagation: string[];
  fstype: string;
  source: string;
  /** Superblock options. */
  superOptions: string[];
  readonly: boolean;
}

export function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) continue; // not a mountinfo line
    const mountOptions = f[5]!.split(',');
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2]!,
      root: unescapeMountinfo(f[3]!),
      target: unescapeMountinfo(f[4]!),
      mountOptions,
      propagation: f.slice(6, sep),
      fstype: f[sep + 1]!,
      source: unescapeMountinfo(f[sep + 2]!),
      superOptions: f[sep + 3]!.split(','),
      readonly: mountOptions.includes('ro'),
    });
  }
  return out;
}

export function readMountinfo(file = '/proc/self/mountinfo'): MountInfo[] {
  return parseMountinfo(fs.readFileSync(file, 'utf8'));
}
