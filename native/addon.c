/*
 * native/addon.c: the cfsroot_sys Node-API module, one .node the single
 * executable embeds (Makefile): the mount and kernel-interface part
 * (sys.c) and the fs-verity part (verity.c). Only Node-API (stable ABI),
 * libc and the hash functions looked up at run time are used, so the same
 * build loads in any Node >= 18 of the same architecture and C library.
 */
#include "sys.h"
#include "verity.h"

static napi_value init(napi_env env, napi_value exports) {
    cfs_sys_register(env, exports);
    if (cfs_verity_register(env, exports) != 0) return NULL;
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
