/*
 * Node-API helpers shared by native/sys.c and native/verity.c. Every
 * function that can fail returns -1 (or NULL) with a pending JS exception.
 */
#ifndef CFSROOT_NAPI_UTIL_H
#define CFSROOT_NAPI_UTIL_H
#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Throw Error("<what> <target>: <strerror> (<ENAME>)") with .code = the errno name; returns NULL. */
napi_value cfs_throw_errno(napi_env env, const char *what, const char *target, int err);
/* Throw TypeError(msg) with .code EINVAL; returns NULL. */
napi_value cfs_throw_type(napi_env env, const char *msg);
/* A string argument as a malloc'd C string (NULL for null/undefined when nullable); rejects embedded NULs. */
int cfs_get_string(napi_env env, napi_value v, int nullable, const char *name, char **out);
/* An integer from 0 to 2^32-1 (no wrap, no truncation). */
int cfs_get_u32(napi_env env, napi_value v, const char *name, uint32_t *out);
/* At least `want` arguments into argv. */
int cfs_get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
/* A non-negative int32 (a file descriptor). */
int cfs_get_fd(napi_env env, napi_value v, const char *name, int *out);
/* fd as a JS number; closes fd and returns NULL if that fails. */
napi_value cfs_fd_value(napi_env env, int fd);

#endif
