/**
 * Figure (e): node:crypto against the pure-JS implementations the tests
 * use as the independent check (@noble/hashes, tweetnacl), on the inputs
 * a boot really hashes and verifies: the bench deployment's composefs
 * image (fs-verity SHA-256) and its signed commit (SHA-256 of the object,
 * Ed25519 signature). In process, warm, interleaved medians. Each variant's
 * verdict is checked against the other before anything is timed.
 */

import * as crypto from 'node:crypto';
import type { NativeAddon } from '../src/sys/native.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import nacl from 'tweetnacl';
import { fsverityDigest, fsverityDigestFile } from '../src/image/fsverity.js';
import { decodeVardict } from '../src/ostree/gvariant.js';
import { objectPath } from '../src/ostree/commit.js';
import { parsePublicKeys } from '../src/ostree/keys.js';
import { verifySignedCommit } from '../src/ostree/signature.js';
import { fmt, median } from './harness.js';

interface SysrootInfo {
  sysroot: string;
  image: string;
  imageDigest: string;
  commit: string;
  publicKeyBase64: string;
}

/** fs-verity SHA-256 with @noble/hashes: the same tree, an independent hash. */
function nobleFsverity(data: Uint8Array): Uint8Array {
  const B = 4096;
  const hashBlocks = (buf: Uint8Array): Uint8Array => {
    const n = Math.max(1, Math.ceil(buf.length / B));
    const out = new Uint8Array(Math.ceil((n * 32) / B) * B);
    const block = new Uint8Array(B);
    for (let i = 0; i < n; i++) {
      const part = buf.subarray(i * B, (i + 1) * B);
      if (part.length === B) out.set(sha256(part), i * 32);
      else {
        block.fill(0);
        block.set(part);
        out.set(sha256(block), i * 32);
      }
    }
    return out.subarray(0, n * 32);
  };
  let level = hashBlocks(data);
  while (level.length > 32) level = hashBlocks(level);
  const desc = new Uint8Array(256);
  desc[0] = 1;
  desc[1] = 1;
  desc[2] = 12;
  new DataView(desc.buffer).setBigUint64(8, BigInt(data.length), true);
  desc.set(level, 16);
  return sha256(desc);
}

export async function cryptoFigures(info: SysrootInfo, rounds: number): Promise<Record<string, number>> {
  const image = fs.readFileSync(info.image);
  const repo = path.join(info.sysroot, 'ostree/repo');
  const commitBytes = fs.readFileSync(objectPath(repo, info.commit, 'commit'));
  const meta = decodeVardict(fs.readFileSync(objectPath(repo, info.commit, 'commitmeta')));
  const sig = (meta.get('ostree.sign.ed25519')!.value as Uint8Array[])[0]!;
  const [key] = parsePublicKeys(`${info.publicKeyBase64}\n`, 'bench key');

  // Verdicts first: both sides must agree with each other and with the generator.
  const a = Buffer.from(fsverityDigest(image, 'sha256')).toString('hex');
  const b = Buffer.from(nobleFsverity(image)).toString('hex');
  if (a !== info.imageDigest || b !== info.imageDigest) throw new Error(`image digest disagreement: node ${a}, noble ${b}, generator ${info.imageDigest}`);
  const keyObject = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key!).toString('base64url') }, format: 'jwk' });
  if (!crypto.verify(null, commitBytes, keyObject, sig) || !nacl.sign.detached.verify(commitBytes, sig, key!)) {
    throw new Error('signature verdicts disagree or fail');
  }

  const variants: Record<string, () => unknown> = {
    'image fs-verity: src/image/fsverity.ts, file (no-addon fallback)': () => fsverityDigestFile(info.image, 'sha256'),
    'image fs-verity: src/image/fsverity.ts, in memory': () => fsverityDigest(image, 'sha256'),
    'image fs-verity: @noble/hashes, in memory': () => nobleFsverity(image),
    'image one-shot sha256 (node:crypto floor)': () => crypto.createHash('sha256').update(image).digest(),
    ...nativeVariants(info.image, info.imageDigest),
    'commit: verifySignedCommit (boot path)': () => verifySignedCommit(repo, info.commit, [key!], 'bench key'),
    'commit: node:crypto verify (key object made)': () =>
      crypto.verify(null, commitBytes, crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key!).toString('base64url') }, format: 'jwk' }), sig),
    'commit: tweetnacl verify': () => nacl.sign.detached.verify(commitBytes, sig, key!),
  };
  const times: Record<string, number[]> = {};
  for (const [n, f] of Object.entries(variants)) {
    await f();
    times[n] = [];
  }
  for (let r = 0; r < rounds; r++) {
    for (const [n, f] of Object.entries(variants)) {
      const t0 = process.hrtime.bigint();
      await f();
      times[n]!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  console.log(`\n(e) crypto on the boot's inputs (image ${image.length} bytes, commit ${commitBytes.length} bytes), in process, ${rounds} rounds`);
  const out: Record<string, number> = {};
  for (const [n, t] of Object.entries(times)) {
    out[n] = median(t);
    console.log(`  ${n.padEnd(52)} ${fmt(median(t), 3).padStart(10)} ms`);
  }
  return out;
}

/**
 * The addon's C digest (native/verity.c: OpenSSL's SHA256 per block,
 * the same library node:crypto runs on), as the boot and verify use it; from
 * build/native (make builds it). Checked against the generator's digest.
 */
function nativeVariants(image: string, want: string): Record<string, () => unknown> {
  const file = path.resolve(import.meta.dirname, '../build/native/cfsroot_sys.node');
  if (!fs.existsSync(file)) return {};
  const mod = { exports: {} as Partial<NativeAddon> };
  process.dlopen(mod, file);
  const addon = mod.exports;
  if (!addon.digestFile) return {};
  const got = addon.digestFile(image, 'sha256', 1).toString('hex');
  if (got !== want) throw new Error(`addon digest ${got} disagrees with the generator's ${want}`);
  return {
    'image fs-verity: addon digestFile, 1 thread': () => addon.digestFile!(image, 'sha256', 1),
    'image fs-verity: addon digestFile, 2 threads': () => addon.digestFile!(image, 'sha256', 2),
  };
}
