/*
GEMM step 1: loop order i-k-j.     C (M,N) = A (M,K) @ B (K,N), row-major float32

    for i, for k:  C[i, :] += A[i,k] * B[k, :]        (a row of C built from rows of B)

Same arithmetic as step 0, loops k and j swapped. The inner loop now reads B and C with unit
stride: every cache line is used whole, the hardware prefetcher sees the stream, and the
iterations are independent (each j has its own C[i,j]), so the compiler vectorises it
(-O3; with no -m flags that is 4-wide SSE2, the x86-64 baseline a wheel has to assume).
What is left: for each row of A, all of B (K x N, 4 MiB at 1024^2) streams through the
caches again, and C[i, :] is loaded and stored once per k.

Standalone on purpose: the code this step shares with 00_naive.c is repeated, not included, so each
file reads (and compiles) alone; `diff 00_naive.c 01_loop_order.c` shows exactly what this step changes.

Run:  make -C dev && dev/build/gemm/01_loop_order 1024 1024 1024
*/
#include "harness.h"

static void gemm(const float* A, const float* B, float* C, int M, int N, int K) {
    memset(C, 0, sizeof(float) * M * N);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            const float a = A[i * K + k];
            for (int j = 0; j < N; j++) C[i * N + j] += a * B[k * N + j];
        }
}

int main(int argc, char** argv) { return gemm_main(argc, argv, __FILE__, gemm); }
