// Heap allocation counters for tquic-bench. The C target interposes the malloc family (glibc
// only) and counts calls with relaxed atomics; Swift reads the totals before and after a
// measured section and divides by the work done.
#ifndef TQUIC_ALLOCATION_COUNTER_H
#define TQUIC_ALLOCATION_COUNTER_H

#include <stdint.h>

/// 1 if malloc/free are interposed in this build (Linux/glibc), 0 otherwise (counts stay 0).
int tquic_allocation_counter_supported(void);

/// Calls that obtained memory: malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign,
/// valloc, pvalloc (realloc is counted whether or not it moved the block).
uint64_t tquic_allocation_count(void);
/// realloc calls only (a subset of tquic_allocation_count).
uint64_t tquic_realloc_count(void);
/// free calls with a non-NULL pointer.
uint64_t tquic_free_count(void);
/// Bytes requested by the calls counted in tquic_allocation_count.
uint64_t tquic_allocated_bytes(void);

/// Diagnostics: print a backtrace (to stderr) for each of the next `count` allocations; 0 stops.
/// Frames in the executable print as binary(+offset); resolve them with llvm-symbolizer.
void tquic_allocation_trace(int count);

#endif
