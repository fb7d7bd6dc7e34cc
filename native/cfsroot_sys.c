/*
 * cfsroot_sys: the few mount system calls the boot needs (SPEC §4), as a
 * Node-API addon, so that a boot costs no mount(8)/umount(8) child
 * processes. Loaded by src/sys/native.ts, which keeps the `Sys` interface
 * (src/sys/types.ts) and falls back to mount(8) when this cannot load.
 *
 * Deliberately thin: no policy, no path handling, no option parsing. Each
 * function is one system call (two for the remount fallback) and throws a
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
 *   setReadonly(target, readonly)   flip MNT_READONLY of one mount only:
 *       mount_setattr(2) (Linux 5.12); before that a bind remount that
 *       carries the mount's other per-mount flags over from statvfs(2).
 *
 * Only Node-API (stable ABI, node_api.h) and libc are used, so the same
 * build loads in any Node >= 18 of the same architecture and C library.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
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
    int ffd = open(file, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
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

static napi_value init(napi_env env, napi_value exports) {
    napi_property_descriptor props[] = {
        {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
        {"umount", NULL, js_umount, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mountLoop", NULL, js_mount_loop, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setReadonly", NULL, js_set_readonly, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
