/**
 * An fs-verity digest computed independently of src/image/fsverity.ts and of the
 * native addon, for the tests to hold both to (SPEC §3).
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import type { VerityAlg } from '../../src/image/fsverity.js';

const B = 4096;

/**
 * Independent reference: the Merkle tree built level by level as arrays of
 * @noble/hashes digests, padding by copying into fresh zeroed arrays, and the
 * descriptor laid out field by field from the kernel's struct.
 */
export function referenceDigest(data: Uint8Array, alg: VerityAlg): Uint8Array {
  const H = alg === 'sha256' ? sha256 : sha512;
  const padToBlocks = (b: Uint8Array): Uint8Array => {
    const out = new Uint8Array(Math.ceil(b.length / B) * B);
    out.set(b);
    return out;
  };
  let root = new Uint8Array(H.outputLen);
  if (data.length > 0) {
    let level = padToBlocks(data);
    for (;;) {
      const hashes: Uint8Array[] = [];
      for (let o = 0; o < level.length; o += B) hashes.push(H(level.subarray(o, o + B)));
      if (hashes.length === 1) {
        root = new Uint8Array(hashes[0]!);
        break;
      }
      const joined = new Uint8Array(hashes.length * H.outputLen);
      hashes.forEach((h, i) => joined.set(h, i * H.outputLen));
      level = padToBlocks(joined);
    }
  }
  const desc = new Uint8Array(256);
  desc[0] = 1; // version
  desc[1] = alg === 'sha256' ? 1 : 2; // FS_VERITY_HASH_ALG_SHA256 / _SHA512
  desc[2] = 12; // log2(4096)
  desc[3] = 0; // salt size
  let n = BigInt(data.length);
  for (let i = 0; i < 8; i++, n >>= 8n) desc[8 + i] = Number(n & 0xffn);
  desc.set(root, 16);
  return H(desc);
}


/** Deterministic bytes for a seed (xorshift32), so fast-check can shrink and replay. */
export function pseudoRandom(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
