/**
 * prepare-root.conf loading and the boot configuration decision
 * (SPEC §1 "prepare-root.conf" and the composefs/androidboot/ostree= kargs).
 *
 * Two steps, kept apart so `plan`/`verify` can show the raw file as well as
 * the decision:
 *  - loadPrepareRootConf: find the file and read it the way ostree does,
 *    with GKeyFile's rules (src/ostree/keyfile.ts), into raw values: what
 *    g_key_file_get_value returns, which is how ostree reads every key here;
 *  - resolveBootConfig: validate every value, apply the kernel arguments on
 *    top (src/ostree/composefs-mode.ts for the composefs mode), and record where
 *    each decision came from.
 *
 * Value words (booleans, tristates, `signed`, `verity`, the ot-composefs
 * keywords) are matched case-insensitively after trailing blanks are
 * dropped. SPEC requires that for booleans (and accepts yes/no too, where
 * GLib's g_key_file_get_boolean takes only true/false/1/0); ostree compares
 * the tristate and `signed`/`verity` words case-sensitively. We accept
 * `Maybe`/`Signed` too because one file mixing case-insensitive
 * `[sysroot] readonly = True` with a case-sensitive `enabled = Yes` would be
 * a trap, and no accepted spelling changes meaning: every file ostree
 * accepts means the same here.
 */

import { isUtf8 } from 'node:buffer';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describeSystemError, fail } from '../errors.js';
import { formatKarg } from '../cmdline.js';
import { refuseBothModes } from '../composefs-native/kargs.js';
import { resolveComposefsMode, valueWord } from './composefs-mode.js';
import { decodeKeyFileString, parseKeyFile } from './keyfile.js';
import type { BootConfig, KernelArgs, PrepareRootConf } from './model.js';

export { KARG_COMPOSEFS, KARG_OT_COMPOSEFS, parseTristateWord } from './composefs-mode.js';

/** Locations inside the initramfs root, in load order (the later one replaces the earlier). */
export const CONF_PATHS = ['/usr/lib/ostree/prepare-root.conf', '/etc/ostree/prepare-root.conf'] as const;
export const DEFAULT_KEYPATH = '/etc/ostree/initramfs-root-binding.key';
/** The repo config consulted for `[sysroot] readonly`, relative to SYSROOT. */
export const REPO_CONFIG = 'ostree/repo/config';

/**
 * A prepare-root.conf is a few lines; anything near this size is not one. Bounding the read keeps
 * a stray huge file from stalling the initramfs.
 */
const MAX_CONF_BYTES = 1024 * 1024;

/** Sections and keys prepare-root reads; others in these sections are reported as unknown. */
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = {
  composefs: ['enabled', 'keypath'],
  sysroot: ['readonly'],
  root: ['transient', 'transient-ro'],
  etc: ['transient'],
};

type Sections = PrepareRootConf['sections'];
type Lines = NonNullable<PrepareRootConf['lines']>;

const BOOLEANS: Readonly<Record<string, boolean>> = {
  true: true, yes: true, '1': true,
  false: false, no: false, '0': false,
};
const BOOL_ACCEPTED = 'true, false, yes, no, 1, 0';

// ---------------------------------------------------------------------------
// Reading key files

/**
 * Key-file text (GKeyFile rules, src/ostree/keyfile.ts) into raw values per
 * section and the line each came from. Throws ECONFIG naming `file` and the
 * line for anything GLib would refuse to load.
 */
export function readKeyFileText(text: string, file: string): { sections: Sections; lines: Lines } {
  const sections = Object.create(null) as Sections;
  const lines = Object.create(null) as Lines;
  for (const [group, keys] of parseKeyFile(text, file)) {
    const values = Object.create(null) as Record<string, string>;
    const at = Object.create(null) as Record<string, number>;
    for (const [key, entry] of keys) {
      values[key] = entry.value;
      at[key] = entry.line;
    }
    sections[group] = values;
    lines[group] = at;
  }
  return { sections, lines };
}

/** Read a small text file; null if it does not exist. Anything else odd is ECONFIG naming the path. */
export function readConfigFile(path: string): string | null {
  let st;
  try {
    // One of the two prepare-root.conf files is usually absent: asking
    // stat not to throw for ENOENT costs 8 us here instead of 72 us for a
    // thrown-and-caught error (measured, Node 20).
    st = statSync(path, { throwIfNoEntry: false });
  } catch (e) {
    fail('ECONFIG', `${path}: cannot stat: ${describeSystemError(e)}`);
  }
  if (st === undefined) return null;
  if (!st.isFile()) fail('ECONFIG', `${path}: not a regular file: expected a config file or nothing`);
  if (st.size > MAX_CONF_BYTES) fail('ECONFIG', `${path}: ${st.size} bytes: expected at most ${MAX_CONF_BYTES}`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail('ECONFIG', `${path}: cannot read: ${describeSystemError(e)}`);
  }
  // ostree reads prepare-root.conf with glnx_fd_readall_utf8, which refuses
  // anything that is not UTF-8, a NUL byte included (g_utf8_validate); so do
  // we. (isUtf8 rather than a fatal TextDecoder: the decoder's first use
  // costs about a millisecond at boot, opening an ICU converter.) A
  // byte-order mark is kept: GKeyFile does not skip it, and neither does
  // src/ostree/keyfile.ts, which names it.
  const nul = bytes.indexOf(0);
  if (nul >= 0) fail('ECONFIG', `${path}: a NUL byte at offset ${nul}: expected UTF-8 text`);
  if (!isUtf8(bytes)) fail('ECONFIG', `${path}: not valid UTF-8`);
  return bytes.toString('utf8');
}

/**
 * Load prepare-root.conf from the initramfs root. Both files are read and
 * parsed (ostree loads both, so a broken /usr/lib file is an error even when
 * /etc has one); the /etc file, if present, replaces /usr/lib entirely.
 */
export function loadPrepareRootConf(initramfsRoot: string): PrepareRootConf {
  let result: PrepareRootConf = { path: null, sections: Object.create(null) as Sections };
  for (const rel of CONF_PATHS) {
    const path = join(initramfsRoot, rel);
    const text = readConfigFile(path);
    if (text === null) continue;
    result = { path, ...readKeyFileText(text, path) };
  }
  return result;
}

/** `[section] key` entries present in known sections but not read by prepare-root (for warnings). */
export function unknownConfigKeys(conf: PrepareRootConf): string[] {
  const out: string[] = [];
  for (const [section, keys] of Object.entries(KNOWN_KEYS)) {
    const sec = conf.sections[section];
    if (!sec) continue;
    for (const key of Object.keys(sec)) {
      if (!keys.includes(key)) out.push(`[${section}] ${key}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Value parsing

/** One raw value of a key file, and how messages name it. */
interface ConfValue {
  raw: string;
  /** `FILE [section] key`, for sources. */
  source: string;
  /** `FILE: line N: [section] key`, for messages. */
  where: string;
  /** `FILE line N`, for messages that name the key first. */
  at: string;
}

function confGet(conf: { path: string | null; sections: Sections; lines?: Lines }, section: string, key: string): ConfValue | null {
  const sec = conf.sections[section];
  if (conf.path === null || !sec || !Object.hasOwn(sec, key)) return null;
  const line = conf.lines?.[section]?.[key];
  return {
    raw: sec[key]!,
    source: `${conf.path} [${section}] ${key}`,
    where: `${conf.path}: ${line === undefined ? '' : `line ${line}: `}[${section}] ${key}`,
    at: line === undefined ? conf.path : `${conf.path} line ${line}`,
  };
}

function badConf(v: ConfValue, accepted: string): never {
  fail('ECONFIG', `${v.where} = ${JSON.stringify(v.raw)}: expected one of ${accepted}`);
}

function badKarg(key: string, value: string | null, accepted: string): never {
  const shown = value === null ? `${key} (no value)` : `${key}=${JSON.stringify(value)}`;
  fail('ECMDLINE', `kernel command line: ${shown}: expected ${accepted}`);
}

/** Parse a boolean word; null if it is not one. */
export function parseBooleanWord(value: string): boolean | null {
  const v = BOOLEANS[valueWord(value)];
  return v === undefined ? null : v;
}

interface Decided<T> {
  value: T;
  source: string;
}

/** A boolean from a key file: the value and where it came from, or the default. */
function confBool(conf: PrepareRootConf, section: string, key: string, dflt: Decided<boolean>): Decided<boolean> {
  const v = confGet(conf, section, key);
  if (v === null) return dflt;
  const b = parseBooleanWord(v.raw);
  if (b === null) badConf(v, BOOL_ACCEPTED);
  return { value: b, source: v.source };
}

/** The kernel arguments of composefs-setup-root's mode (SPEC §6); a bare `composefs` selects it too. */
export const COMPOSEFS_NATIVE_KARGS = ['composefs', 'composefs.digest'] as const;

/**
 * The composefs-native kargs pin the image to boot: an ostree decision that
 * went ahead beside them would drop that pin. The boot, `plan` and `verify`
 * send them to src/composefs-native/ before this point; anything else that
 * asks for an ostree decision with them (preflight) is refused, and with
 * ostree= too the message names both (issue 14).
 */
function refuseComposefsNativeKargs(kargs: KernelArgs): void {
  const native = COMPOSEFS_NATIVE_KARGS.filter((k) => kargs.has(k)).map((k) => formatKarg(k, kargs.get(k) ?? null));
  if (native.length === 0) return;
  const ostree = kargs.has('ostree') ? formatKarg('ostree', kargs.get('ostree') ?? null) : null;
  if (ostree) refuseBothModes(native, ostree);
  fail(
    'ECMDLINE',
    `kernel command line: ${native.join(' and ')} selects the composefs-native mode (composefs-setup-root), ` +
      'which the boot, cfsroot plan and cfsroot verify handle but this command does not: ' +
      'expected ostree=/ostree/boot.N/<os>/<bootcsum>/<serial>; check a composefs-native entry with cfsroot verify --cmdline',
  );
}

/** ostree= or the androidboot.* slot selection (which wins over ostree=): kernel arguments only. */
export function resolveOstreeTarget(kargs: KernelArgs): Decided<string> {
  refuseComposefsNativeKargs(kargs);
  const SLOT = 'androidboot.slot_suffix';
  if (kargs.has(SLOT)) {
    const v = kargs.get(SLOT) ?? null;
    if (v === '_a') return { value: '/ostree/root.a', source: `karg ${SLOT}=_a` };
    if (v === '_b') return { value: '/ostree/root.b', source: `karg ${SLOT}=_b` };
    badKarg(SLOT, v, 'one of _a, _b');
  }
  // Non-A/B Android boot: any androidboot.* argument means the single slot root.a.
  for (const [key, value] of kargs) {
    if (key.startsWith('androidboot.')) {
      return { value: '/ostree/root.a', source: `karg ${formatKarg(key, value)} (androidboot without A/B slot)` };
    }
  }
  if (!kargs.has('ostree')) {
    // SPEC §8: at boot the unit's ConditionKernelCommandLine=ostree skips it
    // silently in this case; run by hand, say so and where to fix it.
    fail(
      'ECMDLINE',
      'kernel command line: no ostree= argument (and no androidboot.*): expected ostree=/ostree/boot.N/<os>/<bootcsum>/<serial>; ' +
        "add it to the boot entry's options (without it ConditionKernelCommandLine=ostree skips the cfsroot unit and the root is not prepared)",
    );
  }
  const v = kargs.get('ostree') ?? null;
  if (v === null || v.trim() === '') badKarg('ostree', v, 'a path such as /ostree/boot.1/<os>/<bootcsum>/0');
  return { value: v, source: `karg ostree=${v}` };
}

/**
 * `systemd.volatile` is on unless its value is one systemd's parse_boolean
 * reads as false (a bare `systemd.volatile` means yes; `state`/`overlay` are
 * modes, so on).
 */
function resolveSystemdVolatile(kargs: KernelArgs): Decided<boolean> {
  if (!kargs.has('systemd.volatile')) return { value: false, source: 'default' };
  const v = kargs.get('systemd.volatile') ?? null;
  const off = v !== null && ['0', 'no', 'n', 'false', 'f', 'off'].includes(v.toLowerCase());
  return { value: !off, source: `karg ${formatKarg('systemd.volatile', v)}` };
}

/**
 * `[sysroot] readonly` in SYSROOT/ostree/repo/config, read with the same
 * GKeyFile rules (ostree loads it with g_key_file_load_from_file). A missing
 * file or key means "not configured" (false), as in ostree. A file GLib
 * would not load, or a bad value, is an error naming the file, where ostree
 * prints a warning and takes false: ostree itself writes this file, so one
 * that does not parse was not left by it.
 */
function repoConfigReadonly(sysroot: string): Decided<boolean> | null {
  const path = join(sysroot, REPO_CONFIG);
  const text = readConfigFile(path);
  if (text === null) return null;
  const conf = { path, ...readKeyFileText(text, path) };
  if (confGet(conf, 'sysroot', 'readonly') === null) return null;
  return confBool(conf, 'sysroot', 'readonly', { value: false, source: 'default' });
}

/**
 * Decide the boot configuration from the kernel arguments and
 * prepare-root.conf (SPEC §1). `sysroot` is where the physical root is
 * mounted (for the repo config fallback of `[sysroot] readonly`).
 * Throws CfsError ECONFIG / ECMDLINE naming the offending key or karg.
 */
export function resolveBootConfig(kargs: KernelArgs, conf: PrepareRootConf, sysroot: string): BootConfig {
  const file = conf.path;

  // composefs: the config's `enabled` (validated even when a karg overrides
  // it, as ostree does) and the two kargs, combined so no pin is dropped.
  const cfs = resolveComposefsMode(kargs, confGet(conf, 'composefs', 'enabled'));
  const sources: Record<string, string> = { ...cfs.sources };

  // keypath: only read when signing, but validated always so a typo shows up
  // before someone turns signing on. ostree reads it raw (get_value); GLib's
  // string reading would decode escapes. Where the two differ, refuse rather
  // than pick one.
  let keypath: Decided<string> = { value: DEFAULT_KEYPATH, source: 'default' };
  const rawKeypath = confGet(conf, 'composefs', 'keypath');
  if (rawKeypath !== null) {
    if (!rawKeypath.raw.startsWith('/')) {
      fail('ECONFIG', `${rawKeypath.where} = ${JSON.stringify(rawKeypath.raw)}: expected an absolute path inside the initramfs`);
    }
    const decoded = decodeKeyFileString(rawKeypath.raw);
    if (!('value' in decoded) || decoded.value !== rawKeypath.raw) {
      fail(
        'ECONFIG',
        `${rawKeypath.where} = ${JSON.stringify(rawKeypath.raw)}: a backslash, which ostree keeps as written but GKeyFile's ` +
          'string reading treats as an escape: expected a path without backslashes',
      );
    }
    keypath = { value: rawKeypath.raw, source: rawKeypath.source };
  }
  sources.keypath = keypath.source;

  // sysroot.readonly: default follows composefs=yes; when it ends up false
  // without composefs, the repo config may still ask for a read-only sysroot.
  let readonly = confBool(conf, 'sysroot', 'readonly', {
    value: cfs.composefs === 'yes',
    source: cfs.composefs === 'yes' ? 'default (composefs yes)' : 'default (composefs not yes)',
  });
  if (!readonly.value && cfs.composefs !== 'yes') {
    const fromRepo = repoConfigReadonly(sysroot);
    if (fromRepo) readonly = fromRepo;
  }
  sources.sysrootReadonly = readonly.source;

  // [root] transient / transient-ro: exclusive, -ro implies transient, both need composefs.
  const no = { value: false, source: 'default' };
  const transient = confBool(conf, 'root', 'transient', no);
  const transientRo = confBool(conf, 'root', 'transient-ro', no);
  if (transient.value && transientRo.value) {
    fail('ECONFIG', `${file}: [root] transient and [root] transient-ro are both true: expected at most one (transient-ro already implies transient)`);
  }
  for (const [key, d] of [['transient', transient], ['transient-ro', transientRo]] as const) {
    if (d.value && cfs.composefs === 'no') {
      fail('ECONFIG', `${file}: [root] ${key} = true requires composefs, but composefs is "no" (from ${cfs.sources.composefs}): expected [composefs] enabled other than no`);
    }
  }
  sources.rootTransient = transientRo.value ? transientRo.source : transient.source;
  sources.rootTransientRo = transientRo.source;

  const etcTransient = confBool(conf, 'etc', 'transient', no);
  sources.etcTransient = etcTransient.source;

  const target = resolveOstreeTarget(kargs);
  sources.ostreeTarget = target.source;
  const volatile = resolveSystemdVolatile(kargs);
  sources.systemdVolatile = volatile.source;

  return {
    composefs: cfs.composefs,
    composefsVerity: cfs.verity,
    composefsSigned: cfs.signed,
    composefsDigest: cfs.digest,
    keypath: keypath.value,
    sysrootReadonly: readonly.value,
    rootTransient: transient.value || transientRo.value,
    rootTransientRo: transientRo.value,
    etcTransient: etcTransient.value,
    ostreeTarget: target.value,
    systemdVolatile: volatile.value,
    sources,
  };
}
