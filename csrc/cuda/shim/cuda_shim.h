// cuda_shim.h: CUDA's execution model in plain C++20, so that nnlite's CUDA kernels
// (csrc/cuda/*_kernels.cuh) and launchers (csrc/cuda/*.cu) compile with g++ and run on CPU
// threads, for the tests on machines without a GPU (tests/_cuda_shim.py builds them).
//
// What it models (csrc/cuda/README.md, "The shim"):
//   - a launch runs the grid's blocks one after another; a block's threads are real std::threads
//     (one per CUDA thread, reused from block to block), so `__syncthreads`, warp shuffles and
//     shared memory behave as on a GPU, and ThreadSanitizer sees every race a missing barrier
//     leaves;
//   - `__shared__` is `static`: one copy, used by one block at a time, as a block's shared
//     memory is; dynamic shared memory (NNL_DYNAMIC_SHARED) is a per-launch buffer filled with
//     0xFF bytes (NaN as floats) before each block, so reading it before writing shows;
//   - a thread that returns drops out of its block's and its warp's barriers, as on a GPU.
// What it cannot see: speed, occupancy, coalescing, bank conflicts, register limits.
#pragma once
#if defined(__CUDACC__) || !defined(NNLITE_CUDA_SHIM)
#error "cuda_shim.h is for plain C++ builds with NNLITE_CUDA_SHIM defined (include cuda_compat.h)"
#endif

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

// ------------------------------------------------------------------------ qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __constant__ static
#define __align__(n) alignas(n)
#define __launch_bounds__(...)

// ------------------------------------------------------------------------ types
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error (shim)"; }
// a kernel's opt-in to more than 48 KiB of dynamic shared memory: nothing to do here (a launch
// is only limited to 227 KiB, the most any GPU offers)
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class K>
inline cudaError_t cudaFuncSetAttribute(K*, cudaFuncAttribute, int) { return cudaSuccess; }

namespace nnl_shim {

constexpr int kWarpSize = 32;

// One warp's meeting point: each lane posts a value, all meet, each reads a partner's, all meet
// again (so no slot is overwritten before everyone has read it).
struct Warp {
    explicit Warp(int lanes) : size(lanes), meet(lanes), slots(lanes) {}
    int size;
    std::barrier<> meet;
    std::vector<uint64_t> slots;
};

// A block's barriers and its dynamic shared memory.
struct Block {
    Block(int threads, unsigned char* smem) : sync(threads), dynamic_smem(smem) {
        for (int first = 0; first < threads; first += kWarpSize)
            warps.emplace_back(new Warp(std::min(kWarpSize, threads - first)));
    }
    std::barrier<> sync;
    std::vector<std::unique_ptr<Warp>> warps;
    unsigned char* dynamic_smem;
};

struct Thread {
    dim3 thread_idx, block_idx, block_dim, grid_dim;
    Block* block = nullptr;
    int warp = 0, lane = 0;
};
inline thread_local Thread self;

inline Warp& my_warp() { return *self.block->warps[self.warp]; }

// the exchange behind every warp shuffle: lane `src(lane)` 's value, or one's own when `src` is
// outside the warp (as CUDA does for out-of-range lanes)
template <class T, class Src>
inline T exchange(T value, Src src) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "warp shuffle of a type over 8 bytes");
    Warp& w = my_warp();
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(T));
    w.slots[self.lane] = bits;
    w.meet.arrive_and_wait();
    int from = src(self.lane);
    uint64_t got = (from >= 0 && from < w.size) ? w.slots[from] : bits;
    w.meet.arrive_and_wait();
    T out;
    std::memcpy(&out, &got, sizeof(T));
    return out;
}

inline unsigned reduce_predicate(int predicate, bool all) {
    Warp& w = my_warp();
    w.slots[self.lane] = predicate ? 1 : 0;
    w.meet.arrive_and_wait();
    unsigned ballot = 0;
    for (int i = 0; i < w.size; i++) ballot |= unsigned(w.slots[i]) << i;
    w.meet.arrive_and_wait();
    if (all) return ballot == (w.size == 32 ? 0xffffffffu : ((1u << w.size) - 1));
    return ballot;
}

inline std::mutex& launch_mutex() {
    static std::mutex m;
    return m;
}

inline unsigned char* dynamic_shared() { return self.block->dynamic_smem; }

// Aborts the process, saying why, when a launch runs longer than NNLITE_SHIM_TIMEOUT seconds
// (default 300): the sign of threads waiting at a barrier that some thread never reaches.
struct Watchdog {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread t;
    Watchdog() {
        const char* env = std::getenv("NNLITE_SHIM_TIMEOUT");
        const int seconds = env && std::atoi(env) > 0 ? std::atoi(env) : 300;
        t = std::thread([this, seconds] {
            std::unique_lock<std::mutex> lock(m);
            if (!cv.wait_for(lock, std::chrono::seconds(seconds), [this] { return done; })) {
                std::fprintf(stderr,
                             "nnlite CUDA shim: a kernel launch ran for over %d s: some thread "
                             "never reached a __syncthreads or a full-mask warp shuffle that the "
                             "others wait at (NNLITE_SHIM_TIMEOUT sets the limit)\n", seconds);
                std::fflush(stderr);
                std::abort();
            }
        });
    }
    ~Watchdog() {
        {
            std::lock_guard<std::mutex> lock(m);
            done = true;
        }
        cv.notify_one();
        t.join();
    }
};

// Run `kernel(args...)` over `grid` blocks of `block` threads.
template <class... P>
struct Launcher {
    void (*kernel)(P...);
    dim3 grid, block;
    size_t smem;

    template <class... A>
    void operator()(A... args) const {
        static_assert(sizeof...(A) == sizeof...(P), "NNL_LAUNCH: wrong number of kernel arguments");
        const long long threads = (long long)block.x * block.y * block.z;
        if (threads < 1 || threads > 1024 || block.z > 64)
            throw std::invalid_argument("NNL_LAUNCH: a block must have 1..1024 threads (z <= 64), got " +
                                        std::to_string(block.x) + "x" + std::to_string(block.y) + "x" +
                                        std::to_string(block.z));
        if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 || grid.z > 65535)
            throw std::invalid_argument("NNL_LAUNCH: bad grid " + std::to_string(grid.x) + "x" +
                                        std::to_string(grid.y) + "x" + std::to_string(grid.z));
        if (smem > 227 * 1024)
            throw std::invalid_argument("NNL_LAUNCH: " + std::to_string(smem) +
                                        " bytes of dynamic shared memory (at most 227 KiB)");
        const long long blocks = (long long)grid.x * grid.y * grid.z;
        const int n = int(threads);
        // `__shared__` arrays are statics: one launch at a time in the whole process (bindings
        // release the GIL, so two Python threads may launch at once)
        std::lock_guard<std::mutex> lock(launch_mutex());
        std::vector<unsigned char> dynamic(smem + 16);
        std::unique_ptr<Block> current;
        auto start_block = [&]() noexcept {
            std::memset(dynamic.data(), 0xFF, dynamic.size());
            current.reset(new Block(n, dynamic.data()));
        };
        start_block();
        auto next_block = [&start_block]() noexcept { start_block(); };
        std::barrier<decltype(next_block)> between(n, next_block);
        auto body = [&](int t) {
            for (long long b = 0; b < blocks; b++) {
                self.thread_idx = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                self.block_idx = dim3(unsigned(b % grid.x), unsigned((b / grid.x) % grid.y),
                                      unsigned(b / ((long long)grid.x * grid.y)));
                self.block_dim = block;
                self.grid_dim = grid;
                self.block = current.get();
                self.warp = t / kWarpSize;
                self.lane = t % kWarpSize;
                kernel(static_cast<P>(args)...);
                // returned: out of the block's and the warp's barriers, then wait for the block
                self.block->sync.arrive_and_drop();
                my_warp().meet.arrive_and_drop();
                between.arrive_and_wait();
            }
            self.block = nullptr;
        };
        // A kernel whose threads do not all reach a __syncthreads or a full-mask shuffle
        // hangs on a GPU too (or worse); here a watchdog turns the hang into a failed test.
        Watchdog watchdog;
        std::vector<std::thread> pool;
        pool.reserve(n - 1);
        for (int t = 1; t < n; t++) pool.emplace_back(body, t);
        body(0);
        for (auto& th : pool) th.join();
    }
};

template <class... P>
inline Launcher<P...> launcher(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem) {
    return {kernel, grid, block, smem};
}

}  // namespace nnl_shim

// ------------------------------------------------------------------------ built-in variables
#define threadIdx (nnl_shim::self.thread_idx)
#define blockIdx (nnl_shim::self.block_idx)
#define blockDim (nnl_shim::self.block_dim)
#define gridDim (nnl_shim::self.grid_dim)
#define warpSize (nnl_shim::kWarpSize)

// ------------------------------------------------------------------------ synchronisation
inline void __syncthreads() { nnl_shim::self.block->sync.arrive_and_wait(); }
inline int __syncthreads_or(int p) {   // rarely used; a block-wide OR through the warps' slots
    static std::atomic<int> any;       // one block at a time runs, so one flag suffices
    __syncthreads();
    if (p) any.store(1);
    __syncthreads();
    int r = any.load();
    __syncthreads();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) any.store(0);
    __syncthreads();
    return r;
}
inline void __syncwarp(unsigned = 0xffffffffu) { nnl_shim::my_warp().meet.arrive_and_wait(); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <class T>
inline T __shfl_sync(unsigned, T v, int src, int width = 32) {
    return nnl_shim::exchange(v, [=](int lane) { return (lane & ~(width - 1)) + (src & (width - 1)); });
}
template <class T>
inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    return nnl_shim::exchange(v, [=](int lane) {
        int to = lane ^ mask;
        return (to & ~(width - 1)) == (lane & ~(width - 1)) ? to : lane;
    });
}
template <class T>
inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    return nnl_shim::exchange(v, [=](int lane) {
        int to = lane + int(delta);
        return (to & ~(width - 1)) == (lane & ~(width - 1)) ? to : lane;
    });
}
template <class T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    return nnl_shim::exchange(v, [=](int lane) {
        int to = lane - int(delta);
        return (to >= 0 && (to & ~(width - 1)) == (lane & ~(width - 1))) ? to : lane;
    });
}
inline unsigned __ballot_sync(unsigned, int p) { return nnl_shim::reduce_predicate(p, false); }
inline int __any_sync(unsigned, int p) { return nnl_shim::reduce_predicate(p, false) != 0; }
inline int __all_sync(unsigned, int p) { return int(nnl_shim::reduce_predicate(p, true)); }
inline unsigned __activemask() { return 0xffffffffu; }

// ------------------------------------------------------------------------ atomics
template <class T>
inline T atomicAdd(T* p, T v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T>
inline T atomicSub(T* p, T v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T>
inline T atomicExch(T* p, T v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T>
inline T atomicCAS(T* p, T expected, T desired) {
    std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
    return expected;
}
template <class T>
inline T atomicMax(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (old < v && !a.compare_exchange_weak(old, v)) {}
    return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
    std::atomic_ref<T> a(*p);
    T old = a.load();
    while (old > v && !a.compare_exchange_weak(old, v)) {}
    return old;
}

// ------------------------------------------------------------------------ device math
template <class T>
inline T __ldg(const T* p) { return *p; }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
// CUDA's device min/max overloads
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
