// dev/cuda/sgemm/harness.cuh: the main() of every SGEMM step (nvcc only).
//
//     build/sgemm/<step> [--check] [M K N]      default 4096 4096 4096; --check: no timing
//
// C (M,N) = A (M,K) @ B (K,N), row-major float32, A and B uniform in [-1, 1) (dev/common.h's
// stream). C is checked against the definition run in double on the CPU (reference.h): every
// row when M·N·K <= 2^30, else 32 rows spread over C, first and last included (a full double
// reference at 4096^3 would take a minute of CPU), to 1e-4 + 1e-6·K (TF32: 1e-3·sqrt(K)). Then
// timed with cudaEvents over DEV_TIME seconds (default 1): best and median, 2·M·N·K flops per
// call, GFLOP/s of the best. Exit codes: harness.cuh at dev/cuda/ (77: no GPU).
#pragma once
#include "../harness.cuh"
#include "reference.h"

using sgemm_launch_fn = void (*)(const float* A, const float* B, float* C, int M, int N, int K,
                                 cudaStream_t stream);
using sgemm_supports_fn = const char* (*)(int M, int N, int K);  // nullptr, or why not

inline int sgemm_main(int argc, char** argv, const char* file, sgemm_launch_fn launch,
                      sgemm_supports_fn supports, bool tf32) {
    const bool check_only = argc > 1 && !std::strcmp(argv[1], "--check");
    if (check_only) argc--, argv++;
    const int M = argc > 3 ? std::atoi(argv[1]) : 4096;
    const int K = argc > 3 ? std::atoi(argv[2]) : 4096;
    const int N = argc > 3 ? std::atoi(argv[3]) : 4096;
    const char* step = step_name(file);
    if (M < 1 || K < 1 || N < 1) {
        std::fprintf(stderr, "usage: %s [--check] [M K N]   (all >= 1)\n", argv[0]);
        return 2;
    }
    if (const char* why = supports(M, N, K)) {
        std::fprintf(stderr, "%s: M=%d K=%d N=%d not supported: %s\n", step, M, K, N, why);
        return 2;
    }
    gpu_or_exit(step);
    char size[64];
    std::snprintf(size, sizeof size, "M=%d K=%d N=%d", M, K, N);

    std::vector<float> A((size_t)M * K), B((size_t)K * N), C((size_t)M * N, NAN);
    fill_uniform(A.data(), A.size(), 1);
    fill_uniform(B.data(), B.size(), 2);
    float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);  // C: NaN, so gaps show
    launch(dA, dB, dC, M, N, K, 0);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    C = to_host(dC, C.size());

    std::vector<int> rows;
    if ((double)M * N * K <= (double)(1 << 30) || M <= 32)
        for (int i = 0; i < M; i++) rows.push_back(i);
    else
        for (int r = 0; r < 32; r++) rows.push_back((int)((long long)r * (M - 1) / 31));
    std::vector<double> want(rows.size() * (size_t)N);
    std::vector<float> got(rows.size() * (size_t)N);
    for (size_t r = 0; r < rows.size(); r++) {
        sgemm_reference_row(A.data(), B.data(), want.data() + r * N, rows[r], N, K);
        std::copy_n(C.data() + (size_t)rows[r] * N, N, got.data() + r * N);
    }
    char what[64];
    std::snprintf(what, sizeof what, "C (%zu of %d rows)%s", rows.size(), M,
                  tf32 ? " TF32" : "");
    const bool ok = check_close(step, size, what, got.data(), want.data(), got.size(),
                                sgemm_tolerance(K, tf32), 0.0);
    if (ok && !check_only) {
        const Timing t = time_ms([&] { launch(dA, dB, dC, M, N, K, 0); });
        print_time(step, size, t, 2.0 * M * N * K);
    }
    cudaFree(dA), cudaFree(dB), cudaFree(dC);
    return ok ? 0 : 1;
}
