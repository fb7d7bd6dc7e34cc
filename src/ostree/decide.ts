/**
 * The boot decision: everything cfsroot checks before it touches a mount.
 * One implementation serves the boot, `verify` and `plan` (as libotcore does
 * for ostree-prepare-root and the offline tools).
 *
 * Order (SPEC §1–§3): kernel args + prepare-root.conf -> BootConfig; the
 * ostree= link -> Deployment; if composefs is wanted: the image header, the
 * signed commit (signed mode) and the expected digest; with `measure`, the
 * fs-verity digest of the image as it is on disk. The boot itself does not
 * measure here: its plan measures the descriptor it mounts (fs-verity) or
 * the copy it mounts (src/image/plan.ts, SPEC §3).
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CfsError, fail, withContext } from '../errors.js';
import type { BootDecision, ComposefsDecision, SignedCommit } from './model.js';
import { parseKernelCmdline } from '../cmdline.js';
import { loadPrepareRootConf, resolveBootConfig, unknownConfigKeys } from './config.js';
import { resolveDeployment } from './deployment.js';
import { readComposefsHeader } from '../image/header.js';
import { checkImageSize } from '../image/space.js';
import { fsverityDigestFile } from '../image/fsverity.js';
import { loadPublicKeys } from './keys.js';
import { verifySignedCommit } from './signature.js';
import { noteActivity } from '../activity.js';

export interface DecideOptions {
  /** The physical root, mounted (SYSROOT; /sysroot at boot). */
  sysroot: string;
  /** Kernel command line text. */
  cmdline: string;
  /** Where prepare-root.conf and the key file are looked up ("/" at boot). */
  initramfsRoot: string;
  /** Also compute the image's fs-verity digest on disk and compare (verify does; the boot digests its copy instead). */
  measure: boolean;
  /** The boot's run directory (default /run, the initramfs tmpfs). */
  runDir?: string;
  /** How `measure` computes the image digest (default src/image/fsverity.ts). */
  digestImage?: (image: string, alg: 'sha256') => Promise<Uint8Array>;
  /** Told as soon as the configuration says the commit's signature will be checked (the boot warms OpenSSL then). */
  onSignedBoot?: () => void;
}

export async function decideBoot(opts: DecideOptions): Promise<BootDecision> {
  const sysroot = path.resolve(opts.sysroot);
  const initramfsRoot = path.resolve(opts.initramfsRoot);
  const warnings: string[] = [];

  const kargs = step('reading the kernel command line', () => parseKernelCmdline(opts.cmdline));
  const conf = step('reading prepare-root.conf', () => loadPrepareRootConf(initramfsRoot));
  for (const k of unknownConfigKeys(conf)) warnings.push(`${conf.path}: unknown key ${k} (ignored)`);
  const config = step('resolving the boot configuration', () => resolveBootConfig(kargs, conf, sysroot));
  if (config.composefs !== 'no' && config.composefsSigned) opts.onSignedBoot?.();
  const deployment = step('resolving the deployment', () => resolveDeployment(sysroot, config.ostreeTarget));

  let composefs: ComposefsDecision | null = null;
  if (config.composefs !== 'no') {
    const image = path.join(deployment.dir, '.ostree.cfs');
    const present = lstatOrNull(image);
    if (!present && config.composefs === 'maybe' && !config.composefsSigned && !config.composefsDigest) {
      warnings.push(`composefs=maybe and ${image} does not exist: booting the deployment without composefs (legacy bind)`);
    } else {
      if (!present) {
        fail(
          'EIMAGE',
          `composefs is required (${config.sources['composefs'] ?? 'configuration'}) but the deployment has no image: ` +
            `${image} does not exist. An older deployment made without composefs? Redeploy with composefs ` +
            'enabled in the repo config ([ex-integrity] composefs=true)' +
            (config.composefsSigned || config.composefsDigest
              ? '; a signed or digest-pinned boot cannot fall back to an unverified root.'
              : ', or set [composefs] enabled=maybe to allow legacy boots.'),
        );
      }
      const header = step(`checking the composefs image ${image}`, () => readComposefsHeader(image));
      // Before the digest: measuring a huge image would take as long as copying it.
      checkImageSize(image);

      let signed: SignedCommit | null = null;
      if (config.composefsSigned) {
        signed = step('checking the commit signature', () => {
          const keyFile = path.join(initramfsRoot, config.keypath);
          const keys = loadPublicKeys(keyFile);
          return verifySignedCommit(path.join(sysroot, 'ostree/repo'), deployment.commit, keys, config.keypath, fs.statSync(sysroot).dev);
        });
      }

      let expectedDigest: string | null = null;
      let expectedDigestSource: string | null = null;
      if (signed) {
        expectedDigest = signed.digest;
        expectedDigestSource = signed.viaParent
          ? `signed parent commit ${signed.commit} (bootc fallback)`
          : `signed commit ${signed.commit}`;
      }
      if (config.composefsDigest) {
        if (expectedDigest && expectedDigest !== config.composefsDigest) {
          fail(
            'EDIGEST',
            `the karg ot-composefs=digest=${config.composefsDigest} disagrees with the digest in the ${expectedDigestSource} ` +
              `(${expectedDigest}); fix the kernel command line`,
          );
        }
        expectedDigest = config.composefsDigest;
        // Both pins held (src/ostree/composefs-mode.ts adds them up): say so.
        expectedDigestSource = expectedDigestSource === null ? 'karg ot-composefs=digest=' : `${expectedDigestSource} and the karg ot-composefs=digest=`;
      }

      let measuredDigest: string | null = null;
      if (opts.measure) {
        try {
          measuredDigest = Buffer.from(await (opts.digestImage ?? fsverityDigestFile)(image, 'sha256')).toString('hex');
        } catch (e) {
          throw withContext(`computing the fs-verity digest of ${image}`, e);
        }
        if (expectedDigest && measuredDigest !== expectedDigest) {
          fail(
            'EDIGEST',
            `composefs image ${image} has fs-verity digest ${measuredDigest}, but the ${expectedDigestSource} ` +
              `requires ${expectedDigest}: the image was changed or belongs to another commit`,
          );
        }
      }

      composefs = {
        image,
        header,
        verity: config.composefsVerity,
        expectedDigest,
        expectedDigestSource,
        measuredDigest,
        signed,
      };
    }
  }

  // The plan bind-mounts these from the disk by path, and mount(8) follows
  // symlinks: a hostile `etc -> /` would put the initramfs root at /etc.
  checkStateDir(path.join(deployment.dir, 'etc'), '/etc');
  checkStateDir(deployment.varDir, '/var');

  const hasUsrOverlay = lstatOrNull(path.join(deployment.dir, '.usr-ovl-work'))?.isDirectory() ?? false;
  if (hasUsrOverlay) checkStateDir(path.join(deployment.dir, '.usr-ovl-upper'), 'the /usr hotfix overlay upper dir');
  let usrOverlay = hasUsrOverlay;
  if (hasUsrOverlay && composefs?.signed) {
    usrOverlay = false;
    warnings.push(
      `ignoring the hotfix overlay (${deployment.dir}/.usr-ovl-work): a hotfix would bypass the signed composefs root; ` +
        'to use one, boot without [composefs] enabled=signed, or remove the directory to silence this warning',
    );
  }

  return { sysroot, initramfsRoot, config, deployment, composefs, usrOverlay, warnings };
}

/**
 * A directory of the deployment that the boot bind-mounts (or uses as an
 * overlay layer) must be a real directory, not a symlink: binds follow
 * symlinks, so one could point /etc or /var anywhere, the initramfs
 * included. Missing is left to the mount step, which says so.
 */
function checkStateDir(dir: string, mountedAs: string): void {
  const st = lstatOrNull(dir);
  if (st === null) return;
  if (st.isSymbolicLink()) {
    let target = '?';
    try {
      target = fs.readlinkSync(dir);
    } catch {
      /* raced away: still refused */
    }
    fail(
      'EDEPLOY',
      `${dir} is a symlink (to ${target}): expected a directory, which the boot mounts as ${mountedAs}; ` +
        'a symlink there could point it anywhere (a corrupted or tampered deployment)',
    );
  }
  if (!st.isDirectory()) fail('EDEPLOY', `${dir} is not a directory: expected the directory the boot mounts as ${mountedAs}`);
}

function step<T>(what: string, fn: () => T): T {
  noteActivity(() => what);
  try {
    return fn();
  } catch (e) {
    // Parsers already name the file/karg; keep their message, add what was being done.
    throw e instanceof CfsError ? e : withContext(what, e);
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    // Usually absent (.usr-ovl-work): asked not to throw for ENOENT, which
    // costs a few microseconds where a thrown and caught error costs tens.
    return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}
