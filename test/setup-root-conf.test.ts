/**
 * setup-root-conf.toml (src/composefs-native/setup-root-conf.ts, SPEC §6):
 * every key and value, the defaults, bootc's aliases, `mount` over
 * `transient`, unknown keys ignored, and every invalid value refused naming
 * file, table and key.
 */

import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CfsError } from '../src/errors.js';
import { loadSetupRootConf, parseSetupRootConf, SETUP_ROOT_CONF } from '../src/composefs-native/setup-root-conf.js';

const F = '/i/usr/lib/composefs/setup-root-conf.toml';
const conf = (text: string) => parseSetupRootConf(text, F);

function refused(t: ExecutionContext, text: string, ...parts: string[]): void {
  const e = t.throws(() => conf(text));
  t.true(e instanceof CfsError, String(e));
  t.is((e as CfsError).code, 'ECONFIG');
  t.false(e!.message.includes('\n'), 'one line');
  for (const p of [F, ...parts]) t.true(e!.message.includes(p), `${JSON.stringify(e!.message)} lacks ${JSON.stringify(p)}`);
}

test('an empty file gives the defaults: etc overlay, var bind, root not transient', (t) => {
  const c = conf('');
  t.is(c.etc, 'overlay');
  t.is(c.var, 'bind');
  t.false(c.rootTransient);
  t.deepEqual(c.sources, { rootTransient: 'default', etc: 'default', var: 'default' });
});

test('[root] transient = true / false', (t) => {
  t.true(conf('[root]\ntransient = true\n').rootTransient);
  t.is(conf('[root]\ntransient = true\n').sources.rootTransient, `${F} [root] transient`);
  t.false(conf('[root]\ntransient = false\n').rootTransient);
});

for (const sub of ['etc', 'var'] as const) {
  for (const [word, mount] of [['none', 'none'], ['bind', 'bind'], ['overlay', 'overlay'], ['transient', 'transient'], ['root', 'none'], ['volatile', 'transient']] as const) {
    test(`[${sub}] mount = "${word}" is ${mount}`, (t) => {
      const c = conf(`[${sub}]\nmount = "${word}"\n`);
      t.is(c[sub], mount);
      t.is(c.sources[sub], `${F} [${sub}] mount`);
      // The other one keeps its default.
      t.is(c[sub === 'etc' ? 'var' : 'etc'], sub === 'etc' ? 'bind' : 'overlay');
    });
  }

  test(`[${sub}] transient = true is transient; = false is the default`, (t) => {
    t.is(conf(`[${sub}]\ntransient = true\n`)[sub], 'transient');
    t.is(conf(`[${sub}]\ntransient = true\n`).sources[sub], `${F} [${sub}] transient`);
    t.is(conf(`[${sub}]\ntransient = false\n`)[sub], sub === 'etc' ? 'overlay' : 'bind');
    t.is(conf(`[${sub}]\ntransient = false\n`).sources[sub], 'default');
  });

  test(`[${sub}] mount wins over transient`, (t) => {
    t.is(conf(`[${sub}]\ntransient = true\nmount = "bind"\n`)[sub], 'bind');
    t.is(conf(`[${sub}]\nmount = "none"\ntransient = true\n`)[sub], 'none');
    t.is(conf(`[${sub}]\nmount = "overlay"\ntransient = false\n`)[sub], 'overlay');
  });

  test(`[${sub}] invalid mount values are refused, naming file, table and key`, (t) => {
    for (const v of ['"Bind"', '"tmpfs"', '""', '" none"', '1', 'true', '["bind"]', '{ a = 1 }', '1979-05-27']) {
      refused(t, `[${sub}]\nmount = ${v}\n`, `[${sub}] mount`, 'expected one of "none", "bind", "overlay", "transient"');
    }
  });

  test(`[${sub}] a non-boolean transient is refused even when mount is set`, (t) => {
    for (const v of ['"true"', '1', '"yes"', '[]']) {
      refused(t, `[${sub}]\ntransient = ${v}\n`, `[${sub}] transient`, 'expected true or false');
      refused(t, `[${sub}]\nmount = "bind"\ntransient = ${v}\n`, `[${sub}] transient`);
    }
  });

  test(`${sub} that is not a table is refused`, (t) => {
    refused(t, `${sub} = "bind"\n`, `[${sub}] is "bind"`, 'expected a table');
    refused(t, `[[${sub}]]\nmount = "bind"\n`, `[${sub}] is an array`);
  });
}

test('[root] transient that is not a boolean, and root that is not a table, are refused', (t) => {
  refused(t, '[root]\ntransient = "true"\n', '[root] transient = "true"', 'expected true or false');
  refused(t, '[root]\ntransient = 0\n', '[root] transient = 0');
  refused(t, 'root = 1\n', '[root] is 1', 'expected a table');
});

test('TOML spellings the toml crate reads the same: dotted keys, inline tables, literal strings, comments', (t) => {
  t.is(conf('etc.mount = "bind"\n').etc, 'bind');
  t.is(conf('var = { mount = \'none\' }\n').var, 'none');
  t.is(conf('# c\n[etc] # c\nmount = "transient" # c\n').etc, 'transient');
  t.is(conf('[etc]\nmount = "\\u0062ind"\n').etc, 'bind');
});

test('unknown keys and tables are ignored', (t) => {
  const c = conf('[etc]\nmount = "bind"\nfoo = 1\n[var]\nbar = "x"\n[other]\nmount = "nonsense"\n[root]\ntransient-ro = true\n');
  t.is(c.etc, 'bind');
  t.is(c.var, 'bind');
  t.false(c.rootTransient);
});

test('a file that is not TOML is refused with its line and column', (t) => {
  refused(t, '[etc]\nmount = bind\n', 'line 2 column 9', 'invalid value', 'expected a TOML document');
  refused(t, '[etc\n', 'line 1');
  refused(t, '[etc]\nmount = "a"\nmount = "b"\n', 'line 3');
});

test('loadSetupRootConf: missing file = defaults; present = read; a directory there is refused', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cfs-srconf-'));
  try {
    t.is(loadSetupRootConf(root).path, null);
    t.is(loadSetupRootConf(root).etc, 'overlay');
    const file = path.join(root, SETUP_ROOT_CONF);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '[etc]\nmount = "none"\n');
    t.is(loadSetupRootConf(root).etc, 'none');
    t.is(loadSetupRootConf(root + '/').path, file);
    fs.rmSync(file);
    fs.mkdirSync(file);
    const e = t.throws(() => loadSetupRootConf(root));
    t.is((e as CfsError).code, 'ECONFIG');
    t.regex(e!.message, /not a regular file/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('property: any text is a configuration or one ECONFIG line naming the file', (t) => {
  const piece = fc.constantFrom('[etc]', '[var]', '[root]', '[[etc]]', '\n', 'mount', 'transient', ' = ', '"bind"', '"none"', 'true', '1', '{', '}', '[', ']', '.', '#', "'", '"', 'etc.mount', ',');
  fc.assert(
    fc.property(fc.oneof(fc.array(piece, { maxLength: 12 }).map((p) => p.join('')), fc.string()), (text) => {
      try {
        const c = conf(text);
        return ['none', 'bind', 'overlay', 'transient'].includes(c.etc) && ['none', 'bind', 'overlay', 'transient'].includes(c.var) && typeof c.rootTransient === 'boolean';
      } catch (e) {
        return e instanceof CfsError && e.code === 'ECONFIG' && e.message.startsWith(`${F}: `) && !e.message.includes('\n');
      }
    }),
    { numRuns: 3000, seed: 14 },
  );
  // Deep nesting is a TomlError (smol-toml's depth limit), not a stack overflow.
  refused(t, `x = ${'['.repeat(5000)}`, 'expected a TOML document');
});
