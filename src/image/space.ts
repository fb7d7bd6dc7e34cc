/**
 * Size checks of the composefs image, made before anything reads it whole.
 *
 *   checkImageSize (the decision, every path): an image over 1 GiB is
 *     refused, whatever path the boot would take; a hostile disk can offer
 *     a sparse terabyte, and `verify` would otherwise hash all of it.
 *   checkCopySpace (the boot, copy path only, src/image/plan.ts): the copy
 *     is held in memory, so an image larger than the free space of the
 *     initramfs /run tmpfs would fail half-way with ENOSPC or fill the
 *     initramfs' memory. The fs-verity and unpinned paths copy nothing and
 *     are not held to it.
 */

import * as fs from 'node:fs';
import { fail, withContext } from '../errors.js';
import { IMAGE_SIZE_MAX } from './header.js';

/** Size of `image`, or null when it is missing (the steps that open it say so). */
function sizeOf(image: string): number | null {
  try {
    return fs.statSync(image).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw withContext(`checking the size of ${image}`, e);
  }
}

export function checkImageSize(image: string): void {
  const size = sizeOf(image);
  if (size !== null && size > IMAGE_SIZE_MAX) {
    fail('ELIMIT', `composefs image ${image} is ${size} bytes, over the limit of ${IMAGE_SIZE_MAX} bytes (1 GiB) cfsroot copies and verifies`);
  }
}

/** A missing runDir (a machine without /run) skips the check: there is nothing to compare with. */
export function checkCopySpace(image: string, runDir: string): void {
  const size = sizeOf(image);
  if (size === null) return;
  let free: number;
  try {
    const st = fs.statfsSync(runDir);
    free = st.bavail * st.bsize;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw withContext(`checking the free space in ${runDir} for ${image}`, e);
  }
  if (size > free) {
    fail(
      'ELIMIT',
      `composefs image ${image} is ${size} bytes but ${runDir} has only ${free} bytes free: this image has no fs-verity, so the boot ` +
        'copies it into memory to verify and mount it; give the initramfs more memory (a larger /run tmpfs), make the image smaller, ' +
        'or enable fs-verity on it (fsverity enable), which needs no copy',
    );
  }
}
