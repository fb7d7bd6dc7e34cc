/*
 * native/verity.c: the fs-verity part of the cfsroot_sys addon (the mount
 * part is sys.c). One engine, used two ways:
 *   digestFile(path, alg, threads) -> Buffer     the fs-verity digest of a
 *       file (`cfsroot verify`, `cfsroot digest`; opened with no symlink
 *       followed, as a regular file).
 *   copyImage(fd, alg, threads) -> { digest, fd }   the boot's copy path
 *       (src/image/plan.ts, an image without fs-verity): a private copy of
 *       the open image and the digest of exactly its bytes.
 * threads: 0 = one per online CPU, at most 2; else 1 or 2.
 * Beside it, warmCrypto() -> boolean: a signed boot's OpenSSL set-up on a
 * thread of its own (below, where it is defined).
 *
 * One threading design: the file is streamed in 1 MiB segments through one
 * private buffer; for each segment the calling thread writes it (copy) and
 * both it and one helper thread hash its blocks, claimed 64 at a time; the
 * two meet at a barrier before the buffer is reused. One copy strategy:
 * read into private memory, write from there (measured in bench/RESULTS.md
 * against the in-kernel sendfile + shared mapping this replaced).
 *
 * The digest (SPEC §3; the same computation as src/image/fsverity.ts, which the
 * tests hold this to): 4096-byte blocks, level 0 = one hash per data block
 * (the last block zero-padded), each level above = the hashes of the level
 * below packed into zero-padded blocks, until one hash remains (the root);
 * the digest is the hash of the 256-byte fs-verity descriptor.
 *
 * Why in C (issue 5): per 4 KiB block, a call into node:crypto costs more
 * than hashing the block with SHA-NI, and a worker thread takes ~50 ms to
 * start. Here the block hashes are plain calls into the executable's own
 * OpenSSL, looked up at run time (no OpenSSL headers or library linked).
 */
#define _GNU_SOURCE
#include "verity.h"
#include "napi_util.h"
#include "sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Read exactly n bytes at offset off (pread: the descriptor's position is left alone); 0, or -1 with errno (ENODATA: the file ended early). */
static int read_exact(int fd, unsigned char *p, size_t n, uint64_t off) {
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = ENODATA;
            return -1;
        }
        p += r;
        off += (uint64_t)r;
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
        if (read_exact(in, buf, len, pos) != 0) {
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
        if (out >= 0 && cfs_write_all(out, buf, len) != 0) werr = errno;
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
    if (cfs_get_string(env, v, 0, "alg", &alg) != 0) return -1;
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
        cfs_throw_type(env, "alg must be 'sha256' or 'sha512'");
        return -1;
    }
    return 0;
}

static int pick_threads(napi_env env, napi_value v, int *threads) {
    uint32_t t = 0;
    if (cfs_get_u32(env, v, "threads", &t) != 0) return -1;
    if (t == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        t = cpus >= 2 ? 2 : 1;
    }
    *threads = t >= 2 ? 2 : 1;
    return 0;
}

/* Open `path` for reading as a regular file (O_NONBLOCK: a FIFO there must not hang the boot). */
static int open_regular(napi_env env, const char *path, struct stat *st) {
    int fd = cfs_open_disk_file(path);
    if (fd < 0) {
        cfs_throw_errno(env, "open", path, errno);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        cfs_throw_errno(env, "fstat", path, errno);
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
        cfs_throw_errno(env, e->what, path, e->err);
    }
}

/* digestFile(path, alg, threads) -> Buffer */
static napi_value js_digest_file(napi_env env, napi_callback_info info) {
    napi_value argv[3], result = NULL;
    char *path = NULL;
    sha_oneshot fn;
    size_t hash_size;
    int alg_id, threads;
    if (cfs_get_args(env, info, 3, argv) != 0 || cfs_get_string(env, argv[0], 0, "path", &path) != 0) return NULL;
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

/*
 * copyImage(fd, alg, threads) -> { digest: Buffer, fd }: copy the regular
 * file open at `fd` (openImage's descriptor; read with pread from offset 0,
 * st_size bytes as fstat says now) into a new unnamed in-memory file
 * (sys.c cfs_image_copy_file: a memfd under 2 MiB, else a file on a private
 * tmpfs mounted nowhere), and return the fs-verity digest of exactly the
 * copy's bytes with the copy's descriptor (close-on-exec; the caller mounts
 * it through a loop device and closes it). Each segment is read once into
 * private memory, then written to the copy and hashed from that same
 * memory, so the copy holds what was hashed whatever the disk does
 * meanwhile; a memfd copy is then sealed against any further change. On
 * failure nothing is left.
 */
static napi_value js_copy_image(napi_env env, napi_callback_info info) {
    napi_value argv[3], result = NULL;
    sha_oneshot fn;
    size_t hash_size;
    int in, alg_id, threads;
    if (cfs_get_args(env, info, 3, argv) != 0 || cfs_get_fd(env, argv[0], "fd", &in) != 0 ||
        pick_alg(env, argv[1], &fn, &hash_size, &alg_id) != 0 || pick_threads(env, argv[2], &threads) != 0)
        return NULL;
    struct stat st;
    if (fstat(in, &st) != 0) return cfs_throw_errno(env, "fstat", "the image", errno);
    if (!S_ISREG(st.st_mode)) {
        napi_throw_error(env, "EINVAL", "the image: not a regular file");
        return NULL;
    }
    int out = cfs_image_copy_file((uint64_t)st.st_size);
    if (out < 0) return cfs_throw_errno(env, cfs_image_copy_kind((uint64_t)st.st_size), "", errno);
    unsigned char digest[64];
    struct verity_error e = {0};
    if (verity_stream(in, (uint64_t)st.st_size, out, fn, hash_size, alg_id, threads, digest, &e) != 0) {
        close(out); /* unnamed: the partial copy goes with it */
        throw_stream_error(env, &e, "the image", (uint64_t)st.st_size);
        return NULL;
    }
    if (cfs_seal_image_copy(out, (uint64_t)st.st_size) != 0) {
        int err = errno;
        close(out);
        return cfs_throw_errno(env, "sealing the image copy (fcntl F_ADD_SEALS)", "", err);
    }
    napi_value obj, d, f;
    if (napi_create_object(env, &obj) != napi_ok || (d = digest_buffer(env, digest, hash_size)) == NULL ||
        napi_create_int32(env, out, &f) != napi_ok || napi_set_named_property(env, obj, "digest", d) != napi_ok ||
        napi_set_named_property(env, obj, "fd", f) != napi_ok) {
        close(out);
        return NULL;
    }
    result = obj;
    return result;
}

/* ------------------------------------------------------------------------
 * warmCrypto() -> boolean: a signed boot's first node:crypto calls (the key
 * import, the commit's SHA-256, the Ed25519 verification) each start by
 * filling OpenSSL's process-wide algorithm cache, 0.8-1.4 ms in all
 * (bench/RESULTS.md). This starts a detached thread that makes those same
 * first calls on throw-away inputs, so that the cache is filled on another
 * CPU while the main thread reads the deployment. Nothing it computes is
 * used; false when the executable does not export the functions.
 * ------------------------------------------------------------------------ */
#define CFS_EVP_PKEY_ED25519 1087 /* NID_ED25519 */
struct warm_fns {
    void *(*md_fetch)(void *libctx, const char *name, const char *props);
    int (*digest)(const void *data, size_t n, unsigned char *out, unsigned int *outlen, const void *md, void *engine);
    void (*md_free)(void *md);
    void *(*pkey_new_raw_public)(int type, void *engine, const unsigned char *key, size_t len);
    void (*pkey_free)(void *pkey);
    void *(*md_ctx_new)(void);
    void (*md_ctx_free)(void *ctx);
    int (*verify_init)(void *ctx, void **pctx, const void *md, void *engine, void *pkey);
    int (*verify)(void *ctx, const unsigned char *sig, size_t siglen, const unsigned char *msg, size_t msglen);
    void (*err_clear)(void);
};
static struct warm_fns warm;
static pthread_once_t warm_resolved = PTHREAD_ONCE_INIT;
static int warm_available;

/* The EVP entry points, looked up once: a second call must not rewrite them under a running thread. */
static void resolve_warm_fns(void) {
    warm.md_fetch = (void *(*)(void *, const char *, const char *))dlsym(RTLD_DEFAULT, "EVP_MD_fetch");
    warm.digest = (int (*)(const void *, size_t, unsigned char *, unsigned int *, const void *, void *))dlsym(RTLD_DEFAULT, "EVP_Digest");
    warm.md_free = (void (*)(void *))dlsym(RTLD_DEFAULT, "EVP_MD_free");
    warm.pkey_new_raw_public = (void *(*)(int, void *, const unsigned char *, size_t))dlsym(RTLD_DEFAULT, "EVP_PKEY_new_raw_public_key");
    warm.pkey_free = (void (*)(void *))dlsym(RTLD_DEFAULT, "EVP_PKEY_free");
    warm.md_ctx_new = (void *(*)(void))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_new");
    warm.md_ctx_free = (void (*)(void *))dlsym(RTLD_DEFAULT, "EVP_MD_CTX_free");
    warm.verify_init = (int (*)(void *, void **, const void *, void *, void *))dlsym(RTLD_DEFAULT, "EVP_DigestVerifyInit");
    warm.verify = (int (*)(void *, const unsigned char *, size_t, const unsigned char *, size_t))dlsym(RTLD_DEFAULT, "EVP_DigestVerify");
    warm.err_clear = (void (*)(void))dlsym(RTLD_DEFAULT, "ERR_clear_error");
    warm_available = warm.md_fetch && warm.digest && warm.md_free && warm.pkey_new_raw_public && warm.pkey_free && warm.md_ctx_new &&
                     warm.md_ctx_free && warm.verify_init && warm.verify && warm.err_clear;
}

static void *warm_crypto_thread(void *arg) {
    (void)arg;
    unsigned char key[32] = {0}, sig[64] = {0}, out[64];
    unsigned int outlen = 0;
    void *md = warm.md_fetch(NULL, "SHA256", NULL);
    if (md != NULL) {
        (void)warm.digest(key, sizeof key, out, &outlen, md, NULL);
        warm.md_free(md);
    }
    void *pkey = warm.pkey_new_raw_public(CFS_EVP_PKEY_ED25519, NULL, key, sizeof key);
    void *ctx = warm.md_ctx_new();
    if (pkey != NULL && ctx != NULL && warm.verify_init(ctx, NULL, NULL, NULL, pkey) == 1)
        (void)warm.verify(ctx, sig, sizeof sig, key, sizeof key); /* fails; the set-up is what counts */
    if (ctx != NULL) warm.md_ctx_free(ctx);
    if (pkey != NULL) warm.pkey_free(pkey);
    warm.err_clear(); /* this thread's error queue only */
    return NULL;
}

static napi_value js_warm_crypto(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value result = NULL;
    pthread_once(&warm_resolved, resolve_warm_fns);
    int ok = warm_available && cfs_start_detached_thread(warm_crypto_thread, NULL) == 0;
    napi_get_boolean(env, ok, &result);
    return result;
}

int cfs_verity_register(napi_env env, napi_value exports) {
    /* Only when the executable exports OpenSSL's SHA-2 functions (Node's builds do). */
    sha256_fn = (sha_oneshot)dlsym(RTLD_DEFAULT, "SHA256");
    sha512_fn = (sha_oneshot)dlsym(RTLD_DEFAULT, "SHA512");
    if (sha256_fn == NULL || sha512_fn == NULL) return 0;
    use_lowlevel_sha();
    napi_property_descriptor props[] = {
        {"copyImage", NULL, js_copy_image, NULL, NULL, NULL, napi_enumerable, NULL},
        {"digestFile", NULL, js_digest_file, NULL, NULL, NULL, napi_enumerable, NULL},
        {"warmCrypto", NULL, js_warm_crypto, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return -1;
    /* Which OpenSSL entry points hash the blocks (tests and the bench report it). */
    napi_value which;
    const char *impl = sha256_fn == sha256_block ? "SHA256_Init/Update/Final" : "SHA256()";
    if (napi_create_string_utf8(env, impl, NAPI_AUTO_LENGTH, &which) != napi_ok ||
        napi_set_named_property(env, exports, "hashFunctions", which) != napi_ok)
        return -1;
    return 0;
}
