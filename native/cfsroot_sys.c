/*
 * cfsroot_sys: the few mount system calls the boot needs (SPEC §4), as a
 * Node-API addon, so that a boot costs no mount(8)/umount(8) child
 * processes. Loaded by src/sys/native.ts, which keeps the `Sys` interface
 * (src/sys/types.ts) and falls back to mount(8) when this cannot load.
 *
 * Deliberately thin: no policy, no option parsing beyond "key=value" per
 * fsconfig call. Each mount function is one short sequence of system calls
 * (open beneath, open_tree/fsmount, move_mount) and throws a
 * JS Error whose `code` is the errno name (EINVAL, EBUSY, ...) and whose
 * message is "<syscall> <target>: <strerror> (<ENAME>)"; the executor adds
 * the step.
 *
 * Exports (all synchronous, arguments validated here):
 *   mount(source|null, target, fstype|null, flags, data|null)   mount(2)
 *   umount(target, flags)                                       umount2(2)
 *   mountLoop(file, target, fstype, flags, data) -> "/dev/loopN"
 *       attach `file` to a free loop device (read-only when MS_RDONLY) with
 *       autoclear, mount that device, and drop our handle: the mount then
 *       owns the device, which the kernel frees when it is unmounted, or at
 *       once if the mount fails. Needed because an image copy on tmpfs
 *       cannot be mounted as file-backed EROFS (tmpfs has no read_folio;
 *       the kernel answers ENOTBLK), and this saves the mount(8) child.
 *   openDir(root, rel) -> fd       O_PATH descriptor of the directory rel
 *       beneath root, no symlink followed (openat2 RESOLVE_BENEATH|NO_SYMLINKS).
 *   bindAt(sourceFd, targetFd, recursive) -> mountFd    open_tree + move_mount.
 *   mountAt(fstype, source, options[], readonly, targetFd, loop) -> mountFd
 *       fsopen/fsconfig/fsmount + move_mount (a loop device first with loop).
 *   closeFd(fd)
 *       A mountFd names its mount for as long as it is open: the executor
 *       remounts and undoes through /proc/self/fd/N, never the path again.
 *       The system calls newer than mount(2), with the release each needs
 *       and its fallback, are in one place: "Kernel interfaces" below.
 *   setReadonly(target, readonly)   flip MNT_READONLY of one mount only:
 *       mount_setattr(2) (Linux 5.12); before that a bind remount that
 *       carries the mount's other per-mount flags over from statvfs(2).
 *
 *   exitNow(code)    _exit(2): end the process without Node's teardown (OpenSSL
 *       clean-up, platform threads, the heap), for a command whose output is
 *       all written (src/startup/entry.ts). Measured: 1-2.6 ms less per boot.
 *   execve(path, argv, envp)    execve(2), nothing else: start the executable
 *       again with Node's variables removed from the environment
 *       (src/startup/environment.ts). Node's own process.execve first ends
 *       its profilers (NODE_V8_COVERAGE writes its file); this does not.
 *       Returns only on failure, by throwing.
 *   isReadonly(path) -> boolean    statvfs(2) ST_RDONLY of the mount holding
 *       path: set when the mount or its filesystem is read-only (the
 *       executor's undo of a remount; cheaper than reading mountinfo).
 *   copyVerity(src, dest, alg, threads) -> Buffer
 *       create `dest` exclusively with the bytes of the regular file `src`
 *       and return the fs-verity digest (SPEC §3) of exactly those bytes.
 *       Each piece of src is read once into private memory; from there it
 *       is both written to dest and hashed, so dest holds what was hashed.
 *   digestFile(path, alg, threads) -> Buffer    the same digest, no copy.
 *   prefetch(path, alg, copyDir|null[, privateCopy]) -> handle    start
 *       copying the file (with a copyDir) or reading it into memory, and
 *       hashing it, on threads, and return at once, so the boot's other
 *       checks run meanwhile (issue 5). The copy goes to a private tmpfs
 *       that is mounted nowhere (privateCopy, the default, when the kernel
 *       allows), else to an unnamed file in copyDir. Never throws for the
 *       file: its errors are reported by the finish call.
 *   finishCopy(handle, dest) -> { digest: Buffer, fd }    wait for the
 *       copy, hash what the threads have not reached yet, and return the
 *       digest of exactly the copy's bytes. A private copy is handed over
 *       as fd (close-on-exec; nothing is created at dest); otherwise fd is
 *       -1 and the copy has been given the name dest (never replacing).
 *   finishDigest(handle) -> Buffer        the same without the copy.
 *       Both exist only when the executable exports OpenSSL's SHA256 and
 *       SHA512 (Node's official builds do: they are what node:crypto runs
 *       on); src/sys/native.ts falls back to src/fsverity.ts otherwise.
 *       threads: 0 = one per online CPU (at most 2), else that many (1-2).
 *       `hashFunctions` names the OpenSSL functions in use (see below).
 *
 * Only Node-API (stable ABI, node_api.h), libc and the hash functions
 * looked up at run time are used, so the same build loads in any Node >= 18
 * of the same architecture and C library.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/* linux/mount.h; spelled out so old kernel headers still build this. */
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442 /* same number on every architecture */
#endif
#define CFS_MOUNT_ATTR_RDONLY 0x00000001
struct cfs_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};

/* Throw Error(message) with .code = errno name; returns NULL for the caller to return. */
static napi_value throw_errno(napi_env env, const char *what, const char *target, int err) {
    const char *name = strerrorname_np(err);
    char fallback[16];
    if (name == NULL) {
        snprintf(fallback, sizeof fallback, "E%d", err);
        name = fallback;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s %s: %s (%s)", what, target ? target : "", strerror(err), name);
    napi_throw_error(env, name, msg);
    return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
    napi_throw_type_error(env, "EINVAL", msg);
    return NULL;
}

/*
 * A JS string argument as a malloc'd UTF-8 C string. *out = NULL when the
 * argument is null/undefined and nullable. Returns 0 on success, -1 with a
 * pending JS exception. Rejects embedded NULs, which the kernel would
 * silently truncate at (a different path than the one asked for).
 */
static int get_string(napi_env env, napi_value v, int nullable, const char *name, char **out) {
    napi_valuetype t;
    *out = NULL;
    if (napi_typeof(env, v, &t) != napi_ok) return -1;
    if (nullable && (t == napi_null || t == napi_undefined)) return 0;
    if (t != napi_string) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a string", name);
        throw_type(env, msg);
        return -1;
    }
    size_t len = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
    char *s = malloc(len + 1);
    if (s == NULL) {
        napi_throw_error(env, "ENOMEM", "out of memory");
        return -1;
    }
    size_t got = 0;
    if (napi_get_value_string_utf8(env, v, s, len + 1, &got) != napi_ok) {
        free(s);
        return -1;
    }
    if (strlen(s) != got) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must not contain a NUL character", name);
        free(s);
        throw_type(env, msg);
        return -1;
    }
    *out = s;
    return 0;
}

static int get_u32(napi_env env, napi_value v, const char *name, uint32_t *out) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) return -1;
    if (t != napi_number) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a number", name);
        throw_type(env, msg);
        return -1;
    }
    return napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
    size_t argc = want;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
    if (argc < want) {
        throw_type(env, "too few arguments");
        return -1;
    }
    return 0;
}

/* mount(source|null, target, fstype|null, flags, data|null) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
    napi_value argv[5];
    char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
    uint32_t flags = 0;
    if (get_args(env, info, 5, argv) == 0 && get_string(env, argv[0], 1, "source", &source) == 0 &&
        get_string(env, argv[1], 0, "target", &target) == 0 && get_string(env, argv[2], 1, "fstype", &fstype) == 0 &&
        get_u32(env, argv[3], "flags", &flags) == 0 && get_string(env, argv[4], 1, "data", &data) == 0) {
        /* "none" is what mount(8) passes when there is no source (propagation, move). */
        if (mount(source ? source : "none", target, fstype, flags, data) != 0)
            throw_errno(env, "mount(2)", target, errno);
    }
    free(source);
    free(target);
    free(fstype);
    free(data);
    return NULL;
}

/* umount(target, flags) */
static napi_value js_umount(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    char *target = NULL;
    uint32_t flags = 0;
    if (get_args(env, info, 2, argv) == 0 && get_string(env, argv[0], 0, "target", &target) == 0 &&
        get_u32(env, argv[1], "flags", &flags) == 0) {
        if (umount2(target, (int)flags) != 0) throw_errno(env, "umount2(2)", target, errno);
    }
    free(target);
    return NULL;
}

/* Attach `file` to a free loop device; returns its fd (and name in dev), or -1 with errno set. */
static int loop_attach(const char *file, int readonly, char *dev, size_t devlen) {
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) return -1;
    /* "/proc/self/fd/N" (a private image copy, which has no other name): the
       descriptor itself, so that no mounted /proc is needed. */
    static const char fdpath[] = "/proc/self/fd/";
    const size_t fdlen = sizeof fdpath - 1;
    int ffd = -1;
    if (strncmp(file, fdpath, fdlen) == 0) {
        char *end = NULL;
        long n = strtol(file + fdlen, &end, 10);
        if (end != file + fdlen && *end == '\0' && n >= 0 && n <= INT_MAX)
            ffd = fcntl((int)n, F_DUPFD_CLOEXEC, 0);
        else
            errno = ENOENT;
    } else {
        ffd = open(file, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    }
    if (ffd < 0) {
        int e = errno;
        close(ctl);
        errno = e;
        return -1;
    }
    int lfd = -1, err = EBUSY;
    /* Another process may take the free device between GET_FREE and CONFIGURE (EBUSY): try again. */
    for (int attempt = 0; attempt < 16 && err == EBUSY; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            err = errno;
            break;
        }
        snprintf(dev, devlen, "/dev/loop%d", n);
        lfd = open(dev, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (lfd < 0) {
            err = errno;
            break;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (uint32_t)ffd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | (readonly ? LO_FLAGS_READ_ONLY : 0);
        strncpy((char *)cfg.info.lo_file_name, file, LO_NAME_SIZE - 1);
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0) {
            err = 0;
            break;
        }
        err = errno;
        if (err == EINVAL || err == ENOTTY) {
            /* Before Linux 5.8 (no LOOP_CONFIGURE): the two-step form. */
            if (ioctl(lfd, LOOP_SET_FD, ffd) == 0) {
                struct loop_info64 li;
                memset(&li, 0, sizeof li);
                li.lo_flags = cfg.info.lo_flags;
                memcpy(li.lo_file_name, cfg.info.lo_file_name, LO_NAME_SIZE);
                if (ioctl(lfd, LOOP_SET_STATUS64, &li) == 0) {
                    err = 0;
                    break;
                }
                err = errno;
                ioctl(lfd, LOOP_CLR_FD, 0);
            } else {
                err = errno;
            }
        }
        close(lfd);
        lfd = -1;
    }
    close(ffd);
    close(ctl);
    if (err != 0) {
        if (lfd >= 0) close(lfd);
        errno = err;
        return -1;
    }
    return lfd;
}

/* mountLoop(file, target, fstype, flags, data) -> "/dev/loopN" */
static napi_value js_mount_loop(napi_env env, napi_callback_info info) {
    napi_value argv[5], result = NULL;
    char *file = NULL, *target = NULL, *fstype = NULL, *data = NULL;
    uint32_t flags = 0;
    if (get_args(env, info, 5, argv) == 0 && get_string(env, argv[0], 0, "file", &file) == 0 &&
        get_string(env, argv[1], 0, "target", &target) == 0 && get_string(env, argv[2], 0, "fstype", &fstype) == 0 &&
        get_u32(env, argv[3], "flags", &flags) == 0 && get_string(env, argv[4], 1, "data", &data) == 0) {
        char dev[64];
        int lfd = loop_attach(file, (flags & MS_RDONLY) != 0, dev, sizeof dev);
        if (lfd < 0) {
            throw_errno(env, "loop device for", file, errno);
        } else {
            int rc = mount(dev, target, fstype, flags, data);
            int e = errno;
            /* The mount holds the device now; if it failed, this last close frees it (autoclear). */
            close(lfd);
            if (rc != 0)
                throw_errno(env, "mount(2)", target, e);
            else
                napi_create_string_utf8(env, dev, NAPI_AUTO_LENGTH, &result);
        }
    }
    free(file);
    free(target);
    free(fstype);
    free(data);
    return result;
}

/* The per-mount flags a bind remount must repeat, or the kernel clears them. */
static unsigned long mount_flags_of(const struct statvfs *st) {
    unsigned long f = 0;
    if (st->f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (st->f_flag & ST_NODEV) f |= MS_NODEV;
    if (st->f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (st->f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (st->f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (st->f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

/* setReadonly(target, readonly) */
static napi_value js_set_readonly(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    char *target = NULL;
    bool ro = false;
    if (get_args(env, info, 2, argv) != 0 || get_string(env, argv[0], 0, "target", &target) != 0) return NULL;
    if (napi_get_value_bool(env, argv[1], &ro) != napi_ok) {
        free(target);
        return throw_type(env, "readonly must be a boolean");
    }
    struct cfs_mount_attr attr = {0};
    if (ro)
        attr.attr_set = CFS_MOUNT_ATTR_RDONLY;
    else
        attr.attr_clr = CFS_MOUNT_ATTR_RDONLY;
    /* AT_SYMLINK_NOFOLLOW is not needed: targets are mount points the plan made. */
    if (syscall(SYS_mount_setattr, AT_FDCWD, target, 0, &attr, sizeof attr) == 0) {
        free(target);
        return NULL;
    }
    int err = errno;
    if (err == ENOSYS) {
        /* Before 5.12: MS_REMOUNT|MS_BIND changes per-mount flags only, but all of them at once. */
        struct statvfs st;
        if (statvfs(target, &st) != 0) {
            err = errno;
            throw_errno(env, "statvfs(2)", target, err);
        } else if (mount("none", target, NULL, MS_REMOUNT | MS_BIND | mount_flags_of(&st) | (ro ? MS_RDONLY : 0), NULL) != 0) {
            throw_errno(env, "mount(2) remount", target, errno);
        }
    } else {
        throw_errno(env, "mount_setattr(2)", target, err);
    }
    free(target);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Kernel interfaces (issue 13): every system call newer than mount(2) that
 * cfsroot uses, the release that added it, and what runs on a kernel that
 * lacks it. Nothing outside this section calls them.
 *
 *   openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS   Linux 5.6
 *       fallback: a walk of openat(O_PATH|O_NOFOLLOW) per component that
 *       refuses "..", ".", empty components and symlinks: the same answer.
 *   open_tree(2), move_mount(2)                      Linux 5.2, no fallback
 *   fsopen(2), fsconfig(2), fsmount(2)               Linux 5.2, no fallback
 *       (a mount made by descriptor is the only handle that keeps naming
 *       that mount when a path under it changes; ENOSYS is reported as
 *       "needs Linux >= 5.2").
 *   mount_setattr(2)                                 Linux 5.12
 *       fallback: MS_REMOUNT|MS_BIND through /proc/self/fd/N (js_set_readonly).
 *   LOOP_CONFIGURE                                   Linux 5.8
 *       fallback: LOOP_SET_FD + LOOP_SET_STATUS64 (loop_attach).
 * The system call numbers are the same on every architecture (the unified
 * table from 5.1 on), so no kernel or libc headers newer than 5.1 are needed.
 * ------------------------------------------------------------------------ */
#define CFS_SYS_open_tree 428
#define CFS_SYS_move_mount 429
#define CFS_SYS_fsopen 430
#define CFS_SYS_fsconfig 431
#define CFS_SYS_fsmount 432
#define CFS_SYS_openat2 437
#define CFS_OPEN_TREE_CLONE 1
#define CFS_AT_RECURSIVE 0x8000
#define CFS_MOVE_MOUNT_F_EMPTY_PATH 0x4
#define CFS_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define CFS_FSOPEN_CLOEXEC 0x1
#define CFS_FSMOUNT_CLOEXEC 0x1
#define CFS_FSCONFIG_SET_FLAG 0
#define CFS_FSCONFIG_SET_STRING 1
#define CFS_FSCONFIG_CMD_CREATE 6
#define CFS_RESOLVE_NO_MAGICLINKS 0x02
#define CFS_RESOLVE_NO_SYMLINKS 0x04
#define CFS_RESOLVE_BENEATH 0x08
struct cfs_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

/*
 * Open `rel` beneath the directory `dirfd` as O_PATH, following no symlink
 * and never leaving dirfd (no "..", no absolute path). `flags` adds
 * O_DIRECTORY or nothing. Returns the fd or -1 with errno (ELOOP: a symlink
 * on the way or at the end; EXDEV: an escape).
 */
static int open_beneath(int dirfd, const char *rel, int flags) {
    if (rel[0] == '\0') return fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    struct cfs_open_how how = {
        /* No O_NOFOLLOW: with it a final symlink is opened itself, and O_DIRECTORY then
           says ENOTDIR; without it RESOLVE_NO_SYMLINKS refuses it with ELOOP. */
        .flags = (uint64_t)(O_PATH | O_CLOEXEC | flags),
        .resolve = CFS_RESOLVE_BENEATH | CFS_RESOLVE_NO_SYMLINKS | CFS_RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(CFS_SYS_openat2, dirfd, rel, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return (int)fd;
    /* Before 5.6: one component at a time. */
    if (rel[0] == '/') {
        errno = EXDEV;
        return -1;
    }
    int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    const char *p = rel;
    while (cur >= 0 && *p != '\0') {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char name[NAME_MAX + 1];
        if (n == 0 || n > NAME_MAX || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
            close(cur);
            errno = n > NAME_MAX ? ENAMETOOLONG : EXDEV;
            return -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        int last = slash == NULL || slash[1] == '\0';
        /* O_PATH|O_NOFOLLOW opens a symlink itself: refused below with ELOOP, as openat2 does. */
        int next = openat(cur, name, O_PATH | O_CLOEXEC | O_NOFOLLOW);
        int e = errno;
        close(cur);
        cur = next;
        errno = e;
        if (cur >= 0) {
            struct stat st;
            e = fstat(cur, &st) != 0 ? errno
                : S_ISLNK(st.st_mode) ? ELOOP
                : (!last || (flags & O_DIRECTORY)) && !S_ISDIR(st.st_mode) ? ENOTDIR
                : 0;
            if (e != 0) {
                close(cur);
                errno = e;
                return -1;
            }
        }
        p += n;
        if (*p == '/') p++;
    }
    return cur;
}

/*
 * Open a file from the disk for reading (the image): no symlink followed
 * anywhere on its path (the paths cfsroot reads come from realpath(3), so a
 * symlink on one now is a swap made since), O_NONBLOCK so that a FIFO
 * cannot block the open. The caller checks fstat before any read. Before
 * 5.6 only the last component is held to that (O_NOFOLLOW).
 */
static int open_disk_file(const char *path) {
    struct cfs_open_how how = {
        .flags = (uint64_t)(O_RDONLY | O_NONBLOCK | O_CLOEXEC),
        .resolve = CFS_RESOLVE_NO_SYMLINKS | CFS_RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(CFS_SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return (int)fd;
    return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
}

/* ENOSYS from a 5.2 call: say which release is needed instead of "function not implemented". */
static napi_value throw_sys(napi_env env, const char *call, const char *target, int err) {
    if (err == ENOSYS) {
        char what[96];
        snprintf(what, sizeof what, "%s (needs Linux >= 5.2)", call);
        return throw_errno(env, what, target, err);
    }
    return throw_errno(env, call, target, err);
}

static int get_fd(napi_env env, napi_value v, const char *name, int *out) {
    int32_t n = -1;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) return -1;
    if (t != napi_number || napi_get_value_int32(env, v, &n) != napi_ok || n < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a file descriptor", name);
        throw_type(env, msg);
        return -1;
    }
    *out = n;
    return 0;
}

static napi_value fd_value(napi_env env, int fd) {
    napi_value v = NULL;
    if (napi_create_int32(env, fd, &v) != napi_ok) {
        close(fd);
        return NULL;
    }
    return v;
}

/*
 * openDir(root, rel) -> fd: `root` (a trusted path, opened as given) and
 * then the directory `rel` beneath it with no symlink followed, O_PATH,
 * close-on-exec. Refuses anything that is not a directory (ENOTDIR) or is
 * reached through a symlink (ELOOP). With rel "" it opens root itself.
 */
static napi_value js_open_dir(napi_env env, napi_callback_info info) {
    napi_value argv[2], result = NULL;
    char *root = NULL, *rel = NULL;
    if (get_args(env, info, 2, argv) == 0 && get_string(env, argv[0], 0, "root", &root) == 0 &&
        get_string(env, argv[1], 0, "rel", &rel) == 0) {
        int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
            throw_errno(env, "open(2)", root, errno);
        } else {
            int fd = open_beneath(rfd, rel, O_DIRECTORY);
            int e = errno;
            close(rfd);
            struct stat st;
            if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode))) {
                e = ENOTDIR;
                close(fd);
                fd = -1;
            }
            if (fd < 0)
                throw_errno(env, "openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS", rel, e);
            else
                result = fd_value(env, fd);
        }
    }
    free(root);
    free(rel);
    return result;
}

/* closeFd(fd) */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    int fd;
    if (get_args(env, info, 1, argv) == 0 && get_fd(env, argv[0], "fd", &fd) == 0) close(fd);
    return NULL;
}

/* Attach the detached mount `mfd` on the directory `tfd`; 0 or -1 with errno. */
static int attach_at(int mfd, int tfd) {
    return (int)syscall(CFS_SYS_move_mount, mfd, "", tfd, "", CFS_MOVE_MOUNT_F_EMPTY_PATH | CFS_MOVE_MOUNT_T_EMPTY_PATH);
}

/*
 * bindAt(sourceFd, targetFd, recursive) -> mountFd: a copy of the mount
 * tree at sourceFd (open_tree OPEN_TREE_CLONE), attached on targetFd
 * (move_mount). The returned descriptor names the new mount for as long as
 * it is open, whatever happens to the paths around it.
 */
static napi_value js_bind_at(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    int sfd, tfd;
    bool rec = false;
    if (get_args(env, info, 3, argv) != 0 || get_fd(env, argv[0], "sourceFd", &sfd) != 0 ||
        get_fd(env, argv[1], "targetFd", &tfd) != 0)
        return NULL;
    if (napi_get_value_bool(env, argv[2], &rec) != napi_ok) return throw_type(env, "recursive must be a boolean");
    long mfd = syscall(CFS_SYS_open_tree, sfd, "", CFS_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | (rec ? CFS_AT_RECURSIVE : 0));
    if (mfd < 0) return throw_sys(env, "open_tree(2)", "", errno);
    if (attach_at((int)mfd, tfd) != 0) {
        int e = errno;
        close((int)mfd);
        return throw_sys(env, "move_mount(2)", "", e);
    }
    return fd_value(env, (int)mfd);
}

/* The fsconfig(2) log's last message ("e overlay: ..."), or "" (the kernel's reason for EINVAL). */
static void fs_log(int fsfd, char *buf, size_t len) {
    buf[0] = '\0';
    for (;;) {
        char line[256];
        ssize_t n = read(fsfd, line, sizeof line - 1);
        if (n <= 0) break;
        line[n] = '\0';
        snprintf(buf, len, " [%s]", line);
    }
}

/*
 * mountAt(fstype, source|null, options[], readonly, targetFd, loop) -> mountFd
 * A new filesystem (fsopen/fsconfig/fsmount), attached on targetFd. Each
 * option is one fsconfig call: "key=value" a string, "key" a flag. With
 * loop, source (a regular file, or /proc/self/fd/N) is attached to a
 * read-only autoclear loop device first, whose name becomes the source.
 */
static napi_value js_mount_at(napi_env env, napi_callback_info info) {
    napi_value argv[6], result = NULL;
    char *fstype = NULL, *source = NULL;
    int tfd, fsfd = -1, lfd = -1;
    bool ro = false, loop = false;
    uint32_t nopts = 0;
    bool is_array = false;
    char dev[64];
    if (get_args(env, info, 6, argv) != 0 || get_string(env, argv[0], 0, "fstype", &fstype) != 0) goto out;
    if (get_string(env, argv[1], 1, "source", &source) != 0) goto out;
    if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &nopts) != napi_ok) {
        throw_type(env, "options must be an array of strings");
        goto out;
    }
    if (napi_get_value_bool(env, argv[3], &ro) != napi_ok || napi_get_value_bool(env, argv[5], &loop) != napi_ok) {
        throw_type(env, "readonly and loop must be booleans");
        goto out;
    }
    if (get_fd(env, argv[4], "targetFd", &tfd) != 0) goto out;
    if (loop) {
        if (source == NULL) {
            throw_type(env, "a loop mount needs a source");
            goto out;
        }
        lfd = loop_attach(source, 1, dev, sizeof dev);
        if (lfd < 0) {
            int e = errno;
            if (e == ENOENT && access("/dev/loop-control", F_OK) != 0)
                throw_errno(env, "open(2)", "/dev/loop-control", e);
            else
                throw_errno(env, "loop device for", source, e);
            goto out;
        }
    }
    fsfd = (int)syscall(CFS_SYS_fsopen, fstype, CFS_FSOPEN_CLOEXEC);
    if (fsfd < 0) {
        throw_sys(env, "fsopen(2)", fstype, errno);
        goto out;
    }
    const char *src = loop ? dev : source;
    char why[300] = "";
    if (src != NULL && syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_SET_STRING, "source", src, 0) != 0) {
        int e = errno;
        fs_log(fsfd, why, sizeof why);
        throw_errno(env, "fsconfig(2) source", src, e);
        goto out;
    }
    if (ro && syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_SET_FLAG, "ro", NULL, 0) != 0) {
        throw_errno(env, "fsconfig(2) ro", fstype, errno);
        goto out;
    }
    for (uint32_t i = 0; i < nopts; i++) {
        napi_value ov;
        char *opt = NULL;
        if (napi_get_element(env, argv[2], i, &ov) != napi_ok || get_string(env, ov, 0, "option", &opt) != 0) goto out;
        char *eq = strchr(opt, '=');
        long rc;
        if (eq != NULL) {
            *eq = '\0';
            rc = syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_SET_STRING, opt, eq + 1, 0);
        } else {
            rc = syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_SET_FLAG, opt, NULL, 0);
        }
        if (rc != 0) {
            int e = errno;
            fs_log(fsfd, why, sizeof why);
            char what[160];
            snprintf(what, sizeof what, "fsconfig(2) %s option %s%s", fstype, opt, why);
            free(opt);
            throw_errno(env, what, "", e);
            goto out;
        }
        free(opt);
    }
    if (syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
        int e = errno;
        fs_log(fsfd, why, sizeof why);
        char what[340];
        snprintf(what, sizeof what, "fsconfig(2) create %s%s", fstype, why);
        throw_errno(env, what, src, e);
        goto out;
    }
    /* The loop device is held by the superblock now; this last handle goes (autoclear). */
    if (lfd >= 0) {
        close(lfd);
        lfd = -1;
    }
    int mfd = (int)syscall(CFS_SYS_fsmount, fsfd, CFS_FSMOUNT_CLOEXEC, ro ? CFS_MOUNT_ATTR_RDONLY : 0);
    if (mfd < 0) {
        throw_sys(env, "fsmount(2)", fstype, errno);
        goto out;
    }
    if (attach_at(mfd, tfd) != 0) {
        int e = errno;
        close(mfd);
        throw_sys(env, "move_mount(2)", "", e);
        goto out;
    }
    result = fd_value(env, mfd);
out:
    if (fsfd >= 0) close(fsfd);
    if (lfd >= 0) close(lfd);
    free(fstype);
    free(source);
    return result;
}
/* ------------------------------------------------------------------------
 * The boot's deadline (issue 13 item 11). A read from a disk that stopped
 * answering (a FUSE or network root, a dying device) blocks the main thread
 * in the kernel, where no JavaScript timer can run and nothing can cancel
 * it. This thread sleeps until the deadline; if the boot has not disarmed
 * it by then, it writes one line naming what the boot was doing (the last
 * watchdogNote) to stderr and /dev/kmsg, and ends the process with _exit(1),
 * which takes the blocked thread with it.
 *   watchdogStart(ms)   arm (once; a second call moves the deadline)
 *   watchdogNote(text)  what the boot is doing now (a step, with its file)
 *   watchdogStop()      disarm: the boot finished, it prints its own line
 *   testStall()         test only: block this thread in a read that never
 *                       returns (src/boot.ts, $CFSROOT_TEST_STALL)
 * ------------------------------------------------------------------------ */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static char wd_note[1024] = "starting";
static int wd_armed, wd_started;
static struct timespec wd_deadline;
static uint32_t wd_ms;

static void *watchdog_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&wd_lock);
    for (;;) {
        if (!wd_armed) {
            pthread_mutex_unlock(&wd_lock);
            return NULL;
        }
        int rc = pthread_cond_timedwait(&wd_cond, &wd_lock, &wd_deadline);
        if (rc == ETIMEDOUT && wd_armed) break;
    }
    char line[1400];
    int n = snprintf(line, sizeof line,
                     "cfsroot: the boot did not finish within %u.%03u s, blocked while %s (a disk or file server that stopped "
                     "answering?): giving up, without undoing what was already mounted [ETIMEOUT]\n",
                     wd_ms / 1000, wd_ms % 1000, wd_note);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    ssize_t ignored = write(2, line, (size_t)n);
    int kmsg = open("/dev/kmsg", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (kmsg >= 0) {
        char k[1410];
        int m = snprintf(k, sizeof k, "<3>%s", line);
        if (m > 0) ignored = write(kmsg, k, (size_t)m < sizeof k ? (size_t)m : sizeof k - 1);
        close(kmsg);
    }
    (void)ignored;
    _exit(1);
}

static napi_value js_watchdog_start(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    uint32_t ms;
    if (get_args(env, info, 1, argv) != 0 || get_u32(env, argv[0], "ms", &ms) != 0) return NULL;
    pthread_mutex_lock(&wd_lock);
    /* pthread_cond_timedwait measures CLOCK_REALTIME by default; fine for seconds. */
    clock_gettime(CLOCK_REALTIME, &wd_deadline);
    wd_deadline.tv_sec += ms / 1000;
    wd_deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (wd_deadline.tv_nsec >= 1000000000L) {
        wd_deadline.tv_sec++;
        wd_deadline.tv_nsec -= 1000000000L;
    }
    wd_ms = ms;
    wd_armed = 1;
    int start = !wd_started;
    wd_started = 1;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
    if (start) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, watchdog_thread, NULL);
        pthread_attr_destroy(&a);
        if (rc != 0) return throw_errno(env, "pthread_create", "the boot's watchdog", rc);
    }
    return NULL;
}

static napi_value js_watchdog_note(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    char *text = NULL;
    if (get_args(env, info, 1, argv) != 0 || get_string(env, argv[0], 0, "text", &text) != 0) return NULL;
    pthread_mutex_lock(&wd_lock);
    size_t i = 0;
    /* Control characters would let a name from the disk start a line of its own. */
    for (; text[i] != '\0' && i < sizeof wd_note - 1; i++) wd_note[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    wd_note[i] = '\0';
    pthread_mutex_unlock(&wd_lock);
    free(text);
    return NULL;
}

static napi_value js_watchdog_stop(napi_env env, napi_callback_info info) {
    (void)env;
    (void)info;
    pthread_mutex_lock(&wd_lock);
    wd_armed = 0;
    pthread_cond_signal(&wd_cond);
    pthread_mutex_unlock(&wd_lock);
    return NULL;
}

static napi_value js_test_stall(napi_env env, napi_callback_info info) {
    (void)info;
    int p[2];
    if (pipe(p) != 0) return throw_errno(env, "pipe", "", errno);
    char c;
    /* The write end stays open: this read never returns. */
    while (read(p[0], &c, 1) != 0) {
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * fs-verity digest (SPEC §3; the same computation as src/fsverity.ts, which
 * the tests hold this to): 4096-byte blocks, level 0 = one hash per data
 * block (the last block zero-padded), each level above = the hashes of the
 * level below packed into zero-padded blocks, until one hash remains (the
 * root); the digest is the hash of the 256-byte fs-verity descriptor.
 *
 * Why in C (issue 5): per 4 KiB block, a call into node:crypto costs more
 * than hashing the block with SHA-NI, and a worker thread takes ~50 ms to
 * start. Here the block hashes are plain calls into the same OpenSSL, and
 * level 0 is shared with one pthread (microseconds to start).
 */

typedef unsigned char *(*sha_oneshot)(const unsigned char *data, size_t len, unsigned char *md);
static sha_oneshot sha256_fn, sha512_fn;

/*
 * In OpenSSL 3, SHA256()/SHA512() go through the EVP layer on every call
 * (an algorithm fetch each time): measured here, 5.9 ms for the 5.47 MB
 * image's 1,343 blocks against 4.7 ms with the low-level Init/Update/Final,
 * which is also what a one-shot hash of all the bytes costs. So the block
 * hash copies a context initialised once and runs Update + Final on it. The
 * context stays opaque (no OpenSSL headers): 256 bytes hold SHA256_CTX (112)
 * and SHA512_CTX (216). Without these symbols, SHA256()/SHA512() are used.
 */
typedef int (*sha_init_fn)(void *ctx);
typedef int (*sha_update_fn)(void *ctx, const void *data, size_t len);
typedef int (*sha_final_fn)(unsigned char *md, void *ctx);
typedef union {
    unsigned char bytes[256];
    uint64_t align;
} sha_ctx;
struct sha_lowlevel {
    sha_update_fn update;
    sha_final_fn final;
    sha_ctx initial;
};
static struct sha_lowlevel sha256_ll, sha512_ll;

static unsigned char *block_hash(const struct sha_lowlevel *ll, const unsigned char *data, size_t len, unsigned char *md) {
    sha_ctx ctx = ll->initial;
    ll->update(&ctx, data, len);
    ll->final(md, &ctx);
    return md;
}
static unsigned char *sha256_block(const unsigned char *data, size_t len, unsigned char *md) {
    return block_hash(&sha256_ll, data, len, md);
}
static unsigned char *sha512_block(const unsigned char *data, size_t len, unsigned char *md) {
    return block_hash(&sha512_ll, data, len, md);
}

/* Switch to the low-level functions when all of them are there. */
static void use_lowlevel_sha(void) {
    const char *names[2][3] = {{"SHA256_Init", "SHA256_Update", "SHA256_Final"}, {"SHA512_Init", "SHA512_Update", "SHA512_Final"}};
    struct sha_lowlevel *ll[2] = {&sha256_ll, &sha512_ll};
    sha_init_fn init[2];
    for (int i = 0; i < 2; i++) {
        init[i] = (sha_init_fn)dlsym(RTLD_DEFAULT, names[i][0]);
        ll[i]->update = (sha_update_fn)dlsym(RTLD_DEFAULT, names[i][1]);
        ll[i]->final = (sha_final_fn)dlsym(RTLD_DEFAULT, names[i][2]);
        if (init[i] == NULL || ll[i]->update == NULL || ll[i]->final == NULL) return;
    }
    for (int i = 0; i < 2; i++)
        if (init[i](&ll[i]->initial) != 1) return;
    sha256_fn = sha256_block;
    sha512_fn = sha512_block;
}

#define VERITY_BLOCK 4096
#define VERITY_DESC_SIZE 256
/* Level-0 blocks claimed at a time by a thread (256 KiB of data). */
#define GROUP_BLOCKS 64
/* Bytes read, written and hashed per round: bounds the private buffer. */
#define SEGMENT (1u << 20)

struct segment_job {
    const unsigned char *data; /* this segment, zero-padded to whole blocks */
    size_t blocks;             /* blocks in this segment */
    unsigned char *out;        /* where its level-0 hashes go */
    atomic_size_t next_group;
};

struct verity_ctx {
    sha_oneshot fn;
    size_t hash_size;
    struct segment_job job;
    pthread_barrier_t start, done;
    int stop; /* set by the main thread before `start` when there is no more work */
};

static void hash_groups(struct verity_ctx *c) {
    struct segment_job *j = &c->job;
    size_t groups = (j->blocks + GROUP_BLOCKS - 1) / GROUP_BLOCKS;
    for (;;) {
        size_t g = atomic_fetch_add(&j->next_group, 1);
        if (g >= groups) return;
        size_t end = (g + 1) * GROUP_BLOCKS < j->blocks ? (g + 1) * GROUP_BLOCKS : j->blocks;
        for (size_t b = g * GROUP_BLOCKS; b < end; b++)
            c->fn(j->data + b * VERITY_BLOCK, VERITY_BLOCK, j->out + b * c->hash_size);
    }
}

static void *verity_helper(void *arg) {
    struct verity_ctx *c = arg;
    for (;;) {
        pthread_barrier_wait(&c->start);
        if (c->stop) return NULL;
        hash_groups(c);
        pthread_barrier_wait(&c->done);
    }
}

/* Hash `n` hashes (packed, zero-padded to whole blocks in `level`) up to the root. */
static void merkle_root(const struct verity_ctx *c, unsigned char *level, size_t n, unsigned char *root) {
    while (n > 1) {
        size_t blocks = (n * c->hash_size + VERITY_BLOCK - 1) / VERITY_BLOCK;
        /* In place is safe: block b's hash lands at b*hash_size, below the blocks still to read. */
        for (size_t b = 0; b < blocks; b++) c->fn(level + b * VERITY_BLOCK, VERITY_BLOCK, level + b * c->hash_size);
        size_t used = blocks * c->hash_size;
        memset(level + used, 0, (used + VERITY_BLOCK - 1) / VERITY_BLOCK * VERITY_BLOCK - used);
        n = blocks;
    }
    memcpy(root, level, c->hash_size);
}

static void descriptor_digest(const struct verity_ctx *c, int alg_id, uint64_t size, const unsigned char *root,
                              unsigned char *digest) {
    unsigned char d[VERITY_DESC_SIZE];
    memset(d, 0, sizeof d);
    d[0] = 1;             /* version */
    d[1] = (unsigned char)alg_id;
    d[2] = 12;            /* log2 of the block size; salt_size and sig_size stay 0 */
    for (int i = 0; i < 8; i++) d[8 + i] = (unsigned char)(size >> (8 * i)); /* data_size, little-endian */
    memcpy(d + 16, root, c->hash_size);
    c->fn(d, sizeof d, digest);
}

static int write_all(int fd, const unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes at the current position; 0, or -1 with errno (EIO + *short_at for an early end). */
static int read_exact(int fd, unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = ENODATA;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

struct verity_error {
    const char *what; /* "read", "write", ... */
    int err;
};

/*
 * Digest the regular file open at `in` (size `size`); with out >= 0 also
 * write every byte to `out`. Returns 0 with the digest, or -1 with *e set.
 */
static int verity_stream(int in, uint64_t size, int out, sha_oneshot fn, size_t hash_size, int alg_id, int threads,
                         unsigned char *digest, struct verity_error *e) {
    struct verity_ctx c;
    memset(&c, 0, sizeof c);
    c.fn = fn;
    c.hash_size = hash_size;
    size_t total_blocks = size == 0 ? 0 : (size_t)((size + VERITY_BLOCK - 1) / VERITY_BLOCK);
    /* Level 0, padded to whole blocks so the levels above can be hashed in place. */
    size_t level_bytes = total_blocks * hash_size;
    level_bytes = level_bytes == 0 ? VERITY_BLOCK : (level_bytes + VERITY_BLOCK - 1) / VERITY_BLOCK * VERITY_BLOCK;
    size_t seg_bytes = size < SEGMENT ? (size_t)((size + VERITY_BLOCK - 1) / VERITY_BLOCK * VERITY_BLOCK) : SEGMENT;
    if (seg_bytes == 0) seg_bytes = VERITY_BLOCK;
    unsigned char *level = calloc(1, level_bytes);
    unsigned char *buf = mmap(NULL, seg_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (level == NULL || buf == MAP_FAILED) {
        free(level);
        if (buf != MAP_FAILED) munmap(buf, seg_bytes);
        e->what = "allocating memory for";
        e->err = ENOMEM;
        return -1;
    }
    int helper = 0;
    pthread_t tid;
    if (threads > 1 && total_blocks > GROUP_BLOCKS) {
        pthread_barrier_init(&c.start, NULL, 2);
        pthread_barrier_init(&c.done, NULL, 2);
        if (pthread_create(&tid, NULL, verity_helper, &c) == 0) {
            helper = 1;
        } else {
            pthread_barrier_destroy(&c.start);
            pthread_barrier_destroy(&c.done);
        }
    }
    int rc = 0;
    for (uint64_t pos = 0; pos < size; pos += seg_bytes) {
        size_t len = size - pos < seg_bytes ? (size_t)(size - pos) : seg_bytes;
        if (read_exact(in, buf, len) != 0) {
            e->what = "reading";
            e->err = errno;
            rc = -1;
            break;
        }
        size_t blocks = (len + VERITY_BLOCK - 1) / VERITY_BLOCK;
        memset(buf + len, 0, blocks * VERITY_BLOCK - len); /* zero-pad the file's last block */
        c.job.data = buf;
        c.job.blocks = blocks;
        c.job.out = level + (size_t)(pos / VERITY_BLOCK) * hash_size;
        atomic_store(&c.job.next_group, 0);
        if (helper) pthread_barrier_wait(&c.start); /* the helper hashes while this thread writes */
        int werr = 0;
        if (out >= 0 && write_all(out, buf, len) != 0) werr = errno;
        hash_groups(&c); /* both threads finish this segment before the buffer is reused */
        if (helper) pthread_barrier_wait(&c.done);
        if (werr != 0) {
            e->what = "writing the copy of";
            e->err = werr;
            rc = -1;
            break;
        }
    }
    if (helper) {
        c.stop = 1;
        pthread_barrier_wait(&c.start);
        pthread_join(tid, NULL);
        pthread_barrier_destroy(&c.start);
        pthread_barrier_destroy(&c.done);
    }
    munmap(buf, seg_bytes);
    if (rc == 0) {
        unsigned char root[64];
        if (total_blocks == 0)
            memset(root, 0, hash_size); /* an empty file: the root is all zeros */
        else
            merkle_root(&c, level, total_blocks, root);
        descriptor_digest(&c, alg_id, size, root, digest);
    }
    free(level);
    return rc;
}

static int pick_alg(napi_env env, napi_value v, sha_oneshot *fn, size_t *hash_size, int *alg_id) {
    char *alg = NULL;
    if (get_string(env, v, 0, "alg", &alg) != 0) return -1;
    int ok = 1;
    if (strcmp(alg, "sha256") == 0) {
        *fn = sha256_fn, *hash_size = 32, *alg_id = 1;
    } else if (strcmp(alg, "sha512") == 0) {
        *fn = sha512_fn, *hash_size = 64, *alg_id = 2;
    } else {
        ok = 0;
    }
    free(alg);
    if (!ok) {
        throw_type(env, "alg must be 'sha256' or 'sha512'");
        return -1;
    }
    return 0;
}

static int pick_threads(napi_env env, napi_value v, int *threads) {
    uint32_t t = 0;
    if (get_u32(env, v, "threads", &t) != 0) return -1;
    if (t == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        t = cpus >= 2 ? 2 : 1;
    }
    *threads = t >= 2 ? 2 : 1;
    return 0;
}

/* Open `path` for reading as a regular file (O_NONBLOCK: a FIFO there must not hang the boot). */
static int open_regular(napi_env env, const char *path, struct stat *st) {
    int fd = open_disk_file(path);
    if (fd < 0) {
        throw_errno(env, "open", path, errno);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        throw_errno(env, "fstat", path, errno);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: not a regular file", path);
        napi_throw_error(env, "EINVAL", msg);
        close(fd);
        return -1;
    }
    return fd;
}

static napi_value digest_buffer(napi_env env, const unsigned char *digest, size_t n) {
    napi_value result = NULL;
    void *data = NULL;
    if (napi_create_buffer_copy(env, n, digest, &data, &result) != napi_ok) return NULL;
    return result;
}

static void throw_stream_error(napi_env env, const struct verity_error *e, const char *path, uint64_t size) {
    if (e->err == ENODATA) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: file ended early, expected %llu bytes (was it truncated while being read?)", path,
                 (unsigned long long)size);
        napi_throw_error(env, "EIO", msg);
    } else {
        throw_errno(env, e->what, path, e->err);
    }
}

/* digestFile(path, alg, threads) -> Buffer */
static napi_value js_digest_file(napi_env env, napi_callback_info info) {
    napi_value argv[3], result = NULL;
    char *path = NULL;
    sha_oneshot fn;
    size_t hash_size;
    int alg_id, threads;
    if (get_args(env, info, 3, argv) != 0 || get_string(env, argv[0], 0, "path", &path) != 0) return NULL;
    if (pick_alg(env, argv[1], &fn, &hash_size, &alg_id) == 0 && pick_threads(env, argv[2], &threads) == 0) {
        struct stat st;
        int fd = open_regular(env, path, &st);
        if (fd >= 0) {
            unsigned char digest[64];
            struct verity_error e = {0};
            if (verity_stream(fd, (uint64_t)st.st_size, -1, fn, hash_size, alg_id, threads, digest, &e) == 0)
                result = digest_buffer(env, digest, hash_size);
            else
                throw_stream_error(env, &e, path, (uint64_t)st.st_size);
            close(fd);
        }
    }
    free(path);
    return result;
}

/* copyVerity(src, dest, alg, threads) -> Buffer */
static napi_value js_copy_verity(napi_env env, napi_callback_info info) {
    napi_value argv[4], result = NULL;
    char *src = NULL, *dest = NULL;
    sha_oneshot fn;
    size_t hash_size;
    int alg_id, threads;
    if (get_args(env, info, 4, argv) == 0 && get_string(env, argv[0], 0, "src", &src) == 0 &&
        get_string(env, argv[1], 0, "dest", &dest) == 0 && pick_alg(env, argv[2], &fn, &hash_size, &alg_id) == 0 &&
        pick_threads(env, argv[3], &threads) == 0) {
        struct stat st;
        int in = open_regular(env, src, &st);
        if (in >= 0) {
            /* Never follow or replace anything already at dest. */
            int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (out < 0) {
                throw_errno(env, "creating", dest, errno);
            } else {
                unsigned char digest[64];
                struct verity_error e = {0};
                int rc = verity_stream(in, (uint64_t)st.st_size, out, fn, hash_size, alg_id, threads, digest, &e);
                /* The permission bits of the source, as a plain copy would have them. */
                if (rc == 0 && fchmod(out, st.st_mode & 07777) != 0) {
                    e.what = "chmod of the copy of";
                    e.err = errno;
                    rc = -1;
                }
                if (close(out) != 0 && rc == 0) {
                    e.what = "closing the copy of";
                    e.err = errno;
                    rc = -1;
                }
                if (rc == 0) {
                    result = digest_buffer(env, digest, hash_size);
                } else {
                    unlink(dest); /* nothing half-copied is left behind */
                    throw_stream_error(env, &e, src, (uint64_t)st.st_size);
                }
            }
            close(in);
        }
    }
    free(src);
    free(dest);
    return result;
}


/*
 * prefetch: the whole file in private memory (so the copy written later is
 * exactly what was hashed), read and hashed by its own thread; the finish
 * call joins in and hashes the groups the thread has not claimed yet.
 */
#define PREFETCH_MAX (256u << 20)

struct prefetch {
    int fd;
    int tmp_fd;                /* unnamed file (O_TMPFILE) in the copy's filesystem, or -1 */
    int private_copy;          /* tmp_fd is on a private tmpfs of our own (see private_tmpfs_file) */
    char *copy_dir;            /* where the copy goes if not private; NULL: no copy (digest only) */
    int private_wanted;
    uint64_t size;
    mode_t mode;
    int alg_id;
    struct verity_ctx c;       /* c.job covers the whole file */
    unsigned char *buf;        /* size rounded up to whole blocks, zero-padded */
    size_t buf_bytes;
    unsigned char *level;      /* level 0, padded for the in-place upper levels */
    size_t level_bytes;
    int open_err;              /* errno of open/fstat (then no thread), EINVAL for a non-regular file */
    int read_err;              /* errno of the read, ENODATA for an early end of file */
    int read_done;
    size_t read_blocks;        /* blocks read so far (under lock) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t tid, hasher_tid;
    int thread, hasher;        /* the reader / hasher thread was started and not yet joined */
    atomic_int cancel;         /* set when the handle is dropped unfinished: the threads stop early */
    int finished;
    char path[];
};

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
/* Read (and publish) this much at a time, so hashing can start before the read ends. */
#define PREFETCH_CHUNK (1u << 20)

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

/*
 * Append len bytes of `in` at *off to `out` inside the kernel (sendfile: the
 * source's page cache straight into the copy's pages). Falls back to
 * read+write through a bounce buffer where the source cannot splice.
 */
static int append_from(int out, int in, off_t *off, size_t len, unsigned char **bouncep) {
    while (len > 0) {
        ssize_t n = sendfile(out, in, off, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
            if (*bouncep == NULL && (*bouncep = malloc(PREFETCH_CHUNK)) == NULL) return ENOMEM;
            unsigned char *bounce = *bouncep;
            size_t want = len < PREFETCH_CHUNK ? len : PREFETCH_CHUNK;
            n = pread(in, bounce, want, *off);
            if (n < 0) {
                if (errno == EINTR) continue;
                return errno;
            }
            if (n > 0 && write_all(out, bounce, (size_t)n) != 0) return errno;
            *off += n;
        }
        if (n < 0) return errno;
        if (n == 0) return ENODATA; /* the file ended early */
        len -= (size_t)n;
    }
    return 0;
}

/*
 * An unnamed file on a tmpfs of its own that is mounted nowhere: fsopen +
 * fsmount (Linux 5.2) give a mount that no path leads to, and the file keeps
 * it alive. Nobody else can open the copy, not even root through /run, and
 * it is freed with its last user (the loop device, or this process if the
 * boot stops first). huge=always: the 5.5 MB bench image then takes three
 * 2 MiB pages instead of ~1,340 small ones; measured here, copying into it
 * takes 1.6 ms instead of 2.5, mapping it for the hash 0.1 ms instead of
 * 0.6, unmapping 0.03 instead of 0.14, for 0.1-0.3 ms to make the mount.
 * -1 when the kernel cannot (no new mount API, no transparent huge pages,
 * no CAP_SYS_ADMIN): the caller then uses an O_TMPFILE in the copy's
 * directory, as before.
 */
#ifndef SYS_fsopen
#define SYS_fsopen 430 /* the same number on every architecture */
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#define CFS_FSOPEN_CLOEXEC 0x1
#define CFS_FSCONFIG_SET_STRING 1
#define CFS_FSCONFIG_CMD_CREATE 6
#define CFS_FSMOUNT_CLOEXEC 0x1
#define CFS_MOUNT_ATTR_NOSUID 0x2
#define CFS_MOUNT_ATTR_NODEV 0x4
#define CFS_MOUNT_ATTR_NOEXEC 0x8

static int private_tmpfs_file(void) {
    int fs = (int)syscall(SYS_fsopen, "tmpfs", CFS_FSOPEN_CLOEXEC);
    if (fs < 0) return -1;
    int mnt = -1, fd = -1;
    if (syscall(SYS_fsconfig, fs, CFS_FSCONFIG_SET_STRING, "huge", "always", 0) == 0 &&
        syscall(SYS_fsconfig, fs, CFS_FSCONFIG_SET_STRING, "mode", "0700", 0) == 0 &&
        syscall(SYS_fsconfig, fs, CFS_FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        mnt = (int)syscall(SYS_fsmount, fs, CFS_FSMOUNT_CLOEXEC, CFS_MOUNT_ATTR_NOSUID | CFS_MOUNT_ATTR_NODEV | CFS_MOUNT_ATTR_NOEXEC);
    if (mnt >= 0) {
        fd = openat(mnt, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        close(mnt); /* the open file holds the mount */
    }
    close(fs);
    return fd;
}

/*
 * The copy-to-be: on a private tmpfs (never named), else unnamed in copyDir
 * until finishCopy links it at its name; if copyDir's filesystem cannot do
 * that either, finishCopy writes a copy instead (tmp_fd stays -1).
 */
static void prefetch_make_copy(struct prefetch *p) {
    if (p->copy_dir == NULL) return;
    if (p->private_wanted) {
        p->tmp_fd = private_tmpfs_file();
        p->private_copy = p->tmp_fd >= 0;
    }
    if (p->tmp_fd < 0) p->tmp_fd = open(p->copy_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

/*
 * Read the file, chunk by chunk, publishing the progress for the hashing
 * threads. With a copy to make, the chunks are appended to the unnamed
 * file that becomes the copy, inside the kernel, and the hashing threads
 * read them through a read-only shared mapping of that file: they hash the
 * copy's own pages, so no separate write and no user-space copy. (Measured
 * for the 5.5 MB image: 2.4 ms sendfile + 0.5 ms mapping, against 4.0 ms
 * for reading into a writable mapping of the copy.) Without a copy, an
 * anonymous buffer. Memory past the end of the file reads as zeros, which
 * is the padding of the last block.
 */
static int prefetch_read(struct prefetch *p) {
    prefetch_make_copy(p);
    if (p->size == 0) return 0; /* nothing to read or hash */
    if (p->tmp_fd >= 0)
        p->buf = mmap(NULL, p->buf_bytes, PROT_READ, MAP_SHARED, p->tmp_fd, 0);
    else
        p->buf = mmap(NULL, p->buf_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p->buf == MAP_FAILED) {
        p->buf = NULL;
        return ENOMEM;
    }
    p->c.job.data = p->buf;
    off_t off = 0;
    unsigned char *bounce = NULL; /* only if the source cannot splice */
    int err = 0;
    for (uint64_t pos = 0; pos < p->size && err == 0; pos += PREFETCH_CHUNK) {
        if (atomic_load(&p->cancel)) {
            err = ECANCELED;
            break;
        }
        size_t len = p->size - pos < PREFETCH_CHUNK ? (size_t)(p->size - pos) : PREFETCH_CHUNK;
        size_t span = (len + VERITY_BLOCK - 1) / VERITY_BLOCK * VERITY_BLOCK;
        if (p->tmp_fd >= 0) {
            err = append_from(p->tmp_fd, p->fd, &off, len, &bounce);
            if (err != 0) break;
            /* Map the chunk's pages in one call rather than a fault each; optional. */
            (void)madvise(p->buf + pos, span, MADV_POPULATE_READ);
        } else {
            (void)madvise(p->buf + pos, span, MADV_POPULATE_WRITE);
            if (read_exact(p->fd, p->buf + pos, len) != 0) {
                err = errno;
                break;
            }
        }
        pthread_mutex_lock(&p->lock);
        p->read_blocks = (size_t)((pos + len + VERITY_BLOCK - 1) / VERITY_BLOCK);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
    free(bounce);
    return err;
}

/* hash_groups, but each group only once the reader has got that far; stops if the read failed. */
static void hash_groups_as_read(struct prefetch *p) {
    struct segment_job *j = &p->c.job;
    size_t groups = (j->blocks + GROUP_BLOCKS - 1) / GROUP_BLOCKS;
    for (;;) {
        size_t g = atomic_fetch_add(&j->next_group, 1);
        if (g >= groups) return;
        size_t end = (g + 1) * GROUP_BLOCKS < j->blocks ? (g + 1) * GROUP_BLOCKS : j->blocks;
        pthread_mutex_lock(&p->lock);
        while (p->read_blocks < end && !p->read_done) pthread_cond_wait(&p->cond, &p->lock);
        int ready = p->read_blocks >= end;
        pthread_mutex_unlock(&p->lock);
        if (!ready || atomic_load(&p->cancel)) return;
        for (size_t b = g * GROUP_BLOCKS; b < end; b++)
            p->c.fn(j->data + b * VERITY_BLOCK, VERITY_BLOCK, j->out + b * p->c.hash_size);
    }
}

static void *prefetch_thread(void *arg) {
    struct prefetch *p = arg;
    int err = prefetch_read(p);
    pthread_mutex_lock(&p->lock);
    p->read_err = err;
    p->read_done = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (err == 0) hash_groups_as_read(p);
    return NULL;
}

static void *prefetch_hasher(void *arg) {
    hash_groups_as_read(arg);
    return NULL;
}

static void prefetch_join(struct prefetch *p) {
    if (p->thread) {
        pthread_join(p->tid, NULL);
        p->thread = 0;
    }
    if (p->hasher) {
        pthread_join(p->hasher_tid, NULL);
        p->hasher = 0;
    }
}

static void prefetch_release(struct prefetch *p) {
    atomic_store(&p->cancel, 1); /* a no-op after finish*(): the threads are done by then */
    prefetch_join(p);
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    if (p->tmp_fd >= 0) close(p->tmp_fd); /* unnamed: an unused copy is gone with it */
    p->tmp_fd = -1;
    if (p->buf != NULL) munmap(p->buf, p->buf_bytes);
    p->buf = NULL;
    free(p->level);
    p->level = NULL;
}

static void prefetch_finalize(napi_env env, void *data, void *hint) {
    (void)env, (void)hint;
    struct prefetch *p = data;
    prefetch_release(p);
    free(p->copy_dir);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

/* prefetch(path, alg, copyDir|null[, privateCopy = true]) -> handle */
static napi_value js_prefetch(napi_env env, napi_callback_info info) {
    napi_value argv[4], result = NULL;
    char *path = NULL, *copy_dir = NULL;
    sha_oneshot fn;
    size_t hash_size;
    int alg_id;
    bool private_wanted = true;
    size_t argc = 4;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
    if (argc < 3) {
        throw_type(env, "expected 3 arguments");
        return NULL;
    }
    if (argc > 3 && napi_get_value_bool(env, argv[3], &private_wanted) != napi_ok) {
        throw_type(env, "privateCopy must be a boolean");
        return NULL;
    }
    if (get_string(env, argv[0], 0, "path", &path) != 0) return NULL;
    if (pick_alg(env, argv[1], &fn, &hash_size, &alg_id) != 0 || get_string(env, argv[2], 1, "copyDir", &copy_dir) != 0) {
        free(path);
        return NULL;
    }
    struct prefetch *p = calloc(1, sizeof *p + strlen(path) + 1);
    if (p == NULL) {
        free(path);
        free(copy_dir);
        napi_throw_error(env, "ENOMEM", "out of memory");
        return NULL;
    }
    strcpy(p->path, path);
    free(path);
    /* The copy-to-be is made by the reader thread (prefetch_make_copy), off this one. */
    p->tmp_fd = -1;
    p->copy_dir = copy_dir;
    p->private_wanted = private_wanted;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->alg_id = alg_id;
    p->c.fn = fn;
    p->c.hash_size = hash_size;
    p->fd = open_disk_file(p->path);
    struct stat st;
    if (p->fd < 0 || fstat(p->fd, &st) != 0) {
        p->open_err = errno;
    } else if (!S_ISREG(st.st_mode)) {
        p->open_err = EINVAL;
    } else if ((uint64_t)st.st_size > PREFETCH_MAX) {
        p->open_err = EFBIG; /* the caller streams it instead */
    } else {
        p->size = (uint64_t)st.st_size;
        p->mode = st.st_mode;
        size_t blocks = (size_t)((p->size + VERITY_BLOCK - 1) / VERITY_BLOCK);
        p->buf_bytes = blocks == 0 ? VERITY_BLOCK : blocks * VERITY_BLOCK;
        p->level_bytes = blocks * hash_size == 0 ? VERITY_BLOCK : (blocks * hash_size + VERITY_BLOCK - 1) / VERITY_BLOCK * VERITY_BLOCK;
        p->level = calloc(1, p->level_bytes);
        if (p->level == NULL) {
            p->open_err = ENOMEM;
        } else {
            p->c.job.blocks = blocks;
            p->c.job.out = p->level;
            atomic_store(&p->c.job.next_group, 0);
            if (pthread_create(&p->tid, NULL, prefetch_thread, p) == 0) {
                p->thread = 1;
                /* A second thread hashes what the first has read while it reads on. */
                if (blocks > GROUP_BLOCKS && sysconf(_SC_NPROCESSORS_ONLN) >= 2 &&
                    pthread_create(&p->hasher_tid, NULL, prefetch_hasher, p) == 0)
                    p->hasher = 1;
            } else {
                /* No thread: the finish call reads and hashes everything itself. */
                p->read_err = prefetch_read(p);
                p->read_done = 1;
            }
        }
    }
    if (napi_create_external(env, p, prefetch_finalize, NULL, &result) != napi_ok) {
        prefetch_finalize(env, p, NULL);
        return NULL;
    }
    return result;
}

/* The handle's prefetch, once; NULL with a pending exception otherwise. */
static struct prefetch *take_prefetch(napi_env env, napi_value v) {
    napi_valuetype t;
    void *data = NULL;
    if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
        throw_type(env, "handle must come from prefetch()");
        return NULL;
    }
    struct prefetch *p = data;
    if (p->finished) {
        napi_throw_error(env, "EINVAL", "prefetch handle already used");
        return NULL;
    }
    p->finished = 1;
    return p;
}

/*
 * Wait for the read; then name (or write) the copy at dest, unless it is a
 * private copy, whose descriptor goes to *private_fd instead; hash the rest.
 * The digest, or -1 with *e.
 */
static int prefetch_finish(struct prefetch *p, const char *dest, unsigned char *digest, struct verity_error *e, int *private_fd) {
    if (p->open_err != 0) {
        e->what = p->open_err == EINVAL ? "not a regular file:" : "open";
        e->err = p->open_err;
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->read_done) pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    if (p->read_err != 0) {
        prefetch_join(p);
        e->what = "reading";
        e->err = p->read_err;
        return -1;
    }
    int rc = 0;
    int linked = 0;
    if (dest != NULL && p->tmp_fd >= 0) {
        /* The copy already holds the bytes. */
        hash_groups(&p->c); /* before the copy has a name, so nothing sees a copy whose check is pending */
        prefetch_join(p);
        if (fchmod(p->tmp_fd, p->mode & 07777) != 0) {
            e->what = "chmod of the copy of";
            e->err = errno;
            return -1;
        }
        if (p->private_copy) {
            /* Mounted nowhere: it needs no name, and the caller mounts it through the descriptor. */
            linked = 1;
        } else {
            /* Give it its name. linkat never replaces (EEXIST). */
            int lrc = linkat(p->tmp_fd, "", AT_FDCWD, dest, AT_EMPTY_PATH);
            if (lrc != 0 && (errno == ENOENT || errno == EPERM)) {
                /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc names the same file. */
                char proc[64];
                snprintf(proc, sizeof proc, "/proc/self/fd/%d", p->tmp_fd);
                lrc = linkat(AT_FDCWD, proc, AT_FDCWD, dest, AT_SYMLINK_FOLLOW);
            }
            if (lrc == 0) {
                linked = 1;
            } else if (errno != EXDEV && errno != ENOENT && errno != EPERM) {
                e->what = "creating";
                e->err = errno;
                return -1;
            }
            /* else: another filesystem (or no /proc): write the copy below. */
        }
    }
    if (dest != NULL && !linked) {
        int out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0) {
            e->what = "creating";
            e->err = errno;
            rc = -1;
        } else {
            if (write_all(out, p->buf, (size_t)p->size) != 0 || fchmod(out, p->mode & 07777) != 0) {
                e->what = "writing the copy of";
                e->err = errno;
                rc = -1;
            }
            if (close(out) != 0 && rc == 0) {
                e->what = "closing the copy of";
                e->err = errno;
                rc = -1;
            }
            if (rc != 0) unlink(dest);
        }
    }
    hash_groups(&p->c); /* whatever the thread has not claimed yet */
    prefetch_join(p);
    if (rc == 0) {
        unsigned char root[64];
        if (p->c.job.blocks == 0)
            memset(root, 0, p->c.hash_size);
        else
            merkle_root(&p->c, p->level, p->c.job.blocks, root);
        descriptor_digest(&p->c, p->alg_id, p->size, root, digest);
        if (dest != NULL && p->private_copy) {
            *private_fd = p->tmp_fd; /* kept open: the release below must not free the copy */
            p->tmp_fd = -1;
        }
    }
    return rc;
}

static napi_value finish_common(napi_env env, napi_value handle, const char *dest) {
    struct prefetch *p = take_prefetch(env, handle);
    if (p == NULL) return NULL;
    unsigned char digest[64];
    struct verity_error e = {0};
    napi_value result = NULL;
    int private_fd = -1;
    if (prefetch_finish(p, dest, digest, &e, &private_fd) == 0) {
        result = digest_buffer(env, digest, p->c.hash_size);
        if (dest != NULL) {
            /* finishCopy: { digest, fd }, fd -1 when the copy is at dest. */
            napi_value obj, fdv;
            if (napi_create_object(env, &obj) != napi_ok || napi_create_int32(env, private_fd, &fdv) != napi_ok ||
                napi_set_named_property(env, obj, "digest", result) != napi_ok ||
                napi_set_named_property(env, obj, "fd", fdv) != napi_ok) {
                if (private_fd >= 0) close(private_fd);
                result = NULL;
            } else {
                result = obj;
            }
        }
    } else if (e.err == EINVAL && p->open_err == EINVAL) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: not a regular file", p->path);
        napi_throw_error(env, "EINVAL", msg);
    } else if (e.what != NULL && strcmp(e.what, "creating") == 0) {
        throw_errno(env, e.what, dest, e.err);
    } else {
        throw_stream_error(env, &e, p->path, p->size);
    }
    prefetch_release(p); /* the memory goes now, not when the handle is collected */
    return result;
}

/* finishCopy(handle, dest) -> { digest: Buffer, fd } */
static napi_value js_finish_copy(napi_env env, napi_callback_info info) {
    napi_value argv[2], result = NULL;
    char *dest = NULL;
    if (get_args(env, info, 2, argv) != 0 || get_string(env, argv[1], 0, "dest", &dest) != 0) return NULL;
    result = finish_common(env, argv[0], dest);
    free(dest);
    return result;
}

/* finishDigest(handle) -> Buffer */
static napi_value js_finish_digest(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (get_args(env, info, 1, argv) != 0) return NULL;
    return finish_common(env, argv[0], NULL);
}

/* exitNow(code): does not return */
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    int32_t code = 1;
    if (get_args(env, info, 1, argv) != 0) return NULL;
    if (napi_get_value_int32(env, argv[0], &code) != napi_ok) {
        throw_type(env, "code must be a number");
        return NULL;
    }
    _exit(code & 0xff);
}

/* A JS array of strings as a NULL-terminated malloc'd vector (each string malloc'd too). */
static char **get_string_vector(napi_env env, napi_value v, const char *name) {
    bool is_array = false;
    uint32_t n = 0;
    if (napi_is_array(env, v, &is_array) != napi_ok || !is_array || napi_get_array_length(env, v, &n) != napi_ok) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be an array of strings", name);
        throw_type(env, msg);
        return NULL;
    }
    char **vec = calloc((size_t)n + 1, sizeof *vec);
    if (vec == NULL) {
        napi_throw_error(env, "ENOMEM", "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        napi_value item;
        if (napi_get_element(env, v, i, &item) != napi_ok || get_string(env, item, 0, name, &vec[i]) != 0) {
            for (uint32_t j = 0; j < i; j++) free(vec[j]);
            free(vec);
            return NULL;
        }
    }
    return vec;
}

static void free_string_vector(char **vec) {
    if (vec == NULL) return;
    for (char **p = vec; *p != NULL; p++) free(*p);
    free(vec);
}

/* execve(path, argv, envp): returns only by throwing */
static napi_value js_execve(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    char *file = NULL, **args = NULL, **envp = NULL;
    if (get_args(env, info, 3, argv) == 0 && get_string(env, argv[0], 0, "path", &file) == 0 &&
        (args = get_string_vector(env, argv[1], "argv")) != NULL &&
        (envp = get_string_vector(env, argv[2], "envp")) != NULL) {
        /* Node marks fds 0-2 close-on-exec at start-up: without this the new image starts with no stdio. */
        for (int fd = 0; fd <= 2; fd++) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
        }
        execve(file, args, envp);
        throw_errno(env, "execve(2)", file, errno);
    }
    free_string_vector(envp);
    free_string_vector(args);
    free(file);
    return NULL;
}

/* isReadonly(path) -> boolean */
static napi_value js_is_readonly(napi_env env, napi_callback_info info) {
    napi_value argv[1], result = NULL;
    char *target = NULL;
    if (get_args(env, info, 1, argv) != 0 || get_string(env, argv[0], 0, "path", &target) != 0) return NULL;
    struct statvfs st;
    if (statvfs(target, &st) != 0)
        throw_errno(env, "statvfs(2)", target, errno);
    else
        napi_get_boolean(env, (st.f_flag & ST_RDONLY) != 0, &result);
    free(target);
    return result;
}

/* measureVerity(path) -> "<alg>:<hex>" (fs-verity on), null (file without
 * fs-verity: ENODATA), or "unsupported" (the filesystem has no fs-verity:
 * EOPNOTSUPP/ENOTTY); FS_IOC_MEASURE_VERITY, for `cfsroot preflight`. */
#ifndef FS_IOC_MEASURE_VERITY
struct cfs_verity_digest { uint16_t digest_algorithm; uint16_t digest_size; uint8_t digest[]; };
#define FS_IOC_MEASURE_VERITY _IOWR('f', 134, struct cfs_verity_digest)
#endif
static napi_value js_measure_verity(napi_env env, napi_callback_info info) {
    napi_value argv[1], result = NULL;
    char *file = NULL;
    if (get_args(env, info, 1, argv) != 0 || get_string(env, argv[0], 0, "path", &file) != 0) return NULL;
    struct { uint16_t alg; uint16_t size; uint8_t digest[64]; } d = {0, 64, {0}};
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        throw_errno(env, "open", file, errno);
    } else if (ioctl(fd, FS_IOC_MEASURE_VERITY, &d) != 0) {
        int e = errno;
        if (e == ENODATA) napi_get_null(env, &result);
        else if (e == EOPNOTSUPP || e == ENOTTY) napi_create_string_utf8(env, "unsupported", NAPI_AUTO_LENGTH, &result);
        else throw_errno(env, "FS_IOC_MEASURE_VERITY", file, e);
    } else {
        char text[8 + 2 * 64 + 1];
        int n = snprintf(text, sizeof text, "%s:", d.alg == 1 ? "sha256" : d.alg == 2 ? "sha512" : "unknown");
        for (unsigned i = 0; i < d.size && i < 64; i++) n += snprintf(text + n, sizeof text - n, "%02x", d.digest[i]);
        napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result);
    }
    if (fd >= 0) close(fd);
    free(file);
    return result;
}

static napi_value init(napi_env env, napi_value exports) {
    napi_property_descriptor props[] = {
        {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
        {"umount", NULL, js_umount, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mountLoop", NULL, js_mount_loop, NULL, NULL, NULL, napi_enumerable, NULL},
        {"exitNow", NULL, js_exit_now, NULL, NULL, NULL, napi_enumerable, NULL},
        {"execve", NULL, js_execve, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setReadonly", NULL, js_set_readonly, NULL, NULL, NULL, napi_enumerable, NULL},
        {"isReadonly", NULL, js_is_readonly, NULL, NULL, NULL, napi_enumerable, NULL},
        {"openDir", NULL, js_open_dir, NULL, NULL, NULL, napi_enumerable, NULL},
        {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
        {"bindAt", NULL, js_bind_at, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mountAt", NULL, js_mount_at, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogStart", NULL, js_watchdog_start, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogNote", NULL, js_watchdog_note, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogStop", NULL, js_watchdog_stop, NULL, NULL, NULL, napi_enumerable, NULL},
        {"testStall", NULL, js_test_stall, NULL, NULL, NULL, napi_enumerable, NULL},
        {"measureVerity", NULL, js_measure_verity, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
    /* The hashing exports only when the executable provides OpenSSL's one-shot SHA-2 functions. */
    sha256_fn = (sha_oneshot)dlsym(RTLD_DEFAULT, "SHA256");
    sha512_fn = (sha_oneshot)dlsym(RTLD_DEFAULT, "SHA512");
    if (sha256_fn != NULL && sha512_fn != NULL) {
        use_lowlevel_sha();
        napi_property_descriptor hashing[] = {
            {"copyVerity", NULL, js_copy_verity, NULL, NULL, NULL, napi_enumerable, NULL},
            {"digestFile", NULL, js_digest_file, NULL, NULL, NULL, napi_enumerable, NULL},
            {"prefetch", NULL, js_prefetch, NULL, NULL, NULL, napi_enumerable, NULL},
            {"finishCopy", NULL, js_finish_copy, NULL, NULL, NULL, napi_enumerable, NULL},
            {"finishDigest", NULL, js_finish_digest, NULL, NULL, NULL, napi_enumerable, NULL},
        };
        if (napi_define_properties(env, exports, sizeof hashing / sizeof hashing[0], hashing) != napi_ok) return NULL;
        /* Which OpenSSL entry points hash the blocks (tests and the bench report it). */
        napi_value which;
        const char *impl = sha256_fn == sha256_block ? "SHA256_Init/Update/Final" : "SHA256()";
        if (napi_create_string_utf8(env, impl, NAPI_AUTO_LENGTH, &which) != napi_ok ||
            napi_set_named_property(env, exports, "hashFunctions", which) != napi_ok)
            return NULL;
    }
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
