/**
 * Signed-commit verification for composefs.enabled=signed (SPEC §2): the
 * `.commit` must hash to its checksum, its `.commitmeta` must carry an
 * `ostree.sign.ed25519` signature (aay, 64 bytes each) over the raw `.commit`
 * bytes that verifies with one of the trusted keys, and the commit metadata
 * must carry the 32-byte `ostree.composefs.digest.v0` the image is pinned to.
 * Includes the bootc fallback to the parent commit.
 *
 * Both objects are read lazily (src/ostree/gvariant.ts "Lazy reading"): checked
 * whole, decoded only for the keys named here, and at most MAX_SIGNATURES
 * signatures, counted from the framing before any is read or verified.
 */

import { hash, verify } from 'node:crypto';
import { CfsError, describeSystemError } from '../errors.js';
import * as fs from 'node:fs';
import { checksumToHex, objectPath, openCommit, readObject, readObjectIfExists, type CommitView } from './commit.js';
import { countElements, decodeLocated, locateVardict, validate, whole } from './gvariant.js';
import { publicKeyObject } from './keys.js';
import type { SignedCommit } from './model.js';

export const SIGNATURE_KEY = 'ostree.sign.ed25519';
export const DIGEST_KEY = 'ostree.composefs.digest.v0';
/** bootc's marker that a commit came from a container image (SPEC §2 bootc fallback). */
export const IMAGE_CONFIG_KEY = 'ostree.container.image-config';
export const ED25519_SIGNATURE_BYTES = 64;
/**
 * Most `ostree.sign.ed25519` signatures a `.commitmeta` may hold (SPEC §2
 * "Limits"). `ostree sign` adds one per signing key; a few cover a key
 * rotation. Each is tried against every trusted key, so without a cap ~2
 * million 64-byte signatures (they fit in 128 MiB) would keep the boot busy
 * for minutes, past systemd's start timeout.
 */
export const MAX_SIGNATURES = 16;

interface LoadedCommit {
  checksum: string;
  path: string;
  bytes: Uint8Array;
  commit: CommitView;
}

function repoDevice(repoDir: string): number {
  try {
    return fs.statSync(repoDir).dev;
  } catch (e) {
    throw new CfsError('EOBJECT', `the repo ${repoDir} cannot be read: ${describeSystemError(e)}`);
  }
}

/** Read `.commit`, check that its SHA-256 is its name, parse it. */
function loadCommit(repoDir: string, checksum: string, device: number): LoadedCommit {
  const file = objectPath(repoDir, checksum, 'commit');
  const bytes = readObject(file, `commit ${checksum}`, device);
  const actual = hash('sha256', bytes, 'hex');
  if (actual !== checksum) {
    throw new CfsError('EOBJECT', `${file}: content hashes to ${actual}, not to its name ${checksum} (corrupt or tampered commit object)`);
  }
  return { checksum, path: file, bytes, commit: openCommit(bytes, file) };
}

/**
 * Verify the deployment's commit (or, by the bootc fallback, its parent) and
 * return the composefs digest it carries. `keyPath` is the configured key
 * file path, reported in the result and in messages.
 */
export function verifySignedCommit(
  repoDir: string,
  commit: string,
  keys: Uint8Array[],
  keyPath: string,
  sysrootDevice?: number,
): SignedCommit {
  // The boot passes SYSROOT's st_dev: the objects must be on that filesystem
  // (src/ostree/commit.ts readObject). Without it, the repo directory's own.
  objectPath(repoDir, commit, 'commit'); // the name is checked before anything is looked up
  const device = sysrootDevice ?? repoDevice(repoDir);
  const c = loadCommit(repoDir, commit, device);
  const metaPath = objectPath(repoDir, commit, 'commitmeta');
  const meta = readObjectIfExists(metaPath, `commitmeta of ${commit}`, device);
  if (meta !== null) return verifyLoaded(c, meta, metaPath, keys, keyPath, false);

  // bootc: a commit imported from a container image has no .commitmeta of
  // its own; the signed commit it was layered on is its parent.
  if (c.commit.metadata.has(IMAGE_CONFIG_KEY) && c.commit.parent.length === 32) {
    const parent = checksumToHex(c.commit.parent);
    const parentPath = objectPath(repoDir, parent, 'commit');
    if (readObjectIfExists(parentPath, `parent commit ${parent}`, device) !== null) {
      const p = loadCommit(repoDir, parent, device);
      const pMetaPath = objectPath(repoDir, parent, 'commitmeta');
      const pMeta = readObjectIfExists(pMetaPath, `commitmeta of ${parent}`, device);
      if (pMeta === null) {
        throw new CfsError(
          'ESIGNATURE',
          `commit ${commit} has no ${metaPath}, and neither has its parent ${parent} (${pMetaPath}) that the bootc fallback checks: ` +
            `no detached signature to verify (usually lost on a container round-trip; sign the commit with ostree sign and ship its .commitmeta)`,
        );
      }
      return verifyLoaded(p, pMeta, pMetaPath, keys, keyPath, true);
    }
  }
  throw new CfsError(
    'ESIGNATURE',
    `${metaPath} is missing: commit ${commit} has no detached signature metadata. Usual cause: the .commitmeta was ` +
      `lost on a container round-trip (export/import or pull from a registry), or the commit was never signed ` +
      `(ostree sign --sign-type=ed25519)`,
  );
}

function verifyLoaded(
  c: LoadedCommit,
  meta: Uint8Array,
  metaPath: string,
  keys: Uint8Array[],
  keyPath: string,
  viaParent: boolean,
): SignedCommit {
  const metaObj = whole('a{sv}', meta);
  const dict = locateVardict(metaObj, metaPath);
  const sigVar = dict.get(SIGNATURE_KEY);
  if (sigVar === undefined) {
    throw new CfsError('ESIGNATURE', `${metaPath}: no ${SIGNATURE_KEY} signatures for commit ${c.checksum} (sign it with ostree sign --sign-type=ed25519)`);
  }
  if (sigVar.type !== 'aay') {
    throw new CfsError('ESIGNATURE', `${metaPath}: ${SIGNATURE_KEY} has type '${sigVar.type}', expected 'aay'`);
  }
  const count = countElements(sigVar, metaPath);
  if (count > MAX_SIGNATURES) {
    throw new CfsError(
      'ELIMIT',
      `${metaPath}: ${count} ${SIGNATURE_KEY} signatures, over the limit of ${MAX_SIGNATURES} (ostree sign adds one per key); none was verified`,
    );
  }
  validate(metaObj, metaPath);
  const sigs = decodeLocated(sigVar, metaPath) as Uint8Array[];
  sigs.forEach((s, i) => {
    // ostree treats a wrong-length signature as an error, not as a non-match.
    if (s.length !== ED25519_SIGNATURE_BYTES) {
      throw new CfsError('ESIGNATURE', `${metaPath}: signature ${i} is ${s.length} bytes, an Ed25519 signature is ${ED25519_SIGNATURE_BYTES}`);
    }
  });

  const keyObjects = keys.map((k, i) => {
    if (k.length !== 32) throw new CfsError('EKEYS', `${keyPath}: key ${i} is ${k.length} bytes, an Ed25519 public key is 32`);
    return publicKeyObject(k);
  });
  let keyIndex = -1;
  search: for (const sig of sigs) {
    for (let k = 0; k < keyObjects.length; k++) {
      if (verify(null, c.bytes, keyObjects[k]!, sig)) {
        keyIndex = k;
        break search;
      }
    }
  }
  if (keyIndex < 0) {
    throw new CfsError(
      'ESIGNATURE',
      `no valid signature on commit ${c.checksum}${viaParent ? ' (parent, bootc fallback)' : ''}: ` +
        `tried ${sigs.length} signature(s) from ${metaPath} against ${keys.length} key(s) from ${keyPath}`,
    );
  }

  return { commit: c.checksum, viaParent, keyPath, keyIndex, digest: commitDigest(c) };
}

/** The composefs image digest the (verified) commit pins, as lowercase hex. */
function commitDigest(c: LoadedCommit): string {
  const fix =
    'the commit was built without a composefs digest: create it with composefs metadata ' +
    '(ostree commit --generate-composefs-metadata, or a composefs-enabled rpm-ostree/bootc build) and sign it again';
  const v = c.commit.metadata.get(DIGEST_KEY);
  if (v === undefined) throw new CfsError('EDIGEST', `commit ${c.checksum} has no ${DIGEST_KEY} metadata; ${fix}`);
  if (v.type !== 'ay') {
    throw new CfsError('EDIGEST', `commit ${c.checksum}: ${DIGEST_KEY} has type '${v.type}', expected 'ay' (32 bytes); ${fix}`);
  }
  const d = decodeLocated(v, c.path) as Uint8Array;
  if (d.length !== 32) {
    throw new CfsError('EDIGEST', `commit ${c.checksum}: ${DIGEST_KEY} is ${d.length} bytes, expected 32 (a SHA-256 fs-verity digest); ${fix}`);
  }
  return checksumToHex(d);
}
