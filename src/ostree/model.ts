/**
 * The data the boot decision is made of. Each stage fills one of these and
 * hands it on: kernel args + prepare-root.conf -> BootConfig; the ostree=
 * link -> Deployment; signature/image checks -> ComposefsDecision; all of it
 * -> BootDecision, from which plan.ts derives the mount plan. Pure data: no
 * functions, no file handles, so `verify --json` and `plan --json` can print it.
 */

import type { ComposefsHeader } from '../image/header.js';

export type Tristate = 'yes' | 'no' | 'maybe';

/** Parsed kernel command line: key -> value (null for a bare `key`). First occurrence wins. */
export interface KernelArgs extends ReadonlyMap<string, string | null> {
  /** Every value `key` was given, in command-line order (`get` is the first); empty if absent. */
  all(key: string): readonly (string | null)[];
}

/** prepare-root.conf as read from the initramfs: which file (if any) and its sections. */
export interface PrepareRootConf {
  /** Absolute path of the file that was used (the /etc one replaces /usr/lib), or null. */
  path: string | null;
  /** section -> key -> raw value, as g_key_file_get_value returns it (src/ostree/keyfile.ts). */
  sections: Record<string, Record<string, string>>;
  /** section -> key -> the line the value was read from, for messages (absent: no line is named). */
  lines?: Record<string, Record<string, number>>;
}

/** Everything the kernel command line and prepare-root.conf decided, validated. */
export interface BootConfig {
  /** composefs.enabled after kargs: yes | no | maybe. signed/verity/digest imply yes. */
  composefs: Tristate;
  /** Mount the overlay with verity=require (verity, signed and digest= modes). */
  composefsVerity: boolean;
  /** Require an Ed25519-signed commit carrying the image digest. */
  composefsSigned: boolean;
  /** Expected image fs-verity digest from `ot-composefs=digest=` (lowercase hex), or null. */
  composefsDigest: string | null;
  /** Key file path inside the initramfs root (absolute, e.g. /etc/ostree/initramfs-root-binding.key). */
  keypath: string;
  sysrootReadonly: boolean;
  rootTransient: boolean;
  rootTransientRo: boolean;
  etcTransient: boolean;
  /** Value of ostree= (or /ostree/root.a|b for androidboot.*): path relative to SYSROOT. */
  ostreeTarget: string;
  /** systemd.volatile is on the kernel command line (cfsroot then leaves /var alone). */
  systemdVolatile: boolean;
  /** For messages and `plan`: where each decision came from, e.g. composefs: "karg ot-composefs=signed". */
  sources: Record<string, string>;
}

/** The deployment the ostree= link resolves to. */
export interface Deployment {
  /** Absolute path of the ostree= symlink, SYSROOT + ostreeTarget. */
  link: string;
  /** Absolute real path of the deployment directory (inside SYSROOT). */
  dir: string;
  /** dir relative to SYSROOT, e.g. ostree/deploy/debian/deploy/<commit>.0 */
  relDir: string;
  stateroot: string;
  /** Commit checksum: the deployment dir name up to the first '.', 64 lowercase hex. */
  commit: string;
  serial: number;
  /** SYSROOT/ostree/deploy/<stateroot>/var */
  varDir: string;
  /** st_dev and st_ino of the deployment dir (for /run/ostree-booted). */
  dev: bigint;
  ino: bigint;
}

/** Result of a successful signed-commit check. */
export interface SignedCommit {
  /** The commit whose signature verified (the deployment's, or its parent via the bootc fallback). */
  commit: string;
  viaParent: boolean;
  /** Key file that held the verifying key, and the index of that key in it. */
  keyPath: string;
  keyIndex: number;
  /** ostree.composefs.digest.v0 from the verified commit, lowercase hex (32 bytes -> 64 chars). */
  digest: string;
}

export interface ComposefsDecision {
  /** Absolute path of <deploy>/.ostree.cfs */
  image: string;
  header: ComposefsHeader;
  /** Mount the overlay with verity=require. */
  verity: boolean;
  /** The image's fs-verity digest must equal this (lowercase hex sha256), from signature or karg; null = not pinned. */
  expectedDigest: string | null;
  /** Where expectedDigest came from, for messages: "signed commit <c>" / "karg ot-composefs=digest=". */
  expectedDigestSource: string | null;
  /** fs-verity digest of the image as measured on disk by verify (hex), null if not measured. */
  measuredDigest: string | null;
  signed: SignedCommit | null;
}

/** What this boot will do, decided before anything is mounted. */
export interface BootDecision {
  sysroot: string;
  initramfsRoot: string;
  config: BootConfig;
  deployment: Deployment;
  /** null: no composefs (off, or maybe without an image): the legacy bind of the deployment. */
  composefs: ComposefsDecision | null;
  /** Mount the hotfix overlay on /usr (deployment has .usr-ovl-work and the root is not signed composefs). */
  usrOverlay: boolean;
  /** Things a person should know that do not stop the boot (printed by verify, plan and the boot). */
  warnings: string[];
}
