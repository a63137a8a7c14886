// dev/cuda/sgemm/reference.h: the CPU reference of the SGEMM ladder (plain C++: used by the
// steps' main()s and by the shim test driver, shim_test.cpp).
//
//   C (M,N) = A (M,K) @ B (K,N), row-major; the reference is the definition run in double.
#pragma once
#include <cmath>
#include <cstddef>

// Row i of C in double: want[j] = sum_k A[i,k] B[k,j] (k in order, i-k-j so B streams).
inline void sgemm_reference_row(const float* A, const float* B, double* want, int i, int N,
                                int K) {
    for (int j = 0; j < N; j++) want[j] = 0.0;
    for (int k = 0; k < K; k++) {
        const double a = A[(size_t)i * K + k];
        const float* b = B + (size_t)k * N;
        for (int j = 0; j < N; j++) want[j] += a * b[j];
    }
}

// The tolerance of a step's C: float32 steps 1e-4 + 1e-6·K (float rounding of a K-term sum of
// products in [-1, 1] is far below; one wrong or missing term is off by ~0.3); the TF32 step
// (inputs rounded to a 10-bit mantissa, relative error 2^-11 per factor) 1e-3·sqrt(K), still
// well below one wrong term up to K ~ 10^4.
inline double sgemm_tolerance(int K, bool tf32) {
    return tf32 ? 1e-3 * std::sqrt((double)K) : 1e-4 + 1e-6 * K;
}
