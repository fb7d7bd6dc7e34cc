/**
 * Hand-made BootDecision objects for the plan and executor tests, so they
 * do not depend on the parsers (cmdline/config/signature) being right.
 */
import type { BootConfig, BootDecision, ComposefsDecision } from '../../src/ostree/model.js';

export const COMMIT = 'c0'.repeat(32);
export const DIGEST = 'd1'.repeat(32);

export interface DecisionOptions {
  sysroot?: string;
  /** 'off' = legacy bind. */
  mode?: 'off' | 'yes' | 'verity' | 'signed' | 'digest';
  sysrootReadonly?: boolean;
  rootTransient?: boolean;
  rootTransientRo?: boolean;
  etcTransient?: boolean;
  systemdVolatile?: boolean;
  usrOverlay?: boolean;
  hasAcl?: boolean;
  stateroot?: string;
  dev?: bigint;
  ino?: bigint;
  /** Override the deployment dir (absolute). */
  deployDir?: string;
  expectedDigest?: string | null;
}

export function makeDecision(o: DecisionOptions = {}): BootDecision {
  const sysroot = o.sysroot ?? '/sysroot';
  const mode = o.mode ?? 'signed';
  const stateroot = o.stateroot ?? 'debian';
  const relDir = `ostree/deploy/${stateroot}/deploy/${COMMIT}.0`;
  const dir = o.deployDir ?? `${sysroot}/${relDir}`;
  const composefsOn = mode !== 'off';
  const verity = mode === 'verity' || mode === 'signed' || mode === 'digest';
  const config: BootConfig = {
    composefs: composefsOn ? 'yes' : 'no',
    composefsVerity: verity,
    composefsSigned: mode === 'signed',
    composefsDigest: mode === 'digest' ? DIGEST : null,
    keypath: '/etc/ostree/initramfs-root-binding.key',
    sysrootReadonly: o.sysrootReadonly ?? composefsOn,
    rootTransient: o.rootTransient ?? o.rootTransientRo ?? false,
    rootTransientRo: o.rootTransientRo ?? false,
    etcTransient: o.etcTransient ?? false,
    ostreeTarget: '/ostree/boot.1/debian/x/0',
    systemdVolatile: o.systemdVolatile ?? false,
    sources: {},
  };
  let composefs: ComposefsDecision | null = null;
  if (composefsOn) {
    const pinned = mode === 'signed' || mode === 'digest';
    composefs = {
      image: `${dir}/.ostree.cfs`,
      header: { version: 1, flags: o.hasAcl ? 1 : 0, composefsVersion: 1, hasAcl: o.hasAcl ?? false },
      verity,
      expectedDigest: o.expectedDigest !== undefined ? o.expectedDigest : pinned ? DIGEST : null,
      expectedDigestSource: pinned ? (mode === 'signed' ? `signed commit ${COMMIT}` : 'karg ot-composefs=digest=') : null,
      measuredDigest: null,
      signed:
        mode === 'signed'
          ? { commit: COMMIT, viaParent: false, keyPath: config.keypath, keyIndex: 0, digest: DIGEST }
          : null,
    };
  }
  return {
    sysroot,
    initramfsRoot: '/',
    config,
    deployment: {
      link: `${sysroot}/ostree/boot.1/debian/x/0`,
      dir,
      relDir,
      stateroot,
      commit: COMMIT,
      serial: 0,
      varDir: `${sysroot}/ostree/deploy/${stateroot}/var`,
      dev: o.dev ?? 0xfe01n,
      ino: o.ino ?? 1234567n,
    },
    composefs,
    usrOverlay: o.usrOverlay ?? false,
    warnings: [],
  };
}
