// The machine's FMA peak, measured: the denominator of the benchmarks' "% of peak" columns
// (nnlite.ops.measure_peak; dev/peak.c is the standalone version of the same probe).
#pragma once
#include <cstdint>
#include <vector>

namespace nnlite {

// Independent accumulator chains: more than (FMA pipes × FMA latency) = 2 × 4 on current x86
// cores, so no FMA ever waits for the previous result; 12 fit in AVX2's 16 ymm registers with
// the two constants.
constexpr int kPeakChains = 12;
// Loop iterations per thread per window: 12·200 000 FMAs, ~0.4 ms on a 3 GHz AVX2 core, short
// enough to fit between two interruptions of a busy machine.
constexpr int64_t kPeakIters = 200000;

struct PeakRun {
    const char* isa;         // the SIMD path the loop ran on (simd_path())
    int lanes;               // floats per register on that path
    int chains;              // kPeakChains
    int threads;             // OpenMP threads that ran the loop at once
    int64_t iters;           // loop iterations per thread per window (kPeakIters)
    int64_t windows;         // windows run within the time budget
    double best_seconds;     // wall time of the fastest window
    double total_seconds;    // wall time of all windows
    // flops of one window: 2 · lanes · chains · iters · threads
    double window_flops() const { return 2.0 * lanes * chains * double(iters) * threads; }
};

// Runs windows of `threads` threads × kPeakIters iterations of the FMA chains on the current
// SIMD path until `seconds` have passed (at least 3 windows); the fastest window is the peak.
PeakRun fma_peak(double seconds, int threads);

// The chains' arithmetic, for tests: kPeakChains · lanes final values of `iters` iterations of
// acc = acc·x + y from acc = chain index, on the current SIMD path.
std::vector<float> fma_chains_values(int64_t iters, float x, float y);

}  // namespace nnlite
