/**
 * The kernel arguments of the composefs-native mode (SPEC §6), as
 * composefs-setup-root and bootc's composefs backend read them:
 *
 *   composefs=[?]<64 hex>                       sha256 image digest
 *   composefs=[?]<128 hex>                      sha512 image digest
 *   composefs.digest=[?]v1-sha256-12:<64 hex>   the self-describing form
 *   composefs.digest=[?]v1-sha512-12:<128 hex>
 *
 * `?` right after `=` means insecure: a missing fs-verity is tolerated and
 * the overlay is mounted without verity=require (a digest mismatch stays
 * fatal, src/composefs-native/repository.ts). The command line is scanned
 * left to right and every such argument is collected in order: the boot
 * takes the first whose image exists. One malformed argument is fatal even
 * when a valid one follows, as upstream parses them all before trying any.
 *
 * Stricter than upstream on one point: the hex must be lowercase. Upstream
 * accepts uppercase hex but then looks for `images/<the hex as written>`,
 * which composefs never writes (it names images in lowercase), so such an
 * argument could only ever be "not found"; here it is an error that says so.
 */

import { fail } from '../errors.js';
import type { VerityAlg } from '../image/fsverity.js';
import { isHex, isLowerHex } from '../text.js';

/** `composefs=` (the short form) and `composefs.digest=` (the self-describing one). */
export const KARG_NATIVE = 'composefs';
export const KARG_NATIVE_DIGEST = 'composefs.digest';

/** Hex digits of each algorithm's digest. */
export const DIGEST_HEX_LENGTH: Readonly<Record<VerityAlg, number>> = { sha256: 64, sha512: 128 };

/** One composefs karg, parsed. */
export interface NativeKarg {
  /** The argument as written, for messages: `composefs=?<hex>`. */
  karg: string;
  /** The image digest, lowercase hex: also the image's name under composefs/images/. */
  digest: string;
  alg: VerityAlg;
  /** `?` after `=`: fs-verity may be missing (never a digest mismatch). */
  insecure: boolean;
}

/** v1 = the EROFS format version the digest is of; 12 = log2 of the 4096-byte fs-verity block. */
const DESCRIPTOR = /^v1-(sha256|sha512)-12:(.*)$/s;

/** Split `key=value`; null value for a bare `key`. */
function splitArg(arg: string): { key: string; value: string | null } {
  const eq = arg.indexOf('=');
  return eq < 0 ? { key: arg, value: null } : { key: arg.slice(0, eq), value: arg.slice(eq + 1) };
}

/** Is this argument one of the mode's (including a bare `composefs` or an empty value)? */
export function isNativeKarg(arg: string): boolean {
  const { key } = splitArg(arg);
  return key === KARG_NATIVE || key === KARG_NATIVE_DIGEST;
}

/** Do these kernel arguments (in order, quotes removed: src/cmdline.ts splitKernelCmdline) select the native mode? */
export function selectsNativeMode(args: readonly string[]): boolean {
  return args.some(isNativeKarg);
}

function malformed(arg: string, why: string): never {
  fail('ECMDLINE', `kernel command line: ${JSON.stringify(arg)}: ${why}`);
}

function checkHex(arg: string, hex: string, alg: VerityAlg | null): VerityAlg {
  if (!isLowerHex(hex)) {
    const upper = isHex(hex);
    malformed(
      arg,
      upper
        ? 'uppercase hex: expected the digest in lowercase, as composefs names its images'
        : 'expected a hexadecimal fs-verity digest',
    );
  }
  if (alg === null) {
    if (hex.length === DIGEST_HEX_LENGTH.sha256) return 'sha256';
    if (hex.length === DIGEST_HEX_LENGTH.sha512) return 'sha512';
    malformed(arg, `a digest of ${hex.length} hex digits: expected 64 (sha256) or 128 (sha512)`);
  }
  if (hex.length !== DIGEST_HEX_LENGTH[alg]) {
    malformed(arg, `a ${alg} digest of ${hex.length} hex digits: expected ${DIGEST_HEX_LENGTH[alg]}`);
  }
  return alg;
}

/** Parse one of the mode's arguments (isNativeKarg is true); throws ECMDLINE naming it if malformed. */
export function parseNativeKarg(arg: string): NativeKarg {
  const { key, value } = splitArg(arg);
  const form =
    key === KARG_NATIVE
      ? 'composefs=[?]<64 or 128 hex digits>'
      : 'composefs.digest=[?]v1-sha256-12:<64 hex> or v1-sha512-12:<128 hex>';
  if (value === null) malformed(arg, `no value: expected ${form}`);
  const insecure = value.startsWith('?');
  const rest = insecure ? value.slice(1) : value;
  if (rest === '') malformed(arg, `no digest: expected ${form}`);
  if (key === KARG_NATIVE) {
    const alg = checkHex(arg, rest, null);
    return { karg: arg, digest: rest, alg, insecure };
  }
  const m = DESCRIPTOR.exec(rest);
  if (!m) {
    malformed(arg, `expected ${form} (v1 EROFS, 4096-byte fs-verity blocks)`);
  }
  const alg = checkHex(arg, m[2]!, m[1] as VerityAlg);
  return { karg: arg, digest: m[2]!, alg, insecure };
}

/**
 * Every composefs karg in command-line order, parsed; [] if there are none.
 * With an `ostree=` beside them it refuses (ECMDLINE, naming both): an
 * ostree boot would drop their pin, a native one would ignore the
 * deployment, and cfsroot does neither silently.
 */
export function parseNativeKargs(args: readonly string[]): NativeKarg[] {
  const native = args.filter(isNativeKarg);
  if (native.length === 0) return [];
  const ostree = args.find((a) => splitArg(a).key === 'ostree');
  if (ostree !== undefined) refuseBothModes(native, ostree);
  return native.map(parseNativeKarg);
}

/** The one message for composefs kargs beside ostree= (also used by src/ostree/config.ts for the ostree path). */
export function refuseBothModes(native: readonly string[], ostree: string): never {
  fail(
    'ECMDLINE',
    `kernel command line: ${native.join(' and ')} and ${ostree} both present: expected one boot mode, ` +
      'composefs= (composefs-native) or ostree= (an ostree deployment); refusing rather than boot one and ignore the other\'s pin',
  );
}
