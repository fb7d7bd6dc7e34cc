/**
 * prepare-root.conf loading and the boot configuration decision
 * (src/ostree/config.ts, SPEC §1): /etc replacing /usr/lib, GKeyFile reading,
 * every accepted value of every key, refusals naming file + section + key +
 * accepted values, karg precedence, androidboot, transient rules,
 * sysroot.readonly defaulting and the repo config fallback.
 */
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CfsError, type ErrorCode } from '../src/errors.js';
import { parseKernelCmdline } from '../src/cmdline.js';
import {
  DEFAULT_KEYPATH,
  loadPrepareRootConf,
  parseBooleanWord,
  parseTristateWord,
  resolveBootConfig,
  unknownConfigKeys,
} from '../src/ostree/config.js';
import type { BootConfig, PrepareRootConf, Tristate } from '../src/ostree/model.js';

const USR = 'usr/lib/ostree/prepare-root.conf';
const ETC = 'etc/ostree/prepare-root.conf';
const BOOL_WORDS = ['true', 'false', 'yes', 'no', '1', '0'];
const TRISTATE_WORDS = ['yes', 'no', 'maybe', 'true', 'false', '1', '0'];

/** A fresh directory tree: { relative path: content }. Removed after the test. */
function tree(t: ExecutionContext, files: Record<string, string | Buffer> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-config-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  return dir;
}

/** Load an /etc prepare-root.conf with this text, resolve with these kargs. */
function decide(t: ExecutionContext, confText: string | null, cmdline = 'ostree=/ostree/boot.1/os/x/0', repoConfig?: string) {
  const root = tree(t, confText === null ? {} : { [ETC]: confText });
  const sysroot = tree(t, repoConfig === undefined ? {} : { 'ostree/repo/config': repoConfig });
  const conf = loadPrepareRootConf(root);
  return { conf, root, sysroot, config: resolveBootConfig(parseKernelCmdline(cmdline), conf, sysroot) };
}

/** Assert a CfsError with this code whose message contains every part. */
function refuses(t: ExecutionContext, fn: () => unknown, code: ErrorCode, parts: string[]): CfsError {
  const e = t.throws(fn);
  t.true(e instanceof CfsError, `expected CfsError, got ${String(e)}`);
  const err = e as CfsError;
  t.is(err.code, code, err.message);
  for (const p of parts) t.true(err.message.includes(p), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(p)}`);
  return err;
}

/** Resolve with an in-memory conf (no file), to test karg handling alone. */
function fromKargs(cmdline: string, sections: PrepareRootConf['sections'] = {}, file = '/x/prepare-root.conf'): BootConfig {
  const conf: PrepareRootConf = { path: Object.keys(sections).length ? file : null, sections };
  return resolveBootConfig(parseKernelCmdline(cmdline), conf, '/nonexistent-sysroot');
}

// ---------------------------------------------------------------------------
// Loading

test('no files: empty config, everything default', (t) => {
  const { conf, config } = decide(t, null);
  t.is(conf.path, null);
  t.deepEqual(Object.keys(conf.sections), []);
  t.is(config.composefs, 'no');
  t.false(config.composefsVerity);
  t.false(config.composefsSigned);
  t.is(config.composefsDigest, null);
  t.is(config.keypath, DEFAULT_KEYPATH);
  t.false(config.sysrootReadonly);
  t.false(config.rootTransient);
  t.false(config.rootTransientRo);
  t.false(config.etcTransient);
  t.is(config.ostreeTarget, '/ostree/boot.1/os/x/0');
  t.false(config.systemdVolatile);
  t.is(config.sources.composefs, 'default');
});

test('/usr/lib file alone is used', (t) => {
  const root = tree(t, { [USR]: '[composefs]\nenabled = yes\n' });
  const conf = loadPrepareRootConf(root);
  t.is(conf.path, path.join(root, USR));
  t.is(conf.sections.composefs?.enabled, 'yes');
});

test('/etc file replaces /usr/lib entirely (no key merging)', (t) => {
  const root = tree(t, {
    [USR]: '[composefs]\nenabled = signed\nkeypath = /usr/key\n[etc]\ntransient = true\n',
    [ETC]: '[composefs]\nenabled = maybe\n',
  });
  const conf = loadPrepareRootConf(root);
  t.is(conf.path, path.join(root, ETC));
  t.deepEqual({ ...conf.sections.composefs }, { enabled: 'maybe' });
  t.is(conf.sections.etc, undefined);
  const c = resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root);
  t.is(c.composefs, 'maybe');
  t.false(c.composefsSigned);
  t.is(c.keypath, DEFAULT_KEYPATH);
  t.false(c.etcTransient);
  t.is(c.sources.composefs, `${path.join(root, ETC)} [composefs] enabled`);
});

test('an empty /etc file still replaces /usr/lib', (t) => {
  const root = tree(t, { [USR]: '[composefs]\nenabled = yes\n', [ETC]: '' });
  const conf = loadPrepareRootConf(root);
  t.is(conf.path, path.join(root, ETC));
  t.is(resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root).composefs, 'no');
});

test('a structurally broken /usr/lib file is an error even when /etc exists', (t) => {
  const root = tree(t, { [USR]: '[composefs]\nenabled\n', [ETC]: '[composefs]\nenabled = yes\n' });
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, USR), 'line 2', '"enabled"']);
});

test('a directory where the file should be is ECONFIG naming the path', (t) => {
  const root = tree(t);
  fs.mkdirSync(path.join(root, ETC), { recursive: true });
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, ETC), 'not a regular file']);
});

test('a symlink loop as the file is ECONFIG naming the path', (t) => {
  const root = tree(t);
  const p = path.join(root, ETC);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.symlinkSync('prepare-root.conf', p);
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [p, 'ELOOP']);
});

test('a symlinked config file is followed', (t) => {
  const root = tree(t, { 'elsewhere.conf': '[composefs]\nenabled = verity\n' });
  fs.mkdirSync(path.join(root, 'etc/ostree'), { recursive: true });
  fs.symlinkSync('../../elsewhere.conf', path.join(root, ETC));
  t.is(loadPrepareRootConf(root).sections.composefs?.enabled, 'verity');
});

test('invalid UTF-8 is ECONFIG', (t) => {
  const root = tree(t, { [ETC]: Buffer.from([0x5b, 0x61, 0x5d, 0x0a, 0xff, 0xfe, 0x3d, 0x31]) });
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, ETC), 'UTF-8']);
});

test('an oversized file is ECONFIG', (t) => {
  const root = tree(t, { [ETC]: '#'.repeat(1024 * 1024 + 1) });
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, ETC), 'at most']);
});

// ---------------------------------------------------------------------------
// GKeyFile reading (the rules themselves: test/keyfile.test.ts): values reach validation as GLib reads them

test('values stay strings as written; # comments, blanks and indentation are fine', (t) => {
  const root = tree(t, {
    [ETC]: '# comment\n\n  [sysroot]\n  readonly = true\n[etc]\ntransient=false\n[x]\nk = null\n',
  });
  const s = loadPrepareRootConf(root).sections;
  t.is(s.sysroot?.readonly, 'true');
  t.is(typeof s.sysroot?.readonly, 'string');
  t.is(s.etc?.transient, 'false');
  t.is(s.x?.k, 'null');
});

test('CRLF line endings are accepted', (t) => {
  const root = tree(t, { [ETC]: '[composefs]\r\nenabled = maybe\r\n' });
  t.is(loadPrepareRootConf(root).sections.composefs?.enabled, 'maybe');
});

test('duplicate key: the last one wins; duplicate sections merge', (t) => {
  const root = tree(t, { [ETC]: '[composefs]\nenabled = no\n[etc]\ntransient = 1\n[composefs]\nenabled = yes\n' });
  const conf = loadPrepareRootConf(root);
  t.is(conf.sections.composefs?.enabled, 'yes');
  t.is(conf.sections.etc?.transient, '1');
  t.is(conf.lines?.composefs?.enabled, 6);
});

test('a dotted section name is its own section', (t) => {
  const root = tree(t, { [ETC]: '[composefs]\nenabled = yes\n[composefs.extra]\nfoo = 1\n' });
  const s = loadPrepareRootConf(root).sections;
  t.is(s.composefs?.enabled, 'yes');
  t.is(s['composefs.extra']?.foo, '1');
});

// Issue 13 item 8: the `ini` package read both of these as the word before the `;` / inside the quotes.
for (const [text, value] of [
  ['[composefs]\nenabled = no ; signed\n', 'no ; signed'],
  ['[composefs]\nenabled = "signed"\n', '"signed"'],
  ["[composefs]\nenabled = 'yes'\n", "'yes'"],
] as const) {
  test(`${JSON.stringify(text)}: the value is ${JSON.stringify(value)}, as GLib reads it, and is refused`, (t) => {
    const root = tree(t, { [ETC]: text });
    const conf = loadPrepareRootConf(root);
    t.is(conf.sections.composefs?.enabled, value);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
      `${path.join(root, ETC)}: line 2: [composefs] enabled = ${JSON.stringify(value)}`,
      'expected one of',
    ]);
  });
}

test('a line starting with ; is not a comment: no = there is refused, with = it is a key', (t) => {
  const root = tree(t, { [ETC]: '[composefs]\n; enabled = signed\nenabled = yes\n' });
  const conf = loadPrepareRootConf(root);
  t.is(conf.sections.composefs?.['; enabled'], 'signed');
  t.is(conf.sections.composefs?.enabled, 'yes');
  t.deepEqual(unknownConfigKeys(conf), ['[composefs] ; enabled']);
  const bad = tree(t, { [ETC]: '[composefs]\n; a note\n' });
  refuses(t, () => loadPrepareRootConf(bad), 'ECONFIG', [path.join(bad, ETC), 'line 2', '"; a note"']);
});

test('a byte-order mark is refused (GKeyFile does not skip it), naming it', (t) => {
  const root = tree(t, { [ETC]: '\ufeff[composefs]\nenabled = yes\n' });
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, ETC), 'line 1', 'byte-order mark']);
});

test('a NUL byte is refused (ostree reads the file as UTF-8 text, which has none)', (t) => {
  const root = tree(t, { [ETC]: Buffer.from('[composefs]\nenabled = yes\0\n') });
  refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, ETC), 'NUL byte at offset 25']);
});

test('trailing blanks are kept in the value but ignored by the value words', (t) => {
  const { config, conf } = decide(t, '[composefs]\nenabled = signed \t\n[etc]\ntransient = true \n');
  t.is(conf.sections.composefs?.enabled, 'signed \t');
  t.true(config.composefsSigned);
  t.true(config.etcTransient);
});

test('a vertical tab or no-break space after a word is not a blank: refused', (t) => {
  for (const tail of ['\v', '\u00a0']) {
    const root = tree(t, { [ETC]: `[etc]\ntransient = true${tail}\n` });
    const conf = loadPrepareRootConf(root);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', ['line 2: [etc] transient']);
  }
});

test('keypath is read raw (g_key_file_get_value), trailing blanks included; a backslash is refused', (t) => {
  t.is(decide(t, '[composefs]\nkeypath = /usr/lib/my key \n').config.keypath, '/usr/lib/my key ');
  for (const kp of ['/etc/my\\skey', '/etc/a\\\\b', '/etc/key\\']) {
    const root = tree(t, { [ETC]: `[composefs]\nkeypath = ${kp}\n` });
    const conf = loadPrepareRootConf(root);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
      `line 2: [composefs] keypath = ${JSON.stringify(kp)}`,
      'backslash',
    ]);
  }
});

for (const [name, text, parts] of [
  ['a line without =', '[composefs]\nenabled\n', ['line 2', '"enabled"', 'key = value']],
  ['a key before any section', 'enabled = yes\n[composefs]\n', ['line 1', 'before any [group]']],
  ['an empty locale suffix followed by text', '[composefs]\nenabled[]x = yes\n', ['line 2', 'enabled[]x', 'text after']],
  ['a line starting with =', '[composefs]\n = yes\n', ['line 2', '"= yes"']],
  ['an unterminated section header', '[composefs\nenabled = yes\n', ['line 1', '"[composefs"', '[group] header']],
  ['an empty section name', '[]\nenabled = yes\n', ['line 1', 'invalid group name ""']],
  ['text after a section header', '[composefs] # main\nenabled = yes\n', ['line 1', '"[composefs] # main"']],
  ['an Encoding other than UTF-8', '[composefs]\nEncoding = latin1\n', ['line 2', 'Encoding = "latin1"', 'UTF-8']],
] as const) {
  test(`structure: ${name} is ECONFIG with the line number`, (t) => {
    const root = tree(t, { [ETC]: text });
    refuses(t, () => loadPrepareRootConf(root), 'ECONFIG', [path.join(root, ETC), ...parts]);
  });
}

test('unknownConfigKeys lists unknown keys of known sections only', (t) => {
  const root = tree(t, {
    [ETC]: '[composefs]\nenabled = yes\nenable = yes\n[root]\ntransient-rw = 1\n[vendor]\nanything = 1\n',
  });
  t.deepEqual(unknownConfigKeys(loadPrepareRootConf(root)).sort(), ['[composefs] enable', '[root] transient-rw']);
  t.deepEqual(unknownConfigKeys({ path: null, sections: {} }), []);
});

// ---------------------------------------------------------------------------
// Word parsers (table written from SPEC §1, not from the code)

test('parseBooleanWord accepts exactly true|false|yes|no|1|0, any case', (t) => {
  const truth: Record<string, boolean> = { true: true, yes: true, '1': true, false: false, no: false, '0': false };
  for (const [w, v] of Object.entries(truth)) {
    t.is(parseBooleanWord(w), v, w);
    t.is(parseBooleanWord(w.toUpperCase()), v, w.toUpperCase());
  }
  for (const bad of ['', 'on', 'off', 'y', 'n', '2', 'maybe', 'truee', ' ', 't']) t.is(parseBooleanWord(bad), null, bad);
});

test('parseTristateWord', (t) => {
  const truth: Record<string, Tristate> = { yes: 'yes', true: 'yes', '1': 'yes', no: 'no', false: 'no', '0': 'no', maybe: 'maybe' };
  for (const [w, v] of Object.entries(truth)) {
    t.is(parseTristateWord(w), v);
    t.is(parseTristateWord(w[0]!.toUpperCase() + w.slice(1)), v);
  }
  for (const bad of ['', 'signed', 'verity', 'on', 'perhaps', '2']) t.is(parseTristateWord(bad), null, bad);
});

// ---------------------------------------------------------------------------
// [composefs] enabled

const ENABLED: Record<string, [Tristate, boolean, boolean]> = {
  // word: [composefs, verity, signed]
  yes: ['yes', false, false], true: ['yes', false, false], '1': ['yes', false, false],
  no: ['no', false, false], false: ['no', false, false], '0': ['no', false, false],
  maybe: ['maybe', false, false],
  verity: ['yes', true, false],
  signed: ['yes', true, true],
};

for (const [word, [cfs, verity, signed]] of Object.entries(ENABLED)) {
  for (const spelled of new Set([word, word.toUpperCase()])) {
    test(`[composefs] enabled = ${spelled}`, (t) => {
      const { config, conf } = decide(t, `[composefs]\nenabled = ${spelled}\n`);
      t.is(config.composefs, cfs);
      t.is(config.composefsVerity, verity);
      t.is(config.composefsSigned, signed);
      t.is(config.composefsDigest, null);
      t.is(config.sources.composefs, `${conf.path} [composefs] enabled`);
    });
  }
}

for (const bad of ['maybee', '', 'on', 'off', '2', 'enabled', 'signed verity', 'sign', 'y']) {
  test(`[composefs] enabled = ${JSON.stringify(bad)} is refused`, (t) => {
    const root = tree(t, { [ETC]: `[composefs]\nenabled = ${bad}\n` });
    const conf = loadPrepareRootConf(root);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
      `${path.join(root, ETC)}: line 2: [composefs] enabled = ${JSON.stringify(bad)}`,
      'expected one of',
      ...TRISTATE_WORDS,
      'signed',
      'verity',
    ]);
  });
}

test('a bad config value is refused even when a karg overrides it (as ostree does)', (t) => {
  const root = tree(t, { [ETC]: '[composefs]\nenabled = maybee\n' });
  const conf = loadPrepareRootConf(root);
  refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x ostree.prepare-root.composefs=yes'), conf, root), 'ECONFIG', ['maybee']);
});

// ---------------------------------------------------------------------------
// [composefs] keypath

test('[composefs] keypath: default and custom', (t) => {
  t.is(decide(t, '[composefs]\nenabled = signed\n').config.keypath, DEFAULT_KEYPATH);
  const { config, conf } = decide(t, '[composefs]\nenabled = signed\nkeypath = /usr/lib/ostree/my.pub\n');
  t.is(config.keypath, '/usr/lib/ostree/my.pub');
  t.is(config.sources.keypath, `${conf.path} [composefs] keypath`);
});

for (const bad of ['relative/key.pub', '', 'key.pub']) {
  test(`[composefs] keypath = ${JSON.stringify(bad)} is refused`, (t) => {
    const root = tree(t, { [ETC]: `[composefs]\nenabled = signed\nkeypath = ${bad}\n` });
    const conf = loadPrepareRootConf(root);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
      `${path.join(root, ETC)}: line 3: [composefs] keypath = ${JSON.stringify(bad)}`,
      'absolute path',
    ]);
  });
}

// ---------------------------------------------------------------------------
// Boolean keys: every accepted spelling and a set of bad ones, for each key

const BOOL_KEYS: [string, string, (c: BootConfig) => boolean][] = [
  ['sysroot', 'readonly', (c) => c.sysrootReadonly],
  ['root', 'transient', (c) => c.rootTransient],
  ['root', 'transient-ro', (c) => c.rootTransientRo],
  ['etc', 'transient', (c) => c.etcTransient],
];
const BOOL_TRUTH: Record<string, boolean> = { true: true, yes: true, '1': true, false: false, no: false, '0': false };

for (const [section, key, get] of BOOL_KEYS) {
  test(`[${section}] ${key}: every accepted spelling`, (t) => {
    for (const [word, value] of Object.entries(BOOL_TRUTH)) {
      for (const spelled of [word, word.toUpperCase(), word[0]!.toUpperCase() + word.slice(1)]) {
        // composefs on so the transient keys are allowed.
        const { config, conf } = decide(t, `[composefs]\nenabled = yes\n[${section}]\n${key} = ${spelled}\n`);
        t.is(get(config), value, `${key} = ${spelled}`);
        const sourceKey = { readonly: 'sysrootReadonly', 'transient-ro': 'rootTransientRo' }[key] ?? (section === 'etc' ? 'etcTransient' : 'rootTransient');
        if (key !== 'transient' || section !== 'root' || value) {
          t.is(config.sources[sourceKey], `${conf.path} [${section}] ${key}`);
        }
      }
    }
  });

  for (const bad of ['on', 'off', 'y', 'n', '', '2', 'truee', 'maybe', 'enabled', '1 0']) {
    test(`[${section}] ${key} = ${JSON.stringify(bad)} is refused`, (t) => {
      const root = tree(t, { [ETC]: `[composefs]\nenabled = yes\n[${section}]\n${key} = ${bad}\n` });
      const conf = loadPrepareRootConf(root);
      refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
        `${path.join(root, ETC)}: line 4: [${section}] ${key} = ${JSON.stringify(bad)}`,
        'expected one of',
        ...BOOL_WORDS,
      ]);
    });
  }
}

// ---------------------------------------------------------------------------
// Kernel arguments over the config

test('ostree.prepare-root.composefs=signed turns on signing + verity over a "no" config', (t) => {
  const c = fromKargs('ostree=/x ostree.prepare-root.composefs=signed', { composefs: { enabled: 'no' } });
  t.deepEqual([c.composefs, c.composefsVerity, c.composefsSigned], ['yes', true, true]);
  t.is(c.sources.composefs, 'karg ostree.prepare-root.composefs=signed');
});

const KARG_TRISTATE: Record<string, Tristate> = { yes: 'yes', true: 'yes', '1': 'yes', maybe: 'maybe', no: 'no', false: 'no', '0': 'no' };
for (const [word, expected] of Object.entries(KARG_TRISTATE)) {
  test(`ostree.prepare-root.composefs=${word} overrides a verity config, keeping verity unless off`, (t) => {
    const c = fromKargs(`ostree=/x ostree.prepare-root.composefs=${word}`, { composefs: { enabled: 'verity' } });
    t.is(c.composefs, expected);
    t.false(c.composefsSigned);
    // Like ostree, the karg leaves the config's verity requirement in place
    // (nothing to require when composefs ends up off).
    t.is(c.composefsVerity, expected !== 'no');
    t.is(c.composefsDigest, null);
  });

  // Issue 13 item 7 (ostree lets the karg turn signing off silently).
  test(`ostree.prepare-root.composefs=${word} over a signed config is refused, naming both`, (t) => {
    refuses(t, () => fromKargs(`ostree=/x ostree.prepare-root.composefs=${word}`, { composefs: { enabled: 'signed' } }), 'ECMDLINE', [
      `ostree.prepare-root.composefs=${word}`,
      '[composefs] enabled = signed',
      'signature',
    ]);
  });
}

test('ostree.prepare-root.composefs=yes over enabled=verity keeps verity', (t) => {
  const c = fromKargs('ostree=/x ostree.prepare-root.composefs=yes', { composefs: { enabled: 'verity' } });
  t.deepEqual([c.composefs, c.composefsVerity, c.composefsSigned], ['yes', true, false]);
});

for (const [cmd, parts] of [
  ['ostree.prepare-root.composefs=verity', ['ostree.prepare-root.composefs="verity"']],
  ['ostree.prepare-root.composefs=on', ['ostree.prepare-root.composefs="on"']],
  ['ostree.prepare-root.composefs=', ['ostree.prepare-root.composefs=""']],
  ['ostree.prepare-root.composefs', ['ostree.prepare-root.composefs (no value)']],
] as const) {
  test(`karg ${cmd} is refused`, (t) => {
    refuses(t, () => fromKargs(`ostree=/x ${cmd}`), 'ECMDLINE', [...parts, 'signed', ...TRISTATE_WORDS]);
  });
}

const OT: Record<string, [string, boolean, boolean]> = {
  off: ['no', false, false],
  maybe: ['maybe', false, false],
  on: ['yes', false, false],
  signed: ['yes', true, true],
  ON: ['yes', false, false],
};
for (const [word, [cfs, verity, signed]] of Object.entries(OT)) {
  test(`ot-composefs=${word}`, (t) => {
    const c = fromKargs(`ostree=/x ot-composefs=${word}`);
    t.deepEqual([c.composefs, c.composefsVerity, c.composefsSigned, c.composefsDigest], [cfs, verity, signed, null]);
    t.is(c.sources.composefs, `karg ot-composefs=${word}`);
  });
}

test('ot-composefs=off over a signed config is refused, naming both', (t) => {
  refuses(t, () => fromKargs('ostree=/x ot-composefs=off', { composefs: { enabled: 'signed' } }), 'ECMDLINE', [
    'ot-composefs=off',
    '[composefs] enabled = signed (/x/prepare-root.conf)',
  ]);
});

const HEX = 'a'.repeat(16) + '0123456789abcdef'.repeat(3);

test('ot-composefs=digest=<64 hex>: composefs yes, verity, digest pinned', (t) => {
  const c = fromKargs(`ostree=/x ot-composefs=digest=${HEX}`, { composefs: { enabled: 'maybe' } });
  t.is(HEX.length, 64);
  t.deepEqual([c.composefs, c.composefsVerity, c.composefsSigned, c.composefsDigest], ['yes', true, false, HEX]);
  t.is(c.sources.composefsDigest, `karg ot-composefs=digest=${HEX}`);
});

test('ot-composefs=digest= over a signed config adds the digest and keeps the signature', (t) => {
  const c = fromKargs(`ostree=/x ot-composefs=digest=${HEX}`, { composefs: { enabled: 'signed' } });
  t.deepEqual([c.composefs, c.composefsVerity, c.composefsSigned, c.composefsDigest], ['yes', true, true, HEX]);
  t.is(c.sources.composefsSigned, '/x/prepare-root.conf [composefs] enabled');
  t.is(c.sources.composefsDigest, `karg ot-composefs=digest=${HEX}`);
});

test('ot-composefs=digest= with uppercase hex is lowercased', (t) => {
  const c = fromKargs(`ostree=/x ot-composefs=digest=${HEX.toUpperCase()}`);
  t.is(c.composefsDigest, HEX);
});

for (const [name, value, part] of [
  ['63 hex digits', `digest=${HEX.slice(1)}`, 'got 63'],
  ['65 hex digits', `digest=${HEX}0`, 'got 65'],
  ['no hex digits', 'digest=', 'got 0'],
  ['a non-hex character', `digest=${HEX.slice(1)}g`, 'non-hex'],
  ['a 0x prefix', `digest=0x${HEX.slice(2)}`, 'non-hex'],
  ['sha512 length', `digest=${HEX}${HEX}`, 'got 128'],
] as const) {
  test(`ot-composefs=digest= with ${name} is refused`, (t) => {
    refuses(t, () => fromKargs(`ostree=/x ot-composefs=${value}`), 'ECMDLINE', [`ot-composefs=${JSON.stringify(value)}`, '64 hex', part]);
  });
}

for (const bad of ['yes', 'digest', 'verity', 'sha256=abc', '']) {
  test(`ot-composefs=${JSON.stringify(bad)} is refused`, (t) => {
    refuses(t, () => fromKargs(`ostree=/x ot-composefs=${bad}`), 'ECMDLINE', [
      `ot-composefs=${JSON.stringify(bad)}`,
      'off, maybe, on, signed, digest=<64 hex>',
    ]);
  });
}

// Every combination of the two kargs and the config: test/composefs-mode.test.ts.

// ---------------------------------------------------------------------------
// ostree= and androidboot

test('ostree= is the target', (t) => {
  const c = fromKargs('root=/dev/sda ostree=/ostree/boot.0/debian/abc/0');
  t.is(c.ostreeTarget, '/ostree/boot.0/debian/abc/0');
  t.is(c.sources.ostreeTarget, 'karg ostree=/ostree/boot.0/debian/abc/0');
});

test('androidboot.slot_suffix=_a|_b select root.a|root.b and win over ostree=', (t) => {
  t.is(fromKargs('ostree=/x androidboot.slot_suffix=_a').ostreeTarget, '/ostree/root.a');
  t.is(fromKargs('androidboot.slot_suffix=_b ostree=/x').ostreeTarget, '/ostree/root.b');
  t.is(fromKargs('androidboot.slot_suffix=_b').ostreeTarget, '/ostree/root.b');
});

test('any other androidboot.* key selects root.a', (t) => {
  t.is(fromKargs('ostree=/x androidboot.serialno=1234').ostreeTarget, '/ostree/root.a');
  t.is(fromKargs('androidboot.force_normal_boot').ostreeTarget, '/ostree/root.a');
  t.regex(fromKargs('androidboot.hardware=x').sources.ostreeTarget ?? '', /androidboot\.hardware=x/);
});

for (const bad of ['_c', 'a', '', '_A', '_a_b']) {
  test(`androidboot.slot_suffix=${JSON.stringify(bad)} is refused`, (t) => {
    refuses(t, () => fromKargs(`ostree=/x androidboot.slot_suffix=${bad}`), 'ECMDLINE', [
      `androidboot.slot_suffix=${JSON.stringify(bad)}`,
      '_a, _b',
    ]);
  });
}

test('bare androidboot.slot_suffix is refused', (t) => {
  refuses(t, () => fromKargs('androidboot.slot_suffix'), 'ECMDLINE', ['androidboot.slot_suffix (no value)', '_a, _b']);
});

test('composefs= / composefs.digest= (the composefs-native mode) are refused by the ostree decision, naming ostree= too when present', (t) => {
  const digest = 'a'.repeat(64);
  // The boot, plan and verify route these kargs to src/composefs-native/ before this point; others (preflight) refuse.
  refuses(t, () => fromKargs(`composefs=${digest}`), 'ECMDLINE', [`composefs=${digest}`, 'composefs-native', 'this command does not', 'expected ostree=']);
  refuses(t, () => fromKargs(`composefs.digest=?v1-sha512-12:${'b'.repeat(128)}`), 'ECMDLINE', ['composefs.digest=?v1-sha512-12:', 'composefs-native']);
  refuses(t, () => fromKargs('quiet composefs'), 'ECMDLINE', ['composefs selects']);
  refuses(t, () => fromKargs(`ostree=/ostree/boot.1/os/b/0 composefs=${digest}`), 'ECMDLINE', [
    `composefs=${digest} and ostree=/ostree/boot.1/os/b/0 both present`,
    'one boot mode',
  ]);
  // Names that only look alike select nothing.
  t.is(fromKargs('ostree=/x composefs_x=1 rd.composefs=1').ostreeTarget, '/x');
});

test('missing, bare or empty ostree= is refused', (t) => {
  refuses(t, () => fromKargs('root=/dev/sda quiet'), 'ECMDLINE', ['no ostree=', 'androidboot']);
  refuses(t, () => fromKargs('ostree'), 'ECMDLINE', ['ostree (no value)']);
  refuses(t, () => fromKargs('ostree='), 'ECMDLINE', ['ostree=""']);
});

// ---------------------------------------------------------------------------
// systemd.volatile

test('systemd.volatile', (t) => {
  t.false(fromKargs('ostree=/x').systemdVolatile);
  for (const on of ['systemd.volatile', 'systemd.volatile=yes', 'systemd.volatile=state', 'systemd.volatile=overlay', 'systemd.volatile=1']) {
    t.true(fromKargs(`ostree=/x ${on}`).systemdVolatile, on);
  }
  for (const off of ['no', 'false', '0', 'off', 'NO']) {
    t.false(fromKargs(`ostree=/x systemd.volatile=${off}`).systemdVolatile, off);
  }
});

// ---------------------------------------------------------------------------
// [root] transient / transient-ro

test('[root] transient with composefs yes', (t) => {
  const { config } = decide(t, '[composefs]\nenabled = yes\n[root]\ntransient = true\n');
  t.true(config.rootTransient);
  t.false(config.rootTransientRo);
});

test('[root] transient-ro implies transient', (t) => {
  const { config, conf } = decide(t, '[composefs]\nenabled = signed\n[root]\ntransient-ro = yes\n');
  t.true(config.rootTransient);
  t.true(config.rootTransientRo);
  t.is(config.sources.rootTransient, `${conf.path} [root] transient-ro`);
});

test('[root] transient with composefs maybe is allowed', (t) => {
  t.true(decide(t, '[composefs]\nenabled = maybe\n[root]\ntransient = 1\n').config.rootTransient);
});

test('[root] transient and transient-ro both true is refused', (t) => {
  const root = tree(t, { [ETC]: '[composefs]\nenabled = yes\n[root]\ntransient = true\ntransient-ro = true\n' });
  const conf = loadPrepareRootConf(root);
  refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
    path.join(root, ETC),
    '[root] transient',
    '[root] transient-ro',
    'at most one',
  ]);
});

test('transient = true with transient-ro = false is fine', (t) => {
  const { config } = decide(t, '[composefs]\nenabled = yes\n[root]\ntransient = true\ntransient-ro = false\n');
  t.deepEqual([config.rootTransient, config.rootTransientRo], [true, false]);
});

for (const key of ['transient', 'transient-ro']) {
  test(`[root] ${key} without composefs is refused (config)`, (t) => {
    const root = tree(t, { [ETC]: `[root]\n${key} = true\n` });
    const conf = loadPrepareRootConf(root);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), conf, root), 'ECONFIG', [
      `${path.join(root, ETC)}: [root] ${key} = true requires composefs`,
      'default',
    ]);
  });

  test(`[root] ${key} with composefs turned off by karg is refused`, (t) => {
    const root = tree(t, { [ETC]: `[composefs]\nenabled = yes\n[root]\n${key} = true\n` });
    const conf = loadPrepareRootConf(root);
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x ot-composefs=off'), conf, root), 'ECONFIG', [
      `[root] ${key} = true requires composefs`,
      'karg ot-composefs=off',
    ]);
  });
}

test('[etc] transient works without composefs', (t) => {
  const { config } = decide(t, '[etc]\ntransient = true\n');
  t.true(config.etcTransient);
  t.is(config.composefs, 'no');
});

// ---------------------------------------------------------------------------
// [sysroot] readonly: default and repo config fallback

test('sysroot.readonly defaults to true with composefs yes, false otherwise', (t) => {
  for (const [enabled, ro] of [['yes', true], ['signed', true], ['verity', true], ['maybe', false], ['no', false]] as const) {
    t.is(decide(t, `[composefs]\nenabled = ${enabled}\n`).config.sysrootReadonly, ro, enabled);
  }
  t.true(fromKargs('ostree=/x ot-composefs=on').sysrootReadonly);
  t.false(fromKargs('ostree=/x ot-composefs=maybe').sysrootReadonly);
});

test('sysroot.readonly default follows the karg, not the config', (t) => {
  const { config } = decide(t, '[composefs]\nenabled = yes\n', 'ostree=/x ostree.prepare-root.composefs=no');
  t.false(config.sysrootReadonly);
});

test('explicit readonly=false with composefs yes stays false (no repo fallback)', (t) => {
  const { config, conf } = decide(t, '[composefs]\nenabled = yes\n[sysroot]\nreadonly = false\n', undefined, '[sysroot]\nreadonly = true\n');
  t.false(config.sysrootReadonly);
  t.is(config.sources.sysrootReadonly, `${conf.path} [sysroot] readonly`);
});

test('explicit readonly=true without composefs is honoured', (t) => {
  t.true(decide(t, '[sysroot]\nreadonly = true\n').config.sysrootReadonly);
});

test('without composefs, repo config [sysroot] readonly=true makes the sysroot read-only', (t) => {
  const repo = '[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nreadonly=true\n\n[remote "debian"]\nurl=https://example.org\n';
  for (const confText of [null, '[sysroot]\nreadonly = false\n', '[composefs]\nenabled = maybe\n']) {
    const { config, sysroot } = decide(t, confText, undefined, repo);
    t.true(config.sysrootReadonly, String(confText));
    t.is(config.sources.sysrootReadonly, `${path.join(sysroot, 'ostree/repo/config')} [sysroot] readonly`);
  }
});

test('repo config without [sysroot] readonly, or missing: stays false', (t) => {
  t.false(decide(t, null, undefined, '[core]\nmode=bare\n').config.sysrootReadonly);
  t.false(decide(t, null, undefined, '[sysroot]\nreadonly=false\n').config.sysrootReadonly);
  t.false(decide(t, null).config.sysrootReadonly);
});

for (const bad of ['on', 'maybe', '']) {
  test(`repo config [sysroot] readonly = ${JSON.stringify(bad)} is ECONFIG naming the repo config`, (t) => {
    const sysroot = tree(t, { 'ostree/repo/config': `[core]\nmode=bare\n[sysroot]\nreadonly=${bad}\n` });
    refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), { path: null, sections: {} }, sysroot), 'ECONFIG', [
      `${path.join(sysroot, 'ostree/repo/config')}: line 4: [sysroot] readonly = ${JSON.stringify(bad)}`,
      ...BOOL_WORDS,
    ]);
  });
}

test('repo config that is a directory is ECONFIG naming it', (t) => {
  const sysroot = tree(t);
  fs.mkdirSync(path.join(sysroot, 'ostree/repo/config'), { recursive: true });
  refuses(t, () => resolveBootConfig(parseKernelCmdline('ostree=/x'), { path: null, sections: {} }, sysroot), 'ECONFIG', [
    path.join(sysroot, 'ostree/repo/config'),
  ]);
});

test('repo config is not consulted when composefs is yes', (t) => {
  // A broken repo config would throw if it were read.
  const { config } = decide(t, '[composefs]\nenabled = yes\n', undefined, '[sysroot]\nreadonly=bogus\n');
  t.true(config.sysrootReadonly);
});

// ---------------------------------------------------------------------------
// conf/*.conf examples resolve to the mode their header documents

const EXAMPLES: Record<string, Partial<BootConfig>> = {
  'legacy.conf': { composefs: 'no', composefsVerity: false, composefsSigned: false, sysrootReadonly: false },
  'maybe.conf': { composefs: 'maybe', composefsVerity: false, composefsSigned: false, sysrootReadonly: false },
  'yes.conf': { composefs: 'yes', composefsVerity: false, composefsSigned: false, sysrootReadonly: true },
  'verity.conf': { composefs: 'yes', composefsVerity: true, composefsSigned: false, sysrootReadonly: true },
  'signed.conf': {
    composefs: 'yes', composefsVerity: true, composefsSigned: true, etcTransient: false,
    keypath: '/usr/lib/ostree/initramfs-root-binding.key',
  },
  'signed-transient-etc.conf': { composefs: 'yes', composefsSigned: true, etcTransient: true, rootTransient: false },
  'transient-root.conf': { composefs: 'yes', rootTransient: true, rootTransientRo: false, etcTransient: false },
};

test('conf/ holds exactly the documented examples', (t) => {
  const dir = new URL('../conf/', import.meta.url);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.conf')).sort();
  t.deepEqual(files, Object.keys(EXAMPLES).sort());
});

for (const [name, expected] of Object.entries(EXAMPLES)) {
  test(`conf/${name} loads, has no unknown keys and means what it says`, (t) => {
    const text = fs.readFileSync(new URL(`../conf/${name}`, import.meta.url), 'utf8');
    t.regex(text, /^# prepare-root\.conf: /, 'comment header');
    const { config, conf } = decide(t, text);
    t.deepEqual(unknownConfigKeys(conf), []);
    for (const [k, v] of Object.entries(expected)) t.is(config[k as keyof BootConfig], v as never, `${name}: ${k}`);
  });
}
