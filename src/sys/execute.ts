/**
 * Runs a mount plan (src/plan.ts, SPEC §4) through a `Sys`, and undoes it
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
 */

import { CfsError, describeSystemError } from '../errors.js';
import { noteActivity } from '../activity.js';
import { createVerityHasher, type VerityHasher } from '../fsverity.js';
import { COMPOSEFS_PREFIX_SIZE, composefsHeaderOf } from '../image.js';
import type { VerityAlg } from '../model.js';
import { describeStep, type MountStep } from '../plan.js';
import type { Logger } from '../log.js';
import type { Beneath, MountHandle, Sys } from './types.js';
import { checkBeneath } from './beneath.js';

export interface StepRecord {
  index: number;
  kind: MountStep['kind'];
  description: string;
  /** Wall-clock milliseconds the step took. */
  ms: number;
}

export interface ExecResult {
  steps: StepRecord[];
  /** fs-verity digest of the image copy that was mounted (hex), or null without composefs. */
  imageDigest: string | null;
}

export interface ExecOptions {
  /** Incremental fs-verity digest fed with the copy's bytes (default: src/fsverity.ts). Injected by tests. */
  hasher?: (alg: VerityAlg) => VerityHasher;
  /** Log every step as it runs (default false: only the digest and failures). */
  verbose?: boolean;
}

interface Undo {
  description: string;
  run: () => void;
  /** Mount point this undo unmounts, so a later step can find and cancel it. */
  mountAt?: string;
  /** Directory this undo removes: one made inside a mount that is later detached goes with that mount. */
  made?: string;
}

export async function executePlan(
  steps: readonly MountStep[],
  sys: Sys,
  log: Logger,
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const makeHasher = opts.hasher ?? createVerityHasher;
  const undo: Undo[] = [];
  const records: StepRecord[] = [];
  let imageDigest: string | null = null;
  /** Plan path of an image copy -> where copyVerity actually put it, and the image it copies. */
  const copies = new Map<string, { path: string; src: string }>();

  // Each mount the plan made, by the path the plan names it with -> the
  // handle that names that mount itself (src/sys/types.ts MountHandle).
  // Later steps on the mount (remount, propagation, the undo) go through the
  // handle, never through the path again: in the new root a path's meaning
  // is the disk's to decide (issue 13).
  const handles = new Map<string, MountHandle>();
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
  };

  for (const [index, step] of steps.entries()) {
    // Only a log line or an error needs the text (about 0.3 ms for a whole plan at boot).
    const describe = () => describeStep(step);
    const t0 = process.hrtime.bigint();
    try {
      noteActivity(() => `at step ${index + 1}/${steps.length}: ${describe()}`);
      if (opts.verbose) log.info(`step ${index + 1}/${steps.length}: ${describe()}`);
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
        case 'copy-image-and-verify': {
          // The image is read once and the digest is taken of exactly the
          // bytes of the copy, which is on /run, made exclusively and written
          // only by us: so the bytes mounted are the bytes hashed (issue 5).
          // The JavaScript path hashes each buffer as it writes it and never
          // reads the copy back.
          let digest: Uint8Array;
          let copyPath = step.dest;
          try {
            if (sys.copyVerity && !opts.hasher) {
              // The addon, in C: the copy made (often already under way since
              // prefetchImage) and the digest taken of exactly its bytes.
              ({ digest, path: copyPath } = sys.copyVerity(step.src, step.dest, step.alg));
            } else {
              const hasher = makeHasher(step.alg);
              await sys.copyFile(step.src, step.dest, (written) => hasher.update(written));
              digest = hasher.digest();
            }
          } catch (e) {
            // The copy's name has a per-run random suffix (src/plan.ts), so
            // this is no longer expected; kept so a collision is still explained.
            throw staleOr(e, step.dest);
          }
          // A private copy (copyPath a /proc/self/fd path) has no name to remove:
          // it goes with the last user of its descriptor.
          if (copyPath === step.dest) undo.push({ description: `rm ${step.dest}`, run: () => sys.unlink(step.dest) });
          copies.set(step.dest, { path: copyPath, src: step.src });
          const got = Buffer.from(digest).toString('hex');
          if (step.expectedDigest !== null && got !== step.expectedDigest.toLowerCase()) {
            throw new CfsError(
              'EDIGEST',
              `composefs image ${step.src} has fs-verity ${step.alg} digest ${got}, but the ` +
                `${step.expectedDigestSource ?? 'boot configuration'} requires ${step.expectedDigest}: ` +
                'the image was changed or belongs to another commit',
            );
          }
          imageDigest = got;
          // The boot's closing line repeats the digest and what pinned it; each
          // line is a kmsg write at boot, so this one only comes with --verbose.
          if (opts.verbose) log.info(
            `composefs image ${step.src}: fs-verity ${step.alg}:${got}` +
              (step.expectedDigest !== null ? ` matches the ${step.expectedDigestSource ?? 'expected digest'}` : ' (not pinned)'),
          );
          break;
        }
        case 'mount-erofs': {
          // The image as verified: the copy made above, wherever it lives.
          const copy = copies.get(step.source);
          const source = copy?.path ?? step.source;
          if (opts.verbose && source !== step.source) log.info(`the copy of the image is private: mounting it from ${source}`);
          // noacl from the copy's own header (the bytes hashed and mounted), not
          // from the read of the disk the plan was made from (issue 13 item 5).
          const options = copy && sys.readHead ? aclOptionsOf(step.options, sys.readHead(source, COMPOSEFS_PREFIX_SIZE), copy.src) : step.options;
          const h = sys.mount({ fstype: 'erofs', source, target: step.target, options, readonly: true, loop: step.loop });
          pushUnmount(step.target, remember(step.target, h));
          break;
        }
        case 'mount-overlay': {
          const h = sys.mount({
            fstype: 'overlay',
            source: step.source,
            target: step.target,
            options: step.options,
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
            if (opts.verbose) log.info(`${step.path} exists: kept`);
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
          sys.writeFile(step.path, Buffer.from(step.contentBase64, 'base64'), step.mode);
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
      const code = e instanceof CfsError && e.code === 'EDIGEST' ? 'EDIGEST' : 'EMOUNT';
      // One line says it all (issue 13 item 12): the step, the cause, and how the rollback went.
      const leftovers = rollback(undo);
      releaseAll();
      throw new CfsError(
        code,
        `${describe()}: ${reason}` +
          (leftovers.length ? `; rollback incomplete (${leftovers.join('; ')})` : '; all earlier steps were undone'),
      );
    }
    records.push({
      index,
      kind: step.kind,
      get description() {
        return describe();
      },
      ms: Number(process.hrtime.bigint() - t0) / 1e6,
    });
  }
  releaseAll();
  return { steps: records, imageDigest };
}

/** The EROFS options with noacl exactly when the copy's header says the image has no ACLs. */
function aclOptionsOf(options: readonly string[], prefix: Uint8Array, src: string): string[] {
  const header = composefsHeaderOf(prefix, `the verified copy of ${src}`);
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
