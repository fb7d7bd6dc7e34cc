/**
 * `/usr/lib/composefs/setup-root-conf.toml` in the initramfs (SPEC §6): how
 * the composefs-native boot mounts the root, /etc and /var. A missing file
 * means the defaults.
 *
 *   [root]  transient = bool                    a tmpfs upper over the whole root
 *   [etc]   mount = "none" | "bind" | "overlay" | "transient", or transient = bool
 *   [var]   the same
 *
 * As composefs-setup-root reads it (serde over the `toml` crate): `mount`
 * wins over `transient`, `transient = false` means the default, unknown keys
 * and tables are ignored, a value of the wrong type or an unknown `mount`
 * word is fatal, the words are lowercase and exact. bootc's reader adds two
 * aliases, `root` (= none) and `volatile` (= transient), accepted here too.
 * Defaults: etc = overlay (upper and work in the image's state directory),
 * var = bind (the state directory's var).
 *
 * Parsed with smol-toml, a complete TOML 1.0 parser (zero dependencies,
 * bundled by esbuild): a subset parser of our own would read inline tables
 * (`etc = { mount = "bind" }`), dotted keys (`etc.mount = "bind"`), literal
 * strings and escapes differently from the `toml` crate, and any difference
 * here changes which /etc the system boots with.
 */

import { parse, TomlError } from 'smol-toml';
import { fail } from '../errors.js';
import { readConfigFile } from '../ostree/config.js';

export const SETUP_ROOT_CONF = '/usr/lib/composefs/setup-root-conf.toml';

/** How /etc or /var is mounted in the new root. */
export type SubdirMount = 'none' | 'bind' | 'overlay' | 'transient';

export interface SetupRootConf {
  /** Absolute path of the file read, or null (absent: the defaults). */
  path: string | null;
  /** A tmpfs upper over the composefs root (overlay source `transient`). */
  rootTransient: boolean;
  etc: SubdirMount;
  var: SubdirMount;
  /** Where each value came from, for verify: "default" or "FILE [etc] mount". */
  sources: { rootTransient: string; etc: string; var: string };
}

export const SUBDIR_DEFAULTS: Readonly<Record<'etc' | 'var', SubdirMount>> = { etc: 'overlay', var: 'bind' };

const MOUNT_WORDS: Readonly<Record<string, SubdirMount>> = {
  none: 'none',
  bind: 'bind',
  overlay: 'overlay',
  transient: 'transient',
  // bootc's aliases
  root: 'none',
  volatile: 'transient',
};
const MOUNT_ACCEPTED = '"none", "bind", "overlay", "transient" (bootc: "root" = none, "volatile" = transient)';

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** How a TOML value reads in a message. */
function shown(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  if (isTable(v)) return 'a table';
  if (v instanceof Date) return 'a date';
  return String(v);
}

function tableOf(doc: Table, name: string, file: string): Table | null {
  if (!Object.hasOwn(doc, name)) return null;
  const t = doc[name];
  if (!isTable(t)) fail('ECONFIG', `${file}: [${name}] is ${shown(t)}: expected a table`);
  return t;
}

function boolOf(t: Table, table: string, key: string, file: string): boolean | null {
  if (!Object.hasOwn(t, key)) return null;
  const v = t[key];
  if (typeof v !== 'boolean') fail('ECONFIG', `${file}: [${table}] ${key} = ${shown(v)}: expected true or false`);
  return v;
}

function subdirMount(doc: Table, name: 'etc' | 'var', file: string): { mount: SubdirMount; source: string } {
  const dflt = { mount: SUBDIR_DEFAULTS[name], source: 'default' };
  const t = tableOf(doc, name, file);
  if (t === null) return dflt;
  // Both are checked, as serde does, even when `mount` makes `transient` moot.
  const transient = boolOf(t, name, 'transient', file);
  if (Object.hasOwn(t, 'mount')) {
    const v = t['mount'];
    const mount = typeof v === 'string' && Object.hasOwn(MOUNT_WORDS, v) ? MOUNT_WORDS[v]! : null;
    if (mount === null) fail('ECONFIG', `${file}: [${name}] mount = ${shown(v)}: expected one of ${MOUNT_ACCEPTED}`);
    return { mount, source: `${file} [${name}] mount` };
  }
  if (transient === true) return { mount: 'transient', source: `${file} [${name}] transient` };
  return dflt;
}

/** The configuration in `text` (the file's content); `file` names it in messages. Throws ECONFIG. */
export function parseSetupRootConf(text: string, file: string): SetupRootConf {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      // smol-toml's message carries a code excerpt after the first line.
      const first = e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '');
      fail('ECONFIG', `${file}: line ${e.line} column ${e.column}: ${first}: expected a TOML document`);
    }
    throw e;
  }
  const root = tableOf(doc, 'root', file);
  const rootTransient = root === null ? null : boolOf(root, 'root', 'transient', file);
  const etc = subdirMount(doc, 'etc', file);
  const vr = subdirMount(doc, 'var', file);
  return {
    path: file,
    rootTransient: rootTransient ?? false,
    etc: etc.mount,
    var: vr.mount,
    sources: {
      rootTransient: rootTransient === null ? 'default' : `${file} [root] transient`,
      etc: etc.source,
      var: vr.source,
    },
  };
}

/** The defaults, as a missing file gives them. */
export function defaultSetupRootConf(): SetupRootConf {
  return {
    path: null,
    rootTransient: false,
    etc: SUBDIR_DEFAULTS.etc,
    var: SUBDIR_DEFAULTS.var,
    sources: { rootTransient: 'default', etc: 'default', var: 'default' },
  };
}

/** Read the file from the initramfs root (missing = defaults); same file rules as prepare-root.conf. */
export function loadSetupRootConf(initramfsRoot: string): SetupRootConf {
  const path = `${initramfsRoot.replace(/\/+$/, '')}${SETUP_ROOT_CONF}`;
  const text = readConfigFile(path);
  return text === null ? defaultSetupRootConf() : parseSetupRootConf(text, path);
}
