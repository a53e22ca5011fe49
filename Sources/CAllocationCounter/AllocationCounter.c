// Interposes the malloc family so tquic-bench can count heap allocations. Definitions in the
// executable take precedence over libc's for every caller in the process (Swift runtime,
// Foundation, BoringSSL), and each call goes straight to glibc's real allocator through its
// exported __libc_* entry points, so there is no dlsym bootstrap and no recursion.
// Counting uses relaxed atomics: they cost a few nanoseconds and stay correct if a runtime
// thread allocates too (the benchmark itself is single-threaded).
#include "CAllocationCounter.h"

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <execinfo.h>
#include <stddef.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static uint64_t allocations, reallocs, frees, bytes;

// Tracing (diagnostics only): the next `trace_remaining` allocations print a backtrace to stderr.
static int trace_remaining;
static __thread int in_trace;

static void trace_allocation(size_t size) {
    if (in_trace || __atomic_sub_fetch(&trace_remaining, 1, __ATOMIC_RELAXED) < 0) return;
    in_trace = 1;
    // "--- allocation of N bytes\n" without printf (which may allocate).
    char line[64] = "--- allocation of ";
    size_t n = 18;
    char digits[24];
    int d = 0;
    do { digits[d++] = (char)('0' + size % 10); size /= 10; } while (size && d < 24);
    while (d) line[n++] = digits[--d];
    const char *tail = " bytes\n";
    while (*tail) line[n++] = *tail++;
    (void)!write(2, line, n);
    void *frames[32];
    int count = backtrace(frames, 32);
    backtrace_symbols_fd(frames, count, 2); // writes to the fd without allocating
    in_trace = 0;
}

static inline void count_allocation(size_t size) {
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&bytes, (uint64_t)size, __ATOMIC_RELAXED);
    if (__builtin_expect(__atomic_load_n(&trace_remaining, __ATOMIC_RELAXED) > 0, 0)) trace_allocation(size);
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

void tquic_allocation_trace(int count) {
    if (count > 0) {
        // The first backtrace() loads the unwinder (and allocates): do it before tracing starts.
        void *frames[2];
        in_trace = 1;
        backtrace(frames, 2);
        in_trace = 0;
    }
    __atomic_store_n(&trace_remaining, count, __ATOMIC_RELAXED);
}

int tquic_allocation_counter_supported(void) { return 1; }
uint64_t tquic_allocation_count(void) { return __atomic_load_n(&allocations, __ATOMIC_RELAXED); }
uint64_t tquic_realloc_count(void) { return __atomic_load_n(&reallocs, __ATOMIC_RELAXED); }
uint64_t tquic_free_count(void) { return __atomic_load_n(&frees, __ATOMIC_RELAXED); }
uint64_t tquic_allocated_bytes(void) { return __atomic_load_n(&bytes, __ATOMIC_RELAXED); }

#else
// Not glibc (e.g. macOS): no interposition; the benchmark reports allocation figures as unavailable.
void tquic_allocation_trace(int count) { (void)count; }
int tquic_allocation_counter_supported(void) { return 0; }
uint64_t tquic_allocation_count(void) { return 0; }
uint64_t tquic_realloc_count(void) { return 0; }
uint64_t tquic_free_count(void) { return 0; }
uint64_t tquic_allocated_bytes(void) { return 0; }
#endif
