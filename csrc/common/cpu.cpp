// Run-time CPU feature detection and the forced-path switch. See cpu.h.
#include "common/cpu.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace nnlite {

static bool cpu_has(Simd s) {
    if (s == Simd::Scalar) return true;
#if NNLITE_X86 && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (s == Simd::AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (s == Simd::AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("fma");
#endif
    return false;
}

bool simd_supported(Simd s) { return cpu_has(s); }

Simd best_simd() {
    static const Simd best = cpu_has(Simd::AVX512) ? Simd::AVX512
                           : cpu_has(Simd::AVX2)   ? Simd::AVX2
                                                   : Simd::Scalar;
    return best;
}

Vendor cpu_vendor() {
#if NNLITE_X86 && (defined(__GNUC__) || defined(__clang__))
    static const Vendor v = [] {
        __builtin_cpu_init();
        if (__builtin_cpu_is("intel")) return Vendor::Intel;
        if (__builtin_cpu_is("amd")) return Vendor::AMD;
        return Vendor::Other;
    }();
    return v;
#else
    return Vendor::Other;
#endif
}

const char* vendor_name(Vendor v) {
    switch (v) {
        case Vendor::Intel: return "intel";
        case Vendor::AMD: return "amd";
        default: return "other";
    }
}

const char* simd_name(Simd s) {
    switch (s) {
        case Simd::AVX512: return "avx512";
        case Simd::AVX2: return "avx2";
        default: return "scalar";
    }
}

// The one normalisation of a path name, for NNLITE_SIMD and set_simd_path alike (as Python's
// .strip().lower()): " AVX2\n" and "Scalar" name avx2 and scalar.
static std::string normalised(const std::string& raw) {
    const char* space = " \t\n\r\f\v";
    const size_t b = raw.find_first_not_of(space);
    if (b == std::string::npos) return std::string();
    const size_t e = raw.find_last_not_of(space);
    std::string s = raw.substr(b, e - b + 1);
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

Simd simd_from_name(const std::string& raw) {
    const std::string name = normalised(raw);
    if (name == "scalar" || name == "portable") return Simd::Scalar;
    if (name == "avx2") return Simd::AVX2;
    if (name == "avx512") return Simd::AVX512;
    throw std::invalid_argument("unknown SIMD path '" + raw + "': expected scalar, avx2 or avx512");
}

static std::atomic<int> g_forced{-1};

static Simd initial_path() {
    const char* env = std::getenv("NNLITE_SIMD");
    if (env && *env) {
        try {
            Simd s = simd_from_name(env);
            if (cpu_has(s)) return s;
        } catch (const std::invalid_argument&) {
        }
        // An unusable request falls back to the best path; Python warns about it.
    }
    return best_simd();
}

Simd simd_path() {
    int f = g_forced.load(std::memory_order_relaxed);
    if (f >= 0) return static_cast<Simd>(f);
    static const Simd init = initial_path();
    return init;
}

void set_simd_path(Simd s) {
    if (!cpu_has(s))
        throw std::invalid_argument(std::string("SIMD path '") + simd_name(s) +
                                    "' is not supported by this CPU");
    g_forced.store(static_cast<int>(s), std::memory_order_relaxed);
}

bool has_openmp() {
#ifdef NNLITE_OPENMP
    return true;
#else
    return false;
#endif
}

// The thread count is process-wide: OpenMP's own setting (omp_set_num_threads) belongs to the
// calling thread only, so a kernel called from another Python thread would use that thread's
// default. Every parallel region passes num_threads(num_threads()) instead. 0: not set, use
// OpenMP's default (OMP_NUM_THREADS, or the cores), read once.
static std::atomic<int> g_threads{0};

int num_threads() {
#ifdef NNLITE_OPENMP
    const int n = g_threads.load(std::memory_order_relaxed);
    if (n > 0) return n;
    static const int initial = std::max(1, omp_get_max_threads());
    return initial;
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("number of threads must be >= 1");
#ifdef NNLITE_OPENMP
    g_threads.store(n, std::memory_order_relaxed);
#else
    (void)n;
#endif
}

// ----------------------------------------------------------------------------- a busy machine
// A parallel region ends when its slowest thread does. When every core is taken (an editor, a
// browser, another training job), one of our threads waits for a time slice, milliseconds,
// and the whole kernel waits with it, kernel after kernel: beside one busy process an MNIST
// epoch on 2 threads took 7 times as long as alone (the fair share of the cores: 1.5 times).
// So every team reports (TeamWatch) how late its last thread started and how far apart the
// threads finished. An idle machine keeps both within tens of µs (a sleeping thread wakes in
// that time); more than kLateNs, and a quarter of the region, means a thread was kept off
// its core. Then kernels run on the
// calling thread alone, which a busy machine still gives a core, for kSoloMinNs, doubling
// while the machine stays busy up to kSoloMaxNs, and try the team again after that. Results do
// not change: no reduction's order depends on the thread count. NNLITE_BUSY_WATCH=0 (read
// once) switches this off.
// Only a team that follows another closely (within kFreshNs) is judged: after a pause the
// workers have gone to sleep (GOMP_SPINCOUNT, _openmp_wait.py), and on a virtual machine a
// sleeping vCPU can take over a millisecond to wake. Judging that first region fed itself:
// a wake-up counted as busy, 50 ms alone let the workers fall asleep, the next team woke late
// again, and so on up to 1.6 s alone (measured on an idle 2-core VM: 40% of back-to-back
// 128x256x784 GEMMs ran alone, at 112 instead of 144 GFLOP/s).
// And one late team is not enough: an idle machine still preempts a thread now and then (a
// kernel worker, the hypervisor), for a millisecond or two, which cost that one region that
// much; 50 ms alone after it cost far more (idle 2-core VM: a late team every ~0.4 s, and
// 20-25% of a stream of small GEMMs run alone). Two late teams within kStrikeNs are a busy
// machine: there, most teams are late.
constexpr int64_t kFreshNs = 200'000;        // 0.2 ms
constexpr int64_t kStrikeNs = 100'000'000;   // 100 ms
constexpr int64_t kLateNs = 500'000;         // 0.5 ms
constexpr int64_t kSoloMinNs = 50'000'000;   // 50 ms
constexpr int64_t kSoloMaxNs = 1'600'000'000;

static std::atomic<int64_t> g_solo_until{0};  // steady-clock ns until which kernels run alone
static std::atomic<int64_t> g_solo_ns{0};     // the current stretch (0: the machine was idle)
static std::atomic<int64_t> g_team_end{0};    // when the last team's region ended
static std::atomic<int64_t> g_strike_at{INT64_MIN / 2};  // when the last late team ended

static bool busy_watch_on() {
    static const bool on = [] {
        const char* v = std::getenv("NNLITE_BUSY_WATCH");
        return !(v && std::string(v) == "0");
    }();
    return on;
}

static thread_local int tl_solo = 0;  // SoloScopes alive on this thread
SoloScope::SoloScope() { tl_solo++; }
SoloScope::~SoloScope() { tl_solo--; }

int threads_now() {
    if (tl_solo) return 1;
    const int n = num_threads();
    if (n > 1 && now_ns() < g_solo_until.load(std::memory_order_relaxed)) return 1;
    return n;
}

void report_team(int64_t start_delay_ns, int64_t finish_spread_ns, int64_t total_ns) {
    if (!busy_watch_on()) return;
    const int64_t end = now_ns();
    const int64_t prev_end = g_team_end.exchange(end, std::memory_order_relaxed);
    if (end - total_ns - prev_end > kFreshNs) return;  // its workers were asleep: not judged
    // late: by more than kLateNs, and by a good part of the region (a big kernel's threads
    // can be a little uneven by nature)
    const int64_t late = std::max(start_delay_ns, finish_spread_ns);
    if (late > kLateNs && 4 * late > total_ns) {
        // one late team is a strike, a second within kStrikeNs a busy machine
        const int64_t strike = g_strike_at.exchange(end, std::memory_order_relaxed);
        if (end - strike > kStrikeNs) return;
        const int64_t prev = g_solo_ns.load(std::memory_order_relaxed);
        const int64_t stretch = prev ? std::min(2 * prev, kSoloMaxNs) : kSoloMinNs;
        g_solo_ns.store(stretch, std::memory_order_relaxed);
        g_solo_until.store(now_ns() + stretch, std::memory_order_relaxed);
    } else {
        g_solo_ns.store(0, std::memory_order_relaxed);
    }
}

}  // namespace nnlite
