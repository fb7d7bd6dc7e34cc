/**
 * The composefs mode: what `[composefs] enabled`, the karg
 * `ostree.prepare-root.composefs=` and the karg `ot-composefs=` ask for,
 * combined so that a pin is never dropped (SPEC §1, with the deviation
 * README "Modes" and docs/threat-model.md describe; issue 13 item 7).
 *
 * Each source asks for a mode (no | maybe | yes), maybe verity, and maybe a
 * pin: a signature (`signed`) or an image digest (`ot-composefs=digest=`).
 * The rule:
 *  1. The two kargs, when both are given, must agree: the same mode, or two
 *     pins (signed + digest=), which add up. Anything else is refused, naming
 *     both. So is one karg given twice with different values.
 *  2. A karg replaces the config's mode, as in ostree, and keeps the config's
 *     verity unless the mode ends up no. But a karg without a pin cannot
 *     replace `enabled = signed`: refused, naming both. A pinning karg adds
 *     its pin to the config's (signed + digest= requires both).
 * ostree instead lets `ostree.prepare-root.composefs=` win silently over
 * the other karg and over the config, signature included.
 *
 * Value words are matched case-insensitively after dropping trailing
 * blanks (a key-file value keeps them; GLib's boolean reading ignores them).
 * ostree compares `signed` and `verity` exactly and the tristate words
 * after stripping blanks; no word ostree accepts means anything else here.
 */

import { fail } from '../errors.js';
import { formatKarg } from '../cmdline.js';
import { trimTrailingBlanks } from './keyfile.js';
import type { KernelArgs, Tristate } from './model.js';
import { asciiLower, isLowerHex } from '../text.js';

export const KARG_COMPOSEFS = 'ostree.prepare-root.composefs';
export const KARG_OT_COMPOSEFS = 'ot-composefs';

const TRISTATES: Readonly<Record<string, Tristate>> = {
  yes: 'yes', true: 'yes', '1': 'yes',
  no: 'no', false: 'no', '0': 'no',
  maybe: 'maybe',
};
export const TRISTATE_ACCEPTED = 'yes, no, maybe, true, false, 1, 0';

/** A value word as compared: trailing key-file blanks dropped, ASCII letters lowercased. */
export function valueWord(value: string): string {
  return asciiLower(trimTrailingBlanks(value));
}

/** Parse a tristate word; null if it is not one. */
export function parseTristateWord(value: string): Tristate | null {
  return TRISTATES[valueWord(value)] ?? null;
}

/** `[composefs] enabled` as read from the file, or null when the file does not set it. */
export interface ConfigEnabled {
  raw: string;
  /** For sources: `FILE [composefs] enabled`. */
  source: string;
  /** For messages: `FILE: line N: [composefs] enabled`. */
  where: string;
  /** For messages naming it beside a karg: `FILE line N`. */
  at: string;
}

export interface ComposefsMode {
  composefs: Tristate;
  verity: boolean;
  signed: boolean;
  /** Lowercase hex, or null. */
  digest: string | null;
  /** Where each of the above came from ('none' for a requirement nobody made). */
  sources: { composefs: string; composefsVerity: string; composefsSigned: string; composefsDigest: string };
}

/** What one source asks for. */
interface Ask {
  composefs: Tristate;
  verity: boolean;
  signed: boolean;
  digest: string | null;
  /** How messages name it: `ot-composefs=on`, `[composefs] enabled = signed (/etc/ostree/prepare-root.conf line 2)`. */
  label: string;
  /** How sources name it: `karg ot-composefs=on`, `/etc/ostree/prepare-root.conf [composefs] enabled`. */
  source: string;
}

const pinned = (a: Ask): boolean => a.signed || a.digest !== null;

function pinName(a: Ask): string {
  if (a.signed && a.digest !== null) return 'the signature and the image digest';
  return a.signed ? 'the signature check' : 'the image digest';
}

function badKarg(key: string, value: string | null, accepted: string): never {
  const shown = value === null ? `${key} (no value)` : `${key}=${JSON.stringify(value)}`;
  fail('ECMDLINE', `kernel command line: ${shown}: expected ${accepted}`);
}

function ask(composefs: Tristate, verity: boolean, signed: boolean, digest: string | null, label: string, source: string): Ask {
  return { composefs, verity, signed, digest, label, source };
}

/** `[composefs] enabled`: signed | verity | tristate; absent means no. */
function askFromConfig(enabled: ConfigEnabled | null): Ask {
  if (enabled === null) return ask('no', false, false, null, 'the default (no)', 'default');
  const label = `[composefs] enabled = ${enabled.raw} (${enabled.at})`;
  const word = valueWord(enabled.raw);
  if (word === 'signed') return ask('yes', true, true, null, label, enabled.source);
  if (word === 'verity') return ask('yes', true, false, null, label, enabled.source);
  const t = parseTristateWord(enabled.raw);
  if (t === null) {
    fail('ECONFIG', `${enabled.where} = ${JSON.stringify(enabled.raw)}: expected one of ${TRISTATE_ACCEPTED}, signed, verity`);
  }
  return ask(t, false, false, null, label, enabled.source);
}

/**
 * The one value of `key` on the command line, or undefined if absent. A key
 * given twice with different values is refused: ostree reads the first and
 * ignores the rest, which could drop a pin written later.
 */
function onlyValue(kargs: KernelArgs, key: string): string | null | undefined {
  const all = kargs.all(key);
  const other = all.find((v) => v !== all[0]);
  if (other !== undefined) {
    fail(
      'ECMDLINE',
      `kernel command line: ${formatKarg(key, all[0]!)} and ${formatKarg(key, other)}: ${key} given twice with different values: ` +
        'expected it once (cfsroot does not pick one)',
    );
  }
  return all.length === 0 ? undefined : all[0];
}

/** `ostree.prepare-root.composefs=signed|<tristate>` (ostree's karg). */
function askFromPrepareRootKarg(v: string | null): Ask {
  const accepted = `one of signed, ${TRISTATE_ACCEPTED}`;
  if (v === null) badKarg(KARG_COMPOSEFS, v, accepted);
  const label = formatKarg(KARG_COMPOSEFS, v);
  if (valueWord(v) === 'signed') return ask('yes', true, true, null, label, `karg ${label}`);
  const t = parseTristateWord(v);
  if (t === null) badKarg(KARG_COMPOSEFS, v, accepted);
  return ask(t, false, false, null, label, `karg ${label}`);
}

/** `ot-composefs=off|maybe|on|signed|digest=<64 hex>` (the seed documents' karg). */
function askFromOtKarg(v: string | null): Ask {
  const accepted = 'one of off, maybe, on, signed, digest=<64 hex>';
  if (v === null) badKarg(KARG_OT_COMPOSEFS, v, accepted);
  const label = formatKarg(KARG_OT_COMPOSEFS, v);
  const source = `karg ${label}`;
  const word = valueWord(v);
  switch (word) {
    case 'off':
      return ask('no', false, false, null, label, source);
    case 'maybe':
      return ask('maybe', false, false, null, label, source);
    case 'on':
      return ask('yes', false, false, null, label, source);
    case 'signed':
      return ask('yes', true, true, null, label, source);
  }
  if (!word.startsWith('digest=')) badKarg(KARG_OT_COMPOSEFS, v, accepted);
  const hex = word.slice('digest='.length);
  if (!isLowerHex(hex)) {
    badKarg(KARG_OT_COMPOSEFS, v, 'digest= followed by 64 hex digits (0-9, a-f), found a non-hex character');
  }
  if (hex.length !== 64) {
    badKarg(KARG_OT_COMPOSEFS, v, `digest= followed by exactly 64 hex digits (a sha256 fs-verity digest), got ${hex.length}`);
  }
  return ask('yes', true, false, hex, label, source);
}

const sameAsk = (a: Ask, b: Ask): boolean =>
  a.composefs === b.composefs && a.verity === b.verity && a.signed === b.signed && a.digest === b.digest;

/** Rule 1: both kargs given. */
function combineKargs(p: Ask | null, o: Ask | null): Ask | null {
  if (p === null || o === null) return p ?? o;
  const label = `${p.label} with ${o.label}`;
  const source = `karg ${p.label} and karg ${o.label}`;
  if (sameAsk(p, o)) return { ...p, label, source };
  // The only two different pins: a signature (either karg) and a digest (ot-composefs only).
  if (pinned(p) && pinned(o)) {
    return ask('yes', true, p.signed || o.signed, p.digest ?? o.digest, label, source);
  }
  const why = pinned(p) || pinned(o)
    ? `${(pinned(p) ? o : p).label} would drop ${pinName(pinned(p) ? p : o)} that ${(pinned(p) ? p : o).label} asks for`
    : `they ask for different modes (${p.composefs} and ${o.composefs})`;
  fail('ECMDLINE', `kernel command line: ${p.label} and ${o.label} conflict: ${why}; expected one of them, or both meaning the same`);
}

/**
 * Decide the composefs mode from the config's `enabled` (null: not set) and
 * the two kargs. Throws ECONFIG for a bad `enabled` (even when a karg
 * overrides it, as ostree does), ECMDLINE for a bad or conflicting karg.
 */
export function resolveComposefsMode(kargs: KernelArgs, enabled: ConfigEnabled | null): ComposefsMode {
  const config = askFromConfig(enabled);
  const pv = onlyValue(kargs, KARG_COMPOSEFS);
  const ov = onlyValue(kargs, KARG_OT_COMPOSEFS);
  const karg = combineKargs(
    pv === undefined ? null : askFromPrepareRootKarg(pv),
    ov === undefined ? null : askFromOtKarg(ov),
  );

  let mode: Ask = config;
  let verityFrom = config;
  let signedFrom = config;
  if (karg !== null) {
    // Rule 2.
    if (config.signed && !pinned(karg)) {
      fail(
        'ECMDLINE',
        `kernel command line: ${karg.label} would turn off the signature check that ${config.label} requires: ` +
          'cfsroot never drops a pin; expected the karg removed, or one that keeps a pin (signed, digest=), or the config changed',
      );
    }
    const verity = karg.verity || (config.verity && karg.composefs !== 'no');
    verityFrom = karg.verity || !verity ? karg : config;
    signedFrom = karg.signed ? karg : config;
    mode = ask(karg.composefs, verity, karg.signed || config.signed, karg.digest, karg.label, karg.source);
  }
  if (mode.composefs === 'no') {
    // Nothing is mounted with composefs, so verity/signing cannot apply (and no pin is lost: rule 2).
    mode = { ...mode, verity: false, signed: false, digest: null };
  }
  return {
    composefs: mode.composefs,
    verity: mode.verity,
    signed: mode.signed,
    digest: mode.digest,
    sources: {
      composefs: mode.source,
      composefsVerity: mode.verity ? verityFrom.source : 'none',
      composefsSigned: mode.signed ? signedFrom.source : 'none',
      composefsDigest: mode.digest === null ? 'none' : mode.source,
    },
  };
}
