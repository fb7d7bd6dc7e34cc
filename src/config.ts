/**
 * prepare-root.conf loading and the boot configuration decision
 * (SPEC §1 "prepare-root.conf" and the composefs/androidboot/ostree= kargs).
 *
 * Two steps, kept apart so `plan`/`verify` can show the raw file as well as
 * the decision:
 *  - loadPrepareRootConf: find and parse the file (ini, via the `ini`
 *    package) into plain strings, exactly as the user wrote them;
 *  - resolveBootConfig: validate every value, apply the kernel arguments on
 *    top, and record where each decision came from.
 *
 * Value words (booleans, tristates, `signed`, `verity`, the ot-composefs
 * keywords) are all matched case-insensitively. SPEC requires that for
 * booleans; ostree compares the tristate and `signed`/`verity` words
 * case-sensitively. We accept `Maybe`/`Signed` too because one file mixing
 * case-insensitive `[sysroot] readonly = True` with a case-sensitive
 * `enabled = Yes` would be a trap, and no accepted spelling changes meaning:
 * every file ostree accepts means the same here.
 */

import { isUtf8 } from 'node:buffer';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseIni } from 'ini';
import { describeSystemError, fail } from './errors.js';
import { formatKarg } from './cmdline.js';
import type { BootConfig, KernelArgs, PrepareRootConf, Tristate } from './model.js';

/** Locations inside the initramfs root, in load order (the later one replaces the earlier). */
export const CONF_PATHS = ['/usr/lib/ostree/prepare-root.conf', '/etc/ostree/prepare-root.conf'] as const;
export const DEFAULT_KEYPATH = '/etc/ostree/initramfs-root-binding.key';
/** The repo config consulted for `[sysroot] readonly`, relative to SYSROOT. */
export const REPO_CONFIG = 'ostree/repo/config';

export const KARG_COMPOSEFS = 'ostree.prepare-root.composefs';
export const KARG_OT_COMPOSEFS = 'ot-composefs';

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

type Sections = Record<string, Record<string, string>>;

const BOOLEANS: Readonly<Record<string, boolean>> = {
  true: true, yes: true, '1': true,
  false: false, no: false, '0': false,
};
const BOOL_ACCEPTED = 'true, false, yes, no, 1, 0';

const TRISTATES: Readonly<Record<string, Tristate>> = {
  yes: 'yes', true: 'yes', '1': 'yes',
  no: 'no', false: 'no', '0': 'no',
  maybe: 'maybe',
};
const TRISTATE_ACCEPTED = 'yes, no, maybe, true, false, 1, 0';

// ---------------------------------------------------------------------------
// Reading ini files

/**
 * Check the line structure GKeyFile (what ostree parses with) insists on and
 * the `ini` package silently tolerates or reinterprets: a line with no `=`
 * (ini makes it the boolean true), a key before any [section] (ini makes it a
 * top-level value), `key[]` (ini makes an array; GKeyFile a localised key
 * that prepare-root never reads). Refusing these keeps "what the user wrote"
 * and "what we read" the same thing. Returns the text with leading blanks
 * stripped, since GKeyFile allows indented lines and ini does not.
 */
function checkKeyFileStructure(text: string, file: string): string {
  const lines = text.split('\n');
  let inSection = false;
  const out: string[] = [];
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '').trimStart();
    out.push(line);
    const where = `${file}: line ${i + 1}`;
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    if (line.startsWith('[')) {
      const m = /^\[([^\]]*)\]\s*$/.exec(line);
      if (!m) fail('ECONFIG', `${where}: malformed section header ${JSON.stringify(line)}: expected [name]`);
      if (m[1]!.trim() === '') fail('ECONFIG', `${where}: empty section name: expected [name]`);
      inSection = true;
      return;
    }
    const eq = line.indexOf('=');
    if (eq < 0) fail('ECONFIG', `${where}: ${JSON.stringify(line)} is not a section or key = value line`);
    const key = line.slice(0, eq).trim();
    if (key === '') fail('ECONFIG', `${where}: empty key before '=': expected key = value`);
    if (!inSection) fail('ECONFIG', `${where}: key ${JSON.stringify(key)} before any [section]: expected a [section] header first`);
    if (key.includes('[') || key.includes(']')) {
      fail('ECONFIG', `${where}: key ${JSON.stringify(key)}: localised/array keys (key[...]) are not supported`);
    }
  });
  return out.join('\n');
}

/**
 * ini hands back booleans for `true`/`false`, null for `null`, and nested
 * objects for dotted section names ([a.b] -> {a: {b: ...}}). Turn it back
 * into flat section -> key -> string, the text the user typed, so
 * validation can quote it.
 */
function normaliseIni(parsed: Record<string, unknown>): Sections {
  const sections: Sections = Object.create(null) as Sections;
  const visit = (name: string, obj: Record<string, unknown>): void => {
    const sec: Record<string, string> = sections[name] ?? (Object.create(null) as Record<string, string>);
    sections[name] = sec;
    for (const [k, v] of Object.entries(obj)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        visit(`${name}.${k}`, v as Record<string, unknown>);
      } else if (Array.isArray(v)) {
        // Only reachable in lenient mode (strict refuses key[]); GKeyFile's
        // "last value wins" is the closest reading.
        sec[k] = String(v[v.length - 1] ?? '');
      } else {
        sec[k] = String(v);
      }
    }
  };
  for (const [name, v] of Object.entries(parsed)) {
    // Top-level scalars are keys outside any section: refused by the strict
    // check, ignored (like a GKeyFile that would not load) in lenient mode.
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) visit(name, v as Record<string, unknown>);
  }
  return sections;
}

/**
 * Parse ini text into flat string sections. `strict` applies GKeyFile's
 * structural rules (used for prepare-root.conf); the repo config is read
 * leniently since ostree writes it and only one key matters.
 */
export function parseKeyFile(text: string, file: string, strict = true): Sections {
  const body = strict ? checkKeyFileStructure(text, file) : text;
  return normaliseIni(parseIni(body) as Record<string, unknown>);
}

/** Read a small text file; null if it does not exist. Anything else odd is ECONFIG naming the path. */
function readConfigFile(path: string): string | null {
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
  if (!st.isFile()) fail('ECONFIG', `${path}: not a regular file: expected an ini file or nothing`);
  if (st.size > MAX_CONF_BYTES) fail('ECONFIG', `${path}: ${st.size} bytes: expected at most ${MAX_CONF_BYTES}`);
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    fail('ECONFIG', `${path}: cannot read: ${describeSystemError(e)}`);
  }
  // ostree reads the file as UTF-8 and refuses anything else; so do we.
  // (isUtf8 rather than a fatal TextDecoder: the decoder's first use costs
  // about a millisecond at boot, opening an ICU converter.)
  if (!isUtf8(bytes)) fail('ECONFIG', `${path}: not valid UTF-8`);
  const text = bytes.toString('utf8');
  // A leading byte-order mark is dropped, as the decoder did.
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
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
    result = { path, sections: parseKeyFile(text, path, true) };
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

function confGet(sections: Sections, section: string, key: string): string | undefined {
  const sec = sections[section];
  return sec && Object.hasOwn(sec, key) ? sec[key] : undefined;
}

/** "FILE: [section] key" for messages and sources. */
function confWhere(file: string, section: string, key: string): string {
  return `${file}: [${section}] ${key}`;
}

function badConf(file: string, section: string, key: string, value: string, accepted: string): never {
  fail('ECONFIG', `${confWhere(file, section, key)} = ${JSON.stringify(value)}: expected one of ${accepted}`);
}

function badKarg(key: string, value: string | null, accepted: string): never {
  const shown = value === null ? `${key} (no value)` : `${key}=${JSON.stringify(value)}`;
  fail('ECMDLINE', `kernel command line: ${shown}: expected ${accepted}`);
}

/** Parse a boolean word; null if it is not one. */
export function parseBooleanWord(value: string): boolean | null {
  const v = BOOLEANS[value.trim().toLowerCase()];
  return v === undefined ? null : v;
}

/** Parse a tristate word; null if it is not one. */
export function parseTristateWord(value: string): Tristate | null {
  return TRISTATES[value.trim().toLowerCase()] ?? null;
}

interface Decided<T> {
  value: T;
  source: string;
}

/** A boolean from a key file: the value and where it came from, or the default. */
function confBool(sections: Sections, file: string | null, section: string, key: string, dflt: Decided<boolean>): Decided<boolean> {
  const raw = confGet(sections, section, key);
  if (raw === undefined || file === null) return dflt;
  const v = parseBooleanWord(raw);
  if (v === null) badConf(file, section, key, raw, BOOL_ACCEPTED);
  return { value: v, source: `${file} [${section}] ${key}` };
}

// ---------------------------------------------------------------------------
// The decision

interface ComposefsState {
  composefs: Tristate;
  verity: boolean;
  signed: boolean;
  digest: string | null;
  source: string;
}

/** `[composefs] enabled`: signed | verity | tristate, default no. */
function composefsFromConf(conf: PrepareRootConf): ComposefsState {
  const raw = conf.path === null ? undefined : confGet(conf.sections, 'composefs', 'enabled');
  if (raw === undefined || conf.path === null) {
    return { composefs: 'no', verity: false, signed: false, digest: null, source: 'default' };
  }
  const source = `${conf.path} [composefs] enabled`;
  const word = raw.trim().toLowerCase();
  if (word === 'signed') return { composefs: 'yes', verity: true, signed: true, digest: null, source };
  if (word === 'verity') return { composefs: 'yes', verity: true, signed: false, digest: null, source };
  const t = parseTristateWord(raw);
  if (t === null) badConf(conf.path, 'composefs', 'enabled', raw, `${TRISTATE_ACCEPTED}, signed, verity`);
  return { composefs: t, verity: false, signed: false, digest: null, source };
}

/**
 * Apply the composefs kargs over the config. Like ostree, a karg replaces
 * `enabled` and signing, but leaves `verity` from the config as it was
 * (`enabled = verity` + `ostree.prepare-root.composefs=yes` still requires
 * verity). ot-composefs=digest= pins the image by its digest: the kernel
 * command line is the trust anchor then, so signing is off as with every
 * other non-`signed` karg value.
 */
function applyComposefsKargs(kargs: KernelArgs, base: ComposefsState, sources: Record<string, string>): ComposefsState {
  if (kargs.has(KARG_COMPOSEFS)) {
    const v = kargs.get(KARG_COMPOSEFS) ?? null;
    if (kargs.has(KARG_OT_COMPOSEFS)) {
      sources[KARG_OT_COMPOSEFS] = `ignored: ${KARG_COMPOSEFS}= takes precedence`;
    }
    const accepted = `one of signed, ${TRISTATE_ACCEPTED}`;
    if (v === null) badKarg(KARG_COMPOSEFS, v, accepted);
    const source = `karg ${formatKarg(KARG_COMPOSEFS, v)}`;
    if (v.trim().toLowerCase() === 'signed') {
      return { composefs: 'yes', verity: true, signed: true, digest: null, source };
    }
    const t = parseTristateWord(v);
    if (t === null) badKarg(KARG_COMPOSEFS, v, accepted);
    return { composefs: t, verity: base.verity, signed: false, digest: null, source };
  }
  if (kargs.has(KARG_OT_COMPOSEFS)) {
    const v = kargs.get(KARG_OT_COMPOSEFS) ?? null;
    const accepted = 'one of off, maybe, on, signed, digest=<64 hex>';
    if (v === null) badKarg(KARG_OT_COMPOSEFS, v, accepted);
    const source = `karg ${formatKarg(KARG_OT_COMPOSEFS, v)}`;
    const word = v.trim().toLowerCase();
    switch (word) {
      case 'off':
        return { composefs: 'no', verity: base.verity, signed: false, digest: null, source };
      case 'maybe':
        return { composefs: 'maybe', verity: base.verity, signed: false, digest: null, source };
      case 'on':
        return { composefs: 'yes', verity: base.verity, signed: false, digest: null, source };
      case 'signed':
        return { composefs: 'yes', verity: true, signed: true, digest: null, source };
    }
    if (word.startsWith('digest=')) {
      const hex = word.slice('digest='.length);
      if (!/^[0-9a-f]*$/.test(hex)) {
        badKarg(KARG_OT_COMPOSEFS, v, 'digest= followed by 64 hex digits (0-9, a-f), found a non-hex character');
      }
      if (hex.length !== 64) {
        badKarg(KARG_OT_COMPOSEFS, v, `digest= followed by exactly 64 hex digits (a sha256 fs-verity digest), got ${hex.length}`);
      }
      return { composefs: 'yes', verity: true, signed: false, digest: hex, source };
    }
    badKarg(KARG_OT_COMPOSEFS, v, accepted);
  }
  return base;
}

/** ostree= or the androidboot.* slot selection (which wins over ostree=): kernel arguments only. */
export function resolveOstreeTarget(kargs: KernelArgs): Decided<string> {
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
 * `[sysroot] readonly` in SYSROOT/ostree/repo/config. A missing file means
 * "not configured" (false), as in ostree; an unreadable file or a bad value
 * is an error naming the file.
 */
function repoConfigReadonly(sysroot: string): Decided<boolean> | null {
  const path = join(sysroot, REPO_CONFIG);
  const text = readConfigFile(path);
  if (text === null) return null;
  const sections = parseKeyFile(text, path, false);
  const raw = confGet(sections, 'sysroot', 'readonly');
  if (raw === undefined) return null;
  const v = parseBooleanWord(raw);
  if (v === null) badConf(path, 'sysroot', 'readonly', raw, BOOL_ACCEPTED);
  return { value: v, source: `${path} [sysroot] readonly` };
}

/**
 * Decide the boot configuration from the kernel arguments and
 * prepare-root.conf (SPEC §1). `sysroot` is where the physical root is
 * mounted (for the repo config fallback of `[sysroot] readonly`).
 * Throws CfsError ECONFIG / ECMDLINE naming the offending key or karg.
 */
export function resolveBootConfig(kargs: KernelArgs, conf: PrepareRootConf, sysroot: string): BootConfig {
  const sources: Record<string, string> = {};
  const file = conf.path;
  const sections = conf.sections;

  // composefs: config first (validated even when a karg overrides it, as
  // ostree does), then the kargs.
  let cfs = applyComposefsKargs(kargs, composefsFromConf(conf), sources);
  if (cfs.composefs === 'no') {
    // Nothing is mounted with composefs, so verity/signing cannot apply;
    // say so instead of carrying a dangling `verity: true`.
    cfs = { ...cfs, verity: false, signed: false, digest: null };
  }
  sources.composefs = cfs.source;
  sources.composefsVerity = cfs.source;
  sources.composefsSigned = cfs.source;
  sources.composefsDigest = cfs.digest === null ? 'none' : cfs.source;

  // keypath: only read when signing, but validated always so a typo shows up
  // before someone turns signing on.
  let keypath: Decided<string> = { value: DEFAULT_KEYPATH, source: 'default' };
  const rawKeypath = file === null ? undefined : confGet(sections, 'composefs', 'keypath');
  if (file !== null && rawKeypath !== undefined) {
    if (!rawKeypath.startsWith('/')) {
      fail('ECONFIG', `${confWhere(file, 'composefs', 'keypath')} = ${JSON.stringify(rawKeypath)}: expected an absolute path inside the initramfs`);
    }
    keypath = { value: rawKeypath, source: `${file} [composefs] keypath` };
  }
  sources.keypath = keypath.source;

  // sysroot.readonly: default follows composefs=yes; when it ends up false
  // without composefs, the repo config may still ask for a read-only sysroot.
  let readonly = confBool(sections, file, 'sysroot', 'readonly', {
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
  const transient = confBool(sections, file, 'root', 'transient', no);
  const transientRo = confBool(sections, file, 'root', 'transient-ro', no);
  if (transient.value && transientRo.value) {
    fail('ECONFIG', `${file}: [root] transient and [root] transient-ro are both true: expected at most one (transient-ro already implies transient)`);
  }
  for (const [key, d] of [['transient', transient], ['transient-ro', transientRo]] as const) {
    if (d.value && cfs.composefs === 'no') {
      fail('ECONFIG', `${file}: [root] ${key} = true requires composefs, but composefs is "no" (from ${cfs.source}): expected [composefs] enabled other than no`);
    }
  }
  sources.rootTransient = transientRo.value ? transientRo.source : transient.source;
  sources.rootTransientRo = transientRo.source;

  const etcTransient = confBool(sections, file, 'etc', 'transient', no);
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
