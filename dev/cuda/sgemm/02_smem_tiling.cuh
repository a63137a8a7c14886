// SGEMM step 2: shared-memory tiling.                    C (M,N) = A (M,K) @ B (K,N), row-major
//
//     for each k-tile t:   As = A[i0:i0+32, t:t+32],  Bs = B[t:t+32, j0:j0+32]   (one load each)
//                          __syncthreads
//                          C[i,j] += sum_{kk<32} As[i-i0, kk] Bs[kk, j-j0]      (from shared)
//                          __syncthreads
//
// What changed from step 1: a block of 32x32 threads computes a 32x32 tile of C and walks K in
// tiles of 32. Each tile of A and of B is loaded from global memory once per block (each thread
// loads one element of each) into shared memory, then read 32 times from there. Global traffic
// drops 32x; the limit moves to shared-memory bandwidth: still 2 shared loads per FMA. The
// first __syncthreads makes the tile complete before anyone reads it; the second keeps a fast
// thread from overwriting it while others still read (the ThreadSanitizer shim test catches
// either one missing). Out-of-range elements load as 0, so any size works.
// Sizes: any M, N, K >= 1.
#pragma once
#include "cuda_compat.h"

namespace sgemm02 {

constexpr int TILE = 32;

__global__ void sgemm_smem_tiling(const float* A, const float* B, float* C, int M, int N,
                                  int K) {
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int i = blockIdx.y * TILE + ty, j = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int t = 0; t < K; t += TILE) {
        // no early return above: every thread must reach both barriers
        As[ty][tx] = (i < M && t + tx < K) ? A[(size_t)i * K + t + tx] : 0.0f;
        Bs[ty][tx] = (t + ty < K && j < N) ? B[(size_t)(t + ty) * N + j] : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < TILE; kk++) acc += As[ty][kk] * Bs[kk][tx];
        __syncthreads();
    }
    if (i < M && j < N) C[(size_t)i * N + j] = acc;
}

inline const char* supports(int, int, int) { return nullptr; }

inline void launch(const float* A, const float* B, float* C, int M, int N, int K,
                   cudaStream_t stream) {
    const dim3 block(TILE, TILE);
    const dim3 grid((N + TILE - 1) / TILE, (M + TILE - 1) / TILE);
    NNL_LAUNCH(grid, block, 0, stream, sgemm_smem_tiling)(A, B, C, M, N, K);
}

}  // namespace sgemm02
