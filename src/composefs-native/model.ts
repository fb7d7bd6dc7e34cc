/**
 * What the composefs-native decision hands on (src/composefs-native/decide.ts):
 * everything the boot would mount, in the order it would mount it, as plain
 * data (`verify --json` prints it).
 */

import type { ComposefsHeader } from '../image/header.js';
import type { VerityAlg } from '../image/fsverity.js';
import type { NativeKarg } from './kargs.js';
import type { NativeRepository } from './repository.js';
import type { SubdirMount } from './setup-root-conf.js';

/** How /etc or /var will be mounted, and from which state directory. */
export interface NativeSubdir {
  /** What the boot does: the configured mount, or none when systemd.volatile skips it. */
  mount: SubdirMount;
  /** What setup-root-conf.toml (or the default) asked for. */
  configured: SubdirMount;
  /** "default" or "FILE [etc] mount". */
  source: string;
  /** `systemd.volatile=state` / `=overlay` when /var is left to systemd (bootc), else null. */
  skippedFor: string | null;
  /** bind: dir is the source; overlay: upper and work inside dir (created with these modes if missing). null: none/transient. */
  state: {
    dir: string;
    upper: { dir: string; exists: boolean; mode: number } | null;
    work: { dir: string; exists: boolean; mode: number } | null;
  } | null;
}

export interface NativeDecision {
  mode: 'composefs-native';
  sysroot: string;
  initramfsRoot: string;
  /** The setup-root-conf.toml read, or null (defaults). */
  config: string | null;
  /** Every composefs karg, in command-line order. */
  kargs: NativeKarg[];
  /** Kargs before the chosen one whose image was missing, each with why. */
  tried: string[];
  /** The karg booted. */
  karg: NativeKarg;
  insecure: boolean;
  repository: NativeRepository;
  image: {
    /** SYSROOT/composefs/images/<hex> */
    path: string;
    /** The file it resolves to (inside SYSROOT/composefs). */
    file: string;
    link: string | null;
    size: number;
    header: ComposefsHeader;
    digest: string;
    alg: VerityAlg;
    /** The digest of the image's bytes, computed by verify; equals digest. null: not measured. */
    measuredDigest: string | null;
  };
  verity: {
    /** The overlay gets verity=require (every object must carry its fs-verity digest). */
    require: boolean;
    /** The kernel's fs-verity on the image: matches its name, absent (insecure only), or not asked (verify, or no addon). */
    kernel: 'matches' | 'absent' | 'not-checked';
  };
  /** The composefs overlay: source `composefs:<hex>`, the image as lower, objects as data-only lower. */
  overlay: { source: string; options: string[]; lower: string; dataLower: string };
  /** A tmpfs upper over the whole root (overlay source `transient`). */
  rootTransient: { value: boolean; source: string };
  /** The physical root, cloned to NEW/sysroot, read-only as bootc mounts it. */
  physicalRoot: { at: 'sysroot'; readonly: true };
  /** SYSROOT/state/deploy/<hex> */
  stateDir: string;
  etc: NativeSubdir;
  var: NativeSubdir;
  /** The value of the first systemd.volatile (null: absent; a bare one is "yes", as systemd reads it). */
  systemdVolatile: string | null;
  warnings: string[];
}
