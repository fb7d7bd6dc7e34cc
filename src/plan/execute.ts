/**
 * Runs a mount plan (src/ostree/plan.ts, SPEC §4) through a `Sys`, and undoes it
 * on failure. cfsroot's difference from ostree-prepare-root (SPEC §4
 * "Failure"): a refused or failed boot leaves no new mounts, loop devices,
 * directories or files behind, and SYSROOT mounted where it was, so the
 * emergency shell sees the system as the initramfs had it.
 *
 * Undo model: each completed step pushes the action that inverts it *given
 * the state right after that step*; on failure the stack is unwound in
 * reverse, so every undo runs in exactly the state its step left. Two steps
 * edit the stack instead of pushing: a lazy unmount of the EROFS lower
 * drops that mount's undo (the overlay still holds it; unmounting the
 * overlay frees it and its loop device), and the lazy unmount of SYSROOT
 * turns the undo of its bind into "move the bind back to SYSROOT".
 * Not undone: propagation changes (the initramfs' previous propagation is
 * not recorded; making / private is harmless for the emergency shell).
 *
 * The image (src/image/plan.ts): open-image opens it once; measure-image,
 * copy-image and mount-erofs use that descriptor (or the copy made from
 * it), never its path. The descriptors are closed when the plan ends,
 * either way: what is mounted holds its own reference.
 */

import { CfsError, describeSystemError } from '../errors.js';
import { notePlanSteps, noteStep } from '../activity.js';
import { COMPOSEFS_PREFIX_SIZE, composefsHeaderOf } from '../image/header.js';
import { describeStep, escapeOverlayPath, replaceOverlayPaths, stepSubject, type MountStep } from './steps.js';
import type { Beneath, ImageCopy, ImageFile, MountHandle, Sys } from '../sys/types.js';
import { checkBeneath } from '../sys/beneath.js';

export interface StepRecord {
  index: number;
  kind: MountStep['kind'];
  /** Wall-clock milliseconds the step took. */
  ms: number;
}

export interface ExecResult {
  /** Each step's time, when asked for (`timed`; CFSROOT_TIMINGS at boot); else empty. */
  steps: StepRecord[];
  /** fs-verity digest of the image as measured by the kernel or of its copy (hex); null when nothing was measured. */
  imageDigest: string | null;
}

interface Undo {
  description: string;
  run: () => void;
  /** Mount point this undo unmounts, so a later step can find and cancel it. */
  mountAt?: string;
  /** Directory this undo removes: one made inside a mount that is later detached goes with that mount. */
  made?: string;
}

export async function executePlan(steps: readonly MountStep[], sys: Sys, opts: { timed?: boolean } = {}): Promise<ExecResult> {
  // Two clock reads and a record per step cost a boot about 0.1 ms: only when asked.
  const timed = opts.timed === true;
  const undo: Undo[] = [];
  const records: StepRecord[] = [];
  let imageDigest: string | null = null;
  // The image opened by open-image, by the name the plan gives it, and the
  // copy copy-image made of it: every later step uses these, never the path.
  const images = new Map<string, ImageFile>();
  const copies = new Map<string, ImageCopy>();
  const imageFile = (name: string): ImageFile => {
    const fd = images.get(name);
    if (fd === undefined) throw new CfsError('EINTERNAL', `plan step uses ${name}, which no open-image step opened`);
    return fd;
  };

  // Each mount the plan made, by the path the plan names it with -> the
  // handle that names that mount itself (src/sys/types.ts MountHandle).
  // Later steps on the mount (remount, propagation, the undo) go through the
  // handle, never through the path again: in the new root a path's meaning
  // is the disk's to decide (issue 13).
  const handles = new Map<string, MountHandle>();
  // Detached mounts (mount-erofs detached) by the escaped path the plan names them with -> their handle.
  const detachedLayers = new Map<string, string>();
  const held = new Set<MountHandle>();
  const at = (p: string): string => handles.get(p) ?? p;
  const beneath = (root: string | null, p: string): Beneath | undefined =>
    root === null ? undefined : { root: at(root), rel: relativeBeneath(root, p), path: p };
  const remember = (target: string, handle: MountHandle | void) => {
    const h = handle ?? target;
    handles.set(target, h);
    if (h !== target) held.add(h);
    return h;
  };
  const release = (h: MountHandle) => {
    if (held.delete(h)) sys.release?.(h);
  };
  const pushUnmount = (target: string, handle: MountHandle) =>
    undo.push({
      description: `umount ${target}`,
      mountAt: target,
      run: () => {
        unmountForUndo(sys, handle, target);
        release(handle);
      },
    });
  const takeUnmount = (target: string): Undo | undefined => {
    for (let i = undo.length - 1; i >= 0; i--) {
      if (undo[i]!.mountAt === target) return undo.splice(i, 1)[0];
    }
    return undefined;
  };
  const releaseAll = () => {
    for (const h of [...held]) release(h);
    // What is mounted holds its own reference (the loop device, the EROFS superblock).
    for (const fd of images.values()) sys.closeFile(fd);
    for (const c of copies.values()) if (c.fd !== undefined) sys.closeFile(c.fd);
    images.clear();
    copies.clear();
  };

  // The deadline's watcher is told every step's line once, then only which one starts.
  notePlanSteps(() => steps.map((s) => `${s.kind} ${stepSubject(s)}`));
  for (let index = 0; index < steps.length; index++) {
    const step = steps[index]!;
    // Only an error needs the whole text (about 0.3 ms for a whole plan at boot);
    // the boot's deadline is told the step's kind and the path it concerns.
    const describe = () => describeStep(step);
    const t0 = timed ? process.hrtime.bigint() : 0n;
    try {
      noteStep(index);
      switch (step.kind) {
        case 'mkdir':
          if (step.beneath !== undefined) {
            // State on the disk (the /etc overlay's upper and work): kept even if the boot fails.
            const ref = beneath(step.beneath, step.path)!;
            if (sys.mkdirBeneath) sys.mkdirBeneath(ref, step.mode);
            else {
              // A backend without it: the parent checked by path, then mkdir by path (src/sys/beneath.ts).
              const parent = step.path.slice(0, step.path.lastIndexOf('/'));
              checkBeneath({ root: ref.root, rel: ref.rel.split('/').slice(0, -1).join('/'), path: parent });
              sys.mkdir(step.path, step.mode);
            }
          } else if (sys.mkdir(step.path, step.mode)) {
            undo.push({ description: `rmdir ${step.path}`, made: step.path, run: () => sys.rmdir(step.path) });
          }
          break;
        case 'rmdir':
          sys.rmdir(step.path);
          undo.push({ description: `mkdir ${step.path}`, run: () => void sys.mkdir(step.path, 0o755) });
          break;
        case 'make-rprivate':
          sys.propagation(step.target, 'rprivate');
          break;
        case 'make-slave':
          sys.propagation(at(step.target), 'slave');
          break;
        case 'make-shared':
          sys.propagation(at(step.target), 'shared');
          break;
        case 'open-image':
          images.set(step.image, sys.openImage(beneath(step.beneath, step.image)!));
          break;
        case 'measure-image': {
          // The kernel's own digest of the open file, whose every block read
          // it checks against that tree: what is measured is what is mounted.
          const measured = sys.measureFile?.(imageFile(step.image)) ?? 'unsupported';
          if (measured === null || measured === 'unsupported') {
            // The plan was made on a probe that saw fs-verity: the file changed since. Fail closed.
            throw new CfsError(
              'EIMAGE',
              `${step.image} has no fs-verity now${measured === 'unsupported' ? ' (its filesystem does not support it)' : ''}, ` +
                'but it had when the boot was planned: the image changed on the disk during the boot; refusing it rather than ' +
                'mounting it another way',
            );
          }
          const [alg, hex = ''] = measured.split(':');
          if (alg !== step.alg || (step.expectedDigest !== null && hex !== step.expectedDigest.toLowerCase())) {
            throw digestMismatch(step.image, `${alg} fs-verity digest ${hex}`, step);
          }
          imageDigest = hex;
          break;
        }
        case 'copy-image': {
          // The digest is of exactly the copy's bytes, and the copy is what
          // is mounted: read once from the open image, written only by us.
          let copy: ImageCopy;
          try {
            copy = await sys.copyImage(imageFile(step.image), step.to, step.alg);
          } catch (e) {
            // A named copy's name has a per-run random suffix (src/ostree/plan.ts): a collision is explained.
            throw step.to === 'private' ? e : staleOr(e, step.to);
          }
          copies.set(step.image, copy);
          if (copy.path !== undefined) {
            const p = copy.path;
            undo.push({ description: `rm ${p}`, run: () => sys.unlink(p) });
          }
          const got = Buffer.from(copy.digest).toString('hex');
          if (got !== step.expectedDigest.toLowerCase()) throw digestMismatch(step.image, `fs-verity ${step.alg} digest ${got}`, step);
          imageDigest = got;
          break;
        }
        case 'mount-erofs': {
          let source: { fd: number } | { path: string };
          if (step.from === 'copy') {
            const copy = copies.get(step.image);
            if (!copy) throw new CfsError('EINTERNAL', `plan step mounts the copy of ${step.image}, which no copy-image step made`);
            source = copy.fd !== undefined ? { fd: copy.fd } : { path: copy.path! };
          } else {
            source = { fd: imageFile(step.image) };
          }
          // noacl from the header of what is mounted (the descriptor or the
          // copy), not from the read of the disk the plan was made from.
          const head = sys.readHead('fd' in source ? source.fd : source.path, COMPOSEFS_PREFIX_SIZE);
          const options = aclOptionsOf(step.options, head, step.image);
          const h = sys.mount({
            fstype: 'erofs',
            source: 'fd' in source ? step.image : source.path,
            ...('fd' in source ? { sourceFd: source.fd } : {}),
            target: step.target,
            options,
            readonly: true,
            loop: step.loop,
            ...(step.detached ? { detached: true } : {}),
          });
          if (step.detached) {
            if (typeof h !== 'string' || h === step.target) throw new CfsError('EINTERNAL', `the backend left ${step.target} attached, or named it by its path`);
            // No mount point: closing its last handle drops it, and an overlay holds its own reference.
            remember(step.target, h);
            detachedLayers.set(escapeOverlayPath(step.target), h);
            undo.push({ description: `close the detached ${step.target}`, mountAt: step.target, run: () => release(h) });
          } else {
            pushUnmount(step.target, remember(step.target, h));
          }
          break;
        }
        case 'mount-overlay': {
          const h = sys.mount({
            fstype: 'overlay',
            source: step.source,
            target: step.target,
            // A detached layer is given to the kernel as the mount itself (its handle's path).
            options: detachedLayers.size ? replaceOverlayPaths(step.options, detachedLayers) : step.options,
            readonly: step.readonly,
            ...(step.targetBeneath !== null ? { targetBeneath: beneath(step.targetBeneath, step.target)! } : {}),
            ...(step.dirsBeneath.length ? { dirsBeneath: step.dirsBeneath.map((l) => beneath(l.beneath, l.path)!) } : {}),
          });
          pushUnmount(step.target, remember(step.target, h));
          break;
        }
        case 'bind': {
          const source = beneath(step.sourceBeneath, step.source);
          const target = beneath(step.targetBeneath, step.target);
          const h = sys.bind(at(step.source), step.target, step.recursive, {
            ...(source ? { source } : {}),
            ...(target ? { target } : {}),
          });
          pushUnmount(step.target, remember(step.target, h));
          break;
        }
        case 'remount': {
          const target = at(step.target);
          const before = sys.mountReadonly(target);
          sys.remount(target, step.readonly);
          if (before !== null && before !== step.readonly) {
            undo.push({ description: `remount ${step.target} ${before ? 'ro' : 'rw'}`, run: () => sys.remount(target, before) });
          }
          break;
        }
        case 'move':
          sys.move(step.source, step.target);
          undo.push({ description: `move ${step.target} back to ${step.source}`, run: () => sys.move(step.target, step.source) });
          // The mounts under the moved tree keep their handles under the new path.
          for (const [p, h] of [...handles]) {
            if (p !== step.source && !p.startsWith(`${step.source}/`)) continue;
            const moved = step.target + p.slice(step.source.length);
            // A path handle (mount(8)) moves with the tree; a descriptor stays what it is.
            handles.set(moved, h === p ? moved : h);
          }
          break;
        case 'umount-lazy': {
          if (step.restoreFrom === null) {
            sys.umount(at(step.target), true);
            // Whatever still uses the detached mount (the overlay) releases it when it goes.
            takeUnmount(step.target);
            release(at(step.target));
            // Directories made inside it went with it (a transient overlay's upper and work).
            for (let i = undo.length - 1; i >= 0; i--) if (undo[i]!.made?.startsWith(`${step.target}/`)) undo.splice(i, 1);
          } else {
            // SYSROOT itself: a path cfsroot was given, not one in the new root.
            sys.umount(step.target, true);
            // The bind at restoreFrom is now the only handle on SYSROOT: undo
            // moves it back, by its handle, instead of unmounting it.
            takeUnmount(step.restoreFrom);
            const from = at(step.restoreFrom);
            undo.push({ description: `move ${step.restoreFrom} back to ${step.target}`, run: () => sys.move(from, step.target) });
          }
          break;
        }
        case 'mount-tmpfs': {
          const h = sys.mount({ fstype: 'tmpfs', source: 'tmpfs', target: step.target, options: step.options, readonly: false });
          pushUnmount(step.target, remember(step.target, h));
          break;
        }
        case 'symlink-if-absent':
          try {
            sys.symlink(step.linkTarget, step.path);
          } catch (e) {
            // Kept, as bootc keeps one ostree-prepare-root (or an earlier run) made.
            if ((e as NodeJS.ErrnoException | null)?.code !== 'EEXIST') throw e;
            break;
          }
          undo.push({ description: `rm ${step.path}`, run: () => sys.unlink(step.path) });
          break;
        case 'symlink':
          try {
            sys.symlink(step.linkTarget, step.path);
          } catch (e) {
            throw staleOr(e, step.path);
          }
          undo.push({ description: `rm ${step.path}`, run: () => sys.unlink(step.path) });
          break;
        case 'write-file': {
          const previous = sys.readFileOrNull(step.path);
          try {
            sys.writeFile(step.path, Buffer.from(step.contentBase64, 'base64'), step.mode);
          } catch (e) {
            // A write that failed part-way (ENOSPC in a full /run) leaves a
            // partial file: ours, so it goes, or the old contents come back.
            try {
              if (previous === null) sys.unlink(step.path);
              else sys.writeFile(step.path, previous, step.mode);
            } catch {
              /* nothing was created, or the rollback's own listing reports what is left */
            }
            throw e;
          }
          undo.push(
            previous === null
              ? { description: `rm ${step.path}`, run: () => sys.unlink(step.path) }
              : { description: `restore ${step.path}`, run: () => sys.writeFile(step.path, previous, step.mode) },
          );
          break;
        }
        default: {
          const never: never = step;
          throw new CfsError('EINTERNAL', `unknown plan step ${JSON.stringify(never)}`);
        }
      }
    } catch (e) {
      const reason = e instanceof CfsError ? e.message : describeSystemError(e);
      const code = e instanceof CfsError && (e.code === 'EDIGEST' || e.code === 'EIMAGE') ? e.code : 'EMOUNT';
      // One line says it all (issue 13 item 12): the step, the cause, and how the rollback went.
      const leftovers = rollback(undo);
      releaseAll();
      throw new CfsError(
        code,
        `${describe()}: ${reason}` +
          (leftovers.length ? `; rollback incomplete (${leftovers.join('; ')})` : '; all earlier steps were undone'),
      );
    }
    if (timed) records.push({ index, kind: step.kind, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
  }
  releaseAll();
  return { steps: records, imageDigest };
}

/** The refusal of an image whose digest is not the pinned one (before anything is mounted from it). */
function digestMismatch(image: string, got: string, step: { alg: string; expectedDigest: string | null; expectedDigestSource: string | null }): CfsError {
  return new CfsError(
    'EDIGEST',
    `composefs image ${image} has ${got}, but the ${step.expectedDigestSource ?? 'boot configuration'} requires ` +
      `${step.expectedDigest ?? `${step.alg} fs-verity`}: the image was changed or belongs to another commit`,
  );
}

/** The EROFS options with noacl exactly when the header of what is mounted says the image has no ACLs. */
function aclOptionsOf(options: readonly string[], prefix: Uint8Array, src: string): string[] {
  const header = composefsHeaderOf(prefix, `the image ${src} as mounted`);
  return [...options.filter((o) => o !== 'noacl' && o !== 'acl'), ...(header.hasAcl ? [] : ['noacl'])];
}

/** `p` relative to `root`, which the plan guarantees `p` lies beneath ("" for root itself). */
function relativeBeneath(root: string, p: string): string {
  if (p === root) return '';
  if (!p.startsWith(root === '/' ? '/' : `${root}/`)) {
    throw new CfsError('EINTERNAL', `plan step path ${p} is not beneath ${root}`);
  }
  return p.slice(root === '/' ? 1 : root.length + 1);
}

/**
 * SPEC §8 (stale state on a soft reboot): /run survives, and what an earlier
 * run created there is still present, maybe still in use. cfsroot never
 * reuses or overwrites it; say so instead of a bare EEXIST.
 */
function staleOr(e: unknown, path: string): unknown {
  if ((e as NodeJS.ErrnoException | null)?.code !== 'EEXIST') return e;
  return new CfsError(
    'EMOUNT',
    `${path} already exists, left by an earlier cfsroot run over this /run (a soft reboot, or the unit run twice): ` +
      'cfsroot never reuses or overwrites it; boot through the initramfs again, or unmount the previous root and remove it',
  );
}

/** Unwind the undo stack; keep going past failures and return what could not be undone (for the one error line). */
function rollback(undo: Undo[]): string[] {
  const failed: string[] = [];
  while (undo.length > 0) {
    const u = undo.pop()!;
    try {
      u.run();
    } catch (e) {
      failed.push(`${u.description}: ${describeSystemError(e)}`);
    }
  }
  return failed;
}

/**
 * Undo a mount by its handle. A handle that is not the path (a descriptor)
 * itself keeps the mount busy, so it is detached (MNT_DETACH), and goes
 * entirely when the handle is released right after; a path is unmounted
 * plainly and, if something still holds it, detached so the rest of the
 * rollback can proceed.
 */
function unmountForUndo(sys: Sys, handle: MountHandle, target: string): void {
  if (handle !== target) {
    sys.umount(handle, true);
    return;
  }
  try {
    sys.umount(target, false);
  } catch (e) {
    try {
      sys.umount(target, true);
    } catch (lazy) {
      throw new Error(`${describeSystemError(e)}; lazily: ${describeSystemError(lazy)}`);
    }
  }
}
