/**
 * Copy an open file through user space, letting the caller see every buffer
 * that is written (SPEC §4, the copy-image step of the mount(8) backend's
 * named copy; issue 5, issue 15).
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

/** Read up to buf.length bytes at `pos` (short only at end of file). */
async function readPiece(fd: number, buf: Buffer, pos: number): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await readAsync(fd, buf, got, buf.length - got, pos + got);
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
 * the bytes of the regular file open at `inFd` (read from offset 0 to its
 * end, whatever the descriptor's position), mode 0600. `observe` gets every
 * buffer that is written, in file order, while it is being written; it must
 * not keep it (the buffer is reused). On failure after `dest` was created,
 * `dest` is removed again. The caller keeps `inFd`.
 */
export async function copyFdObserved(inFd: number, dest: string, observe: (written: Uint8Array) => void): Promise<void> {
  const st = fs.fstatSync(inFd);
  if (!st.isFile()) throw Object.assign(new Error(`${dest}: the source is not a regular file`), { code: 'EINVAL' });
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
  const outFd = fs.openSync(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  let done = false;
  // Every started read/write is awaited before the descriptor is closed.
  let pending: Promise<unknown>[] = [];
  try {
    const size = Math.max(1, Math.min(COPY_CHUNK, st.size));
    let cur = Buffer.allocUnsafe(size);
    let next = Buffer.allocUnsafe(size);
    // Read to end of file, not to st.size: whatever is read is written and observed alike.
    let pos = 0;
    let n = fs.readSync(inFd, cur, 0, cur.length, 0);
    while (n > 0) {
      const piece = cur.subarray(0, n);
      pos += n;
      const write = writeAll(outFd, piece);
      const read = readPiece(inFd, next, pos);
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
}
