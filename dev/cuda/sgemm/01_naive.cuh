// SGEMM step 1: naive, one thread per element of C.      C (M,N) = A (M,K) @ B (K,N), row-major
//
//     C[i,j] = sum_k A[i,k] B[k,j]      thread (i, j): K loads of A and K loads of B, from DRAM/L2
//
// The definition. Consecutive threads of a warp (threadIdx.x) take consecutive columns j, so
// the warp's 32 loads of B[k, j..j+31] are one coalesced 128-byte transaction and A[i,k] is one
// broadcast: this is siboehm's kernels 1+2 (naive, then coalesced) in one. Every value is still
// fetched from global memory (L2 at best) once per multiply-add: 2 loads per 2 flops, so the
// kernel is bound by memory traffic, not by the FP32 units.
// Sizes: any M, N, K >= 1.
#pragma once
#include "cuda_compat.h"

namespace sgemm01 {

__global__ void sgemm_naive(const float* A, const float* B, float* C, int M, int N, int K) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;   // column of C: fastest across a warp
    const int i = blockIdx.y * blockDim.y + threadIdx.y;   // row of C
    if (i >= M || j >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; k++) acc += A[(size_t)i * K + k] * B[(size_t)k * N + j];
    C[(size_t)i * N + j] = acc;
}

inline const char* supports(int, int, int) { return nullptr; }

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 block(32, 8);   // 256 threads: a warp along a row of C, 8 rows
    const dim3 grid((N + 31) / 32, (M + 7) / 8);
    NNL_LAUNCH(grid, block, 0, stream, sgemm_naive)(A, B, C, M, N, K);
}

}  // namespace sgemm01
