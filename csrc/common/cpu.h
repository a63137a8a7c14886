// Run-time CPU features shared by every kernel family.
//
//   simd_path()      the SIMD path kernels use: the best this CPU has, unless forced by
//                    NNLITE_SIMD=scalar|avx2|avx512 or set_simd_path() (tests force each path;
//                    names are stripped and lower-cased, in simd_from_name)
//   FtzScope         flush subnormals to zero (FTZ) and treat subnormal inputs as zero (DAZ)
//                    for the life of the scope, on the calling thread: the scope guard of
//                    ftz.h, whose C functions the Cython optimizer kernels call directly.
//                    Put one at the top of every kernel *and* inside every OpenMP parallel
//                    region: MXCSR is per thread.
//                    Why: Adam's second moments decay into subnormals and x87/SSE microcode
//                    assists make plain float32 code several times slower on them.
//   num_threads()    OpenMP threads a kernel may use (1 without OpenMP): one process-wide
//                    value (set_num_threads), not OpenMP's per-thread setting, so every
//                    parallel region says num_threads(...) explicitly
//   threads_now()    what a kernel starting now uses: num_threads(), or 1 for a while after a
//                    parallel region saw one of its threads held up by a busy machine
//                    (TeamWatch; see cpu.cpp, "a busy machine")
//   Reductions       no kernel's result may depend on the thread count: a sum split among
//                    threads is split in pieces fixed by the sizes alone, added in piece order
//   Allocation       never inside a parallel region (a std::bad_alloc there calls
//                    std::terminate): workspace is allocated before it, so a failure reaches
//                    Python as MemoryError
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define NNLITE_X86 1
#include <immintrin.h>
// Compile one function for an ISA the build flags do not enable (no -march): the callers pick
// it at run time from simd_path(). MSVC has no such attribute (its intrinsics need none).
#if defined(_MSC_VER) && !defined(__clang__)
#define NNLITE_TARGET_AVX512
#define NNLITE_TARGET_AVX2
#else
#define NNLITE_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))
#define NNLITE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif
#else
#define NNLITE_X86 0
#endif

#ifdef NNLITE_OPENMP
#include <omp.h>
#endif

#include "common/ftz.h"

namespace nnlite {

enum class Simd : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };

Simd simd_path();                       // current path (detected, or forced)
Simd best_simd();                       // best path this CPU supports
bool simd_supported(Simd s);
void set_simd_path(Simd s);             // throws std::invalid_argument if unsupported
const char* simd_name(Simd s);
Simd simd_from_name(const std::string& name);  // throws std::invalid_argument on unknown names
// Who designed the core: some tuning (GEMM blocking) differs between Intel's and AMD's cores
// at the same ISA. Other on non-x86 machines or compilers without __builtin_cpu_is.
enum class Vendor : int { Other = 0, Intel = 1, AMD = 2 };
Vendor cpu_vendor();
const char* vendor_name(Vendor v);

int num_threads();
void set_num_threads(int n);
bool has_openmp();
int threads_now();
// While one is alive on a thread, threads_now() says 1 there: a kernel that runs whole pieces
// of work on each of its threads (a chunk of images in conv.cpp) calls the single-threaded
// GEMM and parallel_range inside its own parallel region this way.
struct SoloScope {
    SoloScope();
    ~SoloScope();
    SoloScope(const SoloScope&) = delete;
    SoloScope& operator=(const SoloScope&) = delete;
};
// a team's worst start delay, the spread of its finish times and its whole time, in ns
// (TeamWatch reports them)
void report_team(int64_t start_delay_ns, int64_t finish_spread_ns, int64_t total_ns);

inline int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Watches one parallel region: each thread calls started() first and finished() last; the
// destructor, on the calling thread after the region, reports how late the last thread began
// and how far apart the threads ended (report_team). Two clock reads per thread.
class TeamWatch {
  public:
    TeamWatch() : t0_(now_ns()) {}
    ~TeamWatch() {
        report_team(start_.load(), fin_max_.load() - fin_min_.load(), now_ns() - t0_);
    }
    void started() { raise(start_, now_ns() - t0_); }
    void finished() {
        const int64_t t = now_ns() - t0_;
        raise(fin_max_, t);
        int64_t cur = fin_min_.load(std::memory_order_relaxed);
        while (t < cur && !fin_min_.compare_exchange_weak(cur, t)) {}
    }
    TeamWatch(const TeamWatch&) = delete;
    TeamWatch& operator=(const TeamWatch&) = delete;

  private:
    static void raise(std::atomic<int64_t>& a, int64_t v) {
        int64_t cur = a.load(std::memory_order_relaxed);
        while (v > cur && !a.compare_exchange_weak(cur, v)) {}
    }
    const int64_t t0_;
    std::atomic<int64_t> start_{0}, fin_max_{0}, fin_min_{INT64_MAX};
};

struct FtzScope {
    unsigned long long saved = nnlite_ftz_enter();  // the one implementation: common/ftz.h
    FtzScope() = default;
    ~FtzScope() { nnlite_ftz_leave(saved); }
    FtzScope(const FtzScope&) = delete;
    FtzScope& operator=(const FtzScope&) = delete;
};

// Work below this many "element operations" runs on the calling thread: starting the OpenMP
// team costs more than it saves.
constexpr int64_t kOmpMinWork = 32768;

// fn(lo, hi) over [0, n), split evenly across the OpenMP threads when n·cost is big enough.
// Each thread sets its own FTZ/DAZ (MXCSR is per thread); the caller has set the calling one.
template <typename Fn>
inline void parallel_range(int64_t n, int64_t cost_per_item, Fn&& fn) {
#ifdef NNLITE_OPENMP
    const int threads = threads_now();
    if (n > 1 && n * cost_per_item > kOmpMinWork && threads > 1) {
        TeamWatch watch;
#pragma omp parallel num_threads(threads)
        {
            watch.started();
            FtzScope ftz;
            const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
            const int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
            if (lo < hi) fn(lo, hi);
            watch.finished();
        }
        return;
    }
#endif
    (void)cost_per_item;
    fn(int64_t(0), n);
}

}  // namespace nnlite
