/*
 * native/verity.c's interface: its exports (digestFile, copyImage,
 * hashFunctions), defined only when the executable provides OpenSSL's
 * SHA-2 functions; 0, or -1 with a pending exception.
 */
#ifndef CFSROOT_VERITY_H
#define CFSROOT_VERITY_H
#define NAPI_VERSION 8
#include <node_api.h>

int cfs_verity_register(napi_env env, napi_value exports);

#endif
