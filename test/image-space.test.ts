/**
 * src/image/space.ts: the 1 GiB limit holds on every path; the free space of
 * /run bounds only the copy path (the fs-verity and unpinned paths copy
 * nothing, issue 15). Sparse files, so nothing large is written.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isCfsError } from '../src/errors.js';
import { checkCopySpace, checkImageSize } from '../src/image/space.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfsroot-space-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

function sparse(name: string, size: number): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, '');
  fs.truncateSync(p, size);
  return p;
}

const refusal = (fn: () => void) => {
  try {
    fn();
  } catch (e) {
    if (isCfsError(e)) return e;
    throw e;
  }
  return null;
};

test('checkImageSize: up to 1 GiB passes, one byte more is ELIMIT naming both sizes; a missing image is left to the open step', (t) => {
  t.is(refusal(() => checkImageSize(sparse('one-gib', 1024 ** 3))), null);
  const e = refusal(() => checkImageSize(sparse('over', 1024 ** 3 + 1)));
  t.is(e?.code, 'ELIMIT');
  t.regex(e?.message ?? '', /is 1073741825 bytes, over the limit of 1073741824 bytes \(1 GiB\)/);
  t.is(refusal(() => checkImageSize(path.join(dir, 'missing'))), null);
});

test('checkCopySpace: an image larger than the free space of the run directory is ELIMIT naming both, and fs-verity as the way out', (t) => {
  const st = fs.statfsSync(dir);
  const free = st.bavail * st.bsize;
  t.is(refusal(() => checkCopySpace(sparse('fits', 4096), dir)), null);
  const e = refusal(() => checkCopySpace(sparse('too-big', free + 1024 ** 3), dir));
  t.is(e?.code, 'ELIMIT');
  t.regex(e?.message ?? '', /bytes but .* has only \d+ bytes free: this image has no fs-verity, so the boot copies it into memory/);
  t.regex(e?.message ?? '', /enable fs-verity on it/);
  t.is(refusal(() => checkCopySpace(path.join(dir, 'too-big'), path.join(dir, 'no-run-dir'))), null);
});
