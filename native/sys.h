/*
 * native/sys.c's interface to the rest of the addon: its exports, and the
 * kernel interfaces the verity part (verity.c) needs.
 */
#ifndef CFSROOT_SYS_H
#define CFSROOT_SYS_H
#define NAPI_VERSION 8
#include <node_api.h>

/* Define the mount and kernel-interface exports on `exports`. */
void cfs_sys_register(napi_env env, napi_value exports);
/* Open a file for reading by path, no symlink followed anywhere on it (O_NONBLOCK, close-on-exec). */
int cfs_open_disk_file(const char *path);
/* A new unnamed file (O_TMPFILE, read-write) on a private tmpfs mounted nowhere; -1 with errno. */
int cfs_private_tmpfs_file(void);
/* Run fn(arg) on a new detached thread; pthread_create's result (0, or an errno value). */
int cfs_start_detached_thread(void *(*fn)(void *), void *arg);

#endif
