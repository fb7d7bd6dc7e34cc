/**
 * Copy a file through user space, letting the caller see every buffer that
 * is written (SPEC §4, the copy-image-and-verify step; issue 5).
 *
 * The boot copies the composefs image into /run and must mount exactly the
 * bytes whose fs-verity digest it checked. Copying in the kernel
 * (copy_file_range/sendfile) and then hashing the copy reads the image
 * twice; here the image is read once, each buffer is written to the copy
 * and handed to `observe` (the digest), and the copy is never read back.
 * The copy lives on /run (tmpfs), created here with O_EXCL and written only
 * by this process, so what was observed is what the file holds.
 *
 * Overlap: hashing is the slow part (~10 ms for a 5.5 MB image at a cold
 * start, against ~1.4 ms reading it and ~2.5 ms writing it to tmpfs). So
 * while the calling thread hashes buffer A, a libuv pool thread writes A to
 * the copy and another reads the next piece into buffer B. Both threads only
 * read A, and A is reused only after its write has completed.
 */

import * as fs from 'node:fs';
import { promisify } from 'node:util';

/** Read/write unit: big enough that syscalls cost nothing next to hashing, small enough to stay in cache. */
const COPY_CHUNK = 1 << 20;

const readAsync = promisify(fs.read);
const writeAsync = promisify(fs.write);

/** Read up to buf.length bytes at the current file position (one read(2); short only at end of file). */
async function readPiece(fd: number, buf: Buffer): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await readAsync(fd, buf, got, buf.length - got, null);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function writeAll(fd: number, piece: Buffer): Promise<void> {
  for (let off = 0; off < piece.length; ) {
    const { bytesWritten } = await writeAsync(fd, piece, off, piece.length - off);
    off += bytesWritten;
  }
}

/**
 * Create `dest` (never following or replacing anything there: EEXIST) with
 * the bytes of the regular file `src`, with src's permission bits. `observe`
 * gets every buffer that is written, in file order, while it is being
 * written; it must not keep it (the buffer is reused). On failure after
 * `dest` was created, `dest` is removed again.
 */
export async function copyFileObserved(src: string, dest: string, observe: (written: Uint8Array) => void): Promise<void> {
  // O_NONBLOCK: opening a FIFO placed where the image should be must not hang the boot.
  // O_NOFOLLOW: the image path comes from realpath(3); a symlink there now is a swap made since.
  const inFd = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    const st = fs.fstatSync(inFd);
    if (!st.isFile()) throw Object.assign(new Error(`${src}: not a regular file`), { code: 'EINVAL' });
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
    const outFd = fs.openSync(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    let done = false;
    // Every started read/write is awaited before the descriptors are closed.
    let pending: Promise<unknown>[] = [];
    try {
      const size = Math.max(1, Math.min(COPY_CHUNK, st.size));
      let cur = Buffer.allocUnsafe(size);
      let next = Buffer.allocUnsafe(size);
      // Read to end of file, not to st.size: whatever is read is written and observed alike.
      let n = fs.readSync(inFd, cur, 0, cur.length, null);
      while (n > 0) {
        const piece = cur.subarray(0, n);
        const write = writeAll(outFd, piece);
        const read = readPiece(inFd, next);
        pending = [write, read];
        // Awaited below; until then a rejection must not count as unhandled
        // (which would end the process) while the other one is awaited.
        for (const p of pending) p.catch(() => {});
        observe(piece);
        await write;
        n = await read;
        pending = [];
        [cur, next] = [next, cur];
      }
      // Permission bits as copyFileSync would give (open applies the umask).
      fs.fchmodSync(outFd, st.mode & 0o7777);
      done = true;
    } finally {
      await Promise.allSettled(pending);
      fs.closeSync(outFd);
      if (!done) {
        try {
          fs.unlinkSync(dest);
        } catch {
          // Already gone: nothing more to undo.
        }
      }
    }
  } finally {
    fs.closeSync(inFd);
  }
}
