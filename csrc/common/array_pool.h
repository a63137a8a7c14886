// A cache of freed array buffers, so that a training step's arrays (activations, gradients,
// temporaries: the same sizes step after step) reuse memory that is already mapped.
//
// Why: a fresh buffer of a megabyte or more comes from the kernel (mmap) and costs a page fault
// per 4 KiB on its first touch, and glibc hands it back (munmap, or a trimmed heap) when it is
// freed. A baby-GPT training step allocated and freed ~50 such arrays: 577 page faults per step,
// about a tenth of the step on a virtual machine (26.7 -> 24.2 ms with glibc told to keep its
// memory). PyTorch and TensorFlow keep a caching allocator for the same reason on GPUs; numpy
// lets a library install one for its arrays (PyDataMem_SetHandler, bindings/bind_memory.cpp),
// for as long as a scope lasts (nnlite/ops/memory.py, used by the Trainer's steps).
//
//   allocate(n, zero)  a block of at least n bytes, 64-byte aligned; zeroed when `zero`
//   release(p)         back to the cache (or to the system if the cache is full or p small)
//   resize(p, n)       realloc: the same block when it is big enough
//   clear()            hand every cached block back to the system
//
// Each block carries a 64-byte header with its capacity, so release() needs no size (numpy
// passes one, but not always the allocated one after a resize). Blocks below kPooledMin bytes
// are plain malloc blocks behind the same header: glibc serves small sizes from its own bins
// without page faults. Bigger ones are rounded up to a size class (4 KiB steps up to 1 MiB,
// then 1/16 of the power of two below: at most ~6% slack) so that nearby sizes (a ragged last
// batch) share blocks. The cache holds at most limit() bytes (default 1 GiB, NNLITE_POOL_BYTES
// at first use); a block that would overflow it is freed. Thread-safe (one mutex: allocation
// is rare next to the work done on what is allocated).
#pragma once
#include <cstddef>
#include <cstdint>

namespace nnlite {

struct PoolStats {
    int64_t hits, misses;       // pooled allocations served from the cache / from the system
    int64_t cached_bytes;       // bytes now held in the cache (free blocks)
    int64_t cached_blocks;
    int64_t limit_bytes;
};

void* pool_allocate(size_t bytes, bool zero);
void pool_release(void* p);
void* pool_resize(void* p, size_t bytes);
void pool_clear();
PoolStats pool_stats();
void pool_set_limit(int64_t bytes);

}  // namespace nnlite
