/*
dev/common.h: what every ladder step needs and none of them is about.

    now_s()                  wall clock, seconds
    floats(n)                64-byte aligned, zeroed; scratch(slot, n): same, kept across calls
    fill_uniform(x, n, seed) uniform in [-1, 1), a fixed stream: the same data on every run
    max_threads()            what OpenMP will use (1 without -fopenmp)
    check_close(...)         max |got - want| against step 0's answer (computed in double)
    TIME_BEST(ms, first, stmt)  best wall time of stmt over DEV_TIME seconds (default 1)
    AVX2, AVX512             target attributes: only the kernels are compiled for the ISA, so
                             main() still runs (and says "skipped") on a CPU without it

Every step prints lines that dev/run.sh reads:
    OK     <step> | <size> | max abs diff ...          (NOT OK ..., and exit 1, when it fails)
    TIME   <step> | <size> | threads <n> | <ms> ms | <rate> GFLOP/s
    <step>: skipped (<why>)                            (exit 0)
*/
#ifndef DEV_COMMON_H
#define DEV_COMMON_H
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#define X86 1
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define HAS_AVX2() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
#define HAS_AVX512() __builtin_cpu_supports("avx512f")
#else
#define X86 0
#define HAS_AVX2() 0
#define HAS_AVX512() 0
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }
static inline float maxf(float a, float b) { return a > b ? a : b; }  // fmaxf is a libm call

static inline double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline float* floats(size_t n) {
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64 + 64;
    float* p = (float*)aligned_alloc(64, bytes);
    if (!p) { fprintf(stderr, "out of memory (%zu bytes)\n", bytes); exit(2); }
    memset(p, 0, bytes);
    return p;
}

// A buffer that lives across calls and only grows: a fresh large allocation would page-fault
// on every call, which shows at the small sizes.
static inline float* scratch(int slot, size_t n) {
    static float* buf[8];
    static size_t cap[8];
    if (n > cap[slot]) {
        free(buf[slot]);
        buf[slot] = floats(n);
        cap[slot] = n;
    }
    return buf[slot];
}

static inline void fill_uniform(float* x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {  // xorshift64*, top 24 bits -> [-1, 1)
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        x[i] = (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0f - 1.0f;
    }
}

static inline int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// "dev/gemm/04_avx2.c" -> "04_avx2"
static inline const char* step_name(const char* file) {
    static char name[64];
    const char* slash = strrchr(file, '/');
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : file);
    char* dot = strrchr(name, '.');
    if (dot) *dot = 0;
    return name;
}

// |got - want| <= atol + rtol |want| everywhere? Prints one OK / NOT OK line.
static inline int check_close(const char* step, const char* size, const char* what,
                              const float* got, const double* want, size_t n, double atol,
                              double rtol) {
    double worst = 0;
    size_t bad = n;  // first element out of tolerance (NaN counts)
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * fabs(want[i])) && bad == n) bad = i;
        if (!(d <= worst)) worst = d;
    }
    printf("%-6s %s | %s | %s max abs diff %.2e", bad == n ? "OK" : "NOT OK", step, size, what,
           worst);
    if (bad < n) printf(" (at %zu: got %g, want %g)", bad, got[bad], want[bad]);
    printf("\n");
    return bad == n;
}

static inline double time_budget_s(void) {
    const char* s = getenv("DEV_TIME");
    return s ? atof(s) : 1.0;
}

// Best wall time of stmt, repeated for ~DEV_TIME seconds counting the first (checked) call,
// which took first_ms: a step slower than the budget (step 0 at 1024^3) runs only once. The
// minimum is what the code can do; the noise of a shared machine only ever adds time.
#define TIME_BEST(best_ms, first_ms, stmt)                                     \
    do {                                                                       \
        const double t_end_ = now_s() + time_budget_s() - (first_ms) * 1e-3;   \
        (best_ms) = (first_ms);                                                \
        while (now_s() < t_end_) {                                             \
            const double t0_ = now_s();                                        \
            stmt;                                                              \
            const double ms_ = (now_s() - t0_) * 1e3;                          \
            if (ms_ < (best_ms)) (best_ms) = ms_;                              \
        }                                                                      \
    } while (0)

static inline void print_time(const char* step, const char* size, int threads, double ms,
                              double flops) {
    printf("TIME   %s | %s | threads %d | %.3f ms | %.2f GFLOP/s\n", step, size, threads, ms,
           flops / (ms * 1e6));
}

static inline int skipped(const char* file, const char* why) {
    printf("%s: skipped (%s)\n", step_name(file), why);
    return 0;
}

#endif  // DEV_COMMON_H
