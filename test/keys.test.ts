/**
 * src/ostree/keys.ts: the binding key file (SPEC §1 `[composefs] keypath`).
 * Keys are made with tweetnacl, an implementation independent of node:crypto.
 */

import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import nacl from 'tweetnacl';
import { loadPublicKeys, parsePublicKeys, publicKeyObject } from '../src/ostree/keys.js';
import { CfsError } from '../src/errors.js';

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const k1 = nacl.sign.keyPair().publicKey;
const k2 = nacl.sign.keyPair().publicKey;

function tmpdir(t: import('ava').ExecutionContext): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-keys-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function refuses(t: import('ava').ExecutionContext, fn: () => unknown, re: RegExp): void {
  const e = t.throws(fn, { instanceOf: CfsError });
  t.is(e.code, 'EKEYS');
  t.regex(e.message, re);
}

test('one key per line; blank lines, surrounding whitespace and CRLF are skipped', (t) => {
  const keys = parsePublicKeys(`\n  ${b64(k1)}  \r\n\n\t${b64(k2)}\n\n`, '/k');
  t.deepEqual(keys, [k1, k2]);
});

test('a single key without a trailing newline', (t) => {
  t.deepEqual(parsePublicKeys(b64(k1), '/k'), [k1]);
});

test('bad base64 names the file and the line', (t) => {
  refuses(t, () => parsePublicKeys(`${b64(k1)}\n\n${b64(k2).slice(0, 20)}!${b64(k2).slice(21)}\n`, '/etc/ostree/k.key'), /^\/etc\/ostree\/k\.key line 3: not valid base64/);
  // Node's decoder would silently skip the space; we do not.
  refuses(t, () => parsePublicKeys(`${b64(k1).slice(0, 10)} ${b64(k1).slice(10)}`, '/k'), /\/k line 1: not valid base64/);
  // Missing padding and non-canonical trailing bits are not the base64 a key file holds.
  refuses(t, () => parsePublicKeys(b64(k1).replace(/=$/, ''), '/k'), /line 1: not valid base64/);
  // Flip an unused low bit of the last character: Node decodes the same 32
  // bytes, but this is not how any encoder writes them.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const text = b64(k1);
  const lastChar = alphabet[alphabet.indexOf(text[42]!) ^ 1]!;
  const tweaked = text.slice(0, 42) + lastChar + '=';
  t.deepEqual(new Uint8Array(Buffer.from(tweaked, 'base64')), k1, 'sanity: same bytes to a lenient decoder');
  refuses(t, () => parsePublicKeys(tweaked, '/k'), /line 1: not valid base64/);
});

test('wrong key length names the line and the length', (t) => {
  refuses(t, () => parsePublicKeys(`${b64(k1)}\n${b64(k2.subarray(0, 31))}\n`, '/k'), /\/k line 2: key decodes to 31 bytes, an Ed25519 public key is 32/);
  refuses(t, () => parsePublicKeys(b64(new Uint8Array(64)), '/k'), /decodes to 64 bytes/);
});

test('zero keys is an error', (t) => {
  refuses(t, () => parsePublicKeys('', '/k'), /^\/k: contains no public key/);
  refuses(t, () => parsePublicKeys(' \n\n\t\r\n', '/k'), /contains no public key/);
});

test('loadPublicKeys reads a file; missing file says signed mode needs it', (t) => {
  const d = tmpdir(t);
  const f = path.join(d, 'binding.key');
  fs.writeFileSync(f, `${b64(k2)}\n${b64(k1)}\n`);
  t.deepEqual(loadPublicKeys(f), [k2, k1]);
  const missing = path.join(d, 'nope.key');
  refuses(t, () => loadPublicKeys(missing), new RegExp(`^${missing}: no such key file; signed composefs .*needs the Ed25519 public key`));
});

test('loadPublicKeys: empty, garbage and non-regular key files', (t) => {
  const d = tmpdir(t);
  const empty = path.join(d, 'empty.key');
  fs.writeFileSync(empty, '');
  refuses(t, () => loadPublicKeys(empty), /empty\.key: contains no public key/);
  const garbage = path.join(d, 'garbage.key');
  fs.writeFileSync(garbage, Uint8Array.from([0x00, 0xff, 0x10, 0x80, 0x0a, 0x41]));
  refuses(t, () => loadPublicKeys(garbage), /garbage\.key line 1: not valid base64/);
  const pem = path.join(d, 'pem.key');
  fs.writeFileSync(pem, '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n');
  refuses(t, () => loadPublicKeys(pem), /pem\.key line 1: not valid base64/);
  refuses(t, () => loadPublicKeys(d), /is not a regular file/);
});

test('each parsed key is imported once, and a key changed since, or not parsed here, is imported afresh', (t) => {
  const [a, b] = parsePublicKeys(`${b64(k1)}\n${b64(k2)}\n`, 'keys');
  const raw = (k: import('node:crypto').KeyObject): Uint8Array => new Uint8Array(Buffer.from(k.export({ format: 'jwk' }).x!, 'base64url'));
  t.is(publicKeyObject(a!), publicKeyObject(a!), 'the same KeyObject each time');
  t.deepEqual(raw(publicKeyObject(a!)), k1);
  t.deepEqual(raw(publicKeyObject(b!)), k2);
  const copy = Uint8Array.from(k1);
  t.not(publicKeyObject(copy), publicKeyObject(a!), 'an array of its own: its own import');
  t.deepEqual(raw(publicKeyObject(copy)), k1);
  a!.set(k2);
  t.deepEqual(raw(publicKeyObject(a!)), k2, 'changed after parsing: the new bytes, not the old import');
});
