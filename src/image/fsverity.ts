/**
 * fs-verity file digest, computed in user space exactly as `fsverity digest`
 * prints it (SPEC §3): 4096-byte blocks, a Merkle tree of block hashes, and
 * the hash of the 256-byte fs-verity descriptor. No salt, sha256 or sha512.
 *
 * cfsroot has no fs-verity ioctl: it hashes the image it is about to mount
 * while copying it (createVerityHasher, fed by src/sys/copy.ts with the very
 * buffers written to the copy), so this runs at every boot and has to be
 * fast. Files below the worker threshold use a plain loop without Atomics,
 * so that the snapshot warm-up (src/startup/warmup.ts) can run it. Per-block hashing,
 * measured on the 2-vCPU build VM (AMD EPYC with SHA-NI, Node 20.20, 64 MiB
 * in memory, medians of 7):
 *   one-shot createHash('sha256') of the whole buffer         1143 MiB/s (1.00)
 *   createHash() per 4 KiB block                                482 MiB/s (0.42)
 *   crypto.hash(alg, block, 'buffer') per block                 596 MiB/s (0.52)
 *   crypto.hash(alg, block, 'binary') per block, one Buffer
 *     write of the concatenated strings per chunk               842 MiB/s (0.74)
 * A hash object per block costs more than hashing 4 KiB with SHA-NI, so the
 * per-call overhead decides: the one-shot `crypto.hash` (Node >= 20.12)
 * returning a latin1 string avoids both the Hash object and a Buffer per
 * block. That caps one thread at ~0.74 of a plain SHA-256 pass (~0.70 from a
 * file, reads included), so large files also use worker threads for level 0
 * (the data blocks), which is embarrassingly parallel. bench/digest.ts, 256
 * MiB file, sha256, when the VM's two vCPUs really run in parallel:
 * one thread 0.69-0.73x, caller + 1 worker 1.06-1.08x of the one-shot pass
 * (sha512: 0.81x and 1.44x). When the host does not give the VM two real
 * cores, the worker gains nothing (0.58-0.65x): it is a bonus, not a promise.
 *
 * Workers must run inside the single-executable bundle, where only
 * `new Worker(code, { eval: true })` works and only builtins can be required.
 * The chunk loop is therefore one self-contained function (`hashChunks`) whose
 * source text is the worker's code; the main thread runs the same function,
 * so the two cannot drift apart. Workers are only accelerators: chunks are
 * claimed through a shared counter, the main thread hashes too, and any chunk
 * a worker did not finish (it died, could not start, hit a read error) is
 * hashed again by the main thread, which then reports any error itself.
 */

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { isSea } from 'node:sea';
import { describeSystemError, fail } from '../errors.js';
import type { Worker } from 'node:worker_threads';

/** The fs-verity hash of an image: ostree's are sha256; composefs-native names them in either. */
export type VerityAlg = 'sha256' | 'sha512';

/** fs-verity block size used by composefs and `fsverity digest` defaults (log2 = 12). */
const BLOCK_SIZE = 4096;
const LOG_BLOCK_SIZE = 12;
const DESCRIPTOR_SIZE = 256;
/** Offsets inside struct fsverity_descriptor (linux/fsverity.h). */
const DESC_DATA_SIZE = 8;
const DESC_ROOT_HASH = 16;

/** fs-verity hash algorithm numbers (FS_VERITY_HASH_ALG_*) and digest sizes. */
const ALGS: Record<VerityAlg, { id: number; size: number }> = {
  sha256: { id: 1, size: 32 },
  sha512: { id: 2, size: 64 },
};

/**
 * Bytes read and hashed per claimed chunk: the memory window of each thread
 * and the unit of work sharing. 256 KiB, 1 MiB and 4 MiB measured within 5%
 * of each other on 256 MiB (one thread 0.66/0.64/0.63x, two 1.01/1.03/0.99x).
 */
const CHUNK_SIZE = 1 << 20;

/**
 * Below this size the file is hashed on the calling thread only. A worker
 * takes ~50 ms to start here, in which the caller alone hashes ~35 MiB.
 * Measured (caller only vs caller + 1 worker, medians of 9): 8 MiB 10.5 vs
 * 11.9 ms (the worker is stopped before it finds work), 24 MiB 30.9 vs 31.7,
 * 40 MiB 50.5 vs 49.4, 64 MiB 78.7 vs 68.3 ms.
 */
const PARALLEL_MIN_SIZE = 48 << 20;
/** Not measured beyond 2 CPUs; capped so the boot keeps CPUs for the rest of the initrd. */
const MAX_WORKERS = 3;

function algInfo(alg: VerityAlg): { id: number; size: number } {
  // hasOwn: a JS caller's 'constructor' must not find Object.prototype's.
  return Object.hasOwn(ALGS, alg) ? ALGS[alg] : fail('EDIGEST', `unknown fs-verity hash algorithm '${String(alg)}' (expected sha256 or sha512)`);
}

/** Hash of one block (or the descriptor) as a Buffer. */
function hashOnce(alg: VerityAlg, data: Uint8Array): Buffer {
  return crypto.createHash(alg).update(data).digest();
}

/**
 * Hash `count` consecutive 4096-byte blocks of `src` (which must be zero-padded
 * up to a whole block) into `out` at `outOffset`, one hash per block. The
 * strings are concatenated and written once: see the measurements above.
 */
function hashBlocks(alg: VerityAlg, src: Uint8Array, count: number, out: Buffer, outOffset: number): void {
  const view = Buffer.from(src.buffer, src.byteOffset, src.byteLength);
  const { size } = algInfo(alg);
  const hashesPerWrite = 256; // 1 MiB of data per string write
  for (let b = 0; b < count; b += hashesPerWrite) {
    const end = Math.min(count, b + hashesPerWrite);
    let s = '';
    for (let i = b; i < end; i++) {
      s += crypto.hash(alg, view.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE), 'binary');
    }
    out.write(s, outOffset + b * size, 'binary');
  }
}

/** Hashes of `count` whole blocks at the start of `src`, as a new Buffer. */
function blockHashes(alg: VerityAlg, src: Uint8Array, count: number): Buffer {
  const out = Buffer.allocUnsafe(count * algInfo(alg).size); // every byte is written by hashBlocks
  hashBlocks(alg, src, count, out, 0);
  return out;
}

/** Round up to a whole number of blocks (at least one, so every level is hashable). */
function blockAligned(n: number): number {
  return Math.max(1, Math.ceil(n / BLOCK_SIZE)) * BLOCK_SIZE;
}

/**
 * Build the tree levels above level 0 and return the root hash. `level0`
 * holds `count` hashes and is zero-padded to a whole block. With one data
 * block there is no tree: the root is that block's hash.
 */
function merkleRoot(alg: VerityAlg, level0: Buffer, count: number): Buffer {
  const size = algInfo(alg).size;
  let level = level0;
  let n = count;
  while (n > 1) {
    const blocks = Math.ceil((n * size) / BLOCK_SIZE);
    const next = Buffer.alloc(blockAligned(blocks * size)); // zeros = the padding
    hashBlocks(alg, level, blocks, next, 0);
    level = next;
    n = blocks;
  }
  return Buffer.from(level.subarray(0, size));
}

/** Hash of the fs-verity descriptor: the file digest `fsverity digest` prints. */
function descriptorDigest(alg: VerityAlg, dataSize: number, root: Uint8Array): Buffer {
  const desc = Buffer.alloc(DESCRIPTOR_SIZE); // salt, reserved and root padding stay zero
  desc[0] = 1; // version
  desc[1] = algInfo(alg).id;
  desc[2] = LOG_BLOCK_SIZE;
  desc[3] = 0; // salt_size; the u32 after it (sig_size) is 0
  desc.writeBigUInt64LE(BigInt(dataSize), DESC_DATA_SIZE);
  desc.set(root, DESC_ROOT_HASH);
  return hashOnce(alg, desc);
}

/** Digest of a whole in-memory buffer, synchronously, on the calling thread. */
export function fsverityDigest(data: Uint8Array, alg: VerityAlg): Buffer {
  const { size } = algInfo(alg);
  if (data.byteLength === 0) return descriptorDigest(alg, 0, new Uint8Array(size));
  const blocks = Math.ceil(data.byteLength / BLOCK_SIZE);
  const level0 = Buffer.alloc(blockAligned(blocks * size));
  const full = Math.floor(data.byteLength / BLOCK_SIZE);
  hashBlocks(alg, data, full, level0, 0);
  if (full < blocks) {
    // Only the last, partial block needs a zero-padded copy.
    const last = new Uint8Array(BLOCK_SIZE);
    last.set(data.subarray(full * BLOCK_SIZE));
    hashBlocks(alg, last, 1, level0, full * size);
  }
  return descriptorDigest(alg, data.byteLength, merkleRoot(alg, level0, blocks));
}

/**
 * Incremental fs-verity digest over data that arrives in pieces of any size.
 * The boot's copy step (src/plan/execute.ts) feeds it each buffer it writes
 * to the image copy, so the bytes mounted are exactly the bytes hashed and
 * the image is read only once (issue 5).
 */
export interface VerityHasher {
  /** Hash `chunk` now (it may be reused by the caller as soon as this returns). */
  update(chunk: Uint8Array): void;
  /** The file digest of everything passed to `update`. Call once. */
  digest(): Uint8Array;
}

export function createVerityHasher(alg: VerityAlg): VerityHasher & { digest(): Buffer } {
  const { size } = algInfo(alg);
  const level0: Buffer[] = []; // level-0 hashes, one Buffer per update
  const partial = Buffer.alloc(BLOCK_SIZE); // a block split across updates
  let partialLen = 0;
  let dataSize = 0;
  let finished = false;
  return {
    update(chunk) {
      if (finished) fail('EINTERNAL', 'fs-verity hasher: update() after digest()');
      dataSize += chunk.byteLength;
      let off = 0;
      if (partialLen > 0) {
        // Only a block split across two updates is copied; whole blocks are hashed in place.
        const take = Math.min(BLOCK_SIZE - partialLen, chunk.byteLength);
        partial.set(chunk.subarray(0, take), partialLen);
        partialLen += take;
        off = take;
        if (partialLen < BLOCK_SIZE) return;
        level0.push(blockHashes(alg, partial, 1));
        partialLen = 0;
      }
      const whole = Math.floor((chunk.byteLength - off) / BLOCK_SIZE);
      if (whole > 0) level0.push(blockHashes(alg, chunk.subarray(off, off + whole * BLOCK_SIZE), whole));
      off += whole * BLOCK_SIZE;
      if (off < chunk.byteLength) {
        partial.set(chunk.subarray(off));
        partialLen = chunk.byteLength - off;
      }
    },
    digest() {
      if (finished) fail('EINTERNAL', 'fs-verity hasher: digest() called twice');
      finished = true;
      if (dataSize === 0) return descriptorDigest(alg, 0, new Uint8Array(size));
      if (partialLen > 0) {
        partial.fill(0, partialLen); // zero-pad the last block
        level0.push(blockHashes(alg, partial, 1));
      }
      const blocks = Math.ceil(dataSize / BLOCK_SIZE);
      const level = Buffer.alloc(blockAligned(blocks * size)); // zeros = the padding
      let o = 0;
      for (const h of level0) o += h.copy(level, o);
      return descriptorDigest(alg, dataSize, merkleRoot(alg, level, blocks));
    },
  };
}

/** `sha256:<hex>`, the form `fsverity digest` prints. */
export function formatDigest(alg: VerityAlg, digest: Uint8Array): string {
  const { size } = algInfo(alg);
  if (digest.byteLength !== size) {
    fail('EDIGEST', `${alg} fs-verity digest must be ${size} bytes, got ${digest.byteLength}`);
  }
  return `${alg}:${Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex')}`;
}

/** Control words in the shared Int32Array. */
const CTL_NEXT = 0; // next chunk index to claim

/**
 * Claim chunks of the file through `ctl[0]`, read each with pread into a
 * private 1 MiB buffer, hash its blocks into the level-0 array `out`, and
 * mark it done in `state`. Chunks already marked done are skipped, which is
 * how the main thread re-does only what a failed worker left.
 *
 * This function is also the worker's source code (via toString), so it must
 * stay self-contained: it may use only its parameters and JS/Node globals
 * (Atomics, Buffer, Math), never module-level names or imports, which a
 * bundler renames. `onChunk` lets a worker report progress.
 */
function hashChunks(
  fsm: typeof fs,
  cryptom: typeof crypto,
  fd: number,
  size: number,
  alg: string,
  hashSize: number,
  chunkSize: number,
  ctl: Int32Array,
  state: Uint8Array,
  out: Uint8Array,
  onChunk: (index: number) => void,
): void {
  const block = 4096; // BLOCK_SIZE; a literal because module constants are not in scope
  const chunks = Math.ceil(size / chunkSize);
  const buf = Buffer.alloc(chunkSize);
  const outBuf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  for (;;) {
    const index = Atomics.add(ctl, 0, 1);
    if (index >= chunks) return;
    if (Atomics.load(state, index) === 1) continue;
    const pos = index * chunkSize;
    const len = Math.min(chunkSize, size - pos);
    let got = 0;
    while (got < len) {
      const n = fsm.readSync(fd, buf, got, len - got, pos + got);
      if (n === 0) throw new Error(`file ended at byte ${pos + got}, expected ${size} bytes (was it truncated while being read?)`);
      got += n;
    }
    const end = Math.ceil(len / block) * block;
    buf.fill(0, len, end); // zero-pad the file's last block
    let s = '';
    for (let o = 0; o < end; o += block) s += cryptom.hash(alg, buf.subarray(o, o + block), 'binary');
    outBuf.write(s, (pos / block) * hashSize, 'binary');
    Atomics.store(state, index, 1);
    onChunk(index);
  }
}

/** Worker source: run hashChunks on the file descriptor the process shares. */
const WORKER_SOURCE = `'use strict';
const { workerData: d, parentPort } = require('node:worker_threads');
(${hashChunks.toString()})(require('node:fs'), require('node:crypto'), d.fd, d.size, d.alg, d.hashSize,
  d.chunkSize, d.ctl, d.state, d.out, (i) => parentPort.postMessage(i));`;

export interface DigestFileOptions {
  /**
   * Worker threads to add to the calling thread for level 0. Default: none
   * below 48 MiB, else one per extra CPU (at most 3). 0 forces one thread.
   */
  workers?: number;
  /**
   * The calling thread hashes chunks too (default true). false leaves level 0
   * to the workers, which makes their share deterministic for tests; the
   * calling thread still hashes whatever they leave undone.
   */
  callerHashes?: boolean;
  /** Receives how the work was shared (bench, tests, verbose output). */
  onStats?: (stats: DigestStats) => void;
}

export interface DigestStats {
  size: number;
  /** 1 MiB units of work at level 0. */
  chunks: number;
  /** Worker threads started. */
  workers: number;
  /** Chunks hashed by workers. */
  workerChunks: number;
  /** Chunks the calling thread re-did because a worker did not finish them. */
  redoneChunks: number;
  /** Messages of workers that failed (their chunks were redone). */
  workerErrors: string[];
}

/**
 * Digest of a file, streamed: at most one 1 MiB chunk per thread is held
 * besides the tree levels (level 0 is 1/128 of the file for sha256). Hashes
 * the size the file has when opened; a file that shrinks meanwhile is an error.
 */
export async function fsverityDigestFile(path: string, alg: VerityAlg, options: DigestFileOptions = {}): Promise<Buffer> {
  const { size: hashSize } = algInfo(alg);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not hang the boot; no effect on regular files.
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    return fail('EIO', `reading ${path}: ${describeSystemError(e)}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) fail('EIO', `${path}: not a regular file (${describeType(st)}), cannot compute its fs-verity digest`);
    const size = st.size;
    if (!Number.isSafeInteger(size)) fail('ELIMIT', `${path}: ${size} bytes is too large to hash`);
    const blocks = Math.ceil(size / BLOCK_SIZE);
    const chunks = Math.ceil(size / CHUNK_SIZE);
    const callerHashes = options.callerHashes ?? true;
    // Never more workers than chunks left for them.
    const wanted = Math.max(0, Math.floor(options.workers ?? defaultWorkers(size)));
    const workers = Math.min(wanted, callerHashes ? chunks - 1 : chunks);
    const stats: DigestStats = { size, chunks, workers: 0, workerChunks: 0, redoneChunks: 0, workerErrors: [] };
    if (size === 0) {
      options.onStats?.(stats);
      return descriptorDigest(alg, 0, new Uint8Array(hashSize));
    }

    const levelBytes = blockAligned(blocks * hashSize);
    // Shared memory only when another thread writes into it.
    const shared = (n: number): ArrayBufferLike => (workers > 0 ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
    const level0 = Buffer.from(shared(levelBytes));
    const ctl = new Int32Array(shared(4));
    const state = new Uint8Array(shared(chunks));
    let ownChunks = 0;
    const run = (): void => {
      try {
        hashChunks(fs, crypto, fd, size, alg, hashSize, CHUNK_SIZE, ctl, state, level0, () => ownChunks++);
      } catch (e) {
        fail('EIO', `reading ${path}: ${describeSystemError(e)}`);
      }
    };

    if (workers > 0) {
      const pool = startWorkers(workers, { fd, size, alg, hashSize, chunkSize: CHUNK_SIZE, ctl, state, out: level0 });
      stats.workers = pool.started;
      if (callerHashes) run();
      await pool.settled(() => allDone(state));
      // Every chunk is done or its worker is gone, so no worker reads fd after we close it.
      pool.stop();
      stats.workerErrors = pool.errors;
      const before = ownChunks;
      // Re-do what dead workers left; the calling thread reports any read error itself.
      if (!allDone(state)) {
        Atomics.store(ctl, CTL_NEXT, 0);
        run();
      }
      stats.redoneChunks = ownChunks - before;
      stats.workerChunks = chunks - ownChunks;
    } else {
      // One thread: a plain loop without Atomics, so that the snapshot
      // warm-up (src/startup/warmup.ts), where Atomics does not exist, compiles it.
      try {
        hashFileOneThread(fd, size, alg, level0);
      } catch (e) {
        fail('EIO', `reading ${path}: ${describeSystemError(e)}`);
      }
    }
    options.onStats?.(stats);
    return descriptorDigest(alg, size, merkleRoot(alg, level0, blocks));
  } finally {
    fs.closeSync(fd);
  }
}

/** Level 0 of the whole file on the calling thread: read a chunk, hash its blocks, repeat. */
function hashFileOneThread(fd: number, size: number, alg: VerityAlg, level0: Buffer): void {
  const hashSize = algInfo(alg).size;
  const buf = Buffer.alloc(Math.min(CHUNK_SIZE, blockAligned(size)));
  for (let pos = 0; pos < size; pos += buf.length) {
    const len = Math.min(buf.length, size - pos);
    let got = 0;
    while (got < len) {
      const n = fs.readSync(fd, buf, got, len - got, pos + got);
      if (n === 0) throw new Error(`file ended at byte ${pos + got}, expected ${size} bytes (was it truncated while being read?)`);
      got += n;
    }
    const blocks = Math.ceil(len / BLOCK_SIZE);
    buf.fill(0, len, blocks * BLOCK_SIZE); // zero-pad the file's last block
    hashBlocks(alg, buf, blocks, level0, (pos / BLOCK_SIZE) * hashSize);
  }
}

function defaultWorkers(size: number): number {
  if (size < PARALLEL_MIN_SIZE) return 0;
  // Node 24.22, single executable started from a user snapshot: a Worker that
  // loads node:crypto aborts the whole process (native assertion
  // `crypto_key_object_constructor_template().IsEmpty()`, exit 134; seen from
  // 128 MiB up, where the workers get chunks). So the executable hashes on the
  // calling thread only; its fast path is the addon's own threads. Run from
  // source, workers are used.
  if (isSea()) return 0;
  return Math.max(0, Math.min(MAX_WORKERS, availableParallelism() - 1));
}

function allDone(state: Uint8Array): boolean {
  for (let i = 0; i < state.length; i++) if (Atomics.load(state, i) !== 1) return false;
  return true;
}

function describeType(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  return 'not a file';
}

interface WorkerPool {
  started: number;
  /** error messages of workers that failed */
  errors: string[];
  /** Resolves once `done()` holds (checked after each worker message) or every worker has exited. */
  settled(done: () => boolean): Promise<void>;
  /** Terminate the workers still running (those that started too late to find work). */
  stop(): void;
}

function startWorkers(count: number, workerData: Record<string, unknown>): WorkerPool {
  const workers: Worker[] = [];
  const errors: string[] = [];
  let alive = 0;
  let wake: () => void = () => {};
  for (let i = 0; i < count; i++) {
    let w: Worker;
    try {
      // execArgv: [] keeps the parent's loaders (e.g. tsx in tests) out of the worker.
      // Loaded here, not imported at the top: the executable never starts workers
      // (defaultWorkers), and a top-level import would put node:worker_threads
      // into its startup snapshot, which every run deserializes.
      const { Worker } = process.getBuiltinModule('node:worker_threads');
      w = new Worker(WORKER_SOURCE, { eval: true, workerData, execArgv: [] });
    } catch (e) {
      errors.push(describeSystemError(e));
      break; // no (more) workers: the calling thread does the rest
    }
    alive++;
    // An 'error' without a listener would crash the process; the failed
    // worker's unfinished chunk is simply redone by the calling thread.
    w.on('error', (e) => errors.push(describeSystemError(e)));
    w.on('message', () => wake());
    w.on('exit', () => {
      alive--;
      wake();
    });
    workers.push(w);
  }
  return {
    started: workers.length,
    errors,
    settled(done) {
      return new Promise((resolve) => {
        wake = () => {
          if (alive === 0 || done()) resolve();
        };
        wake();
      });
    },
    stop() {
      for (const w of workers) void w.terminate().catch(() => {});
    },
  };
}
