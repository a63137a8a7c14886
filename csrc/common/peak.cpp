// The FMA peak probe: how many flops per second this machine's cores can issue, measured at
// the clock they run at now (not GHz × pipes × lanes from a datasheet).
//
//   peak = 2 flops · lanes · chains · iterations · threads / seconds
//
// A window is one OpenMP team of `threads` threads, each running kPeakIters iterations of
// kPeakChains independent FMA chains (peak.inc) on the SIMD path the kernels use
// (simd_path(): the widest the CPU has unless forced). Windows repeat until the time budget
// is spent; the fastest one counts, since a busy machine only ever slows a window down.
// The benchmarks divide their GFLOP/s by it ("% of peak"); dev/peak.c is the standalone
// version of this loop for the teaching ladders.
#include "common/peak.h"

#include <algorithm>
#include <stdexcept>

#include "common/cpu.h"

#define NNLITE_KERNELS "common/peak.inc"
#include "common/foreach_isa.h"

namespace nnlite {

PeakRun fma_peak(double seconds, int threads) {
    if (threads < 1) throw std::invalid_argument("fma_peak: threads must be >= 1");
#ifndef NNLITE_OPENMP
    threads = 1;  // no OpenMP: the probe can only measure the calling thread
#endif
    FtzScope ftz;
    const auto loop = NNLITE_PICK(fma_chains);
    const int lanes = NNLITE_PICK(peak_lanes)();
    PeakRun r{simd_name(simd_path()), lanes, kPeakChains, threads, kPeakIters, 0, 1e300, 0.0};
    // one output block per thread, allocated before the region (no allocation inside one)
    std::vector<float> sink(size_t(threads) * kPeakChains * size_t(lanes));
    volatile float keep = 0;  // the results are used, so the loop is not optimised away
    const int64_t t_start = now_ns();
    while (r.windows < 3 || (now_ns() - t_start) * 1e-9 < seconds) {
        const int64_t t0 = now_ns();
#ifdef NNLITE_OPENMP
#pragma omp parallel num_threads(threads)
        {
            FtzScope thread_ftz;
            const int t = omp_get_thread_num();
            loop(kPeakIters, 0.999999f, 1e-6f, sink.data() + size_t(t) * kPeakChains * lanes);
        }
#else
        loop(kPeakIters, 0.999999f, 1e-6f, sink.data());
#endif
        const double dt = (now_ns() - t0) * 1e-9;
        keep = keep + sink[0];
        r.best_seconds = std::min(r.best_seconds, dt);
        r.windows++;
    }
    r.total_seconds = (now_ns() - t_start) * 1e-9;
    (void)keep;
    return r;
}

std::vector<float> fma_chains_values(int64_t iters, float x, float y) {
    if (iters < 0) throw std::invalid_argument("fma_chains: iters must be >= 0");
    const int lanes = NNLITE_PICK(peak_lanes)();
    std::vector<float> out(size_t(kPeakChains) * size_t(lanes));
    NNLITE_PICK(fma_chains)(iters, x, y, out.data());
    return out;
}

}  // namespace nnlite
