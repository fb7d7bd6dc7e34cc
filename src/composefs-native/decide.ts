/**
 * The composefs-native boot decision (SPEC §6): everything the boot checks
 * before it mounts, as data, in the order the mounts will be made:
 *
 *   setup-root-conf.toml -> the composefs kargs -> the repository ->
 *   the image (the first karg whose image exists; its digest must be its
 *   name) -> the composefs overlay -> root transient -> SYSROOT at /sysroot
 *   -> /etc -> /var (skipped for systemd.volatile=state|overlay).
 *
 * `cfsroot verify`, `plan` and the boot run it; src/composefs-native/plan.ts
 * turns it into the mount steps.
 */

import * as path from 'node:path';
import { CfsError, fail, withContext } from '../errors.js';
import { splitKernelCmdline } from '../cmdline.js';
import { checkImageSize } from '../image/space.js';
import type { VerityAlg } from '../image/fsverity.js';
import { parseNativeKargs } from './kargs.js';
import { loadSetupRootConf } from './setup-root-conf.js';
import { checkKargAlgorithm, checkOptionalDir, findImage, openRepository, requireRealDir, stateDirFor } from './repository.js';
import type { NativeDecision, NativeSubdir } from './model.js';

export interface DecideNativeOptions {
  /** The physical root, mounted (SYSROOT). */
  sysroot: string;
  /** Kernel command line text. */
  cmdline: string;
  /** Where setup-root-conf.toml is looked up ("/" at boot). */
  initramfsRoot: string;
  /** Compute the image's fs-verity digest in user space and compare it with its name (verify does). */
  measure: boolean;
  /** The fs-verity digest of a file's bytes (the addon's digester, or src/image/fsverity.ts). */
  digestImage: (file: string, alg: VerityAlg) => Promise<Uint8Array>;
  /**
   * The digest the kernel has for the file (FS_IOC_MEASURE_VERITY), null if
   * fs-verity is not enabled on it (or the filesystem has none). Absent: not
   * asked (verify; a boot without the addon), and the decision says so.
   */
  measureVerity?: (file: string, alg: VerityAlg) => Promise<Uint8Array | null>;
  /** Where the boot copies the image (default /run); its free space bounds the image size. */
  runDir?: string;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export async function decideNative(opts: DecideNativeOptions): Promise<NativeDecision> {
  const sysroot = path.resolve(opts.sysroot);
  const initramfsRoot = path.resolve(opts.initramfsRoot);
  const warnings: string[] = [];

  // 1. The configuration and the kargs (every karg is parsed before any image is looked at).
  const conf = loadSetupRootConf(initramfsRoot);
  const args = splitKernelCmdline(opts.cmdline);
  const kargs = parseNativeKargs(args);
  if (kargs.length === 0) fail('ECMDLINE', 'kernel command line: no composefs= or composefs.digest= argument: expected one naming the image to boot');

  // 2. The repository, then the first karg whose image exists.
  const repo = step(`opening ${sysroot}/composefs`, () => openRepository(sysroot));
  const tried: string[] = [];
  let chosen = null;
  for (const karg of kargs) {
    checkKargAlgorithm(repo, karg);
    const image = step(`looking up the image of ${karg.karg}`, () =>
      findImage(repo, karg.digest, (why) => tried.push(`${karg.karg} (images/${karg.digest}: ${why})`)),
    );
    if (image) {
      chosen = { karg, image };
      break;
    }
  }
  if (!chosen) {
    fail(
      'EIMAGE',
      `no composefs image found in ${repo.dir}/images for any composefs karg: tried ${tried.join(', ')}; ` +
        'the boot entry names an image that was never deployed here, or was removed: boot another entry, or redeploy',
    );
  }
  const { karg, image } = chosen;
  if (tried.length > 0) warnings.push(`booting ${karg.karg}: ${tried.length} earlier karg(s) had no image: ${tried.join(', ')}`);
  if (repo.algorithm === null) {
    warnings.push(
      `${repo.dir}/meta.json is missing (a repository made by the composefs C tools, mkcomposefs --digest-store, or an older composefs-rs): ` +
        `taking ${karg.alg} from the digest's length; composefs-setup-root refuses such a repository, cfsroot boots it ` +
        `(to add the metadata: cfsctl init, or write {"version":1,"algorithm":"fsverity-${karg.alg}-12"})`,
    );
  }
  checkImageSize(image.file);

  // 3. The image is its name: the digest of its bytes (always fatal if not), and what the kernel says.
  let measuredDigest: string | null = null;
  if (opts.measure) {
    try {
      measuredDigest = hex(await opts.digestImage(image.file, karg.alg));
    } catch (e) {
      throw withContext(`computing the fs-verity digest of ${image.path}`, e);
    }
    if (measuredDigest !== karg.digest) {
      fail(
        'EDIGEST',
        `composefs image ${image.path} has fs-verity digest ${karg.alg}:${measuredDigest}, but its name and the karg ${karg.karg} ` +
          'require that digest: the image was changed on disk (or stored under another name); redeploy it',
      );
    }
  }
  let kernelVerity: NativeDecision['verity']['kernel'] = 'not-checked';
  if (opts.measureVerity) {
    const k = await opts.measureVerity(image.file, karg.alg);
    if (k === null) {
      if (!karg.insecure) {
        fail(
          'EIMAGE',
          `composefs image ${image.path} has no fs-verity, which ${karg.karg} requires: enable it ` +
            `(fsverity enable --hash-alg=${karg.alg} on the image and every object, on a filesystem with the verity feature, ` +
            'e.g. tune2fs -O verity), or boot with the insecure form ?<digest>',
        );
      }
      kernelVerity = 'absent';
      warnings.push(`composefs image ${image.path} has no fs-verity: tolerated by the insecure karg ${karg.karg}`);
    } else if (hex(k) !== karg.digest) {
      fail('EDIGEST', `composefs image ${image.path}: the kernel's fs-verity digest ${karg.alg}:${hex(k)} is not its name ${karg.digest}`);
    } else {
      kernelVerity = 'matches';
    }
  }

  // 4. /etc and /var from the state directory; /var left alone for systemd.volatile=state|overlay.
  const stateDir = step('checking the state directory', () => stateDirFor(sysroot, karg.digest));
  const etc = subdir('etc', conf.etc, conf.sources.etc, stateDir, null);
  const volatileArg = args.find((a) => a === 'systemd.volatile' || a.startsWith('systemd.volatile='));
  // A bare systemd.volatile means yes to systemd.
  const volatile = volatileArg === undefined ? null : volatileArg === 'systemd.volatile' ? 'yes' : volatileArg.slice('systemd.volatile='.length);
  const varSkip = volatile === 'state' || volatile === 'overlay' ? `systemd.volatile=${volatile}` : null;
  const vr = subdir('var', conf.var, conf.sources.var, stateDir, varSkip);

  return {
    mode: 'composefs-native',
    sysroot,
    initramfsRoot,
    config: conf.path,
    kargs,
    tried,
    karg,
    insecure: karg.insecure,
    repository: repo,
    image: { ...image, digest: karg.digest, alg: karg.alg, measuredDigest },
    verity: { require: !karg.insecure, kernel: kernelVerity },
    overlay: {
      source: `composefs:${karg.digest}`,
      options: ['metacopy=on', 'redirect_dir=on', ...(karg.insecure ? [] : ['verity=require'])],
      lower: image.file,
      dataLower: repo.objects,
    },
    rootTransient: { value: conf.rootTransient, source: conf.sources.rootTransient },
    physicalRoot: { at: 'sysroot', readonly: true },
    stateDir,
    etc,
    var: vr,
    systemdVolatile: volatile,
    warnings,
  };
}

/** Run a step; a system error escaping it (EACCES, ELOOP, a race) becomes EIO saying what was being done. */
function step<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw e instanceof CfsError ? e : withContext(what, e);
  }
}

function subdir(
  name: 'etc' | 'var',
  mount: NativeSubdir['mount'],
  source: string,
  stateDir: string,
  skippedFor: string | null,
): NativeSubdir {
  const dir = path.join(stateDir, name);
  const out: NativeSubdir = { mount: skippedFor ? 'none' : mount, configured: mount, source, skippedFor, state: null };
  if (out.mount === 'bind') {
    requireRealDir(dir, `what /${name} binds to (${source === 'default' ? 'the default' : source}: bind)`, 'bootc creates it when it deploys the image');
    out.state = { dir, upper: null, work: null };
  } else if (out.mount === 'overlay') {
    requireRealDir(dir, `the /${name} overlay's state (${source === 'default' ? 'the default' : source}: overlay)`, 'bootc creates it when it deploys the image');
    const upper = path.join(dir, 'upper');
    const work = path.join(dir, 'work');
    out.state = {
      dir,
      upper: { dir: upper, exists: checkOptionalDir(upper, `the /${name} overlay's upper directory`), mode: 0o755 },
      work: { dir: work, exists: checkOptionalDir(work, `the /${name} overlay's work directory`), mode: 0o700 },
    };
  }
  return out;
}
