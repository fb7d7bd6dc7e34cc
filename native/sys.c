/*
 * native/sys.c: the mount and kernel-interface part of the cfsroot_sys
 * addon (loaded by src/sys/native.ts, which keeps the `Sys` interface of
 * src/sys/types.ts and falls back to mount(8) when the addon cannot load).
 * The other part, the fs-verity digest and the image copy, is verity.c.
 *
 * No policy here: each export is a short sequence of system calls on what
 * it is given, and throws a JS Error whose `code` is the errno name and
 * whose message is "<syscall> <target>: <strerror> (<ENAME>)"; the
 * executor (src/plan/execute.ts) adds the step. All exports are synchronous.
 *
 *   mount(source|null, target, fstype|null, flags, data|null)   mount(2)
 *   umount(target, flags)                                       umount2(2)
 *   mountLoop(file, target, fstype, flags, data) -> "/dev/loopN"
 *       a read-only autoclear loop device on `file` (a path, or
 *       /proc/self/fd/N: that descriptor itself), mounted by path; only for
 *       the path-mount form (src/sys/native.ts pathMounts).
 *   setReadonly(target, readonly)   flip MNT_READONLY of one mount only.
 *   isReadonly(path) -> boolean     statvfs(2) ST_RDONLY of the mount holding path.
 *   makeDir(path, mode) -> boolean  mkdir(2) + chmod(2); false when path exists.
 *   writeFile(path, data, mode)     open(2) O_CREAT|O_TRUNC, write(2), fchmod(2), close(2).
 *   openDir(root, rel) -> fd        O_PATH directory `rel` beneath `root`, no symlink followed.
 *   openImage(root, rel) -> fd      the image file, opened once the same way, O_RDONLY.
 *   bindAt(sourceFd, targetFd, recursive) -> mountFd    open_tree + move_mount.
 *   mountAt(fstype, source, options[], readonly, targetFd, loop) -> mountFd
 *       fsopen/fsconfig/fsmount + move_mount; with loop, a read-only
 *       autoclear loop device on source first (LOOP_CONFIGURE on the
 *       descriptor when source is /proc/self/fd/N: no reopen by path).
 *   closeFd(fd)   A mountFd names its mount for as long as it is open.
 *   randomBytes(n) -> Buffer   getrandom(2), n from 1 to 256.
 *   measureVerity(path), measureVerityFd(fd) -> "sha256:<hex>" | null | "unsupported"
 *       FS_IOC_MEASURE_VERITY: the kernel's digest of a file with fs-verity.
 *   watchdogStart/Note/Steps/Step/Stop, testStall    the boot's deadline (below).
 *   exitNow(code)    _exit(2) without Node's teardown (1-2.6 ms per boot).
 *   execve(path, argv, envp)    execve(2) alone (src/startup/environment.ts).
 *
 * The system calls newer than mount(2), with the release each needs and
 * its fallback, are in one place: "Kernel interfaces" below.
 */
#define _GNU_SOURCE
#include "sys.h"
#include "napi_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
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

/* mount(source|null, target, fstype|null, flags, data|null) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
    napi_value argv[5];
    char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
    uint32_t flags = 0;
    if (cfs_get_args(env, info, 5, argv) == 0 && cfs_get_string(env, argv[0], 1, "source", &source) == 0 &&
        cfs_get_string(env, argv[1], 0, "target", &target) == 0 && cfs_get_string(env, argv[2], 1, "fstype", &fstype) == 0 &&
        cfs_get_u32(env, argv[3], "flags", &flags) == 0 && cfs_get_string(env, argv[4], 1, "data", &data) == 0) {
        /* "none" is what mount(8) passes when there is no source (propagation, move). */
        if (mount(source ? source : "none", target, fstype, flags, data) != 0)
            cfs_throw_errno(env, "mount(2)", target, errno);
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
    if (cfs_get_args(env, info, 2, argv) == 0 && cfs_get_string(env, argv[0], 0, "target", &target) == 0 &&
        cfs_get_u32(env, argv[1], "flags", &flags) == 0) {
        if (umount2(target, (int)flags) != 0) cfs_throw_errno(env, "umount2(2)", target, errno);
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
    if (cfs_get_args(env, info, 5, argv) == 0 && cfs_get_string(env, argv[0], 0, "file", &file) == 0 &&
        cfs_get_string(env, argv[1], 0, "target", &target) == 0 && cfs_get_string(env, argv[2], 0, "fstype", &fstype) == 0 &&
        cfs_get_u32(env, argv[3], "flags", &flags) == 0 && cfs_get_string(env, argv[4], 1, "data", &data) == 0) {
        char dev[64];
        int lfd = loop_attach(file, (flags & MS_RDONLY) != 0, dev, sizeof dev);
        if (lfd < 0) {
            cfs_throw_errno(env, "loop device for", file, errno);
        } else {
            int rc = mount(dev, target, fstype, flags, data);
            int e = errno;
            /* The mount holds the device now; if it failed, this last close frees it (autoclear). */
            close(lfd);
            if (rc != 0)
                cfs_throw_errno(env, "mount(2)", target, e);
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
    if (cfs_get_args(env, info, 2, argv) != 0 || cfs_get_string(env, argv[0], 0, "target", &target) != 0) return NULL;
    if (napi_get_value_bool(env, argv[1], &ro) != napi_ok) {
        free(target);
        return cfs_throw_type(env, "readonly must be a boolean");
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
            cfs_throw_errno(env, "statvfs(2)", target, err);
        } else if (mount("none", target, NULL, MS_REMOUNT | MS_BIND | mount_flags_of(&st) | (ro ? MS_RDONLY : 0), NULL) != 0) {
            cfs_throw_errno(env, "mount(2) remount", target, errno);
        }
    } else {
        cfs_throw_errno(env, "mount_setattr(2)", target, err);
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
 *   fsopen(2) "tmpfs" mounted nowhere                Linux 5.2, no fallback
 *       the private image copy from 2 MiB (cfs_image_copy_file, used by verity.c).
 *   memfd_create(2) MFD_NOEXEC_SEAL                  Linux 6.3
 *       the private image copy under 2 MiB; fallback: the memfd without
 *       the flag (memfd_create itself is 3.17, sealing with it).
 *   FS_IOC_MEASURE_VERITY                            Linux 5.4
 *       none: without it (or without fs-verity on the filesystem: ENOTTY,
 *       EOPNOTSUPP) a file reads as "no fs-verity", and the plan takes the
 *       copy path (src/image/plan.ts).
 *   EROFS from a regular file (no loop device)       Linux 6.12
 *       decided by the plan (src/plan/steps.ts kernelFeatures.fileBackedErofs),
 *       which asks for a loop device on older kernels (mountAt's loop).
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
#define CFS_MOUNT_ATTR_NOSUID 0x2
#define CFS_MOUNT_ATTR_NODEV 0x4
#define CFS_MOUNT_ATTR_NOEXEC 0x8
struct cfs_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

/*
 * Open `rel` beneath the directory `dirfd` with the open flags `oflags`
 * (O_PATH|O_DIRECTORY for a directory, O_RDONLY|O_NONBLOCK for the image),
 * following no symlink and never leaving dirfd (no "..", no absolute path).
 * Returns the fd or -1 with errno (ELOOP: a symlink on the way or at the
 * end; EXDEV: an escape).
 */
static int open_beneath(int dirfd, const char *rel, int oflags) {
    if (rel[0] == '\0') return (oflags & O_PATH) ? fcntl(dirfd, F_DUPFD_CLOEXEC, 0) : (errno = EISDIR, -1);
    struct cfs_open_how how = {
        /* No O_NOFOLLOW: with it a final symlink is opened itself, and O_DIRECTORY then
           says ENOTDIR; without it RESOLVE_NO_SYMLINKS refuses it with ELOOP. */
        .flags = (uint64_t)(O_CLOEXEC | oflags),
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
        int next = openat(cur, name, (last ? oflags : O_PATH) | O_CLOEXEC | O_NOFOLLOW);
        int e = errno;
        close(cur);
        cur = next;
        errno = e;
        if (cur >= 0) {
            struct stat st;
            e = fstat(cur, &st) != 0 ? errno
                : S_ISLNK(st.st_mode) ? ELOOP
                : (!last || (oflags & O_DIRECTORY)) && !S_ISDIR(st.st_mode) ? ENOTDIR
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
int cfs_open_disk_file(const char *path) {
    struct cfs_open_how how = {
        .flags = (uint64_t)(O_RDONLY | O_NONBLOCK | O_CLOEXEC),
        .resolve = CFS_RESOLVE_NO_SYMLINKS | CFS_RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(CFS_SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd >= 0 || errno != ENOSYS) return (int)fd;
    return open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
}

/*
 * The file the private image copy is written to (verity.c copyImage):
 * unnamed, reached only through the returned descriptor (read-write,
 * close-on-exec), already `size` bytes long. Nobody else can open it, not
 * even root through /run, and it is freed with its last user (the loop
 * device, or this process if the boot stops first). Two kinds, by size:
 *
 * - Under 2 MiB (CFS_HUGE_PAGE): a memfd (memfd_create, Linux 3.17), on
 *   the kernel's own shmem mount. No 2 MiB page could lie inside such a
 *   file, so a tmpfs of its own would buy nothing, and making one costs
 *   more than the copy: the 28 KiB image of the real-ostree deployment
 *   went from 0.28 to 0.16 ms at boot (issue 15). The memfd allows
 *   sealing, and cfs_seal_image_copy seals it once it is written.
 * - From 2 MiB: an O_TMPFILE file on a tmpfs of its own that is mounted
 *   nowhere (fsopen + fsmount, Linux 5.2; CAP_SYS_ADMIN), with
 *   huge=within_size and the file sized before anything is written: 2 MiB
 *   pages for the part of the file they fit in whole, small pages for the
 *   rest (the kernel decides from i_size, hence the ftruncate first: before
 *   6.14 it looks at i_size only, not at the end of the write). Measured
 *   here: the 5.5 MB bench image copies in 0.3 ms instead of 2.0 with small
 *   pages only (the memfd's), as fast as huge=always, without always's
 *   2 MiB page for the file's tail (6 MiB held for 5.5 MB).
 * -1 with errno when the kernel cannot (no new mount API, no CAP_SYS_ADMIN).
 */
#define CFS_HUGE_PAGE (2u << 20)
#define CFS_MFD_NOEXEC_SEAL 0x0008u /* Linux 6.3; not in every libc's headers */
int cfs_image_copy_file(uint64_t size) {
    int fd = -1;
    if (size < CFS_HUGE_PAGE) {
        /* MFD_NOEXEC_SEAL: the copy can never be made executable, and a
           kernel with vm.memfd_noexec=2 refuses a memfd without it. Before 6.3
           the flag is unknown (EINVAL): a memfd without it is what there is. */
        fd = memfd_create("cfsroot-image", MFD_CLOEXEC | MFD_ALLOW_SEALING | CFS_MFD_NOEXEC_SEAL);
        if (fd < 0 && errno == EINVAL) fd = memfd_create("cfsroot-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    } else {
        int fs = (int)syscall(CFS_SYS_fsopen, "tmpfs", CFS_FSOPEN_CLOEXEC);
        if (fs < 0) return -1;
        int mnt = -1;
        /* huge= is an optimisation only: a kernel without transparent huge pages refuses it. */
        (void)syscall(CFS_SYS_fsconfig, fs, CFS_FSCONFIG_SET_STRING, "huge", "within_size", 0);
        if (syscall(CFS_SYS_fsconfig, fs, CFS_FSCONFIG_SET_STRING, "mode", "0700", 0) == 0 &&
            syscall(CFS_SYS_fsconfig, fs, CFS_FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
            mnt = (int)syscall(CFS_SYS_fsmount, fs, CFS_FSMOUNT_CLOEXEC, CFS_MOUNT_ATTR_NOSUID | CFS_MOUNT_ATTR_NODEV | CFS_MOUNT_ATTR_NOEXEC);
        if (mnt >= 0) {
            fd = openat(mnt, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
            close(mnt); /* the open file holds the mount */
        }
        int err = errno;
        close(fs);
        errno = err;
    }
    if (fd >= 0 && ftruncate(fd, (off_t)size) != 0) {
        int err = errno; /* EFBIG: over the largest file size (the space itself is taken, and can run out, in the writes) */
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

const char *cfs_image_copy_kind(uint64_t size) {
    return size < CFS_HUGE_PAGE ? "a memfd for the image copy (memfd_create(2))"
                                : "a private tmpfs for the image copy (fsopen(2), Linux >= 5.2, CAP_SYS_ADMIN)";
}

/*
 * Seal a memfd copy once it holds what was hashed: from then on no write,
 * no truncation or growth, and no change to the seals, through any
 * descriptor, ours included. A tmpfs file cannot be sealed (EPERM): its
 * only writer is this process, which writes nothing after the copy.
 */
int cfs_seal_image_copy(int fd, uint64_t size) {
    if (size >= CFS_HUGE_PAGE) return 0;
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
}

/* ENOSYS from a 5.2 call: say which release is needed instead of "function not implemented". */
static napi_value throw_sys(napi_env env, const char *call, const char *target, int err) {
    if (err == ENOSYS) {
        char what[96];
        snprintf(what, sizeof what, "%s (needs Linux >= 5.2)", call);
        return cfs_throw_errno(env, what, target, err);
    }
    return cfs_throw_errno(env, call, target, err);
}

#define CFS_BENEATH_CALL "openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS"

/*
 * openDir and openImage: their (root, rel) arguments, `rel` opened with
 * `oflags` beneath the trusted directory `root` (opened as given) by
 * open_beneath, then `check`, which may throw (and returns -1 then). The
 * descriptor is handed out only when all of it succeeds, closed otherwise.
 */
typedef int (*opened_check)(napi_env env, int fd, const char *rel);
static napi_value open_root_beneath(napi_env env, napi_callback_info info, int oflags, opened_check check) {
    napi_value argv[2], result = NULL;
    char *root = NULL, *rel = NULL;
    if (cfs_get_args(env, info, 2, argv) == 0 && cfs_get_string(env, argv[0], 0, "root", &root) == 0 &&
        cfs_get_string(env, argv[1], 0, "rel", &rel) == 0) {
        int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rfd < 0) {
            cfs_throw_errno(env, "open(2)", root, errno);
        } else {
            int fd = open_beneath(rfd, rel, oflags);
            int e = errno;
            close(rfd);
            if (fd < 0)
                cfs_throw_errno(env, CFS_BENEATH_CALL, rel, e);
            else if (check(env, fd, rel) != 0)
                close(fd);
            else
                result = cfs_fd_value(env, fd);
        }
    }
    free(root);
    free(rel);
    return result;
}

/* openDir's check: a directory, else ENOTDIR. */
static int check_dir(napi_env env, int fd, const char *rel) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    cfs_throw_errno(env, CFS_BENEATH_CALL, rel, ENOTDIR);
    return -1;
}

/*
 * openDir(root, rel) -> fd: `root` (a trusted path, opened as given) and
 * then the directory `rel` beneath it with no symlink followed, O_PATH,
 * close-on-exec. Refuses anything that is not a directory (ENOTDIR) or is
 * reached through a symlink (ELOOP). With rel "" it opens root itself.
 */
static napi_value js_open_dir(napi_env env, napi_callback_info info) {
    return open_root_beneath(env, info, O_PATH | O_DIRECTORY, check_dir);
}

/* closeFd(fd) */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    int fd;
    if (cfs_get_args(env, info, 1, argv) == 0 && cfs_get_fd(env, argv[0], "fd", &fd) == 0) close(fd);
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
    if (cfs_get_args(env, info, 3, argv) != 0 || cfs_get_fd(env, argv[0], "sourceFd", &sfd) != 0 ||
        cfs_get_fd(env, argv[1], "targetFd", &tfd) != 0)
        return NULL;
    if (napi_get_value_bool(env, argv[2], &rec) != napi_ok) return cfs_throw_type(env, "recursive must be a boolean");
    long mfd = syscall(CFS_SYS_open_tree, sfd, "", CFS_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | (rec ? CFS_AT_RECURSIVE : 0));
    if (mfd < 0) return throw_sys(env, "open_tree(2)", "", errno);
    if (attach_at((int)mfd, tfd) != 0) {
        int e = errno;
        close((int)mfd);
        return throw_sys(env, "move_mount(2)", "", e);
    }
    return cfs_fd_value(env, (int)mfd);
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
 * mountAt(fstype, source|null, options[], readonly, targetFd|null, loop) -> mountFd
 * A new filesystem (fsopen/fsconfig/fsmount), attached on targetFd, or left
 * detached (null: no mount point; Linux 6.18 takes it as an overlay layer
 * by its /proc/self/fd path, src/plan/steps.ts kernelFeatures). Each
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
    if (cfs_get_args(env, info, 6, argv) != 0 || cfs_get_string(env, argv[0], 0, "fstype", &fstype) != 0) goto out;
    if (cfs_get_string(env, argv[1], 1, "source", &source) != 0) goto out;
    if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[2], &nopts) != napi_ok) {
        cfs_throw_type(env, "options must be an array of strings");
        goto out;
    }
    if (napi_get_value_bool(env, argv[3], &ro) != napi_ok || napi_get_value_bool(env, argv[5], &loop) != napi_ok) {
        cfs_throw_type(env, "readonly and loop must be booleans");
        goto out;
    }
    napi_valuetype ttype;
    if (napi_typeof(env, argv[4], &ttype) != napi_ok) goto out;
    if (ttype == napi_null)
        tfd = -1; /* left detached: the caller names it by the returned descriptor (an overlay layer) */
    else if (cfs_get_fd(env, argv[4], "targetFd", &tfd) != 0)
        goto out;
    if (loop) {
        if (source == NULL) {
            cfs_throw_type(env, "a loop mount needs a source");
            goto out;
        }
        lfd = loop_attach(source, 1, dev, sizeof dev);
        if (lfd < 0) {
            int e = errno;
            if (e == ENOENT && access("/dev/loop-control", F_OK) != 0)
                cfs_throw_errno(env, "open(2)", "/dev/loop-control", e);
            else
                cfs_throw_errno(env, "loop device for", source, e);
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
        cfs_throw_errno(env, "fsconfig(2) source", src, e);
        goto out;
    }
    if (ro && syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_SET_FLAG, "ro", NULL, 0) != 0) {
        cfs_throw_errno(env, "fsconfig(2) ro", fstype, errno);
        goto out;
    }
    for (uint32_t i = 0; i < nopts; i++) {
        napi_value ov;
        char *opt = NULL;
        if (napi_get_element(env, argv[2], i, &ov) != napi_ok || cfs_get_string(env, ov, 0, "option", &opt) != 0) goto out;
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
            cfs_throw_errno(env, what, "", e);
            goto out;
        }
        free(opt);
    }
    if (syscall(CFS_SYS_fsconfig, fsfd, CFS_FSCONFIG_CMD_CREATE, NULL, NULL, 0) != 0) {
        int e = errno;
        fs_log(fsfd, why, sizeof why);
        char what[340];
        snprintf(what, sizeof what, "fsconfig(2) create %s%s", fstype, why);
        cfs_throw_errno(env, what, src, e);
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
    if (tfd >= 0 && attach_at(mfd, tfd) != 0) {
        int e = errno;
        close(mfd);
        throw_sys(env, "move_mount(2)", "", e);
        goto out;
    }
    result = cfs_fd_value(env, mfd);
out:
    if (fsfd >= 0) close(fsfd);
    if (lfd >= 0) close(lfd);
    free(fstype);
    free(source);
    return result;
}

/* ------------------------------------------------------------------------
 * Two helpers the verity part (verity.c) shares with this file, declared in
 * sys.h: a write that finishes or fails (writeFile here, the image copy
 * there), and a detached thread (the watchdog here, the crypto warm-up there).
 * ------------------------------------------------------------------------ */
int cfs_write_all(int fd, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) { /* no progress and no error: never loop on it */
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int cfs_start_detached_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    pthread_attr_t a;
    int rc = pthread_attr_init(&a);
    if (rc != 0) return rc;
    rc = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (rc == 0) rc = pthread_create(&t, &a, fn, arg);
    pthread_attr_destroy(&a);
    return rc;
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
 *   watchdogNote(text)  what the boot is doing now (a check, with its file)
 *   watchdogSteps(text) the plan's steps, one line each, told once before
 *                       they run (newlines separate them; other control
 *                       characters print as '?')
 *   watchdogStep(i)     step i (from 0) of those runs now: one integer per
 *                       step, no string to copy (issue 15); the line then
 *                       reads "at step i+1/n: <its line>"
 *   watchdogStop()      disarm: the boot finished, it prints its own line
 *   testStall()         test only: block this thread in a read that never
 *                       returns (src/boot.ts, $CFSROOT_TEST_STALL)
 * ------------------------------------------------------------------------ */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static char wd_note[1024] = "starting";
static char *wd_steps;       /* watchdogSteps' lines, sanitised; NULL before */
static uint32_t wd_steps_n;  /* how many lines */
static int64_t wd_step = -1; /* the step running now; -1: wd_note says what the boot is doing */
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
    char what[1100];
    if (wd_step >= 0 && wd_steps != NULL) {
        /* Line wd_step of the table (watchdogStep checked it is there). */
        const char *l = wd_steps;
        for (int64_t k = 0; k < wd_step && l != NULL; k++) {
            l = strchr(l, '\n');
            if (l != NULL) l++;
        }
        const char *e = l != NULL ? strchr(l, '\n') : NULL;
        int len = l == NULL ? 0 : e != NULL ? (int)(e - l) : (int)strlen(l);
        if (len > 1000) len = 1000;
        snprintf(what, sizeof what, "at step %lld/%u: %.*s", (long long)wd_step + 1, wd_steps_n, len, l != NULL ? l : "");
    } else {
        snprintf(what, sizeof what, "%s", wd_note);
    }
    char line[1400];
    int n = snprintf(line, sizeof line,
                     "cfsroot: the boot did not finish within %u.%03u s, blocked while %s (a disk or file server that stopped "
                     "answering?): giving up, without undoing what was already mounted [ETIMEOUT]\n",
                     wd_ms / 1000, wd_ms % 1000, what);
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
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_u32(env, argv[0], "ms", &ms) != 0) return NULL;
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
        int rc = cfs_start_detached_thread(watchdog_thread, NULL);
        if (rc != 0) return cfs_throw_errno(env, "pthread_create", "the boot's watchdog", rc);
    }
    return NULL;
}

/* Control characters would let a name from the disk start a line of its own: the deadline's line prints them as '?'. */
static char wd_printable(char c) {
    return (unsigned char)c < 0x20 || c == 0x7f ? '?' : c;
}

static napi_value js_watchdog_note(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    char *text = NULL;
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_string(env, argv[0], 0, "text", &text) != 0) return NULL;
    pthread_mutex_lock(&wd_lock);
    size_t i = 0;
    for (; text[i] != '\0' && i < sizeof wd_note - 1; i++) wd_note[i] = wd_printable(text[i]);
    wd_note[i] = '\0';
    wd_step = -1;
    pthread_mutex_unlock(&wd_lock);
    free(text);
    return NULL;
}

/* watchdogSteps(text): the table watchdogStep indexes; replaces an earlier one. */
static napi_value js_watchdog_steps(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    char *text = NULL;
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_string(env, argv[0], 0, "text", &text) != 0) return NULL;
    uint32_t n = 1;
    for (char *c = text; *c != '\0'; c++) {
        if (*c == '\n') n++;
        else *c = wd_printable(*c);
    }
    pthread_mutex_lock(&wd_lock);
    char *old = wd_steps;
    wd_steps = text;
    wd_steps_n = n;
    wd_step = -1;
    pthread_mutex_unlock(&wd_lock);
    free(old);
    return NULL;
}

/* watchdogStep(i): step i of the table runs now. */
static napi_value js_watchdog_step(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    uint32_t i;
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_u32(env, argv[0], "step", &i) != 0) return NULL;
    pthread_mutex_lock(&wd_lock);
    int ok = wd_steps != NULL && i < wd_steps_n;
    if (ok) wd_step = i;
    pthread_mutex_unlock(&wd_lock);
    if (!ok) return cfs_throw_type(env, "watchdogStep: no such step in the table watchdogSteps gave");
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
    if (pipe(p) != 0) return cfs_throw_errno(env, "pipe", "", errno);
    char c;
    /* The write end stays open: this read never returns. */
    while (read(p[0], &c, 1) != 0) {
    }
    return NULL;
}

/* exitNow(code): does not return */
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    int32_t code = 1;
    if (cfs_get_args(env, info, 1, argv) != 0) return NULL;
    if (napi_get_value_int32(env, argv[0], &code) != napi_ok) {
        cfs_throw_type(env, "code must be a number");
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
        cfs_throw_type(env, msg);
        return NULL;
    }
    char **vec = calloc((size_t)n + 1, sizeof *vec);
    if (vec == NULL) {
        napi_throw_error(env, "ENOMEM", "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        napi_value item;
        if (napi_get_element(env, v, i, &item) != napi_ok || cfs_get_string(env, item, 0, name, &vec[i]) != 0) {
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
    if (cfs_get_args(env, info, 3, argv) == 0 && cfs_get_string(env, argv[0], 0, "path", &file) == 0 &&
        (args = get_string_vector(env, argv[1], "argv")) != NULL &&
        (envp = get_string_vector(env, argv[2], "envp")) != NULL) {
        /* Node marks fds 0-2 close-on-exec at start-up: without this the new image starts with no stdio. */
        for (int fd = 0; fd <= 2; fd++) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
        }
        execve(file, args, envp);
        cfs_throw_errno(env, "execve(2)", file, errno);
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
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_string(env, argv[0], 0, "path", &target) != 0) return NULL;
    struct statvfs st;
    if (statvfs(target, &st) != 0)
        cfs_throw_errno(env, "statvfs(2)", target, errno);
    else
        napi_get_boolean(env, (st.f_flag & ST_RDONLY) != 0, &result);
    free(target);
    return result;
}

/* randomBytes(n) -> Buffer: getrandom(2) with no flags (it waits for the kernel's generator to be
 * seeded, as OpenSSL's does); up to 256 bytes one call always returns in full, so a short read is an error. */
static napi_value js_random_bytes(napi_env env, napi_callback_info info) {
    napi_value argv[1], result = NULL;
    uint32_t n;
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_u32(env, argv[0], "n", &n) != 0) return NULL;
    if (n == 0 || n > 256) return cfs_throw_type(env, "randomBytes: n must be from 1 to 256");
    unsigned char buf[256];
    ssize_t got;
    do got = getrandom(buf, n, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0) return cfs_throw_errno(env, "getrandom(2)", "", errno);
    if ((size_t)got != n) return cfs_throw_errno(env, "getrandom(2)", "(short read)", EIO);
    void *data;
    if (napi_create_buffer_copy(env, n, buf, &data, &result) != napi_ok) return NULL;
    return result;
}

/* A permission-bits argument: an unsigned integer of at most 07777; 0, or -1 with a pending exception. */
static int get_mode(napi_env env, napi_value v, const char *fn, mode_t *out) {
    uint32_t mode;
    if (cfs_get_u32(env, v, "mode", &mode) != 0) return -1;
    if (mode > 07777) {
        char msg[64];
        snprintf(msg, sizeof msg, "%s: mode must be at most 07777", fn);
        cfs_throw_type(env, msg);
        return -1;
    }
    *out = (mode_t)mode;
    return 0;
}

/*
 * makeDir(path, mode) -> boolean: mkdir(2), then chmod(2) to `mode`
 * exactly (mkdir applies the umask; the plan's modes, 0000 and 0755, are
 * meant as written). false, with nothing changed, when path exists.
 */
static napi_value js_make_dir(napi_env env, napi_callback_info info) {
    napi_value argv[2], result = NULL;
    char *path = NULL;
    mode_t mode;
    if (cfs_get_args(env, info, 2, argv) != 0 || cfs_get_string(env, argv[0], 0, "path", &path) != 0) return NULL;
    if (get_mode(env, argv[1], "makeDir", &mode) == 0) {
        if (mkdir(path, mode) != 0) {
            if (errno == EEXIST)
                napi_get_boolean(env, 0, &result);
            else
                cfs_throw_errno(env, "mkdir(2)", path, errno);
        } else if (chmod(path, mode) != 0)
            cfs_throw_errno(env, "chmod(2)", path, errno);
        else
            napi_get_boolean(env, 1, &result);
    }
    free(path);
    return result;
}

/*
 * writeFile(path, data, mode): open(2) O_WRONLY|O_CREAT|O_TRUNC (a symlink
 * there is followed, as node:fs writeFileSync follows it), write(2) all of
 * data (a Uint8Array), fchmod(2) to `mode` exactly, close(2).
 */
static napi_value js_write_file(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    char *path = NULL;
    mode_t mode;
    void *data = NULL;
    size_t length = 0;
    napi_typedarray_type type;
    bool is_typed = false;
    if (cfs_get_args(env, info, 3, argv) != 0 || cfs_get_string(env, argv[0], 0, "path", &path) != 0) return NULL;
    if (napi_is_typedarray(env, argv[1], &is_typed) != napi_ok || !is_typed ||
        napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
        cfs_throw_type(env, "writeFile: data must be a Uint8Array");
    } else if (get_mode(env, argv[2], "writeFile", &mode) == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0) {
            cfs_throw_errno(env, "open(2)", path, errno);
        } else {
            const char *call = NULL;
            int err = 0;
            if (cfs_write_all(fd, data, length) != 0) err = errno, call = "write(2)";
            else if (fchmod(fd, mode) != 0) err = errno, call = "fchmod(2)";
            if (close(fd) != 0 && err == 0 && errno != EINTR) err = errno, call = "close(2)";
            if (err != 0) cfs_throw_errno(env, call, path, err);
        }
    }
    free(path);
    return NULL;
}

/* FS_IOC_MEASURE_VERITY (Linux 5.4, see "Kernel interfaces"). */
#ifndef FS_IOC_MEASURE_VERITY
struct cfs_verity_digest { uint16_t digest_algorithm; uint16_t digest_size; uint8_t digest[]; };
#define FS_IOC_MEASURE_VERITY _IOWR('f', 134, struct cfs_verity_digest)
#endif
/*
 * The measurement of the open file `fd` as a JS value: "<alg>:<hex>"
 * (fs-verity on), null (the file has none: ENODATA), or "unsupported" (the
 * filesystem or kernel has none: EOPNOTSUPP/ENOTTY). NULL with a pending
 * exception for any other error.
 */
static napi_value measure_fd(napi_env env, int fd, const char *name) {
    napi_value result = NULL;
    struct { uint16_t alg; uint16_t size; uint8_t digest[64]; } d = {0, 64, {0}};
    if (ioctl(fd, FS_IOC_MEASURE_VERITY, &d) != 0) {
        int e = errno;
        if (e == ENODATA) napi_get_null(env, &result);
        else if (e == EOPNOTSUPP || e == ENOTTY) napi_create_string_utf8(env, "unsupported", NAPI_AUTO_LENGTH, &result);
        else cfs_throw_errno(env, "FS_IOC_MEASURE_VERITY", name, e);
        return result;
    }
    char text[8 + 2 * 64 + 1];
    int n = snprintf(text, sizeof text, "%s:", d.alg == 1 ? "sha256" : d.alg == 2 ? "sha512" : "unknown");
    for (unsigned i = 0; i < d.size && i < 64; i++) n += snprintf(text + n, sizeof text - n, "%02x", d.digest[i]);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result);
    return result;
}

/* measureVerity(path): measure_fd of `path` opened without following a final symlink (preflight, the plan's probe). */
static napi_value js_measure_verity(napi_env env, napi_callback_info info) {
    napi_value argv[1], result = NULL;
    char *file = NULL;
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_string(env, argv[0], 0, "path", &file) != 0) return NULL;
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        cfs_throw_errno(env, "open", file, errno);
    } else {
        result = measure_fd(env, fd, file);
        close(fd);
    }
    free(file);
    return result;
}

/* measureVerityFd(fd): measure_fd of a descriptor openImage returned (the boot's measure-image step). */
static napi_value js_measure_verity_fd(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    int fd;
    if (cfs_get_args(env, info, 1, argv) != 0 || cfs_get_fd(env, argv[0], "fd", &fd) != 0) return NULL;
    return measure_fd(env, fd, "");
}

/* openImage's check: a regular file (EINVAL otherwise), then O_NONBLOCK cleared. */
static int check_image(napi_env env, int fd, const char *rel) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        cfs_throw_errno(env, CFS_BENEATH_CALL, rel, errno);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: not a regular file", rel);
        napi_throw_error(env, "EINVAL", msg);
        return -1;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        cfs_throw_errno(env, CFS_BENEATH_CALL, rel, errno);
        return -1;
    }
    return 0;
}

/*
 * openImage(root, rel) -> fd: the image, opened once for the whole boot:
 * `rel` beneath the trusted directory `root` (open_beneath: no symlink
 * followed, no escape), O_RDONLY, close-on-exec; it must be a regular file
 * (O_NONBLOCK while opening, so a FIFO there cannot block; cleared after).
 * Every later step reads, measures or mounts this descriptor.
 */
static napi_value js_open_image(napi_env env, napi_callback_info info) {
    return open_root_beneath(env, info, O_RDONLY | O_NONBLOCK, check_image);
}

void cfs_sys_register(napi_env env, napi_value exports) {
    napi_property_descriptor props[] = {
        {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
        {"umount", NULL, js_umount, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mountLoop", NULL, js_mount_loop, NULL, NULL, NULL, napi_enumerable, NULL},
        {"exitNow", NULL, js_exit_now, NULL, NULL, NULL, napi_enumerable, NULL},
        {"execve", NULL, js_execve, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setReadonly", NULL, js_set_readonly, NULL, NULL, NULL, napi_enumerable, NULL},
        {"isReadonly", NULL, js_is_readonly, NULL, NULL, NULL, napi_enumerable, NULL},
        {"makeDir", NULL, js_make_dir, NULL, NULL, NULL, napi_enumerable, NULL},
        {"writeFile", NULL, js_write_file, NULL, NULL, NULL, napi_enumerable, NULL},
        {"openDir", NULL, js_open_dir, NULL, NULL, NULL, napi_enumerable, NULL},
        {"openImage", NULL, js_open_image, NULL, NULL, NULL, napi_enumerable, NULL},
        {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
        {"randomBytes", NULL, js_random_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
        {"bindAt", NULL, js_bind_at, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mountAt", NULL, js_mount_at, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogStart", NULL, js_watchdog_start, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogNote", NULL, js_watchdog_note, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogSteps", NULL, js_watchdog_steps, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogStep", NULL, js_watchdog_step, NULL, NULL, NULL, napi_enumerable, NULL},
        {"watchdogStop", NULL, js_watchdog_stop, NULL, NULL, NULL, napi_enumerable, NULL},
        {"testStall", NULL, js_test_stall, NULL, NULL, NULL, napi_enumerable, NULL},
        {"measureVerity", NULL, js_measure_verity, NULL, NULL, NULL, napi_enumerable, NULL},
        {"measureVerityFd", NULL, js_measure_verity_fd, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
