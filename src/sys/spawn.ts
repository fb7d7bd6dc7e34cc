/**
 * The `Sys` backend used at boot: mount operations run mount(8)/umount(8)
 * as child processes, file operations use node:fs.
 *
 * Chosen by measurement (2-CPU test VM, load ~10 from parallel builds, so
 * wall times are noisy): util-linux mount(8) costs 2.9 ms CPU (2.0 user +
 * 0.9 sys) per call and 10 ms wall (hyperfine, mean of 200); spawnSync from
 * the Node process adds its own fork cost (~9 ms wall for /bin/true under
 * the same load). A full signed boot plan (25 steps, 14 mount(8) calls) ran
 * its execute phase in ~150 ms of which the mount calls are ~130 ms; the
 * image copy + digest of a small image took 20 ms. Per-step spawns keep
 * each step's exit status and message, which per-step rollback needs (a
 * batched shell script would not). busybox mount is 4x cheaper in CPU
 * (0.7 ms) and can be selected with `mount`/`umount` options once its
 * argument forms are proven by the integration tests. No native addon is
 * needed, so this runs inside the Node single executable; a mount(2)
 * backend can replace it behind the same `Sys` interface.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Beneath, MountCall, Propagation, Sys } from './types.js';
import { copyFdObserved } from './copy.js';
import { createVerityHasher } from '../image/fsverity.js';
import { readMountinfo } from './mountinfo.js';
import { checkBeneath, checkConfinement } from './beneath.js';
import { mkdirBeneath } from './mkdir-beneath.js';

export interface SpawnSysOptions {
  /** mount(8) to run (default "mount", found on PATH). */
  mount?: string;
  umount?: string;
  /** Called with each command line run (for tracing / measurement). */
  trace?: (argv: readonly string[], ms: number) => void;
}

export function spawnSys(opts: SpawnSysOptions = {}): Sys {
  const mountBin = opts.mount ?? 'mount';
  const umountBin = opts.umount ?? 'umount';

  const run = (bin: string, args: string[], fd3?: number): void => {
    const t0 = process.hrtime.bigint();
    // node:child_process is loaded here, on the first mount(8) call, not imported at
    // the top: that would put it into the executable's startup snapshot, which every
    // run deserializes, also the boots that never start a child (issue 12).
    const r = process.getBuiltinModule('node:child_process').spawnSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', ...(fd3 === undefined ? [] : [fd3])], env: childEnv() });
    opts.trace?.([bin, ...args], Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.error) throw new Error(`cannot run ${bin}: ${r.error.message}`);
    if (r.status !== 0) {
      const why = (r.stderr || r.stdout || '').trim().split('\n').filter(Boolean).join(' / ');
      throw new Error(`${bin} ${args.join(' ')} failed (${r.signal ?? `exit ${r.status}`})${why ? `: ${why}` : ''}`);
    }
  };

  return {
    // -n everywhere: never write /etc/mtab (busybox would; util-linux ignores it).
    mount(m: MountCall) {
      if (m.targetBeneath) checkBeneath(m.targetBeneath);
      for (const ref of m.dirsBeneath ?? []) checkBeneath(ref);
      const o = [m.readonly ? 'ro' : 'rw', ...m.options, ...(m.loop ? ['loop'] : [])];
      // An open file is handed to mount(8) as its fd 3, which it (or losetup) opens through /proc.
      const source = m.sourceFd === undefined ? m.source : '/proc/self/fd/3';
      run(mountBin, ['-n', '-t', m.fstype, '-o', o.join(','), source, m.target], m.sourceFd);
    },
    bind(source, target, recursive, confine) {
      checkConfinement(confine);
      run(mountBin, ['-n', recursive ? '--rbind' : '--bind', source, target]);
    },
    remount(target, readonly) {
      run(mountBin, ['-n', '-o', `remount,bind,${readonly ? 'ro' : 'rw'}`, target]);
    },
    move(source, target) {
      run(mountBin, ['-n', '--move', source, target]);
    },
    umount(target, lazy) {
      // -d frees a loop device we attached even if autoclear was not set.
      run(umountBin, ['-n', ...(lazy ? ['-l'] : ['-d']), target]);
    },
    propagation(target, kind: Propagation) {
      run(mountBin, ['-n', `--make-${kind}`, target]);
    },
    mountReadonly(target) {
      let found: boolean | null = null;
      // Last entry wins: it is the one on top at that path.
      for (const m of readMountinfo()) if (m.target === target) found = m.readonly;
      return found;
    },

    mkdir(path, mode) {
      try {
        fs.mkdirSync(path, { mode });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e;
      }
      // mkdir(2) applies the umask; the plan's modes (0000, 0755) are meant exactly.
      fs.chmodSync(path, mode);
      return true;
    },
    openImage: openImageByPath,
    closeFile: (fd) => fs.closeSync(fd),
    // No private copies without the addon: the copy is a named file in /run, hashed as it is written.
    async copyImage(fd, to, alg) {
      if (to === 'private') throw new Error('the mount(8) backend cannot make a private copy');
      const hasher = createVerityHasher(alg);
      await copyFdObserved(fd, to, (written) => hasher.update(written));
      return { digest: hasher.digest(), path: to };
    },
    readHead(file, length) {
      const fd = typeof file === 'number' ? file : fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
      try {
        const buf = Buffer.alloc(length);
        let got = 0;
        for (let n = 1; n > 0 && got < length; got += n) n = fs.readSync(fd, buf, got, length - got, got);
        return buf.subarray(0, got);
      } finally {
        if (typeof file !== 'number') fs.closeSync(fd);
      }
    },
    mkdirBeneath,
    rmdir: (p) => fs.rmdirSync(p),
    symlink: (linkTarget, p) => fs.symlinkSync(linkTarget, p),
    readFileOrNull(p) {
      // Usually absent (a fresh /run): asking first costs less than the thrown ENOENT.
      if (!fs.existsSync(p)) return null;
      try {
        return fs.readFileSync(p);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    writeFile(p, data, mode) {
      fs.writeFileSync(p, data, { mode });
      fs.chmodSync(p, mode);
    },
    unlink: (p) => fs.unlinkSync(p),
  };
}

/**
 * The image beneath its root by path: its directory checked component by
 * component (no symlink, src/sys/beneath.ts), the file itself opened with
 * O_NOFOLLOW (O_NONBLOCK: a FIFO there must not hang the boot) and checked
 * to be a regular file. A check by path, so a disk that changes between the
 * check and the open still wins that race (docs/threat-model.md); what is
 * opened is then what every later step uses.
 */
function openImageByPath(image: Beneath): number {
  const dirRel = path.posix.dirname(image.rel);
  checkBeneath({ root: image.root, rel: dirRel === '.' ? '' : dirRel, path: path.posix.dirname(image.path) });
  const { O_RDONLY, O_NONBLOCK, O_NOFOLLOW } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(`${image.root}/${image.rel}`, O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new Error(`${image.path} is a symlink: the image is opened without following symlinks`);
    throw e;
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw Object.assign(new Error(`${image.path}: not a regular file`), { code: 'EINVAL' });
  }
  return fd;
}

/** mount(8) needs a PATH for its helpers; an initramfs service may start without one. */
function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PATH: process.env['PATH'] || '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };
}
