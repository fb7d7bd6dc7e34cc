/*
 * tcmd: run one command and report its wall time and peak memory, for the
 * benchmarks in bench/ (not shipped). Built static so it runs inside the
 * bench's chroot, which has no C library of its own beyond what cfsroot needs.
 *
 *   tcmd RESULT_FILE COMMAND [ARG...]
 *
 * Appends one line to RESULT_FILE:
 * "<wall ns> <peak RSS KiB> <exit status> <user CPU us> <system CPU us>".
 * Wall time is CLOCK_MONOTONIC around posix_spawn + wait4, so it covers the
 * whole process: exec, dynamic loading, Node start-up, the work, exit. Peak
 * RSS is wait4's ru_maxrss (largest RSS of the child, or of any descendant
 * it waited for); CPU times are wait4's ru_utime/ru_stime, summed over all
 * of the child's threads. The command's stdout/stderr are inherited.
 */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tcmd RESULT_FILE COMMAND [ARG...]\n");
        return 2;
    }
    struct timespec t0, t1;
    pid_t pid;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int err = posix_spawn(&pid, argv[2], NULL, NULL, &argv[2], environ);
    if (err != 0) {
        fprintf(stderr, "tcmd: cannot run %s: %s\n", argv[2], strerror(err));
        return 127;
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("tcmd: wait4");
        return 127;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    FILE *f = fopen(argv[1], "a");
    if (!f) {
        perror("tcmd: result file");
        return 127;
    }
    long long user_us = (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec;
    long long sys_us = (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
    fprintf(f, "%lld %ld %d %lld %lld\n", ns, ru.ru_maxrss, code, user_us, sys_us);
    fclose(f);
    return code;
}
