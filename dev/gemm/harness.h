/*
dev/gemm/harness.h: the main() of every GEMM step.

    build/gemm/<step> [--check] [M K N]      default 1024 1024 1024; --check: no timing

C (M,N) = A (M,K) @ B (K,N), row-major float32, A and B uniform in [-1, 1). The step's C is
checked against step 0's loops computed in double, to 1e-4 + 1e-6·K (float rounding of a
K-term sum is far below that; one wrong or missing term is off by ~0.3), then timed: best
wall time over DEV_TIME seconds, 2·M·N·K flops per call.
*/
#include "../common.h"

typedef void (*gemm_fn)(const float* A, const float* B, float* C, int M, int N, int K);

// Step 0 in double. i-k-j order so it takes a second at 1024^3, not a minute; each C[i,j] is
// still the sum over k in order.
static inline void gemm_reference(const float* A, const float* B, double* C, int M, int N, int K) {
    for (int i = 0; i < M; i++) {
        double* c = C + (size_t)i * N;
        for (int j = 0; j < N; j++) c[j] = 0.0;
        for (int k = 0; k < K; k++) {
            const double a = A[(size_t)i * K + k];
            const float* b = B + (size_t)k * N;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

static inline int gemm_main(int argc, char** argv, const char* file, gemm_fn gemm) {
    const int check_only = argc > 1 && !strcmp(argv[1], "--check");
    if (check_only) argc--, argv++;
    const int M = argc > 3 ? atoi(argv[1]) : 1024;
    const int K = argc > 3 ? atoi(argv[2]) : 1024;
    const int N = argc > 3 ? atoi(argv[3]) : 1024;
    if (M < 1 || K < 1 || N < 1) {
        fprintf(stderr, "usage: %s [--check] [M K N]   (all >= 1)\n", argv[0]);
        return 2;
    }
    const char* step = step_name(file);
    char size[64];
    snprintf(size, sizeof size, "M=%d K=%d N=%d", M, K, N);

    float *A = floats((size_t)M * K), *B = floats((size_t)K * N), *C = floats((size_t)M * N);
    double* want = (double*)malloc(sizeof(double) * M * N);
    fill_uniform(A, (size_t)M * K, 1);
    fill_uniform(B, (size_t)K * N, 2);
    for (size_t i = 0; i < (size_t)M * N; i++) C[i] = NAN;  // a skipped element shows up
    const double t0 = now_s();
    gemm(A, B, C, M, N, K);
    const double first_ms = (now_s() - t0) * 1e3;
    gemm_reference(A, B, want, M, N, K);
    if (!check_close(step, size, "C", C, want, (size_t)M * N, 1e-4 + 1e-6 * K, 0.0)) return 1;
    if (!check_only) {
        double ms;
        TIME_BEST(ms, first_ms, gemm(A, B, C, M, N, K));
        print_time(step, size, max_threads(), ms, 2.0 * M * N * K);
    }
    free(A), free(B), free(C), free(want);
    return 0;
}
