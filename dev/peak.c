/*
dev/peak.c: the machine's FMA peak, measured, for the "% of peak" columns of dev/README.md.

    peak = (FMA instructions per second) x (lanes per register) x 2 flops per FMA

A loop of independent fused multiply-adds on registers only (no loads): 12 accumulators, more
than (FMA pipes x FMA latency) = 2 x 4 on Zen 4 and Intel cores alike, so the pipes never wait
for a result. Run on 1 thread and on all OpenMP threads at once, with ymm (AVX2, 8 floats) and,
where the CPU has it, zmm (AVX-512, 16 floats). run.sh takes the widest ISA's 1-thread number
times the threads a step used as that step's peak (the all-thread number is printed beside it:
on a shared machine it is the first to suffer). It is the same quantity as
GHz x (FMA pipes x lanes x 2) per core, but measured at the clock the core actually runs at.

Prints  PEAK <isa> | threads <n> | <GFLOP/s>
Run:  make -C dev && dev/build/peak
*/
#include "common.h"

#define CHAINS 12
#define ITERS 200000L  // 2.4 M FMAs per thread: ~0.4 ms, short enough to fit a time slice

#if X86
// acc = acc * x + y for 12 independent chains: 12 FMAs per iteration, 2 flops x 8 lanes each
AVX2 static float fma_loop_avx2(long iters) {
    __m256 acc[CHAINS];
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-6f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (long it = 0; it < iters; it++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
    __m256 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    return _mm256_cvtss_f32(s);  // used, so the loop is not optimised away
}

// The same loop with zmm registers; kept as a second copy rather than a macro so each reads as
// plain intrinsics (the point of this file is what one instruction set can issue).
AVX512 static float fma_loop_avx512(long iters) {
    __m512 acc[CHAINS];
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-6f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long it = 0; it < iters; it++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

// GFLOP/s of `threads` threads each running the loop: the best of repeats over DEV_TIME
// seconds (at least 20), as for the ladder steps, so a busy moment does not lower the peak.
static double measure(float (*loop)(long), int lanes, int threads) {
    double best = 0;
    volatile float sink = 0;  // the results are used, so the loops are not optimised away
    const double t_end = now_s() + time_budget_s();
    for (int rep = 0; rep < 20 || now_s() < t_end; rep++) {
        const double t0 = now_s();
        float s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
        s += loop(ITERS);
        sink += s;
        const double gflops = 2.0 * lanes * CHAINS * ITERS * threads / (now_s() - t0) / 1e9;
        if (gflops > best) best = gflops;
    }
    (void)sink;
    return best;
}
#endif

int main(void) {
#if X86
    const int nt = max_threads();
    if (HAS_AVX2()) {
        printf("PEAK   avx2 | threads 1 | %.1f GFLOP/s\n", measure(fma_loop_avx2, 8, 1));
        if (nt > 1)
            printf("PEAK   avx2 | threads %d | %.1f GFLOP/s\n", nt, measure(fma_loop_avx2, 8, nt));
    }
    if (HAS_AVX512()) {
        printf("PEAK   avx512 | threads 1 | %.1f GFLOP/s\n", measure(fma_loop_avx512, 16, 1));
        if (nt > 1)
            printf("PEAK   avx512 | threads %d | %.1f GFLOP/s\n", nt,
                   measure(fma_loop_avx512, 16, nt));
    }
    if (HAS_AVX2() || HAS_AVX512()) return 0;
#endif
    printf("peak: skipped (no AVX2/FMA: the probe is x86-only)\n");
    return 0;
}
