// dev/cuda/harness.cuh: what every CUDA ladder step's main() needs and none of them is about
// (nvcc only; the kernels themselves, NN_name.cuh, also compile through the shim).
//
//   gpu_or_exit(step)        no usable GPU: prints "no GPU: <reason>" and exits NO_GPU_EXIT (77)
//   CUDA_CHECK(call)         a failed CUDA call: prints it and exits 1
//   fill_uniform(x, n, seed) uniform in [-1, 1), the same stream as dev/common.h (same data)
//   check_close(...)         max |got - want| against the CPU reference, one OK / NOT OK line
//   time_ms(fn)              cudaEvent timing: best and median of repeats over DEV_TIME seconds
//   print_time(...)          the TIME line: best, median, quartiles, worst, runs, GFLOP/s of the
//                            best (benchmarks/bench_cuda.py and gpu_check.sh read it)
//
// Exit codes of every step: 0 checked (and timed), 1 wrong answer or CUDA error, 2 bad usage or
// a size the step does not support, 77 no GPU (automake's "skipped"), with "no GPU: <why>".
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define NO_GPU_EXIT 77

#define CUDA_CHECK(call)                                                                 \
    do {                                                                                 \
        cudaError_t err_ = (call);                                                       \
        if (err_ != cudaSuccess) {                                                       \
            std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(err_), \
                         __FILE__, __LINE__, cudaGetErrorString(err_));                  \
            std::exit(1);                                                                \
        }                                                                                \
    } while (0)

// "dev/cuda/sgemm/04_blocktile_2d.cu" -> "04_blocktile_2d"
inline const char* step_name(const char* file) {
    static char name[64];
    const char* slash = std::strrchr(file, '/');
    std::snprintf(name, sizeof name, "%s", slash ? slash + 1 : file);
    char* dot = std::strrchr(name, '.');
    if (dot) *dot = 0;
    return name;
}

// Exits with NO_GPU_EXIT, saying why, when CUDA finds no device (no driver, no GPU, a driver
// too old for this runtime); otherwise prints which GPU runs the step.
inline void gpu_or_exit(const char* step) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        std::printf("%s: no GPU: %s\n", step,
                    err != cudaSuccess ? cudaGetErrorString(err)
                                       : "cudaGetDeviceCount found 0 devices");
        std::exit(NO_GPU_EXIT);
    }
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    std::printf("GPU    %s | sm_%d%d | %d SMs\n", p.name, p.major, p.minor, p.multiProcessorCount);
}

inline void fill_uniform(float* x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {  // xorshift64*, top 24 bits -> [-1, 1)
        s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
        x[i] = (float)((s * 0x2545F4914F6CDD1Dull) >> 40) / 8388608.0f - 1.0f;
    }
}

// |got - want| <= atol + rtol |want| at every checked element? `index` (may be null) maps the
// i-th checked value to its flat position, for the message.
inline bool check_close(const char* step, const char* size, const char* what, const float* got,
                        const double* want, size_t n, double atol, double rtol) {
    double worst = 0;
    size_t bad = n;  // the first element out of tolerance (NaN counts)
    for (size_t i = 0; i < n; i++) {
        const double d = std::fabs((double)got[i] - want[i]);
        if (!(d <= atol + rtol * std::fabs(want[i])) && bad == n) bad = i;
        if (!(d <= worst)) worst = d;
    }
    std::printf("%-6s %s | %s | %s max abs diff %.2e (tolerance %.1e + %.1e |want|)",
                bad == n ? "OK" : "NOT OK", step, size, what, worst, atol, rtol);
    if (bad < n) std::printf(" (at %zu: got %g, want %g)", bad, got[bad], want[bad]);
    std::printf("\n");
    return bad == n;
}

struct Timing { double best_ms, median_ms, q1_ms, q3_ms, worst_ms; int n; };

// Runs fn() once to warm up, then repeats it, each call between two cudaEvents, until
// DEV_TIME seconds (default 1) of calls or 1000 calls (at least 3); best, quartiles, worst.
template <class F>
Timing time_ms(F fn) {
    const char* env = std::getenv("DEV_TIME");
    const double budget_ms = 1e3 * (env ? std::atof(env) : 1.0);
    cudaEvent_t a, b;
    CUDA_CHECK(cudaEventCreate(&a));
    CUDA_CHECK(cudaEventCreate(&b));
    fn();
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<double> ms;
    double total = 0;
    while (ms.size() < 3 || (total < budget_ms && ms.size() < 1000)) {
        CUDA_CHECK(cudaEventRecord(a));
        fn();
        CUDA_CHECK(cudaEventRecord(b));
        CUDA_CHECK(cudaEventSynchronize(b));
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
        ms.push_back(t);
        total += t;
    }
    CUDA_CHECK(cudaGetLastError());
    cudaEventDestroy(a), cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    const size_t n = ms.size();
    return {ms[0], ms[n / 2], ms[n / 4], ms[(3 * n) / 4], ms[n - 1], (int)n};
}

inline void print_time(const char* step, const char* size, Timing t, double flops) {
    std::printf("TIME   %s | %s | best %.4f ms | median %.4f ms | q1 %.4f ms | q3 %.4f ms | "
                "worst %.4f ms | %d runs | %.1f GFLOP/s\n", step, size, t.best_ms, t.median_ms,
                t.q1_ms, t.q3_ms, t.worst_ms, t.n, flops / (t.best_ms * 1e6));
}

// A device copy of host data, and back.
inline float* to_device(const std::vector<float>& h) {
    float* d = nullptr;
    CUDA_CHECK(cudaMalloc(&d, std::max<size_t>(1, h.size()) * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}
inline std::vector<float> to_host(const float* d, size_t n) {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}
