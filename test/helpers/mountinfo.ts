/**
 * Mount-table comparisons for the integration tests: a mount reduced to what
 * a boot is judged by (target, fstype, source, filesystem root, ro/rw,
 * selected superblock options), without the ids the kernel hands out.
 */
import type { MountInfo } from '../../src/sys/mountinfo.js';

export interface MountSummary {
  target: string;
  fstype: string;
  source: string;
  /** Path inside the filesystem (a bind shows its subdirectory). */
  root: string;
  ro: boolean;
}

export function summarize(m: MountInfo): MountSummary {
  return { target: m.target, fstype: m.fstype, source: m.source, root: m.root, ro: m.readonly };
}

export const describeMount = (m: MountSummary) => `${m.target} ${m.fstype} ${m.source} ${m.root} ${m.ro ? 'ro' : 'rw'}`;

/** The whole table as sorted lines (multiset compare). */
export function tableLines(ms: MountInfo[]): string[] {
  return ms.map((m) => describeMount(summarize(m))).sort();
}

/** Mounts at or under `prefix`, in mount order. */
export function under(ms: MountInfo[], prefix: string): MountInfo[] {
  return ms.filter((m) => m.target === prefix || m.target.startsWith(`${prefix}/`));
}

/** Value of a superblock option like lowerdir=..., or null. */
export function superOption(m: MountInfo, key: string): string | null {
  for (const o of m.superOptions) if (o === key || o.startsWith(`${key}=`)) return o.includes('=') ? o.slice(key.length + 1) : '';
  return null;
}
