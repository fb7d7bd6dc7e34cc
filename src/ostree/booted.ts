/**
 * /run/ostree-booted (SPEC §5): the a{sv} GVariant that tells the booted
 * system (ostree, bootc, ostree-remount) how its root was prepared. Written
 * by the plan's last steps; serialised by src/ostree/gvariant.ts in normal form.
 *
 * Which keys appear follows ostree-prepare-root: the device/inode pair,
 * root.transient, root.transient-ro and sysroot-ro are always written (as
 * booleans, false included); composefs and composefs.verity only when the
 * root is a composefs mount; composefs.signed (the key file that verified the
 * commit) only when signed; transient-etc (the overlay's state dir) only with
 * etc.transient. Key order is the SPEC §5 order.
 */

import type { BootDecision } from './model.js';
import { encodeVardict, type Variant } from './gvariant.js';

export interface OstreeBootedExtra {
  /** The /run/ostree/transient-etc.XXXXXX directory, when /etc is a transient overlay. */
  transientEtc: string | null;
}

/** The entries in SPEC §5 order (exported for tests and `plan --json`). */
export function ostreeBootedEntries(d: BootDecision, extra: OstreeBootedExtra): Array<[string, Variant]> {
  const c = d.config;
  const e: Array<[string, Variant]> = [];
  e.push(['backing-root-device-inode', { type: '(tt)', value: [d.deployment.dev, d.deployment.ino] }]);
  e.push(['root.transient', { type: 'b', value: c.rootTransient }]);
  e.push(['root.transient-ro', { type: 'b', value: c.rootTransientRo }]);
  if (d.composefs?.signed) e.push(['composefs.signed', { type: 's', value: d.composefs.signed.keyPath }]);
  if (d.composefs) {
    e.push(['composefs', { type: 'b', value: true }]);
    e.push(['composefs.verity', { type: 'b', value: d.composefs.verity }]);
  }
  e.push(['sysroot-ro', { type: 'b', value: c.sysrootReadonly }]);
  if (extra.transientEtc !== null) e.push(['transient-etc', { type: 's', value: extra.transientEtc }]);
  return e;
}

export function encodeOstreeBooted(d: BootDecision, extra: OstreeBootedExtra): Uint8Array {
  return encodeVardict(ostreeBootedEntries(d, extra));
}
