// The array buffer cache. See array_pool.h for why and how.
#include "common/array_pool.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#ifdef _MSC_VER
#include <malloc.h>
#endif

namespace nnlite {

constexpr size_t kHeader = 64;            // keeps the caller's pointer 64-byte aligned
constexpr size_t kPooledMin = 64 * 1024;  // below: plain malloc blocks, never cached
constexpr uint64_t kMagic = 0x6e6e6c6974656d70ull;  // "nnlitemp": catches a foreign pointer

struct Header {
    uint64_t magic;
    size_t capacity;  // usable bytes after the header
};

static void* sys_alloc(size_t total) {
#ifdef _MSC_VER
    return _aligned_malloc(total, kHeader);
#else
    void* p = nullptr;
    return posix_memalign(&p, kHeader, total) == 0 ? p : nullptr;
#endif
}

static void sys_free(void* p) {
#ifdef _MSC_VER
    _aligned_free(p);
#else
    std::free(p);
#endif
}

// The capacity a request of n bytes gets: n itself when small, else its size class.
static size_t size_class(size_t n) {
    if (n < kPooledMin) return std::max<size_t>(n, 1);
    size_t step = 4096;
    if (n > (size_t(1) << 20)) {
        size_t top = size_t(1) << 20;
        while (top <= n / 2) top <<= 1;  // the power of two at or below n
        step = top / 16;
    }
    return (n + step - 1) / step * step;
}

namespace {
struct Pool {
    std::mutex mu;
    std::unordered_map<size_t, std::vector<Header*>> free;  // by capacity
    int64_t cached = 0, blocks = 0, hits = 0, misses = 0;
    int64_t limit = -1;  // -1: not read yet

    int64_t limit_locked() {
        if (limit < 0) {
            limit = int64_t(1) << 30;
            if (const char* v = std::getenv("NNLITE_POOL_BYTES")) {
                char* end = nullptr;
                const long long x = std::strtoll(v, &end, 10);
                if (end != v && x >= 0) limit = x;
            }
        }
        return limit;
    }
};
Pool& pool() {
    static Pool* p = new Pool;  // never destroyed: arrays may be freed during interpreter exit
    return *p;
}
}  // namespace

void* pool_allocate(size_t bytes, bool zero) {
    const size_t cap = size_class(bytes);
    Header* h = nullptr;
    if (cap >= kPooledMin) {
        Pool& P = pool();
        std::lock_guard<std::mutex> lock(P.mu);
        auto it = P.free.find(cap);
        if (it != P.free.end() && !it->second.empty()) {
            h = it->second.back();
            it->second.pop_back();
            P.cached -= int64_t(cap);
            P.blocks--;
            P.hits++;
        } else {
            P.misses++;
        }
    }
    if (!h) {
        if (cap > SIZE_MAX - kHeader) return nullptr;
        h = static_cast<Header*>(sys_alloc(cap + kHeader));
        if (!h) return nullptr;
        h->magic = kMagic;
        h->capacity = cap;
    }
    char* p = reinterpret_cast<char*>(h) + kHeader;
    if (zero) std::memset(p, 0, bytes);
    return p;
}

static Header* header_of(void* p) {
    Header* h = reinterpret_cast<Header*>(static_cast<char*>(p) - kHeader);
    if (h->magic != kMagic) std::abort();  // not ours: a double free or a foreign pointer
    return h;
}

void pool_release(void* p) {
    if (!p) return;
    Header* h = header_of(p);
    const size_t cap = h->capacity;
    if (cap >= kPooledMin) {
        Pool& P = pool();
        std::lock_guard<std::mutex> lock(P.mu);
        if (P.cached + int64_t(cap) <= P.limit_locked()) {
            P.free[cap].push_back(h);
            P.cached += int64_t(cap);
            P.blocks++;
            return;
        }
    }
    sys_free(h);
}

void* pool_resize(void* p, size_t bytes) {
    if (!p) return pool_allocate(bytes, false);
    Header* h = header_of(p);
    if (bytes <= h->capacity && size_class(bytes) == h->capacity) return p;
    void* q = pool_allocate(bytes, false);
    if (!q) return nullptr;  // realloc's contract: the old block stays valid
    std::memcpy(q, p, std::min(bytes, h->capacity));
    pool_release(p);
    return q;
}

void pool_clear() {
    Pool& P = pool();
    std::unordered_map<size_t, std::vector<Header*>> blocks;
    {
        std::lock_guard<std::mutex> lock(P.mu);
        blocks.swap(P.free);
        P.cached = 0;
        P.blocks = 0;
    }
    for (auto& kv : blocks)
        for (Header* h : kv.second) sys_free(h);
}

PoolStats pool_stats() {
    Pool& P = pool();
    std::lock_guard<std::mutex> lock(P.mu);
    return {P.hits, P.misses, P.cached, P.blocks, P.limit_locked()};
}

void pool_set_limit(int64_t bytes) {
    Pool& P = pool();
    {
        std::lock_guard<std::mutex> lock(P.mu);
        P.limit = std::max<int64_t>(0, bytes);
        if (P.cached <= P.limit) return;
    }
    pool_clear();  // simplest way under a lowered limit: start again empty
}

}  // namespace nnlite
