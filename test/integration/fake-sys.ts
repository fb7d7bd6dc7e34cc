/**
 * An in-memory `Sys` for executor tests without root: a mount table with
 * move/rbind/lazy-unmount semantics close enough to the kernel's for
 * rollback checks, directories, files and symlinks, plus failure injection
 * ("the Nth mutating call throws"). The image is opened as a descriptor
 * that keeps the content it had at open time (as an open file keeps its
 * inode), measured from `verity`, and copied with `copyDigest` as the
 * digest of the copy's content.
 */
import type { VerityAlg } from '../../src/image/fsverity.js';
import type { Beneath, ImageCopy, MountCall, Propagation, Sys } from '../../src/sys/types.js';
import { DIGEST } from './fixtures.js';

/** The first bytes of a composefs image: header (magic, version 1, flags) and the EROFS magic at 1024. */
export function imagePrefix(hasAcl: boolean): Buffer {
  const b = Buffer.alloc(1028);
  b.writeUInt32LE(0xd078629a, 0);
  b.writeUInt32LE(1, 4);
  b.writeUInt32LE(hasAcl ? 1 : 0, 8);
  b.writeUInt32LE(0xe0f5e1e2, 1024);
  return b;
}

interface FakeMount {
  target: string;
  what: string;
  ro: boolean;
}

export class FakeSys implements Sys {
  mounts: FakeMount[] = [];
  dirs = new Set<string>();
  files = new Map<string, string>();
  links = new Map<string, string>();
  calls: string[] = [];
  /** Throw on the mutating call with this 0-based number (-1: never). */
  failAt = -1;
  private count = 0;
  /** Open descriptors: fd -> what it was opened on and the content it holds. */
  open = new Map<number, { path: string; content: string }>();
  private nextFd = 100;
  /** What FS_IOC_MEASURE_VERITY says for a file with this content (absent: no fs-verity). */
  verity = new Map<string, string>();
  /** The backend can make private copies (the addon). */
  privateCopies = true;
  /** The digest copyImage computes of the copy's content (default: the fixtures' pinned DIGEST). */
  copyDigest: (content: string, alg: VerityAlg) => Uint8Array = () => Buffer.from(DIGEST, 'hex');
  /** The content of each EROFS mount made, in order (an undo or a lazy unmount does not remove it). */
  erofsContents: string[] = [];
  /** What readHead returns (a composefs header without ACLs by default). */
  head: Buffer = imagePrefix(false);

  constructor(init: { mounts: string[]; dirs: string[]; files: Record<string, string> }) {
    this.mounts = init.mounts.map((t) => ({ target: t, what: `initial:${t}`, ro: false }));
    for (const d of init.dirs) this.dirs.add(d);
    for (const [p, c] of Object.entries(init.files)) this.files.set(p, c);
  }

  /** Everything observable, as a comparable value. */
  snapshot() {
    return {
      mounts: this.mounts.map((m) => `${m.target} ${m.what} ${m.ro ? 'ro' : 'rw'}`).sort(),
      dirs: [...this.dirs].sort(),
      files: [...this.files.entries()].sort(),
      links: [...this.links.entries()].sort(),
    };
  }

  private tick(call: string) {
    const n = this.count++;
    this.calls.push(call);
    if (n === this.failAt) throw new Error(`injected failure in ${call}`);
  }
  private topAt(target: string): FakeMount | undefined {
    for (let i = this.mounts.length - 1; i >= 0; i--) if (this.mounts[i]!.target === target) return this.mounts[i];
    return undefined;
  }
  private containing(p: string): FakeMount | undefined {
    let best: FakeMount | undefined;
    for (const m of this.mounts) {
      const inside = m.target === '/' || p === m.target || p.startsWith(`${m.target}/`);
      if (inside && (!best || m.target.length >= best.target.length)) best = m;
    }
    return best;
  }
  private under(prefix: string): FakeMount[] {
    return this.mounts.filter((m) => m.target.startsWith(prefix === '/' ? '/' : `${prefix}/`) && m.target !== prefix);
  }

  mount(m: MountCall) {
    this.tick(`mount ${m.fstype} ${m.target}`);
    if (m.fstype === 'erofs') {
      // An EROFS mount names what it mounts: an open descriptor's content, or a file.
      const content = m.sourceFd !== undefined ? this.open.get(m.sourceFd)?.content : this.files.get(m.source);
      if (content === undefined) throw new Error(`no image ${m.sourceFd !== undefined ? `fd ${m.sourceFd}` : m.source}`);
      this.erofsContents.push(content);
      this.mounts.push({ target: m.target, what: `erofs:${content}${m.loop ? ' (loop)' : ''}`, ro: m.readonly });
      return;
    }
    this.mounts.push({ target: m.target, what: `${m.fstype}:${m.source}`, ro: m.readonly });
  }
  openImage(ref: Beneath) {
    this.tick(`open ${ref.path}`);
    const p = ref.rel === '' ? ref.root : `${ref.root}/${ref.rel}`;
    if (this.links.has(p)) throw Object.assign(new Error(`${p}: ELOOP`), { code: 'ELOOP' });
    const content = this.files.get(p);
    if (content === undefined) throw Object.assign(new Error(`${p}: ENOENT`), { code: 'ENOENT' });
    const fd = this.nextFd++;
    this.open.set(fd, { path: p, content });
    return fd;
  }
  closeFile(fd: number) {
    if (!this.open.delete(fd)) throw new Error(`fake: close of fd ${fd}, which is not open`);
  }
  measureFile(fd: number) {
    this.tick(`measure fd ${fd}`);
    const f = this.open.get(fd);
    if (!f) throw new Error(`fake: fd ${fd} is not open`);
    return this.verity.get(f.content) ?? null;
  }
  measurePath(p: string) {
    const c = this.files.get(p);
    return c === undefined ? null : (this.verity.get(c) ?? null);
  }
  copyImage(fd: number, to: 'private' | string, alg: VerityAlg): ImageCopy {
    this.tick(`copy ${to}`);
    const f = this.open.get(fd);
    if (!f) throw new Error(`fake: fd ${fd} is not open`);
    if (to === 'private') {
      if (!this.privateCopies) throw new Error('fake: no private copies');
      const copy = this.nextFd++;
      this.open.set(copy, { path: '(private copy)', content: f.content });
      return { digest: this.copyDigest(f.content, alg), fd: copy };
    }
    // As the real backends (O_EXCL): never replace what is already there.
    if (this.files.has(to) || this.links.has(to)) throw Object.assign(new Error(`${to}: EEXIST`), { code: 'EEXIST' });
    this.files.set(to, f.content);
    return { digest: this.copyDigest(f.content, alg), path: to };
  }
  readHead(file: number | string, length: number) {
    if (typeof file === 'number' ? !this.open.has(file) : !this.files.has(file)) throw new Error(`fake: readHead of ${file}: ENOENT`);
    return this.head.subarray(0, length);
  }
  bind(source: string, target: string, recursive: boolean) {
    this.tick(`bind ${source} ${target}`);
    // A bind is another mount of the filesystem that holds `source`.
    const src = this.containing(source);
    this.mounts.push({ target, what: src ? src.what : `bind:${source}`, ro: src?.ro ?? false });
    if (recursive) {
      for (const m of this.under(source)) this.mounts.push({ ...m, target: target + m.target.slice(source.length) });
    }
  }
  remount(target: string, readonly: boolean) {
    this.tick(`remount ${target}`);
    const m = this.topAt(target);
    if (!m) throw new Error(`${target}: not mounted`);
    m.ro = readonly;
  }
  move(source: string, target: string) {
    this.tick(`move ${source} ${target}`);
    if (!this.topAt(source)) throw new Error(`${source}: not a mount point`);
    for (const m of this.mounts) {
      if (m.target === source || m.target.startsWith(`${source}/`)) m.target = target + m.target.slice(source.length);
    }
  }
  umount(target: string, lazy: boolean) {
    this.tick(`umount ${target}`);
    const m = this.topAt(target);
    if (!m) throw new Error(`${target}: not mounted`);
    const below = this.under(target);
    if (below.length > 0 && !lazy) throw new Error(`${target}: target is busy`);
    this.mounts = this.mounts.filter((x) => x !== m && !(lazy && below.includes(x)));
    // What was made in a tmpfs goes with it.
    if (m.what.startsWith('tmpfs:')) for (const d of [...this.dirs]) if (d.startsWith(`${target}/`)) this.dirs.delete(d);
  }
  propagation(target: string, _kind: Propagation) {
    this.tick(`propagation ${target}`);
  }
  mountReadonly(target: string) {
    const m = this.topAt(target);
    return m ? m.ro : null;
  }
  mkdir(p: string, _mode: number) {
    this.tick(`mkdir ${p}`);
    if (this.dirs.has(p)) return false;
    this.dirs.add(p);
    return true;
  }
  rmdir(p: string) {
    this.tick(`rmdir ${p}`);
    if (!this.dirs.delete(p)) throw new Error(`${p}: no such directory`);
  }
  symlink(linkTarget: string, p: string) {
    this.tick(`symlink ${p}`);
    // As symlink(2): never replaces what is there.
    if (this.links.has(p) || this.files.has(p) || this.dirs.has(p)) throw Object.assign(new Error(`${p}: EEXIST`), { code: 'EEXIST' });
    this.links.set(p, linkTarget);
  }
  mkdirBeneath(ref: Beneath, mode: number) {
    return this.mkdir(ref.path, mode);
  }
  readFileOrNull(p: string) {
    const c = this.files.get(p);
    return c === undefined ? null : Buffer.from(c);
  }
  writeFile(p: string, data: Uint8Array, _mode: number) {
    this.tick(`write ${p}`);
    this.files.set(p, Buffer.from(data).toString());
  }
  unlink(p: string) {
    this.tick(`unlink ${p}`);
    if (!this.files.delete(p) && !this.links.delete(p)) throw new Error(`${p}: ENOENT`);
  }
}
