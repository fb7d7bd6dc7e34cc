#define _GNU_SOURCE
/*
 * Node-API argument and error helpers shared by the two parts of the addon
 * (sys.c, verity.c): a JS Error whose `code` is the errno name, strict
 * argument checks. No system calls here.
 */
#define NAPI_VERSION 8
#include "napi_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Throw Error(message) with .code = errno name; returns NULL for the caller to return. */
napi_value cfs_throw_errno(napi_env env, const char *what, const char *target, int err) {
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

napi_value cfs_throw_type(napi_env env, const char *msg) {
    napi_throw_type_error(env, "EINVAL", msg);
    return NULL;
}

/*
 * A JS string argument as a malloc'd UTF-8 C string. *out = NULL when the
 * argument is null/undefined and nullable. Returns 0 on success, -1 with a
 * pending JS exception. Rejects embedded NULs, which the kernel would
 * silently truncate at (a different path than the one asked for).
 */
int cfs_get_string(napi_env env, napi_value v, int nullable, const char *name, char **out) {
    napi_valuetype t;
    *out = NULL;
    if (napi_typeof(env, v, &t) != napi_ok) return -1;
    if (nullable && (t == napi_null || t == napi_undefined)) return 0;
    if (t != napi_string) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a string", name);
        cfs_throw_type(env, msg);
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
        cfs_throw_type(env, msg);
        return -1;
    }
    *out = s;
    return 0;
}

int cfs_get_u32(napi_env env, napi_value v, const char *name, uint32_t *out) {
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) return -1;
    if (t != napi_number) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a number", name);
        cfs_throw_type(env, msg);
        return -1;
    }
    /* napi_get_value_uint32 would wrap -1 and truncate 1.5: only an exact integer in range is taken. */
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok) return -1;
    if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be an integer from 0 to 4294967295", name);
        cfs_throw_type(env, msg);
        return -1;
    }
    *out = (uint32_t)d;
    return 0;
}

int cfs_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
    size_t argc = want;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
    if (argc < want) {
        cfs_throw_type(env, "too few arguments");
        return -1;
    }
    return 0;
}
int cfs_get_fd(napi_env env, napi_value v, const char *name, int *out) {
    int32_t n = -1;
    napi_valuetype t;
    if (napi_typeof(env, v, &t) != napi_ok) return -1;
    if (t != napi_number || napi_get_value_int32(env, v, &n) != napi_ok || n < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s must be a file descriptor", name);
        cfs_throw_type(env, msg);
        return -1;
    }
    *out = n;
    return 0;
}

napi_value cfs_fd_value(napi_env env, int fd) {
    napi_value v = NULL;
    if (napi_create_int32(env, fd, &v) != napi_ok) {
        close(fd);
        return NULL;
    }
    return v;
}
