/**
 * For the initramfs reader's tests: newc archives made by GNU cpio, as
 * dracut makes them, and bytes handed over in pieces as a file read would.
 * The archives' times and inode numbers are fixed and their names sorted:
 * the same files give the same bytes on every run, so a fast-check
 * counterexample replays.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';

/** Write `files` under `dir` (name -> contents; a value starting with "->" is a symlink), then archive `dir`. */
export function cpioOf(dir: string, files: Record<string, string | Uint8Array>): Buffer {
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (typeof content === 'string' && content.startsWith('->')) fs.symlinkSync(content.slice(2), p);
    else fs.writeFileSync(p, content);
  }
  return cpioOfDir(dir);
}

/** Everything under `dir`, as one newc archive. */
export function cpioOfDir(dir: string): Buffer {
  execFileSync('find', ['.', '-exec', 'touch', '-h', '-d', '@1700000000', '{}', '+'], { cwd: dir });
  const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: dir }).toString().split('\n').filter(Boolean).sort().join('\n');
  return execFileSync('cpio', ['-o', '-H', 'newc', '--quiet', '--reproducible'], { cwd: dir, input: `${list}\n`, maxBuffer: 1 << 28 });
}

/** `buf` as a stream of pieces of `size` bytes (the last one shorter). */
export async function* piecesOf(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
