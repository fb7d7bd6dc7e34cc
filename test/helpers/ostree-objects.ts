/**
 * Test helpers that write OSTree objects (SPEC §2) into a repository
 * directory: commits, detached metadata, Ed25519 signatures. Used by the
 * signature tests and by tools that generate example sysroots.
 */

import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeCommit, objectPath, type Commit } from '../../src/ostree/commit.js';
import { encodeVardict, type Variant } from '../../src/ostree/gvariant.js';
import { rawPublicKey } from '../../tools/mksysroot.js';

export interface KeyPair {
  /** Raw 32-byte Ed25519 public key (what the key file holds, base64). */
  publicKey: Uint8Array;
  privateKey: KeyObject;
}

export function generateKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: new Uint8Array(rawPublicKey(privateKey)), privateKey };
}

export function publicKeyBase64(raw: Uint8Array): string {
  return Buffer.from(raw).toString('base64');
}

/** Ed25519 signature (64 bytes) over the raw .commit bytes, as ostree sign makes it. */
export function signCommit(commitBytes: Uint8Array, privateKey: KeyObject): Uint8Array {
  return new Uint8Array(sign(null, commitBytes, privateKey));
}

/** Write raw bytes as an object of the given type; returns the file path. */
export function writeObject(repoDir: string, checksum: string, type: 'commit' | 'commitmeta', bytes: Uint8Array): string {
  const file = objectPath(repoDir, checksum, type);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}

/** Serialise and store a commit; returns its checksum (SHA-256 of the bytes). */
export function writeCommit(repoDir: string, commit: Commit): string {
  const bytes = encodeCommit(commit);
  const checksum = createHash('sha256').update(bytes).digest('hex');
  writeObject(repoDir, checksum, 'commit', bytes);
  return checksum;
}

/** Store `.commitmeta` (an a{sv}, entries in the order given) for a commit. */
export function writeCommitmeta(repoDir: string, checksum: string, entries: Iterable<[string, Variant]>): string {
  return writeObject(repoDir, checksum, 'commitmeta', encodeVardict(entries));
}

/** Metadata entry carrying Ed25519 signatures, as `.commitmeta` holds them. */
export function signatureEntry(signatures: Uint8Array[]): [string, Variant] {
  return ['ostree.sign.ed25519', { type: 'aay', value: signatures }];
}

/** A plausible commit for tests; override any field. */
export function makeCommit(over: Partial<Commit> = {}): Commit {
  return {
    metadata: new Map<string, Variant>(),
    parent: new Uint8Array(0),
    related: [],
    subject: 'test commit',
    body: '',
    timestamp: 1_700_000_000n,
    rootTree: new Uint8Array(32).fill(0x11),
    rootMeta: new Uint8Array(32).fill(0x22),
    ...over,
  };
}
