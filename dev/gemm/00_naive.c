/*
GEMM step 0: the definition, loops i-j-k.     C (M,N) = A (M,K) @ B (K,N), row-major float32

    C[i,j] = sum_k A[i,k] B[k,j]

Loops i, j, k in the order of the formula: one dot product per element of C. The inner loop
walks down a column of B, N floats apart, so every B element read is a new cache line (at
N = 1024 the lines are 4 KiB apart and compete for the same few cache sets), and the sum is one
chain of dependent adds that the compiler may not reorder (float addition is not associative):
no SIMD, one add per FP-add latency at best.

Every later step is checked against these loops (run in double, harness.h).
Run:  make -C dev && dev/build/gemm/00_naive 1024 1024 1024
*/
#include "harness.h"

static void gemm(const float* A, const float* B, float* C, int M, int N, int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++) sum += A[i * K + k] * B[k * N + j];
            C[i * N + j] = sum;
        }
}

int main(int argc, char** argv) { return gemm_main(argc, argv, __FILE__, gemm); }
