// Interposes the malloc family so tquic-bench can count heap allocations. Definitions in the
// executable take precedence over libc's for every caller in the process (Swift runtime,
// Foundation, BoringSSL), and each call goes straight to glibc's real allocator through its
// exported __libc_* entry points, so there is no dlsym bootstrap and no recursion.
// Counting uses relaxed atomics: they cost a few nanoseconds and stay correct if a runtime
// thread allocates too (the benchmark itself is single-threaded).
#include "CAllocationCounter.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <stddef.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static uint64_t allocations, reallocs, frees, bytes;

static inline void count_allocation(size_t size) {
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&bytes, (uint64_t)size, __ATOMIC_RELAXED);
}

void *malloc(size_t size) {
    count_allocation(size);
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
    count_allocation(n * size);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
    count_allocation(size);
    __atomic_fetch_add(&reallocs, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, size);
}

void free(void *p) {
    if (p) __atomic_fetch_add(&frees, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0) return EINVAL;
    count_allocation(size);
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_allocation(size);
    return __libc_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
    count_allocation(size);
    return __libc_memalign(alignment, size);
}

void *valloc(size_t size) {
    count_allocation(size);
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

void *pvalloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded = (size + page - 1) & ~(page - 1);
    count_allocation(rounded);
    return __libc_memalign(page, rounded ? rounded : page);
}

int tquic_allocation_counter_supported(void) { return 1; }
uint64_t tquic_allocation_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }
uint64_t tquic_realloc_count(void) { return __atomic_load_n(&reallocs, __ATOMIC_RELAXED); }
uint64_t tquic_free_count(void) { return __atomic_load_n(&frees, __ATOMIC_RELAXED); }
uint64_t tquic_allocated_bytes(void) { return __atomic_load_n(&bytes, __ATOMIC_RELAXED); }

#else
// Not glibc (e.g. macOS): no interposition; the benchmark reports allocation figures as unavailable.
int tquic_allocation_counter_supported(void) { return 0; }
uint64_t tquic_allocation_count(void) { return 0; }
uint64_t tquic_realloc_count(void) { return 0; }
uint64_t tquic_free_count(void) { return 0; }
uint64_t tquic_allocated_bytes(void) { return 0; }
#endif
