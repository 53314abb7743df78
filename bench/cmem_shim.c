/*
 * cmem_shim: counts the C heap of an unmodified process, for bench.py's
 * TLS section (the C heap per TLS connection of the real uhttpd server).
 *
 *   gcc -shared -fPIC -O2 -o cmem_shim.so bench/cmem_shim.c
 *   UH_CMEM_FILE=/tmp/x LD_PRELOAD=./cmem_shim.so micropython app.py
 *
 * malloc, calloc, realloc, free and the aligned allocators are interposed
 * and forwarded to glibc's __libc_* entry points; the bytes in use
 * (malloc_usable_size, so allocator rounding counts) and their peak live in
 * a small file mapped shared: the benchmark reads them at any moment and
 * resets the peak by writing the current value over it.  Layout, native
 * endian int64: [0] bytes in use, [1] peak, [2] allocations made.
 * mbedTLS (a shared library on the host) allocates through these, so its
 * record buffers and handshake state are counted; the MicroPython heap is
 * one allocation made at start.  A bench tool only: not part of uhttpd.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t align, size_t n);

static int64_t fallback[3];
static int64_t *volatile ctr = fallback;

__attribute__((constructor)) static void cmem_init(void) {
    const char *path = getenv("UH_CMEM_FILE");
    if (path == NULL) {
        return;
    }
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        return;
    }
    if (ftruncate(fd, 4096) == 0) {
        void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) {
            int64_t *c = m;
            c[0] = __atomic_load_n(&fallback[0], __ATOMIC_SEQ_CST);
            c[1] = __atomic_load_n(&fallback[1], __ATOMIC_SEQ_CST);
            c[2] = __atomic_load_n(&fallback[2], __ATOMIC_SEQ_CST);
            ctr = c;
        }
    }
    close(fd);
}

static void add(void *p) {
    if (p == NULL) {
        return;
    }
    int64_t *c = ctr;
    int64_t now = __atomic_add_fetch(&c[0], (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
    __atomic_add_fetch(&c[2], 1, __ATOMIC_RELAXED);
    int64_t pk = __atomic_load_n(&c[1], __ATOMIC_RELAXED);
    while (now > pk && !__atomic_compare_exchange_n(&c[1], &pk, now, 1, __ATOMIC_RELAXED,
        __ATOMIC_RELAXED)) {
    }
}

static void sub(void *p) {
    if (p != NULL) {
        __atomic_sub_fetch(&ctr[0], (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
    }
}

void *malloc(size_t n) {
    void *p = __libc_malloc(n);
    add(p);
    return p;
}

void *calloc(size_t n, size_t m) {
    void *p = __libc_calloc(n, m);
    add(p);
    return p;
}

void *realloc(void *p, size_t n) {
    size_t old = p != NULL ? malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (q != NULL) {
        __atomic_sub_fetch(&ctr[0], (int64_t)old, __ATOMIC_RELAXED);
        add(q);
    } else if (n == 0) {
        __atomic_sub_fetch(&ctr[0], (int64_t)old, __ATOMIC_RELAXED);
    }
    return q;
}

void free(void *p) {
    sub(p);
    __libc_free(p);
}

void *memalign(size_t align, size_t n) {
    void *p = __libc_memalign(align, n);
    add(p);
    return p;
}

void *aligned_alloc(size_t align, size_t n) {
    return memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n) {
    void *p = memalign(align, n);
    if (p == NULL) {
        return ENOMEM;
    }
    *out = p;
    return 0;
}

void *valloc(size_t n) {
    return memalign((size_t)sysconf(_SC_PAGESIZE), n);
}
