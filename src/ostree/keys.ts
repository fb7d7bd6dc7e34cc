/**
 * The composefs binding key file (SPEC §1 prepare-root.conf `[composefs] keypath`):
 * one base64 Ed25519 public key (32 bytes) per line, blank lines skipped.
 * Zero keys, bad base64 or a wrong length is an error when signing is on.
 */

import * as fs from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { CfsError, describeSystemError } from '../errors.js';
import { isBase64Text } from '../text.js';

export const ED25519_PUBLIC_KEY_BYTES = 32;

/** A key file is a few lines; anything bigger is not one (and is not read into memory). */
const MAX_KEY_FILE = 1024 * 1024;

/**
 * Strict base64: standard alphabet, padded, and canonical (re-encoding gives
 * the same text). Node's own decoder skips junk characters silently, which
 * would turn a corrupted line into a different key instead of an error.
 */
function decodeBase64Strict(s: string): Buffer | null {
  if (s.length % 4 !== 0 || !isBase64Text(s)) return null;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : null;
}

/** Parse key file text; `where` (the file path) names the file in errors. */
export function parsePublicKeys(text: string, where: string): Uint8Array[] {
  const keys: Uint8Array[] = [];
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const at = `${where} line ${i + 1}`;
    const b = decodeBase64Strict(line);
    if (b === null) throw new CfsError('EKEYS', `${at}: not valid base64 (expected one base64 Ed25519 public key per line)`);
    if (b.length !== ED25519_PUBLIC_KEY_BYTES) {
      throw new CfsError('EKEYS', `${at}: key decodes to ${b.length} bytes, an Ed25519 public key is ${ED25519_PUBLIC_KEY_BYTES}`);
    }
    // Import here so an unusable key is reported against its line, not later
    // as a signature that merely fails to verify; the verification reuses it.
    const key = new Uint8Array(b);
    try {
      const x = jwkX(key);
      imported.set(key, { key: importJwkX(x), x });
    } catch {
      throw new CfsError('EKEYS', `${at}: not a usable Ed25519 public key`);
    }
    keys.push(key);
  });
  if (keys.length === 0) {
    throw new CfsError('EKEYS', `${where}: contains no public key (expected one base64 Ed25519 public key per line)`);
  }
  return keys;
}

/** Read and parse a key file. A missing file is EKEYS saying signed mode needs it. */
export function loadPublicKeys(file: string): Uint8Array[] {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') {
      throw new CfsError(
        'EKEYS',
        `${file}: no such key file; signed composefs (composefs.enabled=signed) needs the Ed25519 public key ` +
          `there: install it into the initramfs, or point [composefs] keypath at it`,
      );
    }
    throw new CfsError('EKEYS', `${file}: cannot open key file: ${describeSystemError(e)}`);
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new CfsError('EKEYS', `${file}: key file is not a regular file`);
    if (st.size > MAX_KEY_FILE) throw new CfsError('EKEYS', `${file}: key file is ${st.size} bytes, too large for a key list`);
    const buf = Buffer.alloc(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
    }
    text = buf.subarray(0, got).toString('utf8');
  } catch (e) {
    if (e instanceof CfsError) throw e;
    throw new CfsError('EKEYS', `${file}: reading key file: ${describeSystemError(e)}`);
  } finally {
    fs.closeSync(fd);
  }
  return parsePublicKeys(text, file);
}

/**
 * The KeyObject parsePublicKeys made of each key it returned: an import is
 * ~130 us even with OpenSSL warm, and a signed boot would make it twice.
 * Keyed by the array itself, so a key that did not come from here (or was
 * changed since: the arrays are the caller's) is never matched to another's
 * import.
 */
const imported = new WeakMap<Uint8Array, { key: KeyObject; x: string }>();

/** The node:crypto KeyObject of a raw 32-byte Ed25519 public key, imported once per key parsePublicKeys returned. */
export function publicKeyObject(raw: Uint8Array): KeyObject {
  const x = jwkX(raw);
  const hit = imported.get(raw);
  return hit !== undefined && hit.x === x ? hit.key : importJwkX(x);
}

/** A raw key as the JWK "x" member: unpadded base64url. */
function jwkX(raw: Uint8Array): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url');
}

/** node:crypto's import of an Ed25519 public key, given as a JWK. */
function importJwkX(x: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
}
