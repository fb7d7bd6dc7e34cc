/*
 * native/sys.c's interface to the rest of the addon: its exports, and the
 * kernel interfaces the verity part (verity.c) needs.
 */
#ifndef CFSROOT_SYS_H
#define CFSROOT_SYS_H
#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Define the mount and kernel-interface exports on `exports`. */
void cfs_sys_register(napi_env env, napi_value exports);
/* Open a file for reading by path, no symlink followed anywhere on it (O_NONBLOCK, close-on-exec). */
int cfs_open_disk_file(const char *path);
/* A new unnamed read-write file of `size` bytes for the image copy (a memfd, or a file on a private tmpfs mounted nowhere); -1 with errno. */
int cfs_image_copy_file(uint64_t size);
/* What cfs_image_copy_file makes for `size`, for its error message. */
const char *cfs_image_copy_kind(uint64_t size);
/* Seal the copy against any change once written (a memfd); 0, or -1 with errno. */
int cfs_seal_image_copy(int fd, uint64_t size);
/* write(2) all n bytes (EINTR retried); 0, or -1 with errno (EIO if the kernel took nothing). */
int cfs_write_all(int fd, const void *data, size_t n);
/* Run fn(arg) on a new detached thread; pthread_create's result (0, or an errno value). */
int cfs_start_detached_thread(void *(*fn)(void *), void *arg);

#endif
