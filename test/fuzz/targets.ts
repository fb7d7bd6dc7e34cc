/**
 * The fuzz targets (issue 6): one fast-check property per parser that reads
 * bytes or text cfsroot does not trust — GVariant (SPEC §2), commits and
 * commitmeta, signature verification, the composefs header (SPEC §3), key
 * files, prepare-root.conf and the kernel command line (SPEC §1), and the
 * ostree= symlink (SPEC §1 "ostree=PATH").
 *
 * Every property fails on any exception that is not a CfsError, on a
 * CfsError whose code is not one that parser may raise, and on a message
 * that is not one non-empty line. Accepted inputs must also satisfy the
 * parser's promise (a decoded GVariant re-encodes to the very same bytes —
 * normal form is unique; a signature cfsroot accepts verifies with
 * tweetnacl; a resolved deployment lies inside SYSROOT and has the
 * `<64 hex>.<serial>` shape).
 *
 * Used by the quick seed in test/fuzz/quick.test.ts (a few hundred cases
 * each, inside `make check`) and by test/fuzz/run.ts (`make fuzz`, >= 1e6).
 */

import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import nacl from 'tweetnacl';
import { sha256 } from '@noble/hashes/sha2.js';
import { CfsError, type ErrorCode } from '../../src/errors.js';
import { decode, decodeVardict, encode, encodeVardict, isValidType } from '../../src/ostree/gvariant.js';
import { COMMIT_TYPE, encodeCommit, parseCommit, type Commit } from '../../src/ostree/commit.js';
import { verifySignedCommit } from '../../src/ostree/signature.js';
import { checkErofsSuperblock, COMPOSEFS_MAGIC, EROFS_SUPER_MAGIC, parseComposefsHeader } from '../../src/image/header.js';
import { parseKernelCmdline } from '../../src/cmdline.js';
import { readKeyFileText, resolveBootConfig } from '../../src/ostree/config.js';
import { parsePublicKeys } from '../../src/ostree/keys.js';
import { resolveDeployment } from '../../src/ostree/deployment.js';
import { oneLine } from '../../src/log.js';
import type { BootConfig, KernelArgs, PrepareRootConf } from '../../src/ostree/model.js';
import { boundsTargets } from './bounds.js';
import {
  canon,
  cmdlineArb,
  commitArb,
  confTextArb,
  keyFileTextArb,
  linkTargetArb,
  mutate,
  mutationArb,
  noisyTextArb,
  typedValueArb,
  typeString,
  typeTreeArb,
} from './arbitraries.js';

export interface FuzzTarget {
  name: string;
  /** Share of the `make fuzz` case budget (relative); slow targets get less. */
  weight: number;
  property: fc.IRawProperty<any, false>;
}

/**
 * Run `fn`, which parses untrusted input. A CfsError with one of `codes` and
 * a one-line message is a refusal (returns null); anything else thrown
 * fails the property.
 */
export function refusalOrValue<T>(codes: readonly ErrorCode[], fn: () => T): T | null {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof CfsError)) {
      throw new Error(`not a CfsError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
    }
    if (!codes.includes(e.code)) throw new Error(`unexpected code ${e.code} (allowed ${codes.join(', ')}): ${e.message}`);
    checkMessage(e.message);
    return null;
  }
}

/**
 * The message as cfsroot prints it (src/log.ts oneLine escapes control
 * characters, which names from the disk may hold) must be one non-empty line.
 */
export function checkMessage(msg: string): void {
  if (msg.trim() === '') throw new Error('empty error message');
  if (/[\x00-\x1f\x7f]/.test(oneLine(msg))) throw new Error(`error message is not one line: ${JSON.stringify(msg)}`);
}

function assert(cond: boolean, what: string): asserts cond {
  if (!cond) throw new Error(what);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

// ---------------------------------------------------------------------------

/** Temp directories the targets need (a repo, a sysroot); `cleanup` removes them. */
export interface FuzzEnv {
  targets: FuzzTarget[];
  cleanup(): void;
}

export function makeFuzzEnv(): FuzzEnv {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-fuzz-'));
  const targets = [
    ...gvariantTargets(),
    ...commitTargets(),
    signatureTarget(path.join(base, 'repo')),
    imageTarget(),
    ...textTargets(path.join(base, 'empty-sysroot')),
    deploymentTarget(path.join(base, 'sysroot')),
    ...boundsTargets(),
  ];
  return { targets, cleanup: () => fs.rmSync(base, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------
// GVariant

const GV_CODES = ['EGVARIANT', 'ELIMIT'] as const;

/** Decoding accepted bytes must re-encode to the same bytes: normal form has one encoding per value. */
function checkNormalForm(type: string, bytes: Uint8Array, value: ReturnType<typeof decode>): void {
  const again = encode(type, value);
  assert(Buffer.compare(Buffer.from(again), Buffer.from(bytes)) === 0, `decode accepted non-canonical bytes for '${type}': ${hex(bytes)} re-encodes to ${hex(again)}`);
}

/** Decode untrusted bytes: a value, or a refusal with an allowed code (null is a valid value: Nothing). */
function decodeOrRefuse(type: string, bytes: Uint8Array): { ok: true; value: ReturnType<typeof decode> } | { ok: false } {
  let out: { ok: true; value: ReturnType<typeof decode> } | { ok: false } = { ok: false };
  refusalOrValue(GV_CODES, () => {
    out = { ok: true, value: decode(type, bytes, 'fuzz') };
  });
  return out;
}

function gvariantTargets(): FuzzTarget[] {
  // Doubles excluded where bytes are compared: NaN payloads do not survive a JS number.
  const noD = { doubles: false, maybes: true };
  return [
    {
      name: 'gvariant: encode -> decode round trip',
      weight: 3,
      property: fc.property(typedValueArb({ doubles: true, maybes: true }), ({ type, value }) => {
        const bytes = encode(type, value);
        const back = decode(type, bytes);
        assert(canon(back) === canon(value), `round trip of '${type}' changed the value: ${canon(value)} -> ${canon(back)}`);
        if (!type.includes('d')) checkNormalForm(type, bytes, back);
      }),
    },
    {
      name: 'gvariant: random bytes',
      weight: 3,
      property: fc.property(typeTreeArb(noD).map(typeString), fc.uint8Array({ maxLength: 64 }), (type, bytes) => {
        const r = decodeOrRefuse(type, bytes);
        if (r.ok) checkNormalForm(type, bytes, r.value);
      }),
    },
    {
      name: 'gvariant: mutated valid encodings',
      weight: 4,
      property: fc.property(typedValueArb(noD), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), ({ type, value }, muts) => {
        const bytes = mutate(encode(type, value), muts);
        const r = decodeOrRefuse(type, bytes);
        if (r.ok) checkNormalForm(type, bytes, r.value);
      }),
    },
    {
      name: 'gvariant: arbitrary type strings',
      weight: 1,
      property: fc.property(
        // Printable ASCII only: untrusted type strings come from variants in
        // the data, and the variant reader refuses any other byte before
        // parsing the type (the other types are constants in cfsroot's code).
        fc.oneof(
          fc.string({ unit: 'binary-ascii', maxLength: 20 }).map((s) => s.replace(/[^\x21-\x7e]/g, '?')),
          fc.string({ unit: fc.constantFrom('a', 'm', '(', ')', '{', '}', 's', 'v', 'y', 'i'), maxLength: 140 }),
        ),
        fc.uint8Array({ maxLength: 16 }),
        (type, bytes) => {
          const valid = isValidType(type);
          const r = decodeOrRefuse(type, bytes);
          assert(valid || !r.ok, `decode accepted the invalid type string ${JSON.stringify(type)}`);
        },
      ),
    },
  ];
}

// ---------------------------------------------------------------------------
// Commit and commitmeta

function commitEqual(a: Commit, b: Commit): boolean {
  return (
    canon(a.metadata) === canon(b.metadata) &&
    hex(a.parent) === hex(b.parent) &&
    canon(a.related.map(([n, c]) => [n, c])) === canon(b.related.map(([n, c]) => [n, c])) &&
    a.subject === b.subject &&
    a.body === b.body &&
    a.timestamp === b.timestamp &&
    hex(a.rootTree) === hex(b.rootTree) &&
    hex(a.rootMeta) === hex(b.rootMeta)
  );
}

function commitTargets(): FuzzTarget[] {
  const codes = ['EGVARIANT', 'EOBJECT', 'ELIMIT'] as const;
  return [
    {
      name: 'commit: encode -> parse round trip',
      weight: 2,
      property: fc.property(commitArb, (c) => {
        const back = parseCommit(encodeCommit(c), 'fuzz.commit');
        assert(commitEqual(c, back), 'commit round trip changed a field');
      }),
    },
    {
      name: 'commit: mutated .commit bytes',
      weight: 4,
      property: fc.property(commitArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (c, muts) => {
        const bytes = mutate(encodeCommit(c), muts);
        const parsed = refusalOrValue(codes, () => parseCommit(bytes, 'fuzz.commit'));
        if (parsed) {
          assert(parsed.rootTree.length === 32 && parsed.rootMeta.length === 32, 'accepted a commit with short checksums');
          assert(parsed.parent.length === 0 || parsed.parent.length === 32, 'accepted a commit with a bad parent');
          checkNormalForm(COMMIT_TYPE, bytes, decode(COMMIT_TYPE, bytes));
        }
      }),
    },
    {
      name: 'commitmeta: mutated a{sv}',
      weight: 3,
      property: fc.property(
        fc.array(fc.uint8Array({ minLength: 0, maxLength: 70 }), { maxLength: 3 }),
        fc.array(mutationArb, { minLength: 0, maxLength: 3 }),
        (sigs, muts) => {
          const bytes = mutate(encodeVardict([['ostree.sign.ed25519', { type: 'aay', value: sigs }], ['x', { type: 's', value: 'y' }]]), muts);
          const d = refusalOrValue(['EGVARIANT', 'ELIMIT'], () => decodeVardict(bytes, 'fuzz.commitmeta'));
          if (d) assert(d instanceof Map, 'a{sv} did not decode to a Map');
        },
      ),
    },
  ];
}

/**
 * verifySignedCommit over a real repo directory: a signed commit whose
 * .commit or .commitmeta is mutated (a mutated .commit is stored under its
 * new hash, so it reaches the parser and the signature check). Whenever
 * cfsroot accepts, tweetnacl must agree that a signature verifies and
 * @noble/hashes that the object hashes to its name.
 */
function signatureTarget(repo: string): FuzzTarget {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
  const codes = ['ESIGNATURE', 'EOBJECT', 'EGVARIANT', 'EDIGEST', 'ELIMIT', 'EKEYS'] as const;
  return {
    name: 'signature: mutated signed commit and commitmeta in a repo',
    weight: 1,
    property: fc.property(
      commitArb,
      fc.constantFrom('commit', 'commitmeta', 'both', 'none'),
      fc.array(mutationArb, { minLength: 1, maxLength: 2 }),
      fc.boolean(),
      (c, which, muts, wrongKey) => {
        let commitBytes = encodeCommit(c);
        const sig = new Uint8Array(sign(null, commitBytes, privateKey));
        if (which === 'commit' || which === 'both') commitBytes = mutate(commitBytes, muts);
        let meta = encodeVardict([['ostree.sign.ed25519', { type: 'aay', value: [sig] }]]);
        if (which === 'commitmeta' || which === 'both') meta = mutate(meta, muts);
        const checksum = hex(sha256(commitBytes));
        const dir = path.join(repo, 'objects', checksum.slice(0, 2));
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `${checksum.slice(2)}.commit`), commitBytes);
        fs.writeFileSync(path.join(dir, `${checksum.slice(2)}.commitmeta`), meta);
        const keys = [wrongKey ? Uint8Array.from(pub, (b, i) => (i === 0 ? b ^ 1 : b)) : pub];
        let r;
        try {
          r = refusalOrValue(codes, () => verifySignedCommit(repo, checksum, keys, '/fuzz.key'));
        } finally {
          // Remove just this case's objects: cheaper than recreating the repo.
          fs.rmSync(path.join(dir, `${checksum.slice(2)}.commit`));
          fs.rmSync(path.join(dir, `${checksum.slice(2)}.commitmeta`));
        }
        if (r) {
          const sigs = decodeVardict(meta).get('ostree.sign.ed25519')!.value as Uint8Array[];
          assert(sigs.some((s) => nacl.sign.detached.verify(commitBytes, s, keys[0]!)), 'cfsroot accepted a signature tweetnacl rejects');
          const d = parseCommit(commitBytes, 'x').metadata.get('ostree.composefs.digest.v0');
          assert(d !== undefined && hex(d.value as Uint8Array) === r.digest && r.digest.length === 64, 'accepted digest differs from the commit metadata');
        }
      },
    ),
  };
}

// ---------------------------------------------------------------------------
// composefs header

function imageTarget(): FuzzTarget {
  const valid = new Uint8Array(1028);
  const dv = new DataView(valid.buffer);
  dv.setUint32(0, COMPOSEFS_MAGIC, true);
  dv.setUint32(4, 1, true);
  dv.setUint32(12, 2, true);
  dv.setUint32(1024, EROFS_SUPER_MAGIC, true);
  return {
    name: 'image: composefs header and EROFS magic',
    weight: 2,
    property: fc.property(
      fc.oneof(
        fc.array(mutationArb, { maxLength: 3 }).map((m) => mutate(valid, m)),
        fc.uint8Array({ maxLength: 1100 }),
        fc.nat({ max: 0xffffffff }).map((flags) => {
          const b = Uint8Array.from(valid);
          new DataView(b.buffer).setUint32(8, flags, true);
          return b;
        }),
      ),
      (bytes) => {
        const h = refusalOrValue(['EIMAGE'], () => {
          const header = parseComposefsHeader(bytes, 'fuzz.cfs');
          checkErofsSuperblock(bytes, 'fuzz.cfs');
          return header;
        });
        if (h) {
          const v = new DataView(bytes.buffer, bytes.byteOffset);
          assert(v.getUint32(0, true) === COMPOSEFS_MAGIC && v.getUint32(1024, true) === EROFS_SUPER_MAGIC, 'accepted a wrong magic');
          assert(h.version === 1 && h.hasAcl === ((v.getUint32(8, true) & 1) === 1), 'header fields do not match the bytes');
        }
      },
    ),
  };
}

// ---------------------------------------------------------------------------
// Text: kernel command line, prepare-root.conf, key files

/** What every BootConfig must satisfy whatever the input (SPEC §1). */
function checkBootConfig(c: BootConfig): void {
  if (c.composefsSigned) assert(c.composefs === 'yes' && c.composefsVerity, 'signed without composefs=yes + verity');
  if (c.composefsDigest !== null) {
    assert(/^[0-9a-f]{64}$/.test(c.composefsDigest), `digest ${c.composefsDigest} is not 64 lowercase hex`);
    assert(c.composefs === 'yes' && c.composefsVerity, 'digest= without composefs=yes + verity');
  }
  if (c.composefs === 'no') assert(!c.composefsVerity && !c.composefsSigned && !c.rootTransient, 'composefs=no with verity, signing or a transient root');
  if (c.rootTransientRo) assert(c.rootTransient, 'transient-ro without transient');
  assert(c.keypath.startsWith('/'), 'keypath is not absolute');
  assert(c.ostreeTarget.trim() !== '', 'empty ostree= target accepted');
}

/**
 * Issue 13 item 7: an accepted configuration keeps every pin any source asked for: a
 * `signed` from either karg (any occurrence) or from the config, and a digest= karg.
 */
function checkPinsKept(kargs: KernelArgs, conf: PrepareRootConf, c: BootConfig): void {
  const word = (v: string | null) => (v ?? '').replace(/[ \t\n\f\r]+$/, '').toLowerCase();
  for (const key of ['ostree.prepare-root.composefs', 'ot-composefs']) {
    for (const v of kargs.all(key)) {
      if (word(v) === 'signed') assert(c.composefsSigned, `${key}=${v} accepted without signing`);
      if (key === 'ot-composefs' && word(v).startsWith('digest=')) {
        assert(c.composefsDigest === word(v).slice(7), `${key}=${v} accepted with digest ${c.composefsDigest}`);
      }
    }
  }
  const enabled = conf.path === null ? undefined : conf.sections.composefs?.enabled;
  if (enabled !== undefined && word(enabled) === 'signed') assert(c.composefsSigned, `enabled = ${enabled} accepted without signing`);
}

function textTargets(sysroot: string): FuzzTarget[] {
  fs.mkdirSync(sysroot, { recursive: true });
  const noConf: PrepareRootConf = { path: null, sections: {} };
  return [
    {
      name: 'cmdline: parse + resolve the boot configuration',
      weight: 4,
      property: fc.property(cmdlineArb, (text) => {
        const kargs = parseKernelCmdline(text); // never throws, for any text
        for (const k of kargs.keys()) assert(k !== '' && !/[ \t\n]/.test(k) || text.includes('"'), `key ${JSON.stringify(k)} holds whitespace`);
        const c = refusalOrValue(['ECMDLINE', 'ECONFIG'], () => resolveBootConfig(kargs, noConf, sysroot));
        if (c) {
          checkBootConfig(c);
          checkPinsKept(kargs, noConf, c);
        }
      }),
    },
    {
      name: 'config: prepare-root.conf text + kargs',
      weight: 4,
      property: fc.property(confTextArb, cmdlineArb, (text, cmdline) => {
        const read = refusalOrValue(['ECONFIG'], () => readKeyFileText(text, '/etc/ostree/prepare-root.conf'));
        if (read === null) return;
        const conf: PrepareRootConf = { path: '/etc/ostree/prepare-root.conf', ...read };
        const kargs = parseKernelCmdline(`ostree=/o ${cmdline}`);
        const c = refusalOrValue(['ECMDLINE', 'ECONFIG'], () => resolveBootConfig(kargs, conf, sysroot));
        if (c) {
          checkBootConfig(c);
          checkPinsKept(kargs, conf, c);
        }
      }),
    },
    {
      // SYSROOT/ostree/repo/config is on the disk (untrusted), read for [sysroot] readonly.
      name: 'config: repo config from the disk',
      weight: 2,
      property: fc.property(fc.oneof(confTextArb, noisyTextArb), (text) => {
        const read = refusalOrValue(['ECONFIG'], () => readKeyFileText(text, '/sysroot/ostree/repo/config'));
        if (read) {
          for (const [name, sec] of Object.entries(read.sections)) {
            for (const [k, v] of Object.entries(sec)) {
              assert(typeof v === 'string' && !v.includes('\n'), 'a value that is not one line of text');
              assert(Number.isSafeInteger(read.lines[name]?.[k]), `no line number for [${name}] ${k}`);
            }
          }
        }
      }),
    },
    {
      name: 'keys: key file text',
      weight: 3,
      property: fc.property(keyFileTextArb, (text) => {
        const keys = refusalOrValue(['EKEYS'], () => parsePublicKeys(text, '/etc/ostree/initramfs-root-binding.key'));
        if (keys) {
          const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
          assert(keys.length === lines.length, `${lines.length} non-blank lines gave ${keys.length} keys`);
          keys.forEach((k, i) => assert(k.length === 32 && Buffer.from(k).toString('base64') === lines[i], `key ${i} is not its line decoded`));
        }
      }),
    },
  ];
}

// ---------------------------------------------------------------------------
// ostree= symlink

/**
 * A sysroot with one real deployment and traps next to the boot link:
 * a self-loop, a regular file, a FIFO, a link to the link's own directory.
 * Each case points SYSROOT/ostree/boot.1/os/b/0 somewhere new.
 */
function deploymentTarget(sysroot: string): FuzzTarget {
  const commit = 'ab'.repeat(32);
  const deploy = path.join(sysroot, 'ostree/deploy/os/deploy');
  fs.mkdirSync(path.join(deploy, `${commit}.0`), { recursive: true });
  fs.mkdirSync(path.join(deploy, `${commit}.x`), { recursive: true });
  fs.mkdirSync(path.join(deploy, `${commit.toUpperCase()}.0`), { recursive: true });
  fs.mkdirSync(path.join(deploy, `${commit}.99999999999999999999`), { recursive: true });
  fs.writeFileSync(path.join(deploy, `${commit}.0.1`), '');
  // A name with a newline: messages that quote it must stay one line.
  fs.mkdirSync(path.join(deploy, 'evil\nname'), { recursive: true });
  const linkDir = path.join(sysroot, 'ostree/boot.1/os/b');
  fs.mkdirSync(linkDir, { recursive: true });
  fs.symlinkSync('loop', path.join(linkDir, 'loop'));
  fs.symlinkSync('.', path.join(linkDir, 'self'));
  fs.writeFileSync(path.join(linkDir, 'file'), 'not a directory\n');
  execFileSync('mkfifo', [path.join(linkDir, 'fifo')]);
  const link = path.join(linkDir, '0');
  const root = fs.realpathSync(sysroot);
  const shape = /^ostree\/deploy\/[^/]+\/deploy\/[0-9a-f]{64}\.[0-9]+$/;
  return {
    name: 'deployment: ostree= symlink targets',
    weight: 1,
    property: fc.property(linkTargetArb(commit), fc.constantFrom('/ostree/boot.1/os/b/0', 'ostree/boot.1/os/b/0', '/ostree/boot.1/os/b/0/'), (target, karg) => {
      fs.rmSync(link, { force: true });
      fs.symlinkSync(target === '' ? '.' : target, link);
      const d = refusalOrValue(['EDEPLOY'], () => resolveDeployment(sysroot, karg));
      if (d) {
        assert(d.dir.startsWith(`${root}/`), `deployment ${d.dir} outside SYSROOT`);
        assert(shape.test(d.relDir), `deployment dir ${d.relDir} has the wrong shape`);
        assert(d.commit === commit && d.serial === 0, `resolved to ${d.commit}.${d.serial}`);
        assert(fs.statSync(d.dir).isDirectory(), 'deployment is not a directory');
      }
    }),
  };
}
